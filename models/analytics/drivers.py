"""Driver ranking: which topic x polarity mentions (and issue clusters) move the outcome score.

>>> X = driver_matrix(results, clusters=labels, cluster_ids=["c3"])
>>> ranker = DriverRanker(n_bootstrap=200).fit(X, outcome_values(records, "nps"))
>>> ranker.table_[0]  # {"driver": "delivery.timeliness:negative", "importance": 0.21, ...}

The score is regressed (ordinary least squares) on 0/1 driver indicators; each driver's
**importance** is its share of the explained variance (R^2) from a relative-importance method, so
the importances of one fit sum to 1. Methods (``method=``, recorded per row of the table):

- ``shapley``: exact Shapley value regression (= LMG = general dominance of dominance analysis,
  Budescu 1993; Lipovetsky & Conklin 2001), each driver's average R^2 gain over all 2^p subsets.
  Exact, used by ``auto`` up to :data:`MAX_EXACT` drivers.
- ``relative_weights``: Johnson's (2000) relative weights, a closed-form, recognised close
  approximation of the same shares; ``auto`` uses it above :data:`MAX_EXACT` drivers.

No maintained Python package fits: ``dominance-analysis`` (last release 2023) refits one model per
subset on one sample, and ``pingouin``'s ``linear_regression(relimp=True)`` has neither a bootstrap
nor a method for many predictors. Here both methods run on correlation matrices batched over the
sample and its bootstrap resamples. A resample is drawn as multinomial counts over the distinct
(drivers, score) rows, which is the ordinary case-resampling bootstrap without copying the data;
scipy's ``stats.bootstrap`` would materialise every resample (GBs at 20,000 rows x 60 drivers).
Confidence intervals are bootstrap percentiles.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum
from math import factorial
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from nlp.errors import InvalidInputError

__all__ = [
    "MAX_EXACT",
    "DriverRanker",
    "Method",
    "correlations",
    "driver_matrix",
    "relative_importance",
    "relative_weights",
    "shapley_r2",
    "weighted_moments",
]

#: Largest number of players for the exact Shapley decomposition (2^12 = 4,096 subsets).
MAX_EXACT = 12
CLUSTER_PREFIX = "cluster:"
_RIDGE = 1e-9
_TOL = 1e-10


class Method(StrEnum):
    AUTO = "auto"
    SHAPLEY = "shapley"
    RELATIVE_WEIGHTS = "relative_weights"

    def resolve(self, players: int) -> Method:
        if self is Method.AUTO:
            return Method.SHAPLEY if players <= MAX_EXACT else Method.RELATIVE_WEIGHTS
        return self


# --- the driver matrix -------------------------------------------------------------------------


def driver_matrix(
    results: Sequence[dict[str, Any]],
    *,
    clusters: Sequence[str | None] | None = None,
    cluster_ids: Iterable[str] = (),
) -> pd.DataFrame:
    """0/1 driver indicators, one row per classification result (index: the result ids).

    Columns ``"<topic id>:<polarity>"`` for every topic x polarity that occurs (sorted), then
    ``"cluster:<id>"`` for each id in ``cluster_ids`` (in that order) from the per-record
    ``clusters`` labels. A result with an ``error`` has an all-zero row; drop it (its score is
    usually absent too) before fitting if it should not count as "mentions nothing".
    """
    n = len(results)
    cluster_ids = list(cluster_ids)
    if cluster_ids and (clusters is None or len(clusters) != n):
        raise InvalidInputError(
            f"cluster_ids were given but clusters has {0 if clusters is None else len(clusters)} "
            f"labels for {n} results; pass one cluster label (or None) per result"
        )
    rows, cols = [], []
    topic_cols: dict[str, int] = {}
    for i, res in enumerate(results):
        for topic in res.get("topics") or ():
            name = f"{topic['id']}:{topic.get('polarity') or 'neutral'}"
            rows.append(i)
            cols.append(topic_cols.setdefault(name, len(topic_cols)))
    names = sorted(topic_cols)
    order = np.argsort(np.argsort(list(topic_cols)))  # position of each column in sorted order
    data = np.zeros((n, len(names) + len(cluster_ids)), dtype=np.int8)
    if rows:
        data[np.array(rows), order[np.array(cols)]] = 1
    for j, cid in enumerate(cluster_ids):
        data[:, len(names) + j] = [label == cid for label in clusters]  # type: ignore[union-attr]
    index = pd.Index([str(r.get("id", i)) for i, r in enumerate(results)], name="id")
    return pd.DataFrame(data, index=index, columns=names + [CLUSTER_PREFIX + c for c in cluster_ids])


# --- relative importance on (batched) correlation matrices --------------------------------------


def weighted_moments(z: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means ``(B, q)`` and covariances ``(B, q, q)`` of the rows of ``z`` under each row of
    ``weights`` (``(B, U)`` non-negative counts, e.g. bootstrap counts over distinct rows).

    All ``B`` weightings come from one sparse product: the row-wise outer products of ``z`` (only
    the pairs of non-zero cells, few for 0/1 driver indicators) times the weight matrix.
    """
    z = np.asarray(z, dtype=float)
    weights = np.asarray(weights, dtype=float)
    totals = weights.sum(axis=1)
    means = weights @ z / totals[:, None]
    u, q = z.shape
    pairs = _row_outer(z)
    if pairs is None:  # dense and large: one weighted cross-product per weighting
        seconds = np.stack([(z * w[:, None]).T @ z for w in weights])
    else:
        seconds = np.asarray((pairs.T @ weights.T).T).reshape(-1, q, q)
    covs = seconds / totals[:, None, None] - means[:, :, None] * means[:, None, :]
    return means, covs


