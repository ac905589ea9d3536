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
        dev[name] = [builder.build(e, info, prepare(e.text), train=False) for e in dv_ex]
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


def _item_to_json(it: TrainItem) -> dict:
    return {
        "t": it.text, "s": it.source, "y": it.sentiment, "b": it.sentiment_binary,
        "n": len(it.topic_target), "tm": np.flatnonzero(it.topic_mask).tolist(),
        "tt": np.flatnonzero(it.topic_target).tolist(), "g": [[list(g), v] for g, v in it.groups],
        "p": [[list(g), v] for g, v in it.polarity], "m": len(it.tp_target),
        "pm": np.flatnonzero(it.tp_mask).tolist(), "pt": np.flatnonzero(it.tp_target).tolist(),
        "ta": np.flatnonzero(it.topic_assumed).tolist(),
    }


def _item_from_json(d: dict) -> TrainItem:
    def dense(n: int, idx: list[int], dtype) -> np.ndarray:
        a = np.zeros(n, dtype)
        a[idx] = 1
        return a

    return TrainItem(
        text=d["t"], source=d["s"], sentiment=d["y"], sentiment_binary=d["b"],
        topic_target=dense(d["n"], d["tt"], np.float32), topic_mask=dense(d["n"], d["tm"], bool),
        groups=[(tuple(g), float(v)) for g, v in d["g"]], polarity=[(tuple(g), int(v)) for g, v in d["p"]],
        tp_target=dense(d["m"], d["pt"], np.float32), tp_mask=dense(d["m"], d["pm"], bool),
        topic_assumed=dense(d["n"], d.get("ta", []), bool),
    )


def save_pools(path, train: dict[str, list[TrainItem]], dev: dict[str, list[TrainItem]]) -> None:
    """Prepared items as gzipped JSON, so training can run where the text pipeline is not installed."""
    import gzip
    import json

    payload = {
        "train": {k: [_item_to_json(i) for i in v] for k, v in train.items()},
        "dev": {k: [_item_to_json(i) for i in v] for k, v in dev.items()},
    }
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump(payload, fh, ensure_ascii=False)


def load_pools(path) -> tuple[dict[str, list[TrainItem]], dict[str, list[TrainItem]]]:
    import gzip
    import json

    with gzip.open(path, "rt", encoding="utf-8") as fh:
        payload = json.load(fh)
    return (
        {k: [_item_from_json(d) for d in v] for k, v in payload["train"].items()},
        {k: [_item_from_json(d) for d in v] for k, v in payload["dev"].items()},
    )
