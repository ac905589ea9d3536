"""Shared pieces of the evaluation suites: splits, predictors and their caches.

A *predictor* here is anything that maps a list of texts to one contract record per text
(``list[dict]``, see :mod:`evaluation.scoring`). Our model comes in as ``predict_fn``; each peer
is fitted on the data set's own train split and wrapped the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from training.data.schema import Example

log = logging.getLogger(__name__)

PredictFn = Callable[[list[str]], list[dict[str, Any]]]

OURS = "verbatim"
TFIDF = "tfidf_lr"
EMBED = "embedding_lr"
SNOWNLP = "snownlp"
VADER = "vader"
PEER_NAMES = (TFIDF, EMBED, SNOWNLP, VADER)
PEER_LABELS = {
    OURS: "Verbatim (ours)",
    TFIDF: "TF-IDF + LR (word + char n-grams)",
    EMBED: "LR on frozen base-encoder embeddings",
    SNOWNLP: "SnowNLP (zero-shot)",
    VADER: "VADER (zero-shot)",
}


@dataclass(frozen=True, kw_only=True)
class SplitPlan:
    """Which splits of a data set serve as train, dev and test.

    ``dev=None`` carves a seeded 10% of train as dev (the set ships no dev split, or its dev
    split is the test, as for zhijiang whose test labels were never released).
    """

    dataset: str
    test: str = "test"
    train: str = "train"
    dev: str | None = "dev"


@dataclass(kw_only=True)
class Context:
    """Settings and caches shared by all suites of one run."""

    data_dir: Any = None
    quick: bool = False
    quick_test: int = 200
    quick_train: int = 2000
    seed: int = 0
    predict_fn: PredictFn | None = None
    peers: tuple[str, ...] = PEER_NAMES
    encoder: Any = None
    embed_max_train: int | None = 8_000
    embed_max_dev: int | None = 1_000
    c_grid: tuple[float, ...] = (0.5, 2.0, 8.0)
    notes: list[str] = field(default_factory=list)
    embed_cache: dict[str, np.ndarray] = field(default_factory=dict)
    _ours: dict[str, dict[str, Any]] = field(default_factory=dict)
    _peers: dict[tuple, Any] = field(default_factory=dict)  # fitted supervised peers, per split plan
    _splits: dict[SplitPlan, tuple[list[Example], list[Example], list[Example]]] = field(
        default_factory=dict)

    def note(self, text: str) -> None:
        if text not in self.notes:
            log.info("%s", text)
            self.notes.append(text)

    # ------------------------------------------------------------------ data
    def splits(self, plan: SplitPlan) -> tuple[list[Example], list[Example], list[Example]]:
        """(train, dev, test) examples, subsampled with the run's seed when ``quick``."""
        if plan not in self._splits:
            from training.data import load_dataset

            train = load_dataset(plan.dataset, plan.train, data_dir=self.data_dir)
            test = load_dataset(plan.dataset, plan.test, data_dir=self.data_dir)
            if plan.dev is None:
                train, dev = carve(train, 0.1, seed=self.seed)
            else:
                dev = load_dataset(plan.dataset, plan.dev, data_dir=self.data_dir)
            if self.quick:
                train = sample(train, self.quick_train, seed=self.seed)
                dev = sample(dev, max(self.quick_test, 1), seed=self.seed)
                test = sample(test, self.quick_test, seed=self.seed)
            self._splits[plan] = (train, dev, test)
        return self._splits[plan]

    # ------------------------------------------------------------------ our model
    def ours(self, plan: SplitPlan, examples: Sequence[Example]) -> list[dict[str, Any]] | None:
        """Our model's records for ``examples`` (each example is predicted once per run)."""
        if self.predict_fn is None:
            return None
        missing = list({ex.key: ex for ex in examples if ex.key not in self._ours}.values())
        if missing:
            start = time.perf_counter()
            records = list(self.predict_fn([ex.text for ex in missing]))
            if len(records) != len(missing):
                from nlp.errors import InvalidInputError

                raise InvalidInputError(
                    f"predict_fn returned {len(records)} records for {len(missing)} texts; it "
                    "must return exactly one record per input text, in input order")
            log.info("%s/%s: our model predicted %d records in %.1fs", plan.dataset, plan.test,
                     len(records), time.perf_counter() - start)
            self._ours.update(zip((ex.key for ex in missing), records, strict=True))
        return [self._ours[ex.key] for ex in examples]

    # ------------------------------------------------------------------ peers
    def featurizer(self, kind: str) -> Any:
        """A fresh TF-IDF featurizer, or the run's embedding featurizer (``None`` if unavailable)."""
        from evaluation.peers import EmbeddingFeaturizer, TfidfFeaturizer

        if kind == TFIDF:
            return TfidfFeaturizer()
        encoder = self.get_encoder()
        return None if encoder is None else EmbeddingFeaturizer(encoder, cache=self.embed_cache)

    def get_encoder(self) -> Any:
        if self.encoder is None and EMBED in self.peers:
            self.encoder = load_base_encoder(self)
            if self.encoder is None:
                self.peers = tuple(p for p in self.peers if p != EMBED)
        return self.encoder

    def supervised_peers(self) -> list[str]:
        wanted = [p for p in (TFIDF, EMBED) if p in self.peers]
        if EMBED in wanted and self.get_encoder() is None:
            wanted.remove(EMBED)
        return wanted

    def cap_train(self, kind: str, examples: list[Example], *, dev: bool = False) -> list[Example]:
        """For the embedding peer, a seeded sample of at most ``embed_max_train`` train (or
        ``embed_max_dev`` dev) rows: encoding long texts on a CPU is what this peer costs."""
        limit = self.embed_max_dev if dev else self.embed_max_train
        if kind == EMBED and limit and len(examples) > limit:
            self.note(f"{PEER_LABELS[EMBED]} is trained on a seeded sample of at most "
                      f"{self.embed_max_train:,} train rows, with C chosen on at most "
                      f"{self.embed_max_dev:,} dev rows (CPU time for encoding).")
            return sample(examples, limit, seed=self.seed)
        return examples


