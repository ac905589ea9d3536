"""Root causes: segment lift with FDR control, trends, representative verbatims, keyphrases,
sub-issues and the support-case loop. Fast: numbers and texts built here, no model."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest
from analytics_fakes import CASES, KeywordClusterer, fake_classify, make_records

from models.analytics.casefeedback import case_feedback
from models.analytics.rootcause import (
    Corpus,
    driver_keyphrases,
    driver_label,
    representative_examples,
    sub_issues,
)
from models.analytics.segments import period_keys, segment_fields, segment_lift, trend
from models.taxonomy import default_taxonomy
from nlp.errors import InvalidInputError


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    records = make_records(120)
    results, emb = fake_classify([{"id": r.id, "text": r.text} for r in records])
    clusters = KeywordClusterer().fit([r.text for r in records], emb, ids=[r.id for r in records], langs=[])
    return Corpus(ids=[r.id for r in records], texts=[r.text for r in records],
                  langs=[res["lang"] for res in results], results=results, embeddings=emb,
                  values=np.array([r.nps for r in records]), clusters=clusters.labels,
                  segments=segment_fields([r.metadata for r in records]),
                  periods=period_keys([r.ts for r in records])[1])


def late_mask(corpus: Corpus) -> np.ndarray:
    return np.array([any(t["id"] == "delivery.timeliness" for t in r["topics"]) for r in corpus.results])


def test_segment_fields_keep_store_and_channel_but_not_ids_or_constants():
    meta = [{"store": f"s{i % 3}", "channel": "app", "order": f"o{i}", "tier": None if i % 2 else 1.0}
            for i in range(60)]
    fields = segment_fields(meta)
    assert set(fields) == {"store"}  # channel has one value, order 60, tier one (1.0 -> "1")
    assert fields["store"][:4] == ["s0", "s1", "s2", "s0"]
    meta[0]["tier"] = 2
    assert segment_fields(meta)["tier"][:3] == ["2", None, "1"]


def test_a_driver_concentrated_in_one_store_over_indexes_there_and_nowhere_else(corpus):
    rows = segment_lift(late_mask(corpus), corpus.segments)
    flagged = [(r["field"], r["value"]) for r in rows if r["over_indexes"]]
    assert flagged == [("store", "北京朝阳")]
    top = rows[0]
    assert top["lift"] > 1.5 and top["q"] < 0.05 and top["share"] > top["share_rest"]
    assert all(r["q"] >= r["p"] - 1e-12 for r in rows)  # BH never lowers a p-value
    channel = [r for r in rows if r["field"] == "channel"]
    assert channel and not any(r["over_indexes"] for r in channel)


def test_fdr_control_keeps_random_segments_quiet():
    rng = np.random.default_rng(7)
    n = 2000
    mask = rng.random(n) < 0.2
    fields = {f"f{k}": [f"v{x}" for x in rng.integers(0, 10, n)] for k in range(20)}  # 200 null segments
    rows = segment_lift(mask, fields)
    assert len(rows) == 200
    assert sum(r["p"] < 0.05 for r in rows) >= 3  # unadjusted tests would cry wolf...
    assert sum(r["over_indexes"] for r in rows) <= 1  # ...BH keeps the false discoveries near zero


def test_period_keys_pick_weeks_for_short_spans_and_months_for_long_ones():
    short = [date(2024, 3, 4) + timedelta(days=d) for d in (0, 6, 7, 30)]
    assert period_keys(short) == ("week", ["2024-W10", "2024-W10", "2024-W11", "2024-W14"])
    long = [datetime(2023, 1, 31, 23, 30, tzinfo=timezone(timedelta(hours=-2))), datetime(2024, 6, 1), None]
    assert period_keys(long) == ("month", ["2023-02", "2024-06", None])  # aware times go to UTC first
    assert period_keys([None, None]) == (None, [None, None])
    with pytest.raises(ValueError, match="week"):
        period_keys(short, "day")


def test_trend_counts_share_and_interval_per_period():
    periods = ["2024-W01"] * 10 + ["2024-W02"] * 10 + [None]
    mask = np.array([1] * 2 + [0] * 8 + [1] * 6 + [0] * 4 + [1], dtype=bool)
    values = np.array([0.0] * 10 + [10.0] * 10 + [5.0])
    rows = trend(mask, periods, values, lambda v: float(v.mean()))
    assert [(r["period"], r["n"], r["count"], r["share"], r["headline"]) for r in rows] == [
        ("2024-W01", 10, 2, 0.2, 0.0), ("2024-W02", 10, 6, 0.6, 10.0)]
    for r in rows:
        assert r["ci"][0] < r["share"] < r["ci"][1]
    assert rows[0]["ci"] == pytest.approx([0.0567, 0.5098], abs=1e-3)  # Wilson interval of 2/10


def test_representative_examples_come_in_both_languages_with_evidence_and_no_repeats(corpus):
    mask = late_mask(corpus)
    examples = representative_examples(mask, corpus, topic="delivery.timeliness", polarity="negative", k=3)
    assert len(examples["zh"]) == 3 and len(examples["en"]) == 3
    for lang, items in examples.items():
        texts = [e["text"] for e in items]
        assert len(set(texts)) == 3  # the corpus repeats each text: no duplicates shown
        for e in items:
            assert e["lang"] == lang and e["score"] <= 5
            ev = e["evidence"]
            assert e["text"][ev["start"]:ev["end"]] == ev["text"] and ev["text"]
    assert any("慢" in e["text"] for e in examples["zh"])


def test_keyphrases_of_late_delivery_name_it_in_each_language(corpus):
    phrases = driver_keyphrases(late_mask(corpus), corpus, topic="delivery.timeliness", polarity="negative")
    zh = [p["phrase"] for p in phrases["zh"]]
    en = [p["phrase"] for p in phrases["en"]]
    assert any(w in zh for w in ("配送", "快递", "物流", "送货", "发货")), zh
    assert any("delivery" in p or "slow" in p or "late" in p for p in en), en
    assert all(ord(ch) < 128 for p in en for ch in p)


def test_sub_issues_of_a_topic_are_its_clusters_and_of_a_cluster_its_topics(corpus):
    mask = late_mask(corpus)
    subs = sub_issues(mask, corpus, kind="topic", clusters={"c1": {"label_zh": "配送慢", "label_en": "late delivery", "size": int(mask.sum())}})
    assert subs[0]["id"] == "c1" and subs[0]["share"] == 1.0 and subs[0]["concentration"] == 1.0
    assert subs[0]["label"] == {"zh": "配送慢", "en": "late delivery"}
    in_cluster = np.array([c == "c1" for c in corpus.clusters])
    topics = sub_issues(in_cluster, corpus, kind="cluster", clusters={}, taxonomy=default_taxonomy())
    assert topics[0]["id"] == "delivery.timeliness:negative" and topics[0]["share"] == 1.0
    assert topics[0]["label"]["en"].startswith("Delivery") and "负面" in topics[0]["label"]["zh"]


def test_driver_labels_are_bilingual():
    tax = default_taxonomy()
    label = driver_label("delivery.timeliness:negative", tax, {})
    assert label["en"] == "Delivery · Timeliness (negative)"
    assert label["zh"].endswith("时效（负面）")
    assert driver_label("cluster:c4", tax, {"c4": {"label_zh": "退款难", "label_en": "refund hassle"}}) == {
        "zh": "问题簇 c4：退款难", "en": "Issue cluster c4: refund hassle"}


def test_case_feedback_reports_resolved_share_and_time_to_resolve_per_topic():
    out = case_feedback(CASES, label=lambda t: {"zh": t, "en": t})
    late, quality = out["by_topic"]
    assert (late["topic"], late["cases"], late["resolved"]) == ("delivery.timeliness", 3, 2)
    assert late["resolved_share"] == pytest.approx(2 / 3, abs=1e-4)
    assert late["median_hours_to_resolve"] == 14.0 and late["mean_hours_to_resolve"] == 14.0  # 24 h and 4 h
    assert late["resolution_codes"] == {"refund": 1, "reshipped": 1} and late["priorities"] == {"P1": 1, "P2": 2}
    assert quality["resolved"] == 0 and quality["median_hours_to_resolve"] is None  # reopened
    assert out["total"]["cases"] == 4 and out["total"]["resolved"] == 2
    with pytest.raises(InvalidInputError, match="resolved_at"):
        case_feedback([{"topic": "x", "status": "resolved", "created_at": "2024-01-01", "resolved_at": "yesterday"}])


def test_keyphrases_leave_out_words_every_verbatim_uses():
    bad = ["The lounge had dirty toilets and broken chairs.", "Dirty toilets in the lounge, awful.",
           "Lounge was crowded and the toilets were dirty.", "Broken chairs and dirty toilets at the lounge."]
    good = ["The lounge had a nice view.", "Great lounge, nice view and good coffee.", "Lounge staff were kind.",
            "Quiet lounge with a nice view of the runway."]
    texts = (bad + good) * 5
    n = len(texts)
    mask = np.array([t in bad for t in texts])
    results = [{"id": f"r{i}", "lang": "en", "topics": [], "sentiment": {"label": "neutral"}} for i in range(n)]
    corpus = Corpus(ids=[f"r{i}" for i in range(n)], texts=texts, langs=["en"] * n, results=results,
                    embeddings=np.zeros((n, 4), dtype=np.float32), values=np.zeros(n), clusters=[None] * n)
    phrases = [p["phrase"] for p in driver_keyphrases(mask, corpus)["en"]]
    assert "lounge" not in phrases
    assert "dirty toilets" in phrases and "broken chairs" in phrases
