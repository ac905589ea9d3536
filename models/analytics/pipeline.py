"""``analyze``: classify records, cluster issues, rank drivers, explain the top negative ones.

>>> analysis = analyze(read.records, classifier.classify_with_embeddings, outcome="nps",
...                    taxonomy=classifier.model.taxonomy, rejected=read.rejected)
>>> analysis["overall"]["nps"], analysis["drivers"][0]["driver"]

The result is JSON-ready and holds the contract's keys (``outcome``, ``records``, ``overall``,
``drivers``, ``clusters``) plus ``topics``, ``touchpoints``, ``heatmap``, ``segments``, ``trends``,
``root_causes``, ``cases``, ``rejected`` and ``meta``. :func:`models.analytics.report.render_report`
turns it into the analysts' HTML report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from models.analytics.rootcause import (
    POLARITIES,
    Corpus,
    RootCauseSettings,
    driver_label,
    explain_driver,
    parse_driver,
    topic_label,
    touchpoint_label,
)
from models.analytics.segments import period_keys, segment_fields, segment_overview, trend
from nlp.errors import InvalidInputError

__all__ = ["AnalysisSettings", "ProgressFn", "analyze"]

#: ``progress(stage, done, total)``; stages: ``classify``, ``cluster``, ``drivers``, ``rootcause``.
ProgressFn = Callable[[str, int, int], None]
ClassifyFn = Callable[[list[dict[str, Any]]], tuple[list[dict[str, Any]], np.ndarray]]


@dataclass(frozen=True, kw_only=True, slots=True)
class AnalysisSettings:
    """Batch size of classification, driver-ranking options and root-cause limits."""

    chunk_size: int = 256
    min_support: int = 30
    n_bootstrap: int = 200
    random_state: int = 0
    examples_per_driver: int = 5
    rootcause: RootCauseSettings = field(default_factory=RootCauseSettings)


def _noop(stage: str, done: int, total: int) -> None:
    return None


def analyze(
    records: Sequence[Any],
    classify_fn: ClassifyFn,
    *,
    outcome: str,
    taxonomy: Any,
    progress: ProgressFn | None = None,
    cases: Sequence[Mapping[str, Any]] | None = None,
    clusterer: Any = None,
    rejected: Sequence[Any] | None = None,
    ranker: Any = None,
    settings: AnalysisSettings | None = None,
) -> dict[str, Any]:
    """Analyse ``records`` (:class:`nlp.records.Record`) against the ``outcome`` score.

    ``classify_fn`` is :meth:`Classifier.classify_with_embeddings` (or a stand-in with its
    shape); ``clusterer`` an :class:`IssueClusterer` and ``ranker`` a :class:`DriverRanker`
    (defaults are built when None). ``rejected`` are the rejections of reading the file (kept in
    the output with line and reason); records the classifier cannot take are added there too.
    Raises :class:`InvalidInputError` when no record can be analysed or none carries the score.
    """
    from models.analytics.outcomes import Outcome, headline, outcome_values, summary

    settings = settings or AnalysisSettings()
    progress = progress or _noop
    try:
        outcome = Outcome(outcome)
    except ValueError:
        raise InvalidInputError(
            f"unknown outcome {outcome!r}; use one of {', '.join(o.value for o in Outcome)}"
        ) from None
    clock = _Clock()
    if records and np.isnan(outcome_values(records, outcome)).all():  # before the costly part
        raise InvalidInputError(
            f"no record has a {outcome.value} score; give the {outcome.value!r} field "
            f"(or choose another --score among {', '.join(o.value for o in Outcome)})"
        )
    rejections = [_rejection(r) for r in rejected or ()]
    if not records:
        raise InvalidInputError("there are no valid records to analyse", details=rejections[:50] or None)

    with clock("classify"):
        results, embeddings = _classify(records, classify_fn, settings.chunk_size, progress)
    keep = []
    for i, (record, result) in enumerate(zip(records, results, strict=True)):
        if "error" in result:
            rejections.append({"line": getattr(record, "line", None), "id": record.id,
                               "reason": f"not classified: {result['error'].get('message', '')}"})
        else:
            keep.append(i)
    records = [records[i] for i in keep]
    results = [results[i] for i in keep]
    embeddings = embeddings[keep]
    if not records:
        raise InvalidInputError("no record could be classified", details=[r["reason"] for r in rejections[:50]])
    values = outcome_values(records, outcome)

    with clock("cluster"):
        progress("cluster", 0, 1)
        cluster_set = _cluster(records, results, embeddings, taxonomy, clusterer, settings)
        clusters = [c.to_dict() for c in cluster_set.clusters]
        clusters_by_id = {c["id"]: c for c in clusters}
        progress("cluster", 1, 1)

    with clock("drivers"):
        progress("drivers", 0, 1)
        drivers, matrix, r2 = _drivers(results, cluster_set, values, outcome, taxonomy, clusters_by_id, ranker,
                                       settings)
        progress("drivers", 1, 1)

    clock.start("rootcause")
    fields = segment_fields([getattr(r, "metadata", None) or {} for r in records],
                            min_values=settings.rootcause.min_values, max_values=settings.rootcause.max_values)
    freq, periods = period_keys([getattr(r, "ts", None) for r in records], settings.rootcause.trend_freq)
    corpus = Corpus(
        ids=[r.id for r in records], texts=[r.text for r in records],
        langs=[str(res.get("lang") or "") for res in results], results=results,
        embeddings=embeddings, values=values, clusters=list(cluster_set.labels),
        segments=fields, periods=periods,
    )
    score = lambda v: headline(v, outcome)  # noqa: E731 - a one-line closure reads best here
    negative = [d for d in drivers if d.get("impact") is not None and d["impact"] < 0]
    negative.sort(key=lambda d: (d.get("low_support", False), d.get("rank") or 1e9))
    top = negative[: settings.rootcause.top_n]
    root_causes = []
    for done, row in enumerate(top):
        progress("rootcause", done, len(top))
        root_causes.append(explain_driver(row, matrix[row["driver"]], corpus, taxonomy=taxonomy,
                                          clusters=clusters_by_id, headline=score, settings=settings.rootcause))
    progress("rootcause", len(top), len(top))
    sentiments = [res.get("sentiment", {}).get("label") for res in results]
    negative_doc = np.array([s == "negative" for s in sentiments])
    neg_columns = {d["driver"]: matrix[d["driver"]] for d in drivers if d["driver"].endswith(":negative")}
    segments = segment_overview(fields, values, negative_doc, neg_columns, score,
                                label=lambda d: driver_label(d, taxonomy, clusters_by_id))
    clock.stop("rootcause")

    case_summary = None
    if cases is not None:
        from models.analytics.casefeedback import case_feedback

        case_summary = case_feedback(cases, label=lambda t: topic_label(taxonomy, t))
    overall = summary(values, outcome)
    return {
        "outcome": outcome.value,
        "records": len(records),
        "overall": overall,
        "drivers": drivers,
        "clusters": clusters,
        "topics": _topics(results, values, sentiments, outcome, taxonomy, settings),
        "touchpoints": _touchpoints(results, values, sentiments, outcome, taxonomy, settings),
        "heatmap": _heatmap(results, taxonomy),
        "segments": segments,
        "trends": {"freq": freq, "overall": trend(negative_doc, periods, values, score) if freq else []},
        "root_causes": root_causes,
        "verbatims": _verbatims(corpus, drivers, clusters),
        "cases": case_summary,
        "rejected": rejections,
        "meta": {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "model": next((r.get("model") for r in results if r.get("model")), None),
            "taxonomy": {"id": getattr(taxonomy, "id", None), "version": getattr(taxonomy, "version", None)},
            "input_records": len(keep) + len(rejections),
            "rejected": len(rejections),
            "scored": int((~np.isnan(values)).sum()),
            "languages": {lang: corpus.langs.count(lang) for lang in sorted(set(corpus.langs))},
            "segment_fields": list(fields),
            "seconds": clock.wall,
            "cpu_seconds": clock.cpu,
            "driver_r2": r2,
        },
    }


def _verbatims(corpus: Corpus, drivers: list[dict[str, Any]], clusters: list[dict[str, Any]],
               per_item: int = 3) -> dict[str, dict[str, Any]]:
    """Texts of the example ids that drivers and clusters name (the first ``per_item`` of each)."""
    wanted = {i for item in (*drivers, *clusters) for i in list(item.get("examples") or ())[:per_item]}
    return {rid: {"text": text, "lang": lang} for rid, text, lang in zip(corpus.ids, corpus.texts, corpus.langs, strict=True)
            if rid in wanted}


class _Clock:
    """Wall and CPU seconds (all threads of the process) per stage."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._open: dict[str, tuple[float, float]] = {}

    def start(self, stage: str) -> None:
        self._open[stage] = (time.perf_counter(), time.process_time())

    def stop(self, stage: str) -> None:
        wall, cpu = self._open.pop(stage)
        self.wall[stage] = round(time.perf_counter() - wall, 2)
        self.cpu[stage] = round(time.process_time() - cpu, 2)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        self.start(stage)
        yield
        self.stop(stage)


