"""Normalisation: what changes, what is kept, and exact offsets back to the original."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlp.errors import InvalidInputError
from nlp.normalize import Normalizer, decode_text, normalize


def test_html_and_repeated_punctuation_with_exact_span_mapping() -> None:
    original = "<p>菜很好吃！！！但是配送太慢了</p>"
    n = normalize(original)
    assert n.text == "菜很好吃！但是配送太慢了"
    start = n.text.index("但是")
    a, b = n.to_original(start, len(n.text))
    assert original[a:b] == "但是配送太慢了"
    a, b = n.to_original(0, 5)  # "菜很好吃！" stands for the three exclamation marks
    assert original[a:b] == "菜很好吃！！！"


def test_traditional_becomes_simplified_but_original_is_kept() -> None:
    original = "這家餐廳服務很好，後來的頭髮乾燥問題也解決了"
    n = normalize(original)
    assert n.text == "这家餐厅服务很好，后来的头发干燥问题也解决了"
    assert n.original == original
    start = n.text.index("餐厅")
    assert n.original_span(start, start + 4) == "餐廳服務"
    assert len(n.offsets) == len(n.text)


def test_traditional_phrase_conversion_keeps_per_character_offsets() -> None:
    # OpenCC converts phrases; every normalised character must still map to one original one.
    original = "我們的電腦程式在後台運行，著名的乾隆皇帝"
    n = normalize(original)
    assert len(n.text) == len(original)
    for i in range(len(n.text)):
        a, b = n.to_original(i, i + 1)
        assert b - a == 1


def test_full_width_to_half_width_keeps_chinese_punctuation() -> None:
    n = normalize("ＡＢＣ　１２３元，太贵了！（不推荐）")
    assert n.text == "ABC 123元，太贵了！（不推荐）"


def test_whitespace_control_characters_and_zero_width_marks() -> None:
    n = normalize("  送餐\x00很快\u200b\r\n\r\n\t味道   一般\x07  ")
    assert n.text == "送餐很快\n味道 一般"


def test_entities_tags_and_urls() -> None:
    original = "Tom&amp;Jerry&nbsp;cafe<br/>see https://t.co/abc123?x=1. thanks"
    n = normalize(original)
    assert n.text == "Tom&Jerry cafe\nsee [URL]. thanks"
    start = n.text.index("[URL]")
    assert n.original_span(start, start + 5) == "https://t.co/abc123?x=1"
    assert n.original_span(start + 1, start + 2) == "https://t.co/abc123?x=1"


def test_url_next_to_chinese_stops_at_the_chinese() -> None:
    assert normalize("详情见www.example.com/item/1看看").text == "详情见[URL]看看"


def test_mojibake_is_repaired_run_by_run() -> None:
    n = normalize("cafÃ© au lait, é”€å”®很好")
    assert n.text == "café au lait, 销售很好"
    start = n.text.index("销售")
    assert n.original_span(start, start + 2) == "é”€å”®"


def test_genuine_accents_and_curly_quotes_are_untouched() -> None:
    assert normalize("Crème brûlée “excellent”").text == "Crème brûlée “excellent”"


def test_surrogates() -> None:
    assert normalize("good\ud800 food").text == "good food"
    assert normalize("\ud83d\ude00 nice").text == "😀 nice"


def test_repeated_punctuation_variants() -> None:
    assert normalize("太好吃了。。。。").text == "太好吃了。"
    assert normalize("What?!?! Why???").text == "What? Why?"
    assert normalize("好吃~~~~").text == "好吃~"
    assert normalize("price 4.5/5, $12.99").text == "price 4.5/5, $12.99"


def test_non_string_is_a_clear_error_and_bytes_decode() -> None:
    with pytest.raises(InvalidInputError, match="decode_text"):
        normalize(b"abc")  # type: ignore[arg-type]
    assert decode_text("送餐很快".encode()) == "送餐很快"
    assert decode_text("送餐很快".encode("gbk")) == "送餐很快"
    with pytest.raises(InvalidInputError):
        decode_text(b"\xff\xfe\xfd\x80\x80")


def test_one_megabyte_is_linear() -> None:
    unit = "菜很好吃！！但是配送太慢了 &amp; http://x.co/a <b>ok</b>\n"
    small = unit * 200
    big = unit * (1_000_000 // len(unit))
    t0 = time.perf_counter()
    normalize(small)
    t_small = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = normalize(big)
    t_big = time.perf_counter() - t0
    assert len(n.offsets) == len(n.text) > 500_000
    # 87x the text must not take more than a few hundred times as long (no quadratic blow-up).
    assert t_big < max(t_small, 0.001) * 87 * 5 + 2.0


def test_normalizer_without_conversion() -> None:
    assert Normalizer(traditional_to_simplified=False)("這家餐廳").text == "這家餐廳"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_offsets_are_valid_for_any_text(text: str) -> None:
    n = normalize(text)
    assert len(n.offsets) == len(n.ends) == len(n.text)
    for i in range(len(n.text)):
        assert 0 <= n.offsets[i] < n.ends[i] <= len(text)
        if i:
            assert n.offsets[i - 1] <= n.offsets[i]
            assert n.ends[i - 1] <= n.ends[i]
    for start in range(len(n.text) + 1):
        for end in range(start, min(len(n.text), start + 4) + 1):
            a, b = n.to_original(start, end)
            assert 0 <= a <= b <= len(text)


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("菜很好吃這餐廳!！。 ab<>&;p/\n\t\x00\ud800é"), max_size=40)
)
def test_offsets_on_adversarial_alphabet(text: str) -> None:
    n = normalize(text)
    assert len(n.offsets) == len(n.text)
    if n.text:
        a, b = n.to_original(0, len(n.text))
        assert 0 <= a <= b <= len(text)


class _PhraseChangingConverter:
    """Stands in for an OpenCC phrase rule that changes length ("後來" -> "后来了")."""

    def convert(self, text: str) -> str:
        if "後來" in text:
            return text.replace("後來", "后来了")
        return text.replace("後", "后").replace("來", "来").replace("們", "们")


def test_length_changing_phrase_conversion_falls_back_to_characters() -> None:
    normalizer = Normalizer()
    normalizer._converter = _PhraseChangingConverter()
    original = "我們後來很滿意"
    n = normalizer(original)
    assert n.text == "我们后来很滿意"
    start = n.text.index("后来")
    assert n.original_span(start, start + 2) == "後來"
    assert [n.to_original(i, i + 1) for i in range(len(n.text))] == [
        (i, i + 1) for i in range(len(original))
    ]
