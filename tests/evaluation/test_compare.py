"""Per-node scores on held-out labels and the regression guard that gates promotion."""

from __future__ import annotations

import pytest

from evaluation.compare import NONE, NodeReport, regression_guard, score_labels
from nlp.errors import InvalidInputError
from training.labelset import LabelExample

NODES = ("product.quality", "delivery.timeliness", "service.attitude")


def result(i: int, *topics: str, sentiment: str = "negative") -> dict:
    return {"id": str(i), "sentiment": {"label": sentiment},
            "topics": [{"id": t, "polarity": "negative"} for t in topics], "touchpoints": []}


def labels(rows) -> list[LabelExample]:
    return [LabelExample(id=str(i), text=f"t{i}", sentiment="negative", topics={t: "negative" for t in ts})
            for i, ts in enumerate(rows)]


def report(gold_rows, pred_rows, nodes=NODES, model="m@1") -> NodeReport:
    ex = labels(gold_rows)
    return score_labels(ex, [result(i, *p) for i, p in enumerate(pred_rows)], model=model, topic_ids=nodes)


def test_per_node_scores_confusion_and_a_node_the_model_cannot_predict():
    gold = [["product.quality"], ["delivery.timeliness"], ["delivery.timeliness"], [], ["safety.food"]]
    pred = [["product.quality"], ["delivery.timeliness"], ["service.attitude"], ["product.quality"], []]
    r = report(gold, pred)
    q, d = r.per_node["product.quality"], r.per_node["delivery.timeliness"]
    assert (q.precision, q.recall, q.support, q.predicted) == (0.5, 1.0, 1, 2)
    assert (d.precision, d.recall, d.f1, d.support) == (1.0, 0.5, pytest.approx(2 / 3), 2)
    assert r.per_node["safety.food"].recall == 0.0 and "safety.food" not in r.model_nodes
    assert r.confusion == {"delivery.timeliness": {"service.attitude": 1}, NONE: {"product.quality": 1},
                           "safety.food": {NONE: 1}}
    # macro over nodes with support: quality 2/3, timeliness 2/3, safety 0
    assert r.macro_f1 == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert r.sentiment["accuracy"] == 1.0
    assert NodeReport.from_dict(r.to_dict()) == r


def test_unlabelled_topics_are_not_scored():
    ex = [LabelExample(id="a", text="x", sentiment="negative"),  # labelled for sentiment only
          LabelExample(id="b", text="y", topics={"product.quality": "negative"})]
    r = score_labels(ex, [result(0, "service.attitude"), result(1, "product.quality")], model="m", topic_ids=NODES)
    assert r.n_topic_labelled == 1 and r.per_node["service.attitude"].predicted == 0


def _support(node: str, n: int, hit: int):
    """n examples of ``node``, ``hit`` of them predicted."""
    return [[node]] * n, [[node]] * hit + [[]] * (n - hit)


def test_guard_refuses_a_drop_of_more_than_three_points_on_a_node_with_support_and_force_records_why():
    g1, p1 = _support("product.quality", 20, 20)
    g2, p2 = _support("delivery.timeliness", 20, 18)
    promoted = report(g1 + g2, p1 + p2)
    g2c, p2c = _support("delivery.timeliness", 20, 16)  # recall .9 -> .8: F1 .947 -> .889
    candidate = report(g1 + g2c, p1 + p2c)
    guard = regression_guard(candidate, promoted)
    assert not guard.allowed and len(guard.reasons) == 2
    assert "delivery.timeliness" in guard.reasons[0] and "-5.8 points" in guard.reasons[0]
    assert "macro-F1" in guard.reasons[1]
    forced = regression_guard(candidate, promoted, force_reason="seasonal labels, accepted by QA lead")
    assert forced.allowed and forced.forced and forced.force_reason.startswith("seasonal")
    assert forced.reasons == guard.reasons
    # with a higher bar for support neither node decides anything, in either rule
    small = regression_guard(candidate, promoted, min_support=25)
    assert small.allowed and small.reasons == [] and small.macro_nodes == []
    assert small.low_support == ["product.quality", "delivery.timeliness"]


