"""Score prediction dicts (the contract's "classification out") against labelled examples.

One code path for every predictor: our model's records and the peers' records go through the
same functions. A record needs only the fields the task reads:

- sentiment: ``{"sentiment": {"label": ..., "score": ..., "confidence": ...}}``; an optional
  ``"probs": {"negative": p, "neutral": p, "positive": p}`` inside ``sentiment`` is used for the
  binary collapse below;
- topics: ``{"topics": [{"id", "polarity", "confidence", "evidence": {"start", "end"}}]}``;
- touchpoints: ``{"touchpoints": [{"id", "confidence"}], "primary_touchpoint": ...}``.

Binary sets (negative/positive only): a 3-way prediction is scored as the argmax over
{negative, positive}: from ``probs`` when given, else a ``neutral`` label falls to the sign of
``score`` (``score >= 0`` -> positive).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from evaluation import metrics

if TYPE_CHECKING:
    from training.data.schema import Example

Record = Mapping[str, Any]


def collapse_binary(sentiment: Mapping[str, Any]) -> tuple[str, float | None]:
    """A 3-way sentiment prediction as negative/positive, with the collapsed label's confidence."""
    probs = sentiment.get("probs")
    if probs and "positive" in probs and "negative" in probs:
        pos, neg = float(probs["positive"]), float(probs["negative"])
        total = pos + neg
        p = pos / total if total > 0 else 0.5
        return ("positive", p) if p >= 0.5 else ("negative", 1 - p)
    label = sentiment.get("label")
    if label in ("negative", "positive"):
        return label, _conf(sentiment)
    score = float(sentiment.get("score") or 0.0)
    return ("positive" if score >= 0 else "negative"), None  # confidence was the neutral's


def score_sentiment(examples: Sequence[Example], records: Sequence[Record], *,
                    labels: Sequence[str], n_bins: int = 15) -> dict[str, Any]:
    """Accuracy (with bootstrap 95% CI), macro-F1, per-class P/R/F1 and ECE."""
    _check(examples, records)
    binary = set(labels) == {"negative", "positive"}
    gold, pred, conf, ok = [], [], [], []
    collapsed = 0
    for ex, rec in zip(examples, records, strict=True):
        if ex.sentiment is None:
            continue
        sent = rec.get("sentiment") or {}
        if binary:
            label, c = collapse_binary(sent)
            collapsed += sent.get("label") == "neutral"
        else:
            label, c = sent.get("label"), _conf(sent)
        gold.append(ex.sentiment)
        pred.append(str(label))
        if c is not None:
            conf.append(c)
            ok.append(label == ex.sentiment)
    correct = [g == p for g, p in zip(gold, pred, strict=True)]
    rel = metrics.calibration(conf, ok, n_bins=n_bins) if conf else None
    return {
        "n": len(gold),
        "accuracy": metrics.accuracy(gold, pred),
        "accuracy_ci95": list(metrics.bootstrap_ci(correct)),
        "macro_f1": metrics.macro_f1(gold, pred, labels=labels),
        "per_class": metrics.per_class_prf(gold, pred, labels=labels),
        "neutral_collapsed": collapsed if binary else 0,
        "ece": rel.ece if rel else None,
        "ece_n": rel.n if rel else 0,
        "reliability": rel.bins if rel else [],
    }


def _conf(sent: Mapping[str, Any]) -> float | None:
    c = sent.get("confidence")
    return None if c is None else float(c)


def gold_topics(ex: Example) -> dict[str, str | None]:
    return ex.topic_polarities()


def pred_topics(rec: Record, field: str = "topics") -> dict[str, tuple[str | None, float]]:
    out: dict[str, tuple[str | None, float]] = {}
    for t in rec.get(field) or []:
        c = t.get("confidence")
        c = 1.0 if c is None else float(c)
        if t["id"] not in out or c > out[t["id"]][1]:
            out[t["id"]] = (t.get("polarity"), c)
    return out


def score_topics(examples: Sequence[Example], records: Sequence[Record], *, space: Iterable[str],
                 closed: Iterable[str], n_bins: int = 15) -> dict[str, Any]:
    """Topic detection over ``space`` and polarity on correctly detected topics.

    Recall counts every node of ``space``; precision, F1 and calibration only the ``closed`` nodes
    (where the data's silence means "not this topic"); they are ``None`` when none is closed.
    """
    _check(examples, records)
    gold = [gold_topics(ex) for ex in examples]
    pred = [pred_topics(r) for r in records]
    closed = set(closed)
    s = metrics.topic_scores(gold, pred, space, closed=closed)
    out: dict[str, Any] = _detection(s) | {
        "polarity_accuracy": s.polarity_accuracy, "polarity_n": s.polarity_n,
        "ece": None, "reliability": [],
    }
    cells = [c for c in metrics.topic_cells(gold, pred, space) if c[3] and c[1] in closed]
    if cells:
        rel = metrics.calibration([c[6] for c in cells], [c[2] for c in cells], n_bins=n_bins)
        out["ece"], out["reliability"] = rel.ece, rel.bins
    return out | _outside(pred, space)


