"""From labelled examples to masked multi-task targets.

Partial labels stay partial: a data set labelled only for sentiment teaches nothing about topics,
and a topic the data set's scheme cannot express is masked out, not taken as absent. A level-1
label ("service") is a *group* target: at least one leaf under it is present.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from models.classifier.config import POLARITY_LABELS, SENTIMENT_LABELS
from models.taxonomy import Taxonomy
from nlp.errors import InvalidInputError

SENT_INDEX = {s: i for i, s in enumerate(SENTIMENT_LABELS)}
POL_INDEX = {p: i for i, p in enumerate(POLARITY_LABELS)}


def label_leaf(leaves: Sequence[int], topic_row) -> int:
    """The leaf a label is about: the leaf itself, or a group's strongest leaf in ``topic_row``."""
    return leaves[0] if len(leaves) == 1 else leaves[int(topic_row[list(leaves)].argmax())]


@dataclass(kw_only=True)
class TrainItem:
    """One text with every target it has and the masks saying which targets are known."""

    text: str
    source: str
    sentiment: int = -1  # index into SENTIMENT_LABELS, -1 unknown
    sentiment_binary: bool = False  # the source only knows negative/positive
    topic_target: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    topic_mask: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    groups: list[tuple[tuple[int, ...], float]] = field(default_factory=list)  # level-1 targets
    polarity: list[tuple[tuple[int, ...], int]] = field(default_factory=list)  # (leaf group, polarity)
    tp_target: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    tp_mask: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    # topic negatives that come from ``assume_absent`` (domain knowledge), not from the data set
    topic_assumed: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def assumed(self) -> np.ndarray:
        """``topic_assumed`` over every topic (items built before it existed have none)."""
        n = len(self.topic_target)
        return self.topic_assumed if len(self.topic_assumed) == n else np.zeros(n, bool)