# --- stages -----------------------------------------------------------------------------------


def _rejection(r: Any) -> dict[str, Any]:
    if isinstance(r, Mapping):
        return {"line": r.get("line"), "id": r.get("id"), "reason": r.get("reason")}
    return {"line": getattr(r, "line", None), "id": getattr(r, "id", None), "reason": getattr(r, "reason", str(r))}


def _classify(records, classify_fn: ClassifyFn, chunk: int, progress: ProgressFn):
    """Classify each distinct (text, lang) once, in chunks; repeats get a copy under their own id.

    Survey exports repeat short answers ("好评", "good") many times, and classification is the
    costly stage, so repeats cost nothing.
    """
    first: dict[tuple[str, str | None], int] = {}
    owner = [first.setdefault((r.text, getattr(r, "lang", None)), i) for i, r in enumerate(records)]
    unique = sorted(first.values())
    total = len(records)
    done_unique: dict[int, tuple[dict[str, Any], np.ndarray]] = {}
    progress("classify", 0, total)
    finished = 0
    for start in range(0, len(unique), chunk):
        rows = unique[start : start + chunk]
        batch = [records[i] for i in rows]
        res, emb = classify_fn([{"id": r.id, "text": r.text, "lang": getattr(r, "lang", None)} for r in batch])
        if len(res) != len(batch) or len(emb) != len(batch):
            raise ValueError(f"classify_fn returned {len(res)} results for {len(batch)} items")
        for i, result, vector in zip(rows, res, np.asarray(emb, dtype=np.float32), strict=True):
            done_unique[i] = (result, vector)
        finished = unique[start + len(rows)] if start + len(rows) < len(unique) else total
        progress("classify", finished, total)
    results = []
    for i, record in enumerate(records):
        result = done_unique[owner[i]][0]
        results.append(result if owner[i] == i else {**result, "id": record.id})
    embeddings = np.stack([done_unique[o][1] for o in owner]) if records else np.zeros((0, 0), np.float32)
    return results, embeddings