def _outside(pred: Sequence[dict[str, Any]], space: Iterable[str]) -> dict[str, Any]:
    """Predicted topics the set's scheme cannot express (neither an id of ``space`` nor under
    one), per text. Not scored as errors, since the data cannot say they are wrong, but on a
    restaurant sentence most of them are (billing, delivery, product design): a precision problem
    the scored ids alone do not show. A peer trained on the scheme predicts none by construction."""
    space = tuple(space)
    outside = Counter(t for p in pred for t in p if not any(t == s or t.startswith(s + ".") for s in space))
    return {"outside_per_text": sum(outside.values()) / max(1, len(pred)), "outside_top": outside.most_common(4)}


def _detection(s: metrics.TopicScores) -> dict[str, Any]:
    return {
        "n": s.n_docs, "n_gold_labels": sum(int(v["support"] or 0) for v in s.per_node.values()),
        "space": sorted(s.per_node), "closed": list(s.closed),
        "micro_recall": s.micro_recall, "micro_precision": s.micro_precision,
        "micro_f1": s.micro_f1, "macro_f1": s.macro_f1, "per_node": s.per_node,
    }


def score_touchpoints(examples: Sequence[Example], records: Sequence[Record], *,
                      space: Iterable[str]) -> dict[str, Any]:
    """Touchpoint recall over ``space`` (no source annotates stages exhaustively, so precision is
    not scored) and primary-touchpoint accuracy on examples with exactly one gold touchpoint."""
    _check(examples, records)
    gold = [{t: None for t in ex.touchpoints} for ex in examples]
    pred = [pred_topics(r, "touchpoints") for r in records]
    s = metrics.topic_scores(gold, pred, space, closed=())
    single = [(ex.touchpoints[0], r.get("primary_touchpoint"))
              for ex, r in zip(examples, records, strict=True) if len(ex.touchpoints) == 1]
    return _detection(s) | {
        "primary_accuracy": metrics.accuracy([g for g, _ in single], [str(p) for _, p in single])
        if single else None,
        "primary_n": len(single),
    }


def score_evidence(examples: Sequence[Example], records: Sequence[Record]) -> dict[str, Any]:
    """Predicted topic evidence spans against gold aspect-term offsets (examples with aspects)."""
    _check(examples, records)
    gold, pred = [], []
    for ex, rec in zip(examples, records, strict=True):
        if not ex.aspects:
            continue
        gold.append([(a.start, a.end) for a in ex.aspects])
        spans = []
        for t in rec.get("topics") or []:
            ev = t.get("evidence")
            if ev and ev.get("start") is not None and ev.get("end") is not None:
                spans.append((int(ev["start"]), int(ev["end"])))
        pred.append(spans)
    s = metrics.span_scores(gold, pred)
    hits, n_topic = _topic_evidence(examples, records)
    return {"n": len(gold), "hit_rate": s.hit_rate, "span_precision": s.precision,
            "char_precision": s.char_precision, "char_recall": s.char_recall, "char_f1": s.char_f1,
            "n_gold_spans": s.n_gold, "n_pred_spans": s.n_pred,
            "topic_evidence_hit": hits / n_topic if n_topic else None, "topic_evidence_n": n_topic}


def _topic_evidence(examples: Sequence[Example], records: Sequence[Record]) -> tuple[int, int]:
    """Of correctly found topics whose gold label has a span, how many have evidence on it.

    A predicted topic matches a gold id when it is that id or, for a level-1 gold id, a leaf
    under it; the evidence hits when it overlaps any gold span of that id.
    """
    hits = n = 0
    for ex, rec in zip(examples, records, strict=True):
        spans: dict[str, list[tuple[int, int]]] = {}
        for t in ex.topics:
            if t.span is not None:
                spans.setdefault(t.id, []).append(t.span)
        for gid, gspans in spans.items():
            evid = [(int(t["evidence"]["start"]), int(t["evidence"]["end"]))
                    for t in rec.get("topics") or []
                    if (t["id"] == gid or (metrics.is_level1(gid) and metrics.level1(t["id"]) == gid))
                    and t.get("evidence") and t["evidence"].get("start") is not None]
            found = any(t["id"] == gid or (metrics.is_level1(gid) and metrics.level1(t["id"]) == gid)
                        for t in rec.get("topics") or [])
            if found:
                n += 1
                hits += any(a[0] < b[1] and b[0] < a[1] for a in evid for b in gspans)
    return hits, n


def _check(examples: Sequence[Example], records: Sequence[Record]) -> None:
    if len(examples) != len(records):
        from nlp.errors import InvalidInputError

        raise InvalidInputError(
            f"predict_fn returned {len(records)} records for {len(examples)} texts; "
            "it must return exactly one record per input text, in input order"
        )