def _row_outer(z: np.ndarray, limit: int = 20_000_000):
    """Sparse ``(U, q*q)`` matrix of each row's outer product, or None past ``limit`` entries."""
    from scipy import sparse

    zs = sparse.csr_array(z)
    per_row = np.diff(zs.indptr)
    total = int((per_row.astype(np.int64) ** 2).sum())
    if total > limit:
        return None
    row_of = np.repeat(np.arange(z.shape[0]), per_row)  # row of each stored cell
    reps = per_row[row_of]  # each cell pairs with every cell of its row
    left = np.repeat(np.arange(zs.nnz), reps)
    group_start = np.repeat(np.cumsum(reps) - reps, reps)
    right = zs.indptr[row_of[left]] + (np.arange(total) - group_start)
    q = z.shape[1]
    return sparse.csr_array(
        (zs.data[left] * zs.data[right], (row_of[left], zs.indices[left] * q + zs.indices[right])),
        shape=(z.shape[0], q * q),
    )


def correlations(covs: np.ndarray) -> np.ndarray:
    """Correlation matrices from covariances; a constant column correlates 0 with every other
    (1 with itself), so it explains nothing rather than dividing by zero."""
    sd = np.sqrt(np.clip(np.einsum("bii->bi", covs), 0.0, None))
    safe = np.where(sd > 1e-12, sd, np.inf)
    corr = covs / safe[:, :, None] / safe[:, None, :]
    idx = np.arange(covs.shape[1])
    corr[:, idx, idx] = 1.0
    return corr


def _eliminate(m: np.ndarray) -> np.ndarray:
    """Condition every other variable on the first (a Schur complement), batched over axis 0.

    A first variable with (near) zero residual variance, i.e. collinear with those already
    conditioned on, is skipped: it adds nothing."""
    d = m[:, 0, 0]
    ok = d > _TOL
    inv = np.where(ok, 1.0 / np.where(ok, d, 1.0), 0.0)
    v = m[:, 1:, 0]
    return m[:, 1:, 1:] - v[:, :, None] * v[:, None, :] * inv[:, None, None]


