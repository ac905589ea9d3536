"""prepare(): bad input gives a clear error, good input a masked text mapped to the original."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlp.clauses import split_clauses
from nlp.errors import InvalidInputError
from nlp.lang import Lang
from nlp.pii import PiiKind
from nlp.prepare import MAX_CHARS, prepare
from nlp.segment import get_default_segmenter


def test_traditional_html_phone_and_offsets_compose() -> None:
    original = "<p>我的電話是 138 1234 5678！！！但是配送太慢了</p>"
    p = prepare(original)
    assert p.text == "我的电话是 [PHONE]！但是配送太慢了"
    assert p.original == original
    assert p.lang is Lang.zh and p.lang_detected
    start = p.text.index("[PHONE]")
    assert p.original_span(start, start + 7) == "138 1234 5678"
    assert p.original_span(start + 3, start + 4) == "138 1234 5678"  # inside the placeholder
    start = p.text.index("但是")
    assert p.original_span(start, len(p.text)) == "但是配送太慢了"
    assert p.original_span(0, 4) == "我的電話"
    assert [(s.kind, original[s.start : s.end]) for s in p.pii] == [
        (PiiKind.phone, "138 1234 5678")
    ]


def test_english_with_email_url_and_order() -> None:
    original = "Order number: 114-3941689-8772232 never came!!! Email me at a.b@gmail.com or see https://x.co/q"
    p = prepare(original)
    assert p.text == "Order number: [ORDER] never came! Email me at [EMAIL] or see [URL]"
    assert p.lang is Lang.en  # placeholders do not count as English or Chinese words
    assert p.pii_kinds == {PiiKind.order, PiiKind.email}
    start = p.text.index("never")
    assert p.original_span(start, start + 10) == "never came"


def test_given_language_is_used_and_validated() -> None:
    p = prepare("ok", lang="zh")
    assert p.lang is Lang.zh and not p.lang_detected
    with pytest.raises(InvalidInputError, match="lang must be one of"):
        prepare("ok", lang="fr")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (None, "missing"),
        (123, "must be a string, got int"),
        (["送餐很快"], "must be a string, got list"),
        (b"\xe9\x80\x81\xe9\xa4\x90", "decode_text"),
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("好" * (MAX_CHARS + 1), "more than the limit"),
        ("\x00\x01\x02", "no content left"),
        ("<p></p><br/>", "no content left"),
        ("\udfff\ud800", "no content left"),
    ],
)
def test_bad_input_gives_a_clear_error(bad: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        prepare(bad)  # type: ignore[arg-type]


def test_one_megabyte_is_refused_quickly_and_the_limit_is_after_trimming() -> None:
    with pytest.raises(InvalidInputError, match="1,000,000 characters"):
        prepare("a" * 1_000_000)
    assert len(prepare("  " + "好" * MAX_CHARS + "  ").text) == MAX_CHARS


def test_defined_results_for_odd_but_valid_input() -> None:
    assert prepare("送餐\x00很快\ud800").text == "送餐很快"
    assert prepare("cafÃ© was great").text == "café was great"
    assert prepare("👍👍👍").lang is Lang.other
    assert prepare("😡").text == "😡"


def test_every_prepared_character_maps_inside_the_original() -> None:
    original = "  ＡＢＣ外賣 &amp; 13912345678 ok！！ "
    p = prepare(original)
    assert len(p.offsets) == len(p.ends) == len(p.text)
    for i in range(len(p.text)):
        a, b = p.to_original(i, i + 1)
        assert 0 <= a < b <= len(original)
    with pytest.raises(IndexError):
        p.to_original(0, len(p.text) + 1)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=80))
def test_any_text_gives_a_result_or_a_clear_error(text: str) -> None:
    try:
        p = prepare(text)
    except InvalidInputError as error:
        assert error.message
        return
    assert p.text and len(p.offsets) == len(p.text)
    for clause in split_clauses(p.text):
        a, b = p.to_original(clause.start, clause.end)
        assert 0 <= a < b <= len(text)
    assert all(isinstance(t, str) and t for t in get_default_segmenter()(p.text))
