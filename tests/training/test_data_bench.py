"""The fixed 2,000-record mixed benchmark file and its contract-format export."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from nlp.records import read_records
from training.data import MIXED2000_PATH, load_mixed2000, write_records_jsonl
from training.data.bench import MIXED2000_PLAN, format_ids, read_ids, sample_mixed2000


def test_ids_file_holds_ids_only():
    text = MIXED2000_PATH.read_text(encoding="utf-8")
    pairs = read_ids()
    assert len(pairs) == 2000 and len(set(pairs)) == 2000
    assert Counter(name for name, _ in pairs) == dict(MIXED2000_PLAN)
    assert not re.search(r"[\u4e00-\u9fff]", text)  # no Chinese text leaked into the file
    assert all(re.fullmatch(r"[\w#:-]{1,24}", id_) for _, id_ in pairs)  # ids, not sentences


@pytest.mark.data
def test_committed_file_is_what_the_seeded_sampler_draws(shared_data):
    assert format_ids(sample_mixed2000()) == MIXED2000_PATH.read_text(encoding="utf-8")


@pytest.mark.data
def test_mixed2000_loads_test_records_in_file_order(shared_data):
    examples = load_mixed2000()
    assert [(e.dataset, e.id) for e in examples] == read_ids()
    assert Counter(e.lang for e in examples) == {"zh": 1000, "en": 1000}
    assert {e.split for e in examples} == {"test"}
    # languages interleave rather than coming in two blocks
    assert {e.lang for e in examples[:50]} == {"zh", "en"}


@pytest.mark.data
def test_export_is_a_valid_records_file(shared_data, tmp_path):
    examples = load_mixed2000()
    path = tmp_path / "mixed2000.jsonl"
    assert write_records_jsonl(examples, path) == 2000
    result = read_records(path)
    assert result.rejected == [] and len(result.records) == 2000
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert first["id"] == examples[0].key and set(first) >= {"id", "text", "lang", "dataset"}
    assert [r.text for r in result.records] == [e.text for e in examples]
    assert result.records[0].metadata["split"] == "test"


@pytest.mark.data
def test_export_writes_contract_scores(shared_data, tmp_path):
    from training.data import load_dataset

    lounge = load_dataset("skytrax_lounge")[:50]
    path = tmp_path / "lounge.jsonl"
    write_records_jsonl(lounge, path)
    result = read_records(path)
    assert result.rejected == []
    first = result.records[0]
    assert first.id == "0" and first.rating == 3 and first.rating_scale == 5
    assert first.recommend is True and first.metadata["score_staff_service"] == 2.0