def _all_subset_r2(rxx: np.ndarray, rxy: np.ndarray, players: Sequence[np.ndarray]) -> np.ndarray:
    """R^2 of every subset of players (bit ``j`` of the subset index = player ``j``), batched:
    ``(B, 2^g)``. A depth-first walk adds players in index order; each node keeps only the
    conditional correlations of the players still to come and the outcome, so a subset costs one
    small Schur complement of its parent's matrix rather than a fresh regression."""
    order = np.concatenate(list(players)) if players else np.zeros(0, dtype=int)
    aug = np.empty((rxx.shape[0], len(order) + 1, len(order) + 1))
    aug[:, :-1, :-1] = rxx[:, order[:, None], order[None, :]]
    aug[:, :-1, -1] = aug[:, -1, :-1] = rxy[:, order]
    aug[:, -1, -1] = 1.0
    sizes = [len(pl) for pl in players]
    g = len(players)
    out = np.zeros((rxx.shape[0], 2**g))
    stack = [(0, 0, aug)]  # (subset, first player still to come, its conditional matrix)
    while stack:
        mask, first, m = stack.pop()
        start = 0
        for j in range(first, g):
            child = m[:, start:, start:]
            for _ in range(sizes[j]):
                child = _eliminate(child)
            start += sizes[j]
            out[:, mask | 1 << j] = 1.0 - child[:, -1, -1]
            if j + 1 < g:
                stack.append((mask | 1 << j, j + 1, child))
    return np.clip(out, 0.0, 1.0)


def _players(p: int, groups: Sequence[Sequence[int]] | None) -> list[np.ndarray]:
    return [np.asarray(g, dtype=int) for g in (groups if groups is not None else [[j] for j in range(p)])]