def load_base_encoder(ctx: Context) -> Any:
    """The frozen base encoder built by ``models.encoder.ensure_base_encoder``, or ``None``."""
    try:
        from models.encoder import Encoder, ensure_base_encoder
    except ImportError as exc:
        ctx.note(f"{PEER_LABELS[EMBED]} was skipped: the encoder package is unavailable ({exc}).")
        return None
    import os
    from pathlib import Path

    from platformdirs import user_data_dir

    home = Path(os.environ.get("VERBATIM_HOME") or user_data_dir("verbatim", appauthor=False))
    try:
        return Encoder.from_pretrained(ensure_base_encoder(home))
    except Exception as exc:  # noqa: BLE001 - a peer is optional; the report says why it is absent
        ctx.note(f"{PEER_LABELS[EMBED]} was skipped: the base encoder could not be built ({exc}).")
        return None


def carve(examples: list[Example], share: float, *, seed: int) -> tuple[list[Example], list[Example]]:
    """Split off a seeded ``share`` of ``examples`` (at least one) as dev; keeps file order."""
    rng = np.random.default_rng(seed)
    n_dev = max(1, round(len(examples) * share))
    dev_idx = set(rng.permutation(len(examples))[:n_dev].tolist())
    train = [e for i, e in enumerate(examples) if i not in dev_idx]
    dev = [e for i, e in enumerate(examples) if i in dev_idx]
    return train, dev


def sample(examples: list[Example], n: int, *, seed: int) -> list[Example]:
    """A seeded sample of ``n`` examples in file order (all of them when fewer)."""
    if len(examples) <= n:
        return list(examples)
    keep = set(np.random.default_rng(seed).permutation(len(examples))[:n].tolist())
    return [e for i, e in enumerate(examples) if i in keep]


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    seconds: float = 0.0

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start