def _cluster(records, results, embeddings, taxonomy, clusterer, settings: AnalysisSettings):
    if clusterer is None:
        from models.analytics.clusters import IssueClusterer

        clusterer = IssueClusterer(random_state=settings.random_state)
    return clusterer.fit(
        [r.text for r in records], embeddings, ids=[r.id for r in records],
        langs=[str(res.get("lang") or "") for res in results],
        topics=[[t["id"] for t in res.get("topics", ())] for res in results], taxonomy=taxonomy,
    )


def _drivers(results, cluster_set, values, outcome, taxonomy, clusters_by_id, ranker, settings: AnalysisSettings):
    from models.analytics.drivers import DriverRanker, driver_matrix
    from models.analytics.outcomes import impact

    matrix = driver_matrix(results, clusters=cluster_set.labels, cluster_ids=list(clusters_by_id))
    scored = ~np.isnan(values)
    ranker = ranker or DriverRanker(n_bootstrap=settings.n_bootstrap, min_support=settings.min_support,
                                    random_state=settings.random_state)
    ranker.fit(matrix[scored].reset_index(drop=True), values[scored])
    masks = {col: matrix[col].to_numpy(dtype=bool) for col in matrix.columns}
    drivers = []
    for row in ranker.table_:
        mask = masks[row["driver"]]
        effect = impact(values, mask, outcome)
        drivers.append({
            **row,
            "impact": None if np.isnan(effect) else round(float(effect), 3),
            "label": driver_label(row["driver"], taxonomy, clusters_by_id),
            "examples": _example_ids(mask, results, row["driver"], settings.examples_per_driver),
        })
    r2 = getattr(ranker, "r2_", None)
    return drivers, masks, None if r2 is None or np.isnan(r2) else round(float(r2), 4)


