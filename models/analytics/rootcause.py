"""Root causes of a driver: where it over-indexes, how it moves over time, what it is made of.

For each top negative driver (a 0/1 column of the driver matrix) :func:`explain_driver` gathers:

* ``keyphrases`` of its evidence spans (or texts), per language, with :func:`nlp.keywords.extract_keyphrases`;
* ``sub_issues``: the issue clusters inside a topic driver (or the topics inside a cluster driver);
* ``examples``: representative verbatims in each language (near the driver's centroid, confident,
  not near-duplicates) with their evidence spans;
* ``segments``: metadata values where the driver's share is higher than in the rest, each with a
  two-sided Fisher exact test and Benjamini-Hochberg q-values over all values tested for the driver;
* ``trend``: its share by week or month when records carry ``ts``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.analytics.segments import segment_lift, trend

__all__ = [
    "Corpus",
    "RootCauseSettings",
    "driver_keyphrases",
    "driver_label",
    "explain_driver",
    "parse_driver",
    "representative_examples",
    "sub_issues",
    "topic_label",
    "touchpoint_label",
]

POLARITIES = ("negative", "neutral", "positive")


@dataclass(frozen=True, kw_only=True, slots=True)
class RootCauseSettings:
    """How much to explain: how many drivers, examples, keyphrases; segment and test limits."""

    top_n: int = 5
    examples_per_lang: int = 3
    keyphrases: int = 10
    sub_issues: int = 8
    min_segment_size: int = 10
    min_values: int = 2
    max_values: int = 50
    alpha: float = 0.05
    trend_freq: str | None = None  # "week" | "month"; None picks by the time span


@dataclass(frozen=True, kw_only=True, slots=True)
class Corpus:
    """The analysed records, aligned row by row with the classification results."""

    ids: list[str]
    texts: list[str]
    langs: list[str]
    results: list[dict[str, Any]]
    embeddings: np.ndarray
    values: np.ndarray
    clusters: list[str | None]
    segments: dict[str, list[str | None]] = field(default_factory=dict)
    periods: list[str | None] = field(default_factory=list)


# --- labels -----------------------------------------------------------------------------------

_POLARITY_NAMES = {"negative": ("负面", "negative"), "neutral": ("中性", "neutral"),
                   "positive": ("正面", "positive")}


def topic_label(taxonomy: Any, topic_id: str) -> dict[str, str]:
    """``{"zh": "配送 · 时效", "en": "Delivery · Timeliness"}`` for a topic (its id when unknown)."""
    if taxonomy is None or topic_id not in taxonomy:
        return {"zh": topic_id, "en": topic_id}
    node = taxonomy.topic(topic_id)
    parent = taxonomy.topic(node.parent) if node.parent and node.parent in taxonomy else None
    if parent is None:
        return {"zh": node.name.zh, "en": node.name.en}
    return {"zh": f"{parent.name.zh} · {node.name.zh}", "en": f"{parent.name.en} · {node.name.en}"}


def touchpoint_label(taxonomy: Any, touchpoint_id: str) -> dict[str, str]:
    """A touchpoint's names in both languages (its id when unknown)."""
    try:
        node = taxonomy.touchpoint(touchpoint_id)
    except Exception:  # noqa: BLE001 - NotFoundError or no taxonomy: fall back to the id
        return {"zh": touchpoint_id, "en": touchpoint_id}
    return {"zh": node.name.zh, "en": node.name.en}


