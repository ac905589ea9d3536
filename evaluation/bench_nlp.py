"""Throughput of the ``nlp`` text pipeline: prepare() + segmentation + clause splitting.

Usage::

    python -m evaluation.bench_nlp                 # the 2,000-record mixed benchmark file
    python -m evaluation.bench_nlp texts.jsonl     # JSON Lines with a "text" field
    python -m evaluation.bench_nlp texts.txt       # one text per line

Lazy resources (jieba's dictionary, OpenCC, lingua's models) are loaded by a warm-up pass that is
not timed; each stage is then timed over all texts, and the median of ``--runs`` runs is reported
in records per second. Records that ``prepare`` rejects are counted, not timed further.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from nlp.clauses import split_clauses
from nlp.errors import InvalidInputError
from nlp.prepare import PreparedText, prepare
from nlp.segment import get_default_segmenter


def read_texts(path: Path) -> list[str]:
    """Texts of a ``.jsonl`` file (``text`` field) or of a plain text file (one per line)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix in {".jsonl", ".json", ".ndjson"}:
        return [str(json.loads(line)["text"]) for line in lines if line.strip()]
    return [line for line in lines if line.strip()]


def load_benchmark_texts() -> list[str]:
    """Texts of the 2,000-record mixed benchmark file (``evaluation/bench/mixed2000.ids``)."""
    from training.data import load_mixed2000

    return [example.text for example in load_mixed2000()]


def _prepare_all(texts: Sequence[str]) -> tuple[list[PreparedText], int]:
    prepared: list[PreparedText] = []
    rejected = 0
    for text in texts:
        try:
            prepared.append(prepare(text))
        except InvalidInputError:
            rejected += 1
    return prepared, rejected


def run(texts: Sequence[str], runs: int = 3) -> dict[str, object]:
    """Time each stage over ``texts``; returns records/second per stage and in total."""
    segmenter = get_default_segmenter()
    warm, _ = _prepare_all(texts[:50])
    for p in warm:
        segmenter(p.text)
        split_clauses(p.text)
    stage_times: dict[str, list[float]] = {"prepare": [], "segment": [], "clauses": []}
    prepared: list[PreparedText] = []
    rejected = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        prepared, rejected = _prepare_all(texts)
        t1 = time.perf_counter()
        for p in prepared:
            segmenter(p.text)
        t2 = time.perf_counter()
        for p in prepared:
            split_clauses(p.text)
        t3 = time.perf_counter()
        stage_times["prepare"].append(t1 - t0)
        stage_times["segment"].append(t2 - t1)
        stage_times["clauses"].append(t3 - t2)
    medians = {stage: statistics.median(times) for stage, times in stage_times.items()}
    total = sum(medians.values())
    langs: dict[str, int] = {}
    for p in prepared:
        langs[p.lang.value] = langs.get(p.lang.value, 0) + 1
    return {
        "records": len(texts),
        "rejected": rejected,
        "languages": langs,
        "runs": runs,
        "seconds": {stage: round(s, 3) for stage, s in medians.items()}
        | {"total": round(total, 3)},
        "records_per_second": {
            stage: round(len(texts) / s, 1) if s else None for stage, s in medians.items()
        }
        | {"total": round(len(texts) / total, 1) if total else None},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, help=".jsonl or .txt file of texts")
    parser.add_argument("--runs", type=int, default=3, help="timed runs; the median is reported")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N texts")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    texts = read_texts(args.path) if args.path else load_benchmark_texts()
    if args.limit:
        texts = texts[: args.limit]
    if not texts:
        print("no texts to time", file=sys.stderr)
        return 1
    result = run(texts, runs=args.runs)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        rps = result["records_per_second"]
        secs = result["seconds"]
        print(
            f"{result['records']} records ({result['rejected']} rejected), "
            f"languages {result['languages']}, median of {result['runs']} runs"
        )
        for stage in ("prepare", "segment", "clauses", "total"):
            print(f"  {stage:<8} {secs[stage]:>8.3f} s  {rps[stage]:>10.1f} records/s")  # type: ignore[index]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
