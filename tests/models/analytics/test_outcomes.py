"""Outcome scores: NPS/CSAT/CES/rating/recommend headlines, impact and the per-group table."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from models.analytics.outcomes import (
    Outcome,
    group_table,
    headline,
    impact,
    outcome_values,
    summary,
)
from nlp.records import read_records

SURVEY_CSV = """id,text,nps,csat,ces,rating,rating_scale,recommend
r1,配送太慢了，等了一个星期,2,1,2,1,5,0
r2,客服态度很好，问题很快解决了,10,5,7,10,10,1
r3,Delivery was late again and nobody answered the phone,0,2,1,2,10,false
r4,菜很好吃但是配送太慢了,7,3,4,3,5,1
r5,"Great product, arrived on time",9,5,6,4,5,true
r6,还行吧,8,4,,,,
"""


@pytest.fixture()
def records(tmp_path):
    path = tmp_path / "survey.csv"
    path.write_text(SURVEY_CSV, encoding="utf-8")
    result = read_records(path)
    assert not result.rejected
    return result.records


def test_nps_headline_and_breakdown_from_a_survey_file(records):
    values = outcome_values(records, "nps")
    assert values.tolist() == [2, 10, 0, 7, 9, 8]
    # promoters r2, r5 (2/6); detractors r1, r3 (2/6); passives r4, r6
    assert headline(values, Outcome.NPS) == pytest.approx(0.0)
    s = summary(values, "nps")
    assert s["nps"] == 0.0 and s["n"] == 6 and s["missing"] == 0
    assert s["promoters"] == pytest.approx(33.3333, abs=1e-3)
    assert s["detractors"] == pytest.approx(33.3333, abs=1e-3)
    assert s["passives"] == pytest.approx(33.3333, abs=1e-3)


def test_nps_boundaries_six_is_a_detractor_nine_a_promoter():
    assert headline(np.array([6.0, 9.0]), "nps") == 0.0
    assert headline(np.array([7.0, 8.0]), "nps") == 0.0
    assert headline(np.array([9.0, 10.0, 10.0, 0.0]), "nps") == 50.0


def test_csat_mean_and_top_two_box(records):
    values = outcome_values(records, Outcome.CSAT)
    s = summary(values, "csat")
    assert s["csat"] == pytest.approx(20 / 6, abs=1e-4)
    assert s["mean"] == s["csat"]
    assert s["top_two_box"] == pytest.approx(50.0)  # r2, r5, r6 gave 4 or 5


def test_ces_missing_scores_are_counted_not_guessed(records):
    values = outcome_values(records, "ces")
    assert math.isnan(values[5])
    s = summary(values, "ces")
    assert s["n"] == 5 and s["missing"] == 1
    assert s["ces"] == pytest.approx(4.0)
    assert s["easy"] == pytest.approx(40.0) and s["difficult"] == pytest.approx(40.0)  # 7, 6 vs 2, 1


def test_ratings_on_mixed_scales_are_put_on_one_five_point_scale(records):
    values = outcome_values(records, "rating")
    # 1/5 -> 1.0, 10/10 -> 5.0, 2/10 -> 1.0, 3/5 -> 3.0, 4/5 -> 4.0, none
    assert values[:5].tolist() == pytest.approx([1.0, 5.0, 1.0, 3.0, 4.0])
    assert math.isnan(values[5])
    assert summary(values, "rating")["scale"] == 5.0


def test_recommend_share_in_percent(records):
    values = outcome_values(records, "recommend")
    assert headline(values, "recommend") == pytest.approx(60.0)


def test_impact_is_negative_for_what_holds_the_score_down(records):
    values = outcome_values(records, "nps")
    late = np.array([("配送" in r.text or "late" in r.text) for r in records])
    praised = np.array([r.id in {"r2", "r5"} for r in records])
    # without the three delivery complaints: r2, r5, r6 -> 2 promoters of 3 -> 66.7
    assert impact(values, late, "nps") == pytest.approx(0.0 - 200 / 3)
    assert impact(values, praised, "nps") > 0
    ces = outcome_values(records, "ces")
    assert impact(ces, late, "ces") < 0  # higher CES = easier = better


def test_impact_without_any_record_left_is_nan():
    assert math.isnan(impact(np.array([9.0, 10.0]), np.array([True, True]), "nps"))


def test_group_table_reports_mix_outcomes_and_flags_low_support(records):
    values = outcome_values(records, "nps")
    sentiments = ["negative", "positive", "negative", "mixed", "positive", None]
    masks = {
        "delivery.timeliness:negative": np.array([1, 0, 1, 1, 0, 0], bool),
        "service.attitude:positive": np.array([0, 1, 0, 0, 0, 0], bool),
    }
    rows = group_table(values, masks, sentiments, "nps", min_support=3)
    late, service = rows
    assert late["name"] == "delivery.timeliness:negative"
    assert late["volume"] == 3 and late["share"] == pytest.approx(0.5)
    assert late["sentiment"]["negative"] == pytest.approx(2 / 3, abs=1e-3)
    assert late["sentiment"]["mixed"] == pytest.approx(1 / 3, abs=1e-3)
    assert late["sentiment"]["positive"] == 0.0
    assert late["outcome"] == pytest.approx(-66.6667, abs=1e-3)  # 2 detractors, 1 passive
    assert late["outcome_others"] == pytest.approx(66.6667, abs=1e-3)
    assert late["impact"] < 0 and not late["low_support"]
    assert service["low_support"] and service["impact"] > 0
    json.dumps(rows, allow_nan=False)  # JSON-ready: no NaN anywhere


def test_nothing_scored_gives_none_not_nan():
    values = np.full(3, np.nan)
    s = summary(values, "csat")
    assert s["csat"] is None and s["n"] == 0 and s["missing"] == 3
    rows = group_table(values, {"x": np.array([1, 0, 0], bool)}, ["neutral"] * 3, "csat")
    assert rows[0]["outcome"] is None and rows[0]["impact"] is None
    json.dumps([s, rows], allow_nan=False)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="sentiments"):
        group_table(np.ones(3), {"x": np.ones(3, bool)}, ["neutral"], "csat")
    with pytest.raises(ValueError, match="shape"):
        impact(np.ones(3), np.ones(2, bool), "csat")