def test_a_node_with_one_held_out_label_cannot_decide_the_macro_rule():
    # 20 labels each for quality and timeliness (unchanged), one for service.attitude: the candidate
    # misses that one text, so its F1 goes 1.0 -> 0.0 and a macro-F1 over all three nodes would drop
    g1, p1 = _support("product.quality", 20, 18)
    g2, p2 = _support("delivery.timeliness", 20, 17)
    promoted = report(g1 + g2 + [["service.attitude"]], p1 + p2 + [["service.attitude"]])
    candidate = report(g1 + g2 + [["service.attitude"]], p1 + p2 + [[]], model="m@2")
    assert candidate.macro_over(NODES) < promoted.macro_over(NODES) - 0.3
    guard = regression_guard(candidate, promoted)
    assert guard.allowed and guard.reasons == []
    assert guard.macro_nodes == ["product.quality", "delivery.timeliness"] and guard.low_support == ["service.attitude"]
    assert guard.macro_candidate == pytest.approx(guard.macro_promoted)
    assert guard.deltas["service.attitude"] == -1.0  # still reported, just not deciding


def test_a_macro_refusal_names_the_nodes_left_out_for_low_support():
    g1, p1 = _support("product.quality", 20, 20)
    g2, p2 = _support("delivery.timeliness", 20, 20)
    promoted = report(g1 + g2 + [["service.attitude"]] * 2, p1 + p2 + [["service.attitude"]] * 2)
    g1c, p1c = _support("product.quality", 20, 19)  # F1 1.0 -> .974: under the 3-point rule
    g2c, p2c = _support("delivery.timeliness", 20, 19)
    candidate = report(g1c + g2c + [["service.attitude"]] * 2, p1c + p2c + [["service.attitude"]] * 2, model="m@2")
    guard = regression_guard(candidate, promoted)
    assert not guard.allowed and len(guard.reasons) == 1
    assert "macro-F1 over the 2 existing node(s) with support >= 10" in guard.reasons[0]
    assert "left out for support < 10: service.attitude" in guard.reasons[0]


def test_guard_allows_an_improvement_and_a_new_node_cannot_regress():
    g1, p1 = _support("product.quality", 12, 10)
    promoted = report(g1 + [["safety.food"]] * 12, p1 + [[]] * 12)
    g1c, p1c = _support("product.quality", 12, 11)
    candidate = report(g1c + [["safety.food"]] * 12, p1c + [["safety.food"]] * 12,
                       nodes=(*NODES, "safety.food"), model="m@2")
    guard = regression_guard(candidate, promoted)
    assert guard.allowed and guard.reasons == [] and "safety.food" not in guard.deltas
    assert guard.deltas["product.quality"] > 0


def test_reports_on_different_labels_cannot_be_compared():
    a = report([["product.quality"]], [["product.quality"]])
    b = score_labels([LabelExample(id="other", text="x", topics={})], [result(0)], model="m", topic_ids=NODES)
    with pytest.raises(InvalidInputError, match="different labels"):
        regression_guard(a, b)


def test_a_guard_that_could_check_nothing_allows_but_says_so():
    # four held-out labels per node (about 20 labelled records each at holdout 0.2): the candidate
    # loses half of product.quality, but no node has the 10 labels the guard needs to judge it
    g1, p1 = _support("product.quality", 4, 4)
    g2, p2 = _support("delivery.timeliness", 4, 3)
    promoted = report(g1 + g2, p1 + p2)
    g1c, p1c = _support("product.quality", 4, 2)
    candidate = report(g1c + g2, p1c + p2, model="m@2")
    guard = regression_guard(candidate, promoted, holdout=0.2)
    assert guard.allowed and guard.reasons == [] and guard.macro_promoted is None
    assert guard.notes == [
        "no existing node has >= 10 held-out labels (2 have fewer), so no regression could be checked: "
        "label about 50 records per node at holdout 0.2 for the guard to decide"
    ]
    assert guard.to_dict()["notes"] == guard.notes
    # without the holdout share it still says what is missing
    assert "enough records per node that 10 are held out" in regression_guard(candidate, promoted).notes[0]


def test_a_guard_that_checked_names_only_the_nodes_it_left_out():
    g1, p1 = _support("product.quality", 20, 20)
    g2, p2 = _support("delivery.timeliness", 20, 18)
    both = report(g1 + g2, p1 + p2)
    assert regression_guard(both, both).notes == []
    promoted = report(g1 + g2 + [["service.attitude"]] * 3, p1 + p2 + [["service.attitude"]] * 3)
    guard = regression_guard(promoted, promoted)
    assert guard.allowed and guard.notes == ["not checked, fewer than 10 held-out labels: service.attitude"]
