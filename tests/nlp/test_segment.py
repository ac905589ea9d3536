"""Segmentation: CEM terms stay whole, stop words go, negations stay, one segmenter for all."""

from __future__ import annotations

import pickle

import pytest

from nlp.lang import Lang
from nlp.segment import Segmenter, get_default_segmenter, load_word_list


@pytest.fixture(scope="module")
def seg() -> Segmenter:
    return get_default_segmenter()


def test_user_dictionary_keeps_cem_terms_whole(seg: Segmenter) -> None:
    tokens = seg("外卖小哥送餐超时，找饿了么客服申请七天无理由退货，还要开电子发票")
    for term in ("外卖小哥", "送餐", "饿了么", "客服", "七天无理由退货", "电子发票"):
        assert term in tokens, tokens


def test_user_dictionary_is_large_and_real() -> None:
    words = load_word_list("cem_userdict.txt")
    entries = {line.split()[0] for line in words}
    assert len(entries) >= 150
    for term in ("顺丰", "京东", "美团", "拼多多", "骑手", "价保", "性价比", "优惠券", "积分"):
        assert term in entries


def test_chinese_stop_words_dropped_negations_kept(seg: Segmenter) -> None:
    tokens = seg("这个菜不好吃，而且也没有送餐具")
    assert "这个" not in tokens and "而且" not in tokens and "也" not in tokens
    assert "没有" in tokens
    assert "不好吃" in tokens or "不" in tokens


def test_english_tokens_lowercase_contractions_and_negations(seg: Segmenter) -> None:
    tokens = seg("The driver DIDN'T call and the food wasn’t hot, never again!")
    assert tokens == ["driver", "didn't", "call", "food", "wasn't", "hot", "never"]


def test_mixed_text_uses_both_tokenizers(seg: Segmenter) -> None:
    tokens = seg("iPhone屏幕碎了, the screen protector was useless")
    assert tokens[:2] == ["iphone", "屏幕"]
    assert "screen" in tokens and "protector" in tokens and "useless" in tokens


def test_keep_stopwords_and_no_punctuation_or_placeholders(seg: Segmenter) -> None:
    tokens = seg.tokenize("菜很好吃！！联系[PHONE]，😀 ok?", drop_stopwords=False)
    assert tokens == ["菜", "很", "好吃", "联系", "ok"]


def test_lang_hint_does_not_change_tokens(seg: Segmenter) -> None:
    text = "Refund took 2 weeks, 客服太慢"
    assert seg.tokenize(text, Lang.en) == seg.tokenize(text) == seg.tokenize(text, "zh")


def test_private_jieba_tokenizer_leaves_the_global_one_alone(seg: Segmenter) -> None:
    import jieba

    assert seg.jieba_tokenizer is not jieba.dt
    assert "七天无理由退货" in seg.jieba_tokenizer.FREQ
    jieba.dt.initialize()
    assert "七天无理由退货" not in jieba.dt.FREQ


def test_pickle_round_trip_gives_the_same_tokens(seg: Segmenter) -> None:
    text = "外卖小哥态度很好，delivery was fast"
    restored = pickle.loads(pickle.dumps(seg))
    assert restored(text) == seg(text)


def test_works_as_a_scikit_learn_tokenizer(seg: Segmenter) -> None:
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(tokenizer=seg, token_pattern=None, lowercase=False)
    vectorizer.fit(["快递员态度很差", "The delivery was late", "快递员送餐很快"])
    vocab = set(vectorizer.get_feature_names_out())
    assert {"快递员", "态度", "delivery", "late", "送餐"} <= vocab
    assert "the" not in vocab and "很" not in vocab


def test_default_segmenter_is_shared() -> None:
    assert get_default_segmenter() is get_default_segmenter()


def test_unknown_language_hint_is_a_clear_error(seg: Segmenter) -> None:
    from nlp.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="lang must be one of"):
        seg.tokenize("ok", "fr")
