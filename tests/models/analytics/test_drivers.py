"""Driver ranking: planted effects are recovered in order and size; the maths matches brute force."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LinearRegression

from models.analytics.drivers import (
    MAX_EXACT,
    DriverRanker,
    driver_matrix,
    relative_importance,
)
from nlp.errors import InvalidInputError

# (driver, prevalence, planted effect on the score)
PLANTED = [
    ("delivery.timeliness:negative", 0.20, -4.0),
    ("service.attitude:negative", 0.12, -2.5),
    ("price.value:negative", 0.15, -1.2),
    ("product.quality:positive", 0.25, 1.5),
    ("environment.cleanliness:negative", 0.10, 0.0),  # mentioned, moves nothing
]
RARE = ("billing.charges:negative", 0.002, -3.0)  # about 8 records: too few to trust
NOISE_SD = 1.5


def _planted_results(n: int, seed: int = 7):
    """Classification results shaped like the classifier's output, and a score with known effects."""
    rng = np.random.default_rng(seed)
    y = np.full(n, 7.0) + rng.normal(0, NOISE_SD, n)
    results = [{"id": f"r{i}", "lang": "zh" if i % 2 else "en", "topics": []} for i in range(n)]
    for name, prevalence, effect in [*PLANTED, RARE]:
        topic, polarity = name.split(":")
        hit = rng.random(n) < prevalence
        y += effect * hit
        for i in np.flatnonzero(hit):
            results[i]["topics"].append({"id": topic, "polarity": polarity, "confidence": 0.9})
    return results, y


def test_planted_drivers_are_ranked_in_order_with_their_sizes():
    results, y = _planted_results(4000)
    X = driver_matrix(results)
    ranker = DriverRanker(n_bootstrap=200, min_support=30, random_state=0).fit(X, y)
    table = {row["driver"]: row for row in ranker.table_}

    # what holds the score back comes first, by importance; then the positive driver
    order = [row["driver"] for row in ranker.table_]
    assert order[:4] == ["delivery.timeliness:negative", "service.attitude:negative",
                         "price.value:negative", "product.quality:positive"]
    for name, prevalence, effect in PLANTED:
        row = table[name]
        assert row["coef"] == pytest.approx(effect, abs=0.2), name
        assert row["coef_ci"][0] <= effect <= row["coef_ci"][1], name
        assert row["support"] == pytest.approx(4000 * prevalence, rel=0.15)
    # sizes: independent 0/1 drivers explain effect^2 * var(driver) of the score's variance
    share = {n: e**2 * X[n].var(ddof=0) for n, _, e in PLANTED}
    total = sum(share.values()) + NOISE_SD**2 + RARE[2] ** 2 * RARE[1]
    explained = ranker.r2_ * np.var(y)
    for name, part in share.items():
        assert table[name]["importance"] * explained == pytest.approx(part, abs=0.1 * part + 0.02), name
        lo, hi = table[name]["ci"]
        assert lo <= table[name]["importance"] <= hi
    assert ranker.r2_ == pytest.approx(sum(share.values()) / total, abs=0.04)
    assert sum(ranker.importances_) == pytest.approx(1.0)

    # no effect: kept, marked not significant, ranked after every reliable driver
    null = table["environment.cleanliness:negative"]
    assert not null["significant"] and null["importance"] < 0.01 and null["rank"] >= 5
    # too rare to trust: kept and marked, not dropped
    rare = table[RARE[0]]
    assert rare["low_support"] and rare["support"] < 30 and rare["rank"] > 4
    assert all(row["method"] == "shapley" for row in ranker.table_)
    assert [row["rank"] for row in ranker.table_] == list(range(1, len(order) + 1))