def shapley_r2(rxx: np.ndarray, rxy: np.ndarray, groups: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """Exact Shapley decomposition of R^2: ``(B, g)`` parts that sum to the full model's R^2.

    ``rxx`` ``(B, p, p)``: correlations among the regressors; ``rxy`` ``(B, p)``: with the
    outcome; ``groups``: column indices of each player (default one player per column).
    """
    players = _players(rxx.shape[-1], groups)
    g = len(players)
    if g > MAX_EXACT:
        raise InvalidInputError(f"exact Shapley over {g} players needs 2^{g} fits; use relative "
                                f"weights above {MAX_EXACT}")
    masks = np.arange(2**g)
    r2 = _all_subset_r2(rxx, rxy, players)
    sizes = np.array([m.bit_count() for m in masks.tolist()])
    weight = np.array([factorial(s) * factorial(g - s - 1) / factorial(g) for s in range(g)] + [0.0])
    out = np.empty((rxx.shape[0], g))
    for j in range(g):
        without = masks[(masks >> j & 1) == 0]
        out[:, j] = (r2[:, without | (1 << j)] - r2[:, without]) @ weight[sizes[without]]
    return out


def relative_weights(rxx: np.ndarray, rxy: np.ndarray, groups: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """Johnson's (2000) relative weights: ``(B, g)`` non-negative parts summing to the full R^2
    (a group's weight is the sum of its columns')."""
    vals, vecs = np.linalg.eigh(rxx)
    sqrt_vals = np.sqrt(np.clip(vals, _RIDGE, None))
    root = np.einsum("bij,bj,bkj->bik", vecs, sqrt_vals, vecs)  # R^(1/2)
    inv_root = np.einsum("bij,bj,bkj->bik", vecs, 1.0 / sqrt_vals, vecs)
    beta = np.einsum("bij,bj->bi", inv_root, rxy)  # outcome on the orthogonal counterparts
    eps = np.einsum("bjk,bk->bj", root**2, beta**2)
    if groups is None:
        return eps
    return np.stack([eps[:, p].sum(axis=1) for p in _players(rxx.shape[-1], groups)], axis=1)


def _resample_moments(x: np.ndarray, y: np.ndarray, n_bootstrap: int, rng: np.random.Generator):
    """Covariances of ``[x, y]`` for the sample (index 0) and ``n_bootstrap`` resamples.

    A resample is ``n`` row indices drawn with replacement, kept as counts over the distinct rows.
    """
    z = np.column_stack([x, y])
    distinct, inverse, counts = np.unique(z, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    n, u = len(z), len(distinct)
    weights = np.empty((1 + n_bootstrap, u))
    weights[0] = counts
    step = max(1, 4_000_000 // n)
    for start in range(0, n_bootstrap, step):
        block = min(step, n_bootstrap - start)
        cells = inverse[rng.integers(0, n, (block, n))] + u * np.arange(block)[:, None]
        weights[1 + start : 1 + start + block] = np.bincount(cells.ravel(), minlength=block * u).reshape(block, u)
    return weighted_moments(distinct, weights)[1]


def _decompose(x: np.ndarray, y: np.ndarray, method: Method | str, groups: Sequence[Sequence[int]] | None,
               n_bootstrap: int, random_state: int | None) -> tuple[np.ndarray, np.ndarray, Method]:
    """Covariances and R^2 parts for the sample (row 0) and its resamples, and the method used.

    BLAS runs single-threaded here: these are many tiny matrices, for which OpenBLAS threads only
    add overhead (and stall badly on a busy machine).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        covs = _resample_moments(x, y, n_bootstrap, np.random.default_rng(random_state))
        corr = correlations(covs)
        chosen = Method(method).resolve(len(_players(x.shape[1], groups)))
        fn = shapley_r2 if chosen is Method.SHAPLEY else relative_weights
        return covs, fn(corr[:, :-1, :-1], corr[:, :-1, -1], groups), chosen


def _ols_coefs(covs: np.ndarray) -> np.ndarray:
    """Least-squares slopes of the last variable on the others, per covariance matrix."""
    from threadpoolctl import threadpool_limits

    p = covs.shape[-1] - 1
    sxx = covs[:, :p, :p] + _RIDGE * np.eye(p) * (1.0 + np.einsum("bii->b", covs[:, :p, :p]) / p)[:, None, None]
    with threadpool_limits(limits=1, user_api="blas"):
        return np.linalg.solve(sxx, covs[:, :p, p][..., None])[..., 0]


def relative_importance(
    x: np.ndarray, y: np.ndarray, *, method: Method | str = Method.AUTO,
    groups: Sequence[Sequence[int]] | None = None, n_bootstrap: int = 0, random_state: int | None = 0,
) -> tuple[np.ndarray, Method]:
    """R^2 parts ``(1 + n_bootstrap, players)`` (row 0: the sample, then resamples) and the
    method used. Players are ``x``'s columns, or the column ``groups``. Rows with NaN are left out.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = ~np.isnan(y) & ~np.isnan(x).any(axis=1)
    _, parts, chosen = _decompose(x[keep], y[keep], method, groups, n_bootstrap, random_state)
    return parts, chosen


# --- the estimator -------------------------------------------------------------------------------


class DriverRanker(BaseEstimator):
    """Ranks drivers of an outcome score by relative importance, with bootstrap intervals.

    ``fit(X, y)``: ``X`` a DataFrame of driver indicators (:func:`driver_matrix`), ``y`` the
    per-record score (:func:`models.analytics.outcomes.outcome_values`; NaN rows are left out).
    Learned: ``table_`` (list of dicts, below, in rank order), ``importances_``, ``coef_``,
    ``r2_``, ``method_``, ``n_samples_``, ``feature_names_in_``.

    Each table row: ``driver``; ``kind`` (``"cluster"`` for ``cluster:`` columns, else
    ``"topic"``); ``support`` (scored records with the driver); ``importance`` (share of the
    explained variance, the importances sum to 1) with its bootstrap percentile ``ci`` at level
    ``1 - alpha``; ``r2`` (the same as a part of R^2); ``coef`` (OLS effect on the score of having
    the driver, others held fixed, in score units) with ``coef_ci``; ``significant`` (``coef_ci``
    excludes 0); ``low_support`` (``support < min_support``); ``method``; ``rank``.

    ``rank`` orders drivers by how much they hold the score back: drivers with a negative effect
    (``coef < 0``) first, by importance, then positive ones by importance; drivers marked
    ``low_support`` or not ``significant`` keep their row (nothing is dropped) but rank after all
    unmarked ones, in the same order among themselves. With ``n_bootstrap=0`` there are no
    intervals (``ci`` is None) and so no driver is marked significant. An ``X`` without columns (no
    topic found in any record) gives an empty table; fewer than 3 scored records raise
    :class:`InvalidInputError`.
    """

    def __init__(self, method: str = "auto", n_bootstrap: int = 200, min_support: int = 30,
                 alpha: float = 0.05, random_state: int | None = 0) -> None:
        self.method = method
        self.n_bootstrap = n_bootstrap
        self.min_support = min_support
        self.alpha = alpha
        self.random_state = random_state

    def fit(self, X: pd.DataFrame | np.ndarray, y: np.ndarray) -> DriverRanker:  # noqa: N803
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X)).rename(columns=lambda j: f"x{j}")
        x = frame.to_numpy(dtype=float)
        y = np.asarray(y, dtype=float).ravel()
        if x.ndim != 2 or x.shape[0] != y.shape[0]:
            raise InvalidInputError(f"X has {x.shape[0]} rows and y {y.shape[0]} values; give one score per row")
        if np.isnan(x).any():
            raise InvalidInputError("X has missing values; driver indicators must be 0 or 1")
        keep = ~np.isnan(y)
        x, y = x[keep], y[keep]
        if len(y) < 3:
            raise InvalidInputError(f"{len(y)} records carry the score; driver ranking needs at least 3")
        if x.shape[1] == 0:  # no topic found anywhere: nothing to rank, which is an answer too
            self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
            self.n_features_in_, self.n_samples_, self.r2_ = 0, len(y), 0.0
            self.method_ = Method(self.method).resolve(0)
            self.importances_ = self.coef_ = self.ranking_ = np.zeros(0)
            self.importance_ci_ = self.coef_ci_ = None
            self.table_ = []
            return self
        covs, r2_parts, self.method_ = _decompose(x, y, self.method, None, int(self.n_bootstrap),
                                                  self.random_state)
        totals = r2_parts.sum(axis=1, keepdims=True)
        shares = np.divide(r2_parts, totals, out=np.zeros_like(r2_parts), where=totals > 1e-12)
        p = x.shape[1]
        coefs = _ols_coefs(covs)

        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = p
        self.n_samples_ = len(y)
        self.r2_ = float(totals[0, 0])
        self.importances_ = shares[0]
        self.coef_ = coefs[0]
        support = (x != 0).sum(axis=0)
        if len(shares) > 1:
            q = [100 * self.alpha / 2, 100 * (1 - self.alpha / 2)]
            ci = np.percentile(shares[1:], q, axis=0).T
            coef_ci = np.percentile(coefs[1:], q, axis=0).T
            significant = (coef_ci[:, 0] > 0) | (coef_ci[:, 1] < 0)
        else:
            ci = coef_ci = None
            significant = np.zeros(p, dtype=bool)
        self.importance_ci_, self.coef_ci_ = ci, coef_ci
        rows = []
        for j, name in enumerate(self.feature_names_in_):
            rows.append({
                "driver": str(name),
                "kind": "cluster" if str(name).startswith(CLUSTER_PREFIX) else "topic",
                "support": int(support[j]),
                "importance": round(float(shares[0, j]), 4),
                "ci": None if ci is None else [round(float(v), 4) for v in ci[j]],
                "r2": round(float(r2_parts[0, j]), 5),
                "coef": round(float(coefs[0, j]), 4),
                "coef_ci": None if coef_ci is None else [round(float(v), 4) for v in coef_ci[j]],
                "significant": bool(significant[j]),
                "low_support": bool(support[j] < self.min_support),
                "method": self.method_.value,
            })
        order = sorted(range(p), key=lambda j: (rows[j]["low_support"] or not rows[j]["significant"],
                                                coefs[0, j] >= 0, -shares[0, j], rows[j]["driver"]))
        for rank, j in enumerate(order, start=1):
            rows[j]["rank"] = rank
        self.ranking_ = np.array([rows[j]["rank"] for j in range(p)])
        self.table_ = [rows[j] for j in order]
        return self
