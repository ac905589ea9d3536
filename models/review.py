"""What makes a verbatim worth an analyst's label: scores for active learning.

Each function looks at one classification (the contract dict of
:meth:`models.classifier.predict.Classifier.classify`) and returns a score in [0, 1] with the
words that explain it:

- :func:`uncertainty`: the model is unsure (its ``uncertain`` flags, confidences near the
  decision threshold, a flat sentiment distribution);
- :func:`disagreement`: the model's topics differ from its **zero-shot prior**, the cosine of the
  text's base-encoder embedding with the node prototypes the model holds (:func:`topic_prior`);
- :func:`rarity`: the verbatim is about nodes with few labels yet.

The prior uses the *base* encoder, as the prototypes were built with it. An unmerged
:class:`~models.classifier.model.CemClassifier` gives it with its adapters off; a classifier whose
adapters were merged into the encoder (:meth:`Classifier.load` does this) needs ``embed``, a base
encoder's embedding function (:meth:`models.encoder.Encoder.encode`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nlp.errors import ModelError

Embed = Callable[[Sequence[str]], np.ndarray]

GAP_SCALE = 0.03
"""Cosine gap (prior's top topic over the model's best-supported one) that counts as full
disagreement. Base e5 cosines with the prototypes spread over about 0.05 to 0.07 per text, and
the top topic typically leads the next by 0.01 to 0.02."""


@dataclass(frozen=True)
class TopicPrior:
    """Cosine of each text (rows) with each topic prototype (columns, ``topic_ids``)."""

    topic_ids: tuple[str, ...]
    scores: np.ndarray

    def top(self, row: int, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` topics the prior ranks highest for text ``row``, with their cosines."""
        order = np.argsort(-self.scores[row])[:k]
        return [(self.topic_ids[i], round(float(self.scores[row, i]), 4)) for i in order]


def _module(classifier: Any) -> Any:
    """The CemClassifier inside ``classifier`` (a Classifier wraps one as ``.model``)."""
    model = getattr(classifier, "model", classifier)
    if not hasattr(model, "topic_protos") or not hasattr(model, "config"):
        raise ModelError(
            f"{type(classifier).__name__} holds no node prototypes: the zero-shot prior needs the "
            "CEM classifier (models.classifier)."
        )
    return model


def has_base_encoder(classifier: Any) -> bool:
    """Whether ``classifier`` can embed with its base encoder itself (adapters not merged)."""
    return hasattr(_module(classifier).encoder, "disable_adapter")


def topic_prior(classifier: Any, texts: Sequence[str], *, embed: Embed | None = None) -> TopicPrior:
    """The zero-shot topic prior of ``texts``: base-encoder cosine with the model's prototypes."""
    model = _module(classifier)
    if embed is None:
        if not has_base_encoder(model):
            raise ModelError(
                "This classifier's adapters are merged into its encoder, so it cannot embed with "
                "the base encoder: pass embed= (models.encoder.Encoder(...).encode)."
            )
        vectors = model.embed_plain(list(texts)).numpy()
    else:
        vectors = np.asarray(embed(list(texts)), dtype=np.float32)
    protos = model.topic_protos.detach().cpu().numpy()
    return TopicPrior(topic_ids=tuple(model.config.topic_ids), scores=vectors @ protos.T)


@dataclass(frozen=True)
class Signal:
    """One reason to review a verbatim: a score in [0, 1] and what it means, in words."""

    kind: str
    score: float
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "score": round(self.score, 3), "detail": self.detail}


def _clip(value: float) -> float:
    return float(min(1.0, max(0.0, value)))


def uncertainty(result: Mapping[str, Any], *, threshold: float = 0.5) -> Signal:
    """How unsure the model is of its sentiment, topics (and their polarity) and touchpoints."""
    best = Signal("uncertain", 0.0, "the model is confident")
    sentiment = result.get("sentiment") or {}
    if "confidence" in sentiment:
        conf = float(sentiment["confidence"])
        score = _clip((1.0 - conf) * 1.5)  # 3 classes: 1/3 is a coin toss
        if sentiment.get("uncertain"):
            score = max(score, 0.6)
        best = Signal("uncertain", score, f"sentiment {sentiment.get('label')} at confidence {conf:.2f}")
    for topic in result.get("topics") or []:
        conf = float(topic.get("confidence", 1.0))
        score, what = _clip(1.0 - abs(conf - threshold) / (1.0 - threshold)), f"confidence {conf:.2f}"
        if "polarity_confidence" in topic:
            pol = float(topic["polarity_confidence"])
            if _clip((1.0 - pol) * 1.5) > score:
                score, what = _clip((1.0 - pol) * 1.5), f"{topic.get('polarity')} polarity at {pol:.2f}"
        if topic.get("uncertain"):
            score = max(score, 0.6)
        if score > best.score:
            best = Signal("uncertain", score, f"topic {topic['id']} with {what}")
    for tp in result.get("touchpoints") or []:
        conf = float(tp.get("confidence", 1.0))
        score = _clip(1.0 - abs(conf - threshold) / (1.0 - threshold))
        if score > best.score:
            best = Signal("uncertain", score, f"touchpoint {tp['id']} at confidence {conf:.2f}")
    return best


def disagreement(result: Mapping[str, Any], prior: TopicPrior, row: int) -> Signal:
    """How far the model's topics are from the prior's favourite for text ``row``.

    Zero when the prior's top topic is among the model's topics; otherwise the cosine gap between
    the prior's top topic and the best of the model's topics (or, with no topic predicted, the
    prior's lead over its runner-up), over :data:`GAP_SCALE`.
    """
    scores = prior.scores[row]
    index = {t: i for i, t in enumerate(prior.topic_ids)}
    (top, top_score), (_, second) = prior.top(row, 2)
    predicted = [t["id"] for t in result.get("topics") or [] if t.get("id") in index]
    if top in predicted:
        return Signal("disagreement", 0.0, f"the zero-shot prior agrees ({top})")
    if not predicted:
        score = _clip((top_score - second) / GAP_SCALE)
        return Signal(
            "disagreement", score,
            f"the zero-shot prior points to {top} but the model found no topic",
        )  # fmt: skip
    best = max(predicted, key=lambda t: scores[index[t]])
    score = _clip((top_score - float(scores[index[best]])) / GAP_SCALE)
    return Signal(
        "disagreement", score,
        f"the zero-shot prior points to {top}, the model to {', '.join(predicted[:3])}",
    )  # fmt: skip


def rarity(result: Mapping[str, Any], counts: Mapping[str, int], *, target: int = 20) -> Signal:
    """How few labels the nodes the model found here have (``target`` labels per node is enough)."""
    nodes = [t["id"] for t in result.get("topics") or []]
    nodes += [t["id"] for t in result.get("touchpoints") or []]
    if not nodes:
        return Signal("rare_node", 0.0, "no topic or touchpoint to cover")
    node = min(nodes, key=lambda n: counts.get(n, 0))
    have = counts.get(node, 0)
    score = _clip(1.0 - have / target)
    return Signal("rare_node", score, f"{node} has {have} label{'s' if have != 1 else ''} so far")


def interleave(groups: Mapping[str, Sequence[Any]], order: Sequence[str] = ("zh", "en")) -> list[Any]:
    """Round-robin over the groups (``order`` first, then the rest), keeping each group's order."""
    keys = [k for k in order if k in groups] + sorted(k for k in groups if k not in order)
    out: list[Any] = []
    for i in range(max((len(g) for g in groups.values()), default=0)):
        out += [groups[k][i] for k in keys if i < len(groups[k])]
    return out