def _brute_force_shapley(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Average R^2 gain over every order of entry, refitting a regression each time."""
    p = x.shape[1]

    def r2(cols: tuple[int, ...]) -> float:
        if not cols:
            return 0.0
        return LinearRegression().fit(x[:, cols], y).score(x[:, cols], y)

    phi = np.zeros(p)
    orders = list(itertools.permutations(range(p)))
    for order in orders:
        for k, j in enumerate(order):
            phi[j] += r2(tuple(sorted(order[: k + 1]))) - r2(tuple(sorted(order[:k])))
    return phi / len(orders)


def test_exact_shapley_matches_refitting_every_order_and_relative_weights_is_close():
    rng = np.random.default_rng(3)
    x = (rng.random((600, 4)) < [0.3, 0.2, 0.4, 0.1]).astype(float)
    x[:, 1] = np.maximum(x[:, 1], x[:, 0] * (rng.random(600) < 0.5))  # correlated drivers
    y = x @ [-3.0, -1.0, 0.7, 2.0] + rng.normal(0, 1.5, 600)
    expected = _brute_force_shapley(x, y)
    exact, method = relative_importance(x, y, method="shapley")
    assert method == "shapley"
    np.testing.assert_allclose(exact[0], expected, atol=1e-8)
    approx, _ = relative_importance(x, y, method="relative_weights")
    np.testing.assert_allclose(approx[0], expected, atol=0.01)
    assert approx[0].sum() == pytest.approx(expected.sum())  # both split the same R^2


def test_grouped_players_and_duplicate_columns():
    rng = np.random.default_rng(5)
    x = (rng.random((500, 3)) < 0.3).astype(float)
    y = x @ [-2.0, -2.0, 0.5] + rng.normal(0, 1, 500)
    parts, _ = relative_importance(x, y, groups=[[0, 1], [2]])
    full = LinearRegression().fit(x, y).score(x, y)
    assert parts[0].sum() == pytest.approx(full)
    assert parts[0, 0] > parts[0, 1]
    # a driver repeated under two names (a topic and a cluster that coincide) splits, not explodes
    dup = np.column_stack([x, x[:, 0]])
    parts_dup, _ = relative_importance(dup, y, method="shapley")
    assert parts_dup[0].sum() == pytest.approx(full, abs=1e-6)
    assert parts_dup[0, 0] == pytest.approx(parts_dup[0, 3], abs=1e-6)


def test_driver_matrix_columns_clusters_and_failed_items():
    results = [
        {"id": "a", "topics": [{"id": "delivery.timeliness", "polarity": "negative"}]},
        {"id": "b", "error": {"code": "invalid_input", "message": "empty text"}},
        {"id": "c", "topics": [{"id": "delivery.timeliness", "polarity": "negative"},
                               {"id": "product.quality", "polarity": "positive"}]},
    ]
    X = driver_matrix(results, clusters=["c3", None, "c1"], cluster_ids=["c3"])
    assert list(X.columns) == ["delivery.timeliness:negative", "product.quality:positive", "cluster:c3"]
    assert list(X.index) == ["a", "b", "c"]
    assert X.loc["a"].tolist() == [1, 0, 1]
    assert X.loc["b"].tolist() == [0, 0, 0]
    assert X.loc["c"].tolist() == [1, 1, 0]
    with pytest.raises(InvalidInputError, match="one cluster label"):
        driver_matrix(results, clusters=["c3"], cluster_ids=["c3"])


def test_cluster_drivers_are_kinds_of_their_own_and_unscored_rows_are_left_out():
    results, y = _planted_results(1500, seed=11)
    emerging = ["c9" if "delivery.timeliness" in str(r["topics"]) and i % 3 == 0 else None
                for i, r in enumerate(results)]
    X = driver_matrix(results, clusters=emerging, cluster_ids=["c9"])
    y = y.copy()
    y[::10] = np.nan  # records without the score
    ranker = DriverRanker(n_bootstrap=50).fit(X, y)
    assert ranker.n_samples_ == 1350
    kinds = {row["driver"]: row["kind"] for row in ranker.table_}
    assert kinds["cluster:c9"] == "cluster" and kinds["service.attitude:negative"] == "topic"


def test_many_drivers_switch_to_relative_weights_and_stay_fast():
    rng = np.random.default_rng(0)
    n, p = 20_000, 60
    x = (rng.random((n, p)) < rng.uniform(0.005, 0.1, p)).astype(np.int8)
    effects = rng.normal(0, 1, p)
    y = np.clip(np.round(7 + x @ effects + rng.normal(0, 2, n)), 0, 10)
    X = pd.DataFrame(x, columns=[f"t{j}:negative" for j in range(p)])
    started = time.perf_counter()
    ranker = DriverRanker(n_bootstrap=200).fit(X, y)
    seconds = time.perf_counter() - started
    assert ranker.method_ == "relative_weights" and len(ranker.table_) == p
    assert seconds < 30, f"60 drivers x 200 resamples x 20,000 rows took {seconds:.1f} s"
    # the biggest planted effects (by explained variance) lead the importance ordering
    planted = effects**2 * x.mean(0) * (1 - x.mean(0))
    top = set(np.argsort(-planted)[:5])
    found = set(np.argsort(-ranker.importances_)[:5])
    assert len(top & found) >= 4


def test_method_choice_estimator_manners_and_bad_input():
    ranker = DriverRanker(method="auto", n_bootstrap=0)
    assert clone(ranker).get_params()["n_bootstrap"] == 0
    rng = np.random.default_rng(1)
    x = (rng.random((300, MAX_EXACT + 1)) < 0.3).astype(float)
    y = x[:, 0] * -2 + rng.normal(0, 1, 300)
    assert ranker.fit(x[:, :MAX_EXACT], y).method_ == "shapley"
    fitted = ranker.fit(x, y)
    assert fitted is ranker and ranker.method_ == "relative_weights"
    assert ranker.table_[0]["driver"] == "x0" and ranker.table_[0]["ci"] is None
    empty = DriverRanker().fit(pd.DataFrame(index=range(10)), np.ones(10))  # no topic anywhere
    assert empty.table_ == [] and empty.r2_ == 0.0
    with pytest.raises(InvalidInputError, match="0 records carry the score"):
        DriverRanker().fit(x, np.full(len(y), np.nan))
    with pytest.raises(InvalidInputError, match="one score per row"):
        DriverRanker().fit(x, y[:-1])
