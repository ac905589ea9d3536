"""Label sets: what an analyst's exported labels file must look like, and what it means."""

from __future__ import annotations

import json

import pytest

from models.taxonomy import default_taxonomy
from nlp.errors import InvalidFileError
from training.labelset import LabelExample, read_label_set, write_label_set


def write_lines(path, rows) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")


def test_round_trip_keeps_every_field_and_the_difference_between_unlabelled_and_no_topic(tmp_path):
    examples = [
        LabelExample(id="r1", text="吃完就拉肚子了，菜也不新鲜", lang="zh", sentiment="negative",
                     topics={"product.quality": "negative"}, touchpoints=("use",)),
        LabelExample(id="r2", text="great!", lang="en", sentiment="positive", topics={}),  # labelled: no topic
        LabelExample(id="r3", text="送餐很快"),  # not labelled for anything yet
    ]
    path = write_label_set(tmp_path / "labels.jsonl", examples)
    assert read_label_set(path) == examples
    lines = path.read_text(encoding="utf-8").splitlines()
    assert "拉肚子" in lines[0]  # UTF-8 text, not \u escapes
    assert json.loads(lines[1])["topics"] == {} and "topics" not in json.loads(lines[2])


def test_contract_shaped_topics_regional_lang_and_integer_ids_are_accepted(tmp_path):
    path = tmp_path / "labels.jsonl"
    write_lines(path, [{"id": 17, "text": "The agent was rude", "lang": "en-US",
                        "topics": [{"id": "service.attitude", "polarity": "Negative"}], "touchpoints": [{"id": "support"}]}])
    (ex,) = read_label_set(path, taxonomy=default_taxonomy())
    assert (ex.id, ex.lang, ex.topics, ex.touchpoints) == ("17", "en", {"service.attitude": "negative"}, ("support",))


def test_every_bad_line_is_reported_at_once_with_its_line_number(tmp_path):
    path = tmp_path / "labels.jsonl"
    write_lines(path, [
        {"id": "a", "text": "配送太慢了", "topics": {"delivery.timeliness": "negative"}},
        "",
        "{not json",
        {"id": "b", "text": "   "},
        {"id": "a", "text": "duplicate id"},
        {"id": "c", "text": "ok", "sentiment": "mixed"},
        {"id": "d", "text": "服务很好", "topics": {"service": "positive"}},
        {"id": "e", "text": "x", "colour": "red"},
    ])
    with pytest.raises(InvalidFileError) as info:
        read_label_set(path, taxonomy=default_taxonomy())
    problems = {p["line"]: p["reason"] for p in info.value.details}
    assert sorted(problems) == [3, 4, 5, 6, 7, 8]
    assert "JSON" in problems[3] and "text" in problems[4] and "line 1" in problems[5]
    assert "sentiment" in problems[6] and "level-1" in problems[7] and "colour" in problems[8]
    assert "6 bad label line(s)" in info.value.message


def test_an_empty_or_missing_file_is_an_error_that_says_what_to_give(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(InvalidFileError, match="no labels"):
        read_label_set(tmp_path / "empty.jsonl")
    with pytest.raises(InvalidFileError, match="No label set"):
        read_label_set(tmp_path / "missing.jsonl")


@pytest.mark.data
def test_labels_drawn_from_a_public_set_are_valid_analyst_labels(shared_data, tmp_path):
    from training.labelset import labels_from_dataset

    tax = default_taxonomy()
    labels = labels_from_dataset("zhijiang2019_makeup_opinion", "train", 40, taxonomy=tax, seed=3)
    assert len(labels) == 40 and len({e.id for e in labels}) == 40
    assert all(e.id.startswith("zhijiang2019_makeup_opinion:train:") and e.lang == "zh" for e in labels)
    assert any(e.topics for e in labels) and all(e.topics is not None for e in labels)  # exhaustive: {} = no topic
    assert labels == labels_from_dataset("zhijiang2019_makeup_opinion", "train", 40, taxonomy=tax, seed=3)
    # they pass the same checks an analyst's exported file does
    assert read_label_set(write_label_set(tmp_path / "l.jsonl", labels), taxonomy=tax) == labels
