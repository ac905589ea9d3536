"""``analyze`` end to end: the contract's JSON, root causes of the planted driver, error paths.

The real tier classifies bilingual records with the shipped default model (loaded once) and
clusters them with the real ``IssueClusterer``; the fast tier swaps in keyword stand-ins where the
model does not matter (progress, rejections, errors, arithmetic)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from analytics_fakes import CASES, STORES, KeywordClusterer, fake_classify, make_records

from models.analytics.pipeline import analyze
from models.taxonomy import default_taxonomy
from nlp.errors import InvalidInputError
from nlp.records import Record, Rejection


def nps(scores) -> float:
    s = np.asarray(scores, dtype=float)
    return 100.0 * (np.mean(s >= 9) - np.mean(s <= 6))


# --- real tier --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(base_encoder_dir):
    from models.classifier import default_model_dir
    from models.classifier.predict import Classifier

    classifier = Classifier.load(default_model_dir(), base_dir=base_encoder_dir)
    records = make_records(100)
    rejected = [Rejection(line=999, id="bad", reason="text is required")]
    analysis = analyze(records, classifier.classify_with_embeddings, outcome="nps",
                       taxonomy=classifier.model.taxonomy, cases=CASES, rejected=rejected)
    return records, analysis


@pytest.mark.slow
def test_the_analysis_holds_the_contract_fields(real):
    records, a = real
    assert a["outcome"] == "nps" and a["records"] == len(records)
    assert a["overall"]["nps"] == pytest.approx(nps([r.nps for r in records]), abs=1e-3)
    assert a["drivers"] and a["clusters"]
    for d in a["drivers"]:
        assert {"driver", "kind", "support", "impact", "importance", "ci", "rank", "examples"} <= set(d)
        assert d["kind"] in ("topic", "cluster") and d["ci"][0] <= d["importance"] + 1e-9 <= d["ci"][1] + 2e-9
    assert sorted(d["rank"] for d in a["drivers"]) == list(range(1, len(a["drivers"]) + 1))
    for c in a["clusters"]:
        assert {"id", "label", "size", "keywords", "examples"} <= set(c) and c["size"] > 0
    json.dumps(a, allow_nan=False)  # strict JSON: no NaN anywhere


@pytest.mark.slow
def test_late_delivery_is_the_top_negative_driver_with_its_root_causes(real):
    _, a = real
    late = [rc for rc in a["root_causes"] if rc["driver"].startswith("delivery.") and rc["driver"].endswith(":negative")]
    assert late, [rc["driver"] for rc in a["root_causes"]]
    rc = late[0]
    assert rc["impact"] < -10 and rc["outcome_with"] < rc["outcome_without"]
    for lang in ("zh", "en"):
        assert rc["examples"][lang], f"no {lang} example"
        for ex in rc["examples"][lang]:
            assert any(w in ex["text"] for w in ("慢", "slow", "late", "delay", "Delivery", "waiting")), ex["text"]
            ev = ex["evidence"]
            if ev is not None:
                assert ex["text"][ev["start"]:ev["end"]] == ev["text"]
    assert [(s["field"], s["value"]) for s in rc["segments"]][:1] == [("store", STORES[0])]
    assert rc["keyphrases"]["zh"] and rc["keyphrases"]["en"]
    assert len(rc["trend"]) == 8 and all(t["period"].startswith("2024-W") for t in rc["trend"])


@pytest.mark.slow
def test_views_for_the_report_are_bilingual_and_in_journey_order(real):
    _, a = real
    tax = default_taxonomy()
    stages = [t["name"] for t in a["touchpoints"]]
    assert stages == [tp for tp in tax.touchpoint_ids if tp in stages]
    assert all(t["label"]["zh"] != t["label"]["en"] for t in a["touchpoints"])
    assert len(a["heatmap"]["rows"]) == len(a["heatmap"]["counts"]) and a["heatmap"]["columns"] == ["negative", "neutral", "positive"]
    assert {s["field"] for s in a["segments"]} == {"store", "channel"}  # customer ids are not segments
    assert a["trends"]["freq"] == "week" and len(a["trends"]["overall"]) == 8
    assert a["cases"]["by_topic"][0]["topic"] == "delivery.timeliness"
    assert a["rejected"][0] == {"line": 999, "id": "bad", "reason": "text is required"}
    assert set(a["meta"]["languages"]) == {"zh", "en"}


# --- fast tier (stand-ins) --------------------------------------------------------------------


def run_fake(records, **kwargs):
    return analyze(records, fake_classify, outcome=kwargs.pop("outcome", "nps"), taxonomy=default_taxonomy(),
                   clusterer=KeywordClusterer(), **kwargs)


def test_progress_reports_each_stage_in_order():
    seen: list[tuple[str, int, int]] = []
    run_fake(make_records(60), progress=lambda *a: seen.append(a))
    order = list(dict.fromkeys(stage for stage, _, _ in seen))
    assert order == ["classify", "cluster", "drivers", "rootcause"]
    assert seen[0] == ("classify", 0, 60) and ("classify", 60, 60) in seen


def test_a_record_the_classifier_cannot_take_is_reported_not_dropped():
    records = make_records(60)
    records[5] = Record(id="blank", text="   ", line=7, nps=3.0)
    a = run_fake(records, rejected=[Rejection(line=3, id=None, reason="id is required")])
    assert a["records"] == 59 and a["meta"]["input_records"] == 61 and a["meta"]["rejected"] == 2
    assert a["rejected"][1]["line"] == 7 and "text is empty" in a["rejected"][1]["reason"]


def test_impact_is_the_headline_minus_the_headline_without_the_driver():
    records = make_records(60)
    a = run_fake(records)
    late = next(d for d in a["drivers"] if d["driver"] == "delivery.timeliness:negative")
    scores = np.array([r.nps for r in records])
    is_late = np.array([any(w in r.text for w in ("慢", "late", "slow", "delayed")) for r in records])
    assert late["support"] == is_late.sum()
    assert late["impact"] == pytest.approx(nps(scores) - nps(scores[~is_late]), abs=1e-3)
    assert a["root_causes"][0]["driver"] in ("delivery.timeliness:negative", "cluster:c1")
    assert all(ex in {r.id for r in records} for ex in late["examples"])


def test_no_record_with_the_score_is_an_error_that_names_the_field():
    records = [Record(id=r.id, text=r.text, line=r.line) for r in make_records(20)]
    with pytest.raises(InvalidInputError, match="csat"):
        run_fake(records, outcome="csat")
    with pytest.raises(InvalidInputError, match="unknown outcome"):
        run_fake(make_records(20), outcome="happiness")
    with pytest.raises(InvalidInputError, match="no valid records"):
        run_fake([])


def test_repeated_answers_are_classified_once_and_each_record_keeps_its_id():
    records = make_records(60)
    sent: list[str] = []

    def counting(items):
        sent.extend(item["text"] for item in items)
        return fake_classify(items)

    a = analyze(records, counting, outcome="nps", taxonomy=default_taxonomy(), clusterer=KeywordClusterer())
    assert sorted(sent) == sorted({r.text for r in records}) and len(sent) < len(records)
    late = next(d for d in a["drivers"] if d["driver"] == "delivery.timeliness:negative")
    assert late["support"] == sum(any(w in r.text for w in ("慢", "late", "slow", "delayed")) for r in records)
    assert len(set(late["examples"])) == len(late["examples"])
