"""End-to-end timing of ``verbatim analyze`` on 20,000 distinct real verbatims (issue 5).

Usage::

    python -m evaluation.bench_analyze                # 20,000 records, writes evaluation/bench/analyze.json
    python -m evaluation.bench_analyze --n 2000       # a smaller run

The records are real texts in the proportions of the mixed 2,000-record benchmark file
(online_shopping_10_cats 30%, waimai_10k 20%, twitter_us_airline 30%, SemEval-2014 restaurants
10%, MAMS 10%), drawn from all splits so that 20,000 *distinct* texts exist (the pipeline
classifies each distinct text once, so replicating 2,000 would time 2,000). The scores are
synthetic and say so: an NPS drawn per record from its data set's sentiment label (seeded), plus a
random channel and region and a date in 2026, so drivers, segments and trends have something to
work on. The command runs as a child process, as a user would run it, and its wall time and peak
resident memory are reported.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

PLAN = (
    ("online_shopping_10_cats", 0.30),
    ("waimai_10k", 0.20),
    ("twitter_us_airline", 0.30),
    ("semeval2014_restaurants", 0.10),
    ("mams_acsa", 0.10),
)
NPS_BY_SENTIMENT = {"negative": (0, 6), "neutral": (5, 9), "positive": (7, 10)}
OUT = Path(__file__).resolve().parent / "bench" / "analyze.json"


def build_records(n: int, *, seed: int = 5) -> list[dict[str, Any]]:
    """``n`` distinct real texts with seeded synthetic scores and metadata."""
    from training.data import load_dataset

    rng = random.Random(seed)
    records, seen = [], set()
    for name, share in PLAN:
        pool = [e for split in ("train", "dev", "test") for e in _split(load_dataset, name, split)]
        pool = list({e.text: e for e in pool if e.text.strip() and e.text not in seen}.values())
        want = round(n * share)
        if len(pool) < want:
            raise SystemExit(f"{name} has only {len(pool)} distinct texts; {want} wanted")
        for e in rng.sample(pool, want):
            seen.add(e.text)
            low, high = NPS_BY_SENTIMENT.get(e.sentiment or "neutral", (0, 10))
            records.append({
                "id": f"{name}:{e.id}", "text": e.text, "lang": e.lang,
                "nps": rng.randint(low, high) if rng.random() > 0.15 else rng.randint(0, 10),
                "channel": rng.choice(["app", "web", "store", "phone"]),
                "region": rng.choice(["north", "south", "east", "west"]),
                "ts": (date(2026, 1, 1) + timedelta(days=rng.randrange(180))).isoformat(),
            })  # fmt: skip
    rng.shuffle(records)
    return records[:n]


def _split(load_dataset, name: str, split: str) -> list:
    from nlp.errors import DataUnavailableError, InvalidInputError

    try:
        return load_dataset(name, split)
    except (DataUnavailableError, InvalidInputError):
        return []


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - the benchmark run itself
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    records = build_records(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "records.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        cmd = [str(Path(sys.executable).parent / "verbatim"), "analyze", str(path), "--score", "nps",
               "--out", str(Path(tmp) / "report.html"), "--json", str(Path(tmp) / "analysis.json")]
        started = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"verbatim analyze failed ({done.returncode}):\n{done.stderr[-3000:]}")
        analysis = json.loads((Path(tmp) / "analysis.json").read_text(encoding="utf-8"))
        html_mb = (Path(tmp) / "report.html").stat().st_size / 1e6
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6
    result = {
        "records": len(records), "analysed": analysis.get("records"), "wall_seconds": round(wall, 1),
        "records_per_second": round(len(records) / wall, 1), "peak_rss_gb": round(peak_gb, 2),
        "stage_seconds": analysis.get("meta", {}).get("seconds"),
        "stage_cpu_seconds": analysis.get("meta", {}).get("cpu_seconds"),
        "clusters": len(analysis.get("clusters") or []), "drivers": len(analysis.get("drivers") or []),
        "report_mb": round(html_mb, 1), "date": date.today().isoformat(),
    }  # fmt: skip
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":  # pragma: no cover
    main()
