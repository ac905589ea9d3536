"""Language detection on a labelled table of real-looking CEM verbatims."""

from __future__ import annotations

import pickle

import pytest

from nlp.lang import Lang, LanguageDetector, detect_language

# (text, expected) — short replies, Traditional Chinese, brand names, code-switching, other scripts.
TABLE: list[tuple[str, Lang]] = [
    ("好评", Lang.zh),
    ("差", Lang.zh),
    ("👍很棒", Lang.zh),
    ("送餐很快，味道不错", Lang.zh),
    ("外卖小哥态度太差了，汤都洒了", Lang.zh),
    ("這家餐廳服務很好", Lang.zh),
    ("物流太慢了，客服也不回覆", Lang.zh),
    ("iPhone屏幕碎了", Lang.zh),
    ("买的iPad Pro两天就到了，顺丰很给力", Lang.zh),
    ("这个app太难用了", Lang.zh),
    ("KFC的汉堡凉了", Lang.zh),
    ("用了三天WiFi就连不上", Lang.zh),
    ("订单号123456还没发货！！！", Lang.zh),
    ("五星好评😊😊", Lang.zh),
    ("Nike的鞋子质量不错，尺码偏大", Lang.zh),
    ("ok", Lang.en),
    ("OK!!", Lang.en),
    ("good", Lang.en),
    ("terrible", Lang.en),
    ("bad service", Lang.en),
    ("Love it 😍", Lang.en),
    ("The food was cold and the driver was rude.", Lang.en),
    ("@united my flight was Cancelled Flightled and nobody called me", Lang.en),
    ("Customer service was helpful, refund arrived in 3 days", Lang.en),
    ("Worst airline ever. Lost my bag twice.", Lang.en),
    ("fast shipping, great price", Lang.en),
    ("I ordered the dumplings at Din Tai Fung", Lang.en),
    ("The delivery was late, 快递员态度也很差", Lang.mixed),
    ("快递太慢了, so disappointed with this", Lang.mixed),
    ("I really like this store, 服务很好", Lang.mixed),
    ("菜很好吃 but the delivery took two hours", Lang.mixed),
    ("客服说可以退款, but they never did it", Lang.mixed),
    ("This is the worst 外卖 experience, 再也不点了", Lang.mixed),
    ("👍👍👍", Lang.other),
    ("。。。！！！", Lang.other),
    ("???", Lang.other),
    ("12345", Lang.other),
    ("", Lang.other),
    ("   ", Lang.other),
    ("美味しかったです、また来ます", Lang.other),
    ("ありがとうございます", Lang.other),
    ("배송이 너무 느려요", Lang.other),
    ("très bien, livraison rapide", Lang.other),
    ("Sehr gut, schnelle Lieferung", Lang.other),
    ("Muy buen servicio, gracias", Lang.other),
    ("Очень плохая доставка", Lang.other),
]


def test_table_has_every_language_and_enough_rows() -> None:
    assert len(TABLE) >= 40
    assert {label for _, label in TABLE} == set(Lang)


def test_accuracy_on_labelled_table() -> None:
    detector = LanguageDetector()
    wrong = [(text, label, detector.detect(text)) for text, label in TABLE]
    wrong = [row for row in wrong if row[1] != row[2]]
    accuracy = 1 - len(wrong) / len(TABLE)
    assert accuracy >= 0.95, f"accuracy {accuracy:.3f}; wrong: {wrong}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("好评", Lang.zh),
        ("差", Lang.zh),
        ("ok", Lang.en),
        ("👍很棒", Lang.zh),
        ("這家餐廳服務很好", Lang.zh),
        ("iPhone屏幕碎了", Lang.zh),
        ("The delivery was late, 快递员态度也很差", Lang.mixed),
        ("😡😡", Lang.other),
        ("!!!", Lang.other),
        ("ありがとう", Lang.other),
        ("très bien", Lang.other),
    ],
)
def test_hard_cases(text: str, expected: Lang) -> None:
    assert detect_language(text) is expected


def test_lang_is_a_plain_string_enum() -> None:
    assert Lang("zh") is Lang.zh
    assert Lang.mixed == "mixed"
    assert f"{Lang.en}" == "en"


def test_detector_survives_pickling_and_non_strings() -> None:
    detector = pickle.loads(pickle.dumps(LanguageDetector()))
    assert detector.detect("送餐很快") is Lang.zh
    assert detector.detect(None) is Lang.other  # type: ignore[arg-type]
