"""``verbatim eval --suite NAME``: one product suite measured again in place of the full run's.

The full run is the committed ``evaluation/results.json``; the evidence suite is measured again
with stand-in predictors built from the gold aspect spans of the real test splits, so the expected
scores follow from the data: evidence on every gold span gives a hit rate of 100%, no topics 0%.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _gold_spans(shared_data) -> dict[str, list[tuple[int, int]]]:
    from evaluation.product import EVIDENCE_SETS
    from evaluation.suite import Context

    ctx = Context(data_dir=shared_data)
    spans: dict[str, list[tuple[int, int]]] = {}
    for plan in EVIDENCE_SETS:
        for ex in ctx.splits(plan)[2]:
            spans.setdefault(ex.text, []).extend((a.start, a.end) for a in ex.aspects)  # a text may repeat
    return spans


def _predict_on_gold(spans):
    def predict(texts):
        return [{"sentiment": {"label": "neutral", "score": 0.0, "confidence": 1.0}, "touchpoints": [],
                 "primary_touchpoint": None,
                 "topics": [{"id": "product.quality", "polarity": "neutral", "confidence": 1.0,
                             "evidence": {"start": s, "end": e, "text": t[s:e]}} for s, e in spans.get(t, [])]}
                for t in texts]
    return predict


def test_the_evidence_suite_is_replaced_and_the_rest_of_the_report_kept(last_run_copy, shared_data):
    from evaluation.run import rerun_suites

    before = json.loads((last_run_copy / "results.json").read_text(encoding="utf-8"))
    rerun_suites(["evidence"], predict_fn=_predict_on_gold(_gold_spans(shared_data)), model_name="stand-in@1",
                 model_precision="bf16", out_dir=last_run_copy, data_dir=shared_data)
    after = json.loads((last_run_copy / "results.json").read_text(encoding="utf-8"))
    for name in ("chinese_absa_products", "zhijiang2019_makeup_opinion"):
        ours = after["evidence"][name]["predictors"]["verbatim"]
        assert ours["hit_rate"] == 1.0  # (span precision is lower: a repeated text carries its twins' spans too)
        assert after["evidence"][name]["n"] == before["evidence"][name]["n"]  # the same split
    for section in ("sentiment", "topics", "touchpoints", "recipe"):
        assert after[section] == before[section]
    assert after["meta"]["generated"] == before["meta"]["generated"]
    assert after["meta"]["suites_rerun"]["evidence"]["model"] == "stand-in@1"
    report = (last_run_copy / "REPORT.md").read_text(encoding="utf-8")
    assert "The evidence suite was measured again on " in report and "`stand-in@1`, bf16" in report
    assert "| zhijiang2019_makeup_opinion | Verbatim (ours) | 143 | 100.0 |" in report


def test_a_suite_the_full_run_did_not_have_is_reported_as_added(last_run_copy, shared_data):
    from evaluation.run import rerun_suites

    saved = json.loads((last_run_copy / "results.json").read_text(encoding="utf-8"))
    saved["meta"]["suites"] = [s for s in saved["meta"]["suites"] if s != "evidence"]  # a run from before the suite
    saved.pop("evidence")
    (last_run_copy / "results.json").write_text(json.dumps(saved), encoding="utf-8")
    rerun_suites(["evidence"], predict_fn=_predict_on_gold(_gold_spans(shared_data)), model_name="stand-in@1",
                 model_precision="bf16", out_dir=last_run_copy, data_dir=shared_data)
    report = (last_run_copy / "REPORT.md").read_text(encoding="utf-8")
    assert "The evidence suite was added on " in report and "measured again" not in report


def test_an_unknown_suite_is_refused_before_anything_runs(last_run_copy, shared_data):
    from evaluation.run import rerun_suites
    from nlp.errors import InvalidInputError

    def never(texts):
        pytest.fail("predicted although the suite name was wrong")

    with pytest.raises(InvalidInputError, match="sentiment, topics, joined, touchpoints, evidence"):
        rerun_suites(["evidense"], predict_fn=never, model_name="x", out_dir=last_run_copy, data_dir=shared_data)
    assert (last_run_copy / "results.json").read_bytes() == (REPO / "evaluation/results.json").read_bytes()