def driver_label(driver: str, taxonomy: Any, clusters: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Bilingual label of a driver column: ``topic.id:polarity`` or ``cluster:cN``."""
    head, _, tail = driver.rpartition(":")
    if head == "cluster":
        cluster = clusters.get(tail, {})
        zh = cluster.get("label_zh") or cluster.get("label") or tail
        en = cluster.get("label_en") or cluster.get("label") or tail
        return {"zh": f"问题簇 {tail}：{zh}", "en": f"Issue cluster {tail}: {en}"}
    names = topic_label(taxonomy, head or driver)
    pol = _POLARITY_NAMES.get(tail)
    if pol is None:
        return names
    return {"zh": f"{names['zh']}（{pol[0]}）", "en": f"{names['en']} ({pol[1]})"}


def parse_driver(driver: str) -> tuple[str, str, str | None]:
    """``("topic", "delivery.timeliness", "negative")`` or ``("cluster", "c3", None)``."""
    head, _, tail = driver.rpartition(":")
    if head == "cluster":
        return "cluster", tail, None
    return "topic", head, tail


# --- what a driver is made of -----------------------------------------------------------------


def _mention(result: Mapping[str, Any], topic: str, polarity: str | None) -> Mapping[str, Any] | None:
    for entry in result.get("topics", ()):
        if entry["id"] == topic and (polarity is None or entry["polarity"] == polarity):
            return entry
    return None


def _lang_group(lang: str | None) -> str:
    return "en" if lang == "en" else "zh"


def representative_examples(
    mask: np.ndarray,
    corpus: Corpus,
    *,
    topic: str | None = None,
    polarity: str | None = None,
    k: int = 3,
) -> dict[str, list[dict[str, Any]]]:
    """Up to ``k`` verbatims per language (``zh``, ``en``; mixed counts as zh) that stand for the
    driver: close to the centroid of its records' embeddings and confidently classified, no two
    near-duplicates (cosine > 0.95). Topic drivers bring the mention's evidence span."""
    idx = np.flatnonzero(np.asarray(mask, dtype=bool))
    out: dict[str, list[dict[str, Any]]] = {"zh": [], "en": []}
    if len(idx) == 0:
        return out
    emb = corpus.embeddings[idx]
    ok = ~np.isnan(emb).any(axis=1)
    sims = np.full(len(idx), -1.0)
    if ok.any():
        centroid = emb[ok].mean(axis=0)
        centroid /= np.linalg.norm(centroid) or 1.0
        sims[ok] = emb[ok] @ centroid
    scores = np.empty(len(idx))
    mentions: list[Mapping[str, Any] | None] = []
    for j, i in enumerate(idx):
        result = corpus.results[i]
        mention = _mention(result, topic, polarity) if topic else None
        mentions.append(mention)
        if mention is not None:
            conf = mention["confidence"] * mention.get("polarity_confidence", 1.0)
            conf *= 1.0 if mention.get("evidence") else 0.5
        else:
            conf = result.get("sentiment", {}).get("confidence", 0.5)
        scores[j] = sims[j] * conf
    seen_texts: set[str] = set()
    for j in np.argsort(-scores, kind="stable"):
        i = int(idx[j])
        group = _lang_group(corpus.langs[i])
        chosen = out[group]
        if len(chosen) >= k:
            if all(len(v) >= k for v in out.values()):
                break
            continue
        norm = " ".join(corpus.texts[i].split()).lower()
        if norm in seen_texts:
            continue
        if ok[j] and any(float(emb[j] @ corpus.embeddings[c["_row"]]) > 0.95 for c in chosen if c["_row"] >= 0):
            continue
        seen_texts.add(norm)
        value = corpus.values[i]
        mention = mentions[j]
        chosen.append({
            "id": corpus.ids[i], "lang": corpus.langs[i], "text": corpus.texts[i],
            "evidence": mention.get("evidence") if mention else None,
            "sentiment": corpus.results[i].get("sentiment", {}).get("label"),
            "score": None if np.isnan(value) else float(value),
            "_row": i if ok[j] else -1,
        })
    for chosen in out.values():
        for c in chosen:
            del c["_row"]
    return out


def driver_keyphrases(
    mask: np.ndarray, corpus: Corpus, *, topic: str | None = None, polarity: str | None = None,
    top_k: int = 10, max_texts: int = 2000, min_lift: float = 1.25, min_share: float = 0.02,
) -> dict[str, list[dict[str, Any]]]:
    """Keyphrases per language that set the driver apart.

    Candidates come from :func:`nlp.keywords.extract_keyphrases` over the driver's evidence spans
    (topic drivers) or texts; each is kept when the share of the driver's verbatims containing it
    is at least ``min_lift`` times its share among the other verbatims of that language (and at
    least ``min_share`` of the driver's verbatims, two at the least), ranked by score x log(lift). So "lounge" in a lounge-review data set does not crowd out
    "dirty toilets". Rows: ``phrase``, ``score``, ``lift``.
    """
    from nlp.keywords import extract_keyphrases

    mask = np.asarray(mask, dtype=bool)
    rng = np.random.default_rng(0)
    idx = np.flatnonzero(mask)
    if len(idx) > max_texts:
        idx = rng.choice(idx, size=max_texts, replace=False)
    spans: dict[str, list[str]] = {"zh": [], "en": []}
    inside: dict[str, list[str]] = {"zh": [], "en": []}
    for i in idx:
        mention = _mention(corpus.results[i], topic, polarity) if topic else None
        evidence = mention.get("evidence") if mention else None
        text = evidence["text"] if evidence and evidence.get("text") else corpus.texts[i]
        for group in _groups(corpus.langs[i]):
            spans[group].append(text)
            inside[group].append(corpus.texts[i].lower())
    rest = np.flatnonzero(~mask)
    if len(rest) > max_texts:
        rest = rng.choice(rest, size=max_texts, replace=False)
    outside: dict[str, list[str]] = {"zh": [], "en": []}
    for i in rest:
        for group in _groups(corpus.langs[i]):
            outside[group].append(corpus.texts[i].lower())
    out: dict[str, list[dict[str, Any]]] = {}
    for lang, items in spans.items():
        rows = []
        for phrase, score in (extract_keyphrases(items, top_k * 5, lang=lang) if items else []):
            key = phrase.lower()
            docs_in = sum(key in t for t in inside[lang])
            if docs_in < max(2, min_share * len(inside[lang])):
                continue  # a word of one or two verbatims is no root cause
            share_in = (docs_in + 0.5) / (len(inside[lang]) + 1)
            share_out = (sum(key in t for t in outside[lang]) + 0.5) / (len(outside[lang]) + 1)
            lift = share_in / share_out
            if lift >= min_lift:
                rows.append({"phrase": phrase, "score": round(score * float(np.log(lift)), 4), "lift": round(lift, 2)})
        out[lang] = sorted(rows, key=lambda r: -r["score"])[:top_k]
    return out


def _groups(lang: str | None) -> tuple[str, ...]:
    return ("zh", "en") if lang == "mixed" else (_lang_group(lang),)


def sub_issues(
    mask: np.ndarray, corpus: Corpus, *, kind: str, clusters: Mapping[str, Mapping[str, Any]],
    taxonomy: Any = None, top: int = 8,
) -> list[dict[str, Any]]:
    """What the driver breaks into: issue clusters inside a topic driver (``kind="topic"``), or
    the topic mentions inside a cluster driver. ``share`` is of the driver's records."""
    idx = np.flatnonzero(np.asarray(mask, dtype=bool))
    if len(idx) == 0:
        return []
    if kind == "topic":
        counts = Counter(corpus.clusters[i] for i in idx if corpus.clusters[i] is not None)
        rows = []
        for cid, count in counts.most_common(top):
            info = clusters.get(cid, {})
            size = int(info.get("size") or 0)
            rows.append({
                "kind": "cluster", "id": cid, "count": count, "share": round(count / len(idx), 4),
                "concentration": round(count / size, 4) if size else None,
                "label": {"zh": info.get("label_zh") or info.get("label") or cid,
                          "en": info.get("label_en") or info.get("label") or cid},
                "keywords": list(info.get("keywords", []))[:8],
            })
        return rows
    counts = Counter(
        f"{t['id']}:{t['polarity']}" for i in idx for t in corpus.results[i].get("topics", ())
    )
    return [
        {"kind": "topic", "id": key, "count": count, "share": round(count / len(idx), 4),
         "label": driver_label(key, taxonomy, clusters), "keywords": []}
        for key, count in counts.most_common(top)
    ]


def explain_driver(
    row: Mapping[str, Any],
    mask: np.ndarray,
    corpus: Corpus,
    *,
    taxonomy: Any = None,
    clusters: Mapping[str, Mapping[str, Any]] | None = None,
    headline: Callable[[np.ndarray], float] | None = None,
    settings: RootCauseSettings | None = None,
) -> dict[str, Any]:
    """Root causes of one driver (a row of the drivers table and its 0/1 record mask)."""
    settings = settings or RootCauseSettings()
    clusters = clusters or {}
    mask = np.asarray(mask, dtype=bool)
    kind, key, polarity = parse_driver(row["driver"])
    topic = key if kind == "topic" else None
    out: dict[str, Any] = {
        "driver": row["driver"], "kind": kind, "label": driver_label(row["driver"], taxonomy, clusters),
        "support": int(mask.sum()),
        **{k: row.get(k) for k in ("impact", "importance", "ci", "rank")},
    }
    if headline is not None:
        values = corpus.values
        with_ = values[mask & ~np.isnan(values)]
        without = values[~mask & ~np.isnan(values)]
        out["outcome_with"] = round(float(headline(with_)), 2) if len(with_) else None
        out["outcome_without"] = round(float(headline(without)), 2) if len(without) else None
    out["keyphrases"] = driver_keyphrases(mask, corpus, topic=topic, polarity=polarity, top_k=settings.keyphrases)
    out["sub_issues"] = sub_issues(mask, corpus, kind=kind, clusters=clusters, taxonomy=taxonomy,
                                   top=settings.sub_issues)
    out["examples"] = representative_examples(mask, corpus, topic=topic, polarity=polarity,
                                              k=settings.examples_per_lang)
    lift = segment_lift(mask, corpus.segments, min_size=settings.min_segment_size, alpha=settings.alpha)
    out["segments"] = [r for r in lift if r["over_indexes"]]
    out["segments_tested"] = len(lift)
    out["trend"] = trend(mask, corpus.periods, corpus.values, headline) if any(corpus.periods) else []
    return out