def _example_ids(mask: np.ndarray, results: list[dict[str, Any]], driver: str, k: int) -> list[str]:
    """The driver's most confident records (topic mention confidence; cluster: sentiment)."""
    kind, key, polarity = parse_driver(driver)
    scored = []
    for i in np.flatnonzero(mask):
        res = results[i]
        conf = res.get("sentiment", {}).get("confidence", 0.0)
        if kind == "topic":
            conf = max((t["confidence"] for t in res.get("topics", ())
                        if t["id"] == key and t["polarity"] == polarity), default=0.0)
        scored.append((-conf, int(i)))
    return [results[i]["id"] for _, i in sorted(scored)[:k]]


def _topics(results, values, sentiments, outcome, taxonomy, settings: AnalysisSettings) -> list[dict[str, Any]]:
    from models.analytics.outcomes import group_table

    ids = sorted({t["id"] for res in results for t in res.get("topics", ())})
    masks = {tid: np.array([any(t["id"] == tid for t in res.get("topics", ())) for res in results]) for tid in ids}
    rows = group_table(values, masks, sentiments, outcome, min_support=settings.min_support)
    for row in rows:
        row["label"] = topic_label(taxonomy, row["name"])
    return sorted(rows, key=lambda r: -r["volume"])


def _touchpoints(results, values, sentiments, outcome, taxonomy, settings: AnalysisSettings) -> list[dict[str, Any]]:
    """Touchpoints in journey order (the taxonomy's order), each with its stage number."""
    from models.analytics.outcomes import group_table

    seen = {t["id"] for res in results for t in res.get("touchpoints", ())}
    order = [tp for tp in (getattr(taxonomy, "touchpoint_ids", None) or ()) if tp in seen]
    order += sorted(seen - set(order))
    masks = {tp: np.array([any(t["id"] == tp for t in res.get("touchpoints", ())) for res in results]) for tp in order}
    rows = group_table(values, masks, sentiments, outcome, min_support=settings.min_support)
    for stage, row in enumerate(rows, start=1):
        row["label"] = touchpoint_label(taxonomy, row["name"])
        row["stage"] = stage
        row["primary"] = sum(res.get("primary_touchpoint") == row["name"] for res in results)
    return rows


def _heatmap(results, taxonomy) -> dict[str, Any]:
    """Topic mentions by polarity: ``rows`` (topic ids, most mentioned first) x ``columns``."""
    counts: dict[str, list[int]] = {}
    for res in results:
        for t in res.get("topics", ()):
            row = counts.setdefault(t["id"], [0, 0, 0])
            if t.get("polarity") in POLARITIES:
                row[POLARITIES.index(t["polarity"])] += 1
    rows = sorted(counts, key=lambda k: (-sum(counts[k]), k))
    return {"rows": rows, "labels": [topic_label(taxonomy, r) for r in rows],
            "columns": list(POLARITIES), "counts": [counts[r] for r in rows]}
