"""Training and dev pools per data set, and a length-bucketed, resumable batch sampler."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence

import numpy as np

from training.targets import TargetBuilder, TrainItem

log = logging.getLogger(__name__)
SEEDS = "taxonomy-seeds"


def _in_carved_dev(example_id: str) -> bool:
    """A fixed 10% of a data set without its own dev split, chosen by a hash of the id."""
    return int(hashlib.sha1(example_id.encode("utf-8")).hexdigest()[:8], 16) % 10 == 0


def _usable(example) -> bool:
    return bool(example.sentiment or example.topics or example.touchpoints)


def build_pools(
    names: Sequence[str], builder: TargetBuilder, prepare: Callable[[str], str], *,
    dev_per_dataset: int, max_train: int | None, seed: int,
) -> tuple[dict[str, list[TrainItem]], dict[str, list[TrainItem]]]:
    """Train and dev items per data set. Test splits are never read here."""
    from training.data import DATASETS, load_dataset

    rng = np.random.default_rng(seed)
    train: dict[str, list[TrainItem]] = {}
    dev: dict[str, list[TrainItem]] = {}
    for name in names:
        if name == SEEDS:
            train[name] = list(builder.seed_items(prepare))
            continue
        info = DATASETS[name]
        has_dev = "dev" in info.splits
        tr_ex = [e for e in load_dataset(name, "train") if _usable(e)]
        if has_dev:
            dv_ex = [e for e in load_dataset(name, "dev") if _usable(e)]
        else:
            dv_ex = [e for e in tr_ex if _in_carved_dev(e.id)]
            tr_ex = [e for e in tr_ex if not _in_carved_dev(e.id)]
        if max_train and len(tr_ex) > max_train:
            tr_ex = [tr_ex[i] for i in sorted(rng.choice(len(tr_ex), max_train, replace=False))]
        if len(dv_ex) > dev_per_dataset:
            dv_ex = [dv_ex[i] for i in sorted(rng.choice(len(dv_ex), dev_per_dataset, replace=False))]
        train[name] = [builder.build(e, info, prepare(e.text)) for e in tr_ex]
        dev[name] = [builder.build(e, info, prepare(e.text)) for e in dv_ex]
        log.info("%s: %d train, %d dev", name, len(train[name]), len(dev[name]))
    return train, dev


class MixtureSampler:
    """Draws batches: a data set by its share, then a batch of similar-length texts from it.

    Every draw comes from one numpy generator whose state is saved with the checkpoint, so a
    resumed run continues the same stream of batches.
    """

    def __init__(self, pools: dict[str, list[TrainItem]], mixture: dict[str, float], batch_size: int, seed: int) -> None:
        self.names = [n for n in mixture if pools.get(n)]
        shares = np.array([mixture[n] for n in self.names], dtype=float)
        self.probs = shares / shares.sum()
        self.pools = pools
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self._queues: dict[str, list[list[int]]] = {n: [] for n in self.names}

    def _refill(self, name: str) -> None:
        pool = self.pools[name]
        take = min(len(pool), self.batch_size * 16)
        idx = self.rng.choice(len(pool), take, replace=False)
        idx = sorted(idx, key=lambda i: len(pool[i].text))  # similar lengths share a batch
        batches = [idx[i : i + self.batch_size] for i in range(0, len(idx), self.batch_size)]
        order = self.rng.permutation(len(batches))
        self._queues[name] = [list(map(int, batches[i])) for i in order]

    def next(self) -> list[TrainItem]:
        name = self.names[int(self.rng.choice(len(self.names), p=self.probs))]
        if not self._queues[name]:
            self._refill(name)
        return [self.pools[name][i] for i in self._queues[name].pop()]

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "queues": self._queues}

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self._queues = {n: [list(b) for b in state["queues"].get(n, [])] for n in self.names}
