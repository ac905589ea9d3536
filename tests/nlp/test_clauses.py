"""Clause splitting at punctuation and contrast markers, with offsets into the given text."""

from __future__ import annotations

import pytest

from nlp.clauses import Clause, split_clauses


def _texts(text: str) -> list[str]:
    return [c.text for c in split_clauses(text)]


def test_chinese_contrast_marker_starts_the_second_clause() -> None:
    assert split_clauses("菜很好吃但是配送太慢了") == [
        Clause("菜很好吃", 0, 4),
        Clause("但是配送太慢了", 4, 11),
    ]


def test_english_but_gives_two_clauses() -> None:
    text = "The food was great but the delivery was late"
    clauses = split_clauses(text)
    assert [c.text for c in clauses] == ["The food was great", "but the delivery was late"]
    for c in clauses:
        assert text[c.start : c.end] == c.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "味道不错，送餐很快，包装也好。下次还来！！",
            ["味道不错", "送餐很快", "包装也好", "下次还来"],
        ),
        ("外卖小哥态度很好，不过送餐慢了点…", ["外卖小哥态度很好", "不过送餐慢了点"]),
        ("价格便宜质量却很差", ["价格便宜", "质量却很差"]),
        ("虽然贵了点可是真的好吃", ["虽然贵了点", "可是真的好吃"]),
        ("不但好吃而且便宜", ["不但好吃而且便宜"]),
        ("东西还行；只是物流太慢", ["东西还行", "只是物流太慢"]),
        ("Good food, but slow service.", ["Good food", "but slow service"]),
        (
            "Although the food was good, the service was terrible",
            ["Although the food was good", "the service was terrible"],
        ),
        ("Cheap, fast, tasty.", ["Cheap, fast, tasty"]),
        (
            "The room was clean, and the staff were friendly; however the wifi was slow.",
            ["The room was clean", "and the staff were friendly", "however the wifi was slow"],
        ),
        (
            "Rated 4.5 stars. Not yet delivered though",
            ["Rated 4.5 stars", "Not yet delivered though"],
        ),
        ("第一行\n\n第二行", ["第一行", "第二行"]),
        (
            "菜很好吃 but the delivery took two hours",
            ["菜很好吃", "but the delivery took two hours"],
        ),
    ],
)
def test_clauses(text: str, expected: list[str]) -> None:
    assert _texts(text) == expected


def test_offsets_are_exact_and_whitespace_stripped() -> None:
    text = "  Great pizza!!   But cold,  however cheap.  "
    for c in split_clauses(text):
        assert text[c.start : c.end] == c.text
        assert c.text == c.text.strip() and c.text
    assert _texts(text) == ["Great pizza", "But cold", "however cheap"]


def test_no_empty_or_punctuation_only_clauses() -> None:
    assert split_clauses("") == []
    assert split_clauses("！！！。。。") == []
    assert _texts("👍👍") == ["👍👍"]