class TargetBuilder:
    """Turns examples (and taxonomy seed phrases) into :class:`TrainItem` for one label map."""

    def __init__(
        self, taxonomy: Taxonomy, topic_ids: Sequence[str], touchpoint_ids: Sequence[str],
        *, assume_closed: Sequence[str] = (),
        assume_absent: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
        weak_topics: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """``assume_closed`` names data sets whose whole topic space is taken as exhaustive for
        examples that carry a topic label (a training choice, e.g. single-reason tweets), where
        the data set itself does not promise it; evaluation never uses this.

        ``assume_absent`` ({data set: {topic: gates}}, see :class:`training.config.TrainConfig`)
        adds negatives to *train* items only: the topic is taken as absent from a labelled text
        of that set unless the text carries it or a label under one of its gates. ``weak_topics``
        ({topic: {lang: regex}}) adds positives to *train* items whose text matches, where the data
        set's own scheme leaves the topic unknown."""
        self.taxonomy = taxonomy
        self.assume_closed = frozenset(assume_closed)
        self.topic_ids = tuple(topic_ids)
        self.topic_index = {t: i for i, t in enumerate(topic_ids)}
        self.assume_absent = {name: self._absent_rules(name, rules) for name, rules in (assume_absent or {}).items()}
        self.weak_topics = []
        for topic, patterns in (weak_topics or {}).items():
            if topic not in self.topic_index:
                raise InvalidInputError(f"weak_topics: {topic!r} is not a leaf topic of taxonomy {self.taxonomy.id}.")
            self.weak_topics.append((self.topic_index[topic], {lang: re.compile(p) for lang, p in patterns.items()}))
        self.tp_index = {t: i for i, t in enumerate(touchpoint_ids)}

    def _leaves(self, node_id: str) -> tuple[int, ...]:
        if node_id in self.topic_index:
            return (self.topic_index[node_id],)
        try:
            leaves = self.taxonomy.leaves_under(node_id)
        except Exception:  # an id outside this taxonomy: nothing to learn from it
            return ()
        return tuple(self.topic_index[leaf] for leaf in leaves if leaf in self.topic_index)

    def _absent_rules(self, dataset: str, rules: Mapping[str, Sequence[str]]) -> list[tuple[str, tuple[int, ...], tuple[str, ...]]]:
        known = set(self.topic_ids) | set(self.taxonomy.level1_ids)
        out = []
        for node, gates in rules.items():
            for named in (node, *gates):
                if named not in known:
                    raise InvalidInputError(
                        f"assume_absent.{dataset}: {named!r} is not a topic of taxonomy {self.taxonomy.id}; "
                        f"use a leaf or level-1 id ({', '.join(sorted(known))}).")
            out.append((node, self._leaves(node), tuple(gates)))
        return out

    def build(self, example, info, prepared_text: str, *, train: bool = True) -> TrainItem:
        n_topics, n_tps = len(self.topic_index), len(self.tp_index)
        item = TrainItem(
            text=prepared_text,
            source=example.dataset,
            topic_target=np.zeros(n_topics, np.float32),
            topic_mask=np.zeros(n_topics, bool),
            tp_target=np.zeros(n_tps, np.float32),
            tp_mask=np.zeros(n_tps, bool),
            topic_assumed=np.zeros(n_topics, bool),
        )
        if example.sentiment in SENT_INDEX:
            item.sentiment = SENT_INDEX[example.sentiment]
            item.sentiment_binary = info.name in BINARY_SENTIMENT
        labelled = example.topic_ids
        # known negatives: only the topics whose absence the data set's scheme makes informative
        closed = info.closed_topics
        if info.name in self.assume_closed and labelled:
            closed = closed | info.topic_space
        if example.split not in info.unlabelled_splits:
            for node in closed:
                leaves = self._leaves(node)
                if not leaves:
                    continue
                hit = node in labelled or any(self._leaf_id(i) in labelled for i in leaves)
                if len(leaves) == 1:
                    item.topic_mask[leaves[0]] = True
                    item.topic_target[leaves[0]] = float(hit)
                else:
                    item.groups.append((leaves, float(hit)))
            if train:
                self._mark_weak(item, example.lang, prepared_text)
                self._mark_absent(item, info.name, labelled)
        for node in labelled:  # positives are known whatever the scheme
            leaves = self._leaves(node)
            if len(leaves) == 1:
                item.topic_mask[leaves[0]] = True
                item.topic_target[leaves[0]] = 1.0
                item.topic_assumed[leaves[0]] = False
            elif leaves and not any(g == leaves for g, _ in item.groups):
                item.groups.append((leaves, 1.0))
        for node, pol in example.topic_polarities().items():
            leaves = self._leaves(node)
            if leaves and pol in POL_INDEX:
                item.polarity.append((leaves, POL_INDEX[pol]))
        if example.touchpoints:
            # an example whose labels name a stage is taken as not at the set's other stages:
            # sources name one stage per reason or category, and the seeds alone would be thin
            for tp in info.touchpoint_space:
                if tp in self.tp_index:
                    item.tp_mask[self.tp_index[tp]] = True
            for tp in example.touchpoints:
                if tp in self.tp_index:
                    item.tp_mask[self.tp_index[tp]] = True
                    item.tp_target[self.tp_index[tp]] = 1.0
        return item

    def _mark_weak(self, item: TrainItem, lang: str, text: str) -> None:
        """The ``weak_topics`` positives of one train text, where its scheme said nothing (neither
        about the leaf nor about a group holding it)."""
        for leaf, patterns in self.weak_topics:
            pattern = patterns.get(str(getattr(lang, "value", lang)))
            known = item.topic_mask[leaf] or any(leaf in group for group, _ in item.groups)
            if pattern is not None and not known and pattern.search(text):
                item.topic_mask[leaf] = True
                item.topic_target[leaf] = 1.0

    def _mark_absent(self, item: TrainItem, dataset: str, labelled) -> None:
        """The ``assume_absent`` negatives of one train text (positives are set after, and win)."""
        def under(label: str, gate: str) -> bool:  # same node, or one is the other's level-1 group
            return label == gate or label.startswith(gate + ".") or gate.startswith(label + ".")

        for node, leaves, gates in self.assume_absent.get(dataset, ()):
            if any(under(label, g) for label in labelled for g in (node, *gates)):
                continue
            for leaf in leaves:
                if not item.topic_mask[leaf]:
                    item.topic_mask[leaf] = True
                    item.topic_target[leaf] = 0.0
                    item.topic_assumed[leaf] = True

    def _leaf_id(self, index: int) -> str:
        return self.topic_ids[index]

    def seed_items(self, prepare) -> Iterable[TrainItem]:
        """Weak labels from the taxonomy's own seed phrases: a seed shows its node and no other.

        They teach the heads to read node text (the zero-shot path) and fill thin gold labels
        (Chinese touchpoints). Evaluation never scores against them.
        """
        n_topics, n_tps = len(self.topic_index), len(self.tp_index)
        for topic_id, index in self.topic_index.items():
            node = self.taxonomy.topic(topic_id)
            for phrase in (*node.seeds.zh, *node.seeds.en):
                target = np.zeros(n_topics, np.float32)
                target[index] = 1.0
                yield TrainItem(
                    text=prepare(phrase), source="taxonomy-seeds", topic_target=target,
                    topic_mask=np.ones(n_topics, bool), tp_target=np.zeros(n_tps, np.float32),
                    tp_mask=np.zeros(n_tps, bool),
                )
        for tp_id, index in self.tp_index.items():
            node = self.taxonomy.touchpoint(tp_id)
            for phrase in (*node.seeds.zh, *node.seeds.en):
                target = np.zeros(n_tps, np.float32)
                target[index] = 1.0
                yield TrainItem(
                    text=prepare(phrase), source="taxonomy-seeds", topic_target=np.zeros(n_topics, np.float32),
                    topic_mask=np.zeros(n_topics, bool), tp_target=target, tp_mask=np.ones(n_tps, bool),
                )


#: data sets whose sentiment is binary: their loss compares negative with positive only
BINARY_SENTIMENT = frozenset({"online_shopping_10_cats", "waimai_10k"})
