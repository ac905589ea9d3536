"""``verbatim classify`` throughput at fp32, bf16 and int8 beside the peers, and how far bf16 and int8 agree with fp32.

Usage::

    python -m evaluation.bench_classify                 # throughput: ours at fp32, bf16, int8 and the peers, interleaved, 3 runs each
    python -m evaluation.bench_classify --no-peers      # ours only
    python -m evaluation.bench_classify --agreement     # also agreement with fp32 and sentiment accuracy
    python -m evaluation.bench_classify --runs 5 --json-out evaluation/bench/classify.json
    python -m evaluation.bench_classify --limit 40 --runs 1   # smoke check only: NOT the benchmark, writes no file

Throughput follows ``spec/benchmarks.md``: ``verbatim classify`` as a child process over the fixed
2,000-record mixed file (``evaluation/bench/mixed2000.ids``), end to end including model load,
the precisions interleaved (fp32, bf16, int8, fp32, ...) so all see the same machine load, median
of the runs, with each run's peak resident memory (``wait4`` in a small launcher process, so the
benchmark's own memory never counts: ``bench_peers.measure_child``). The load average before and after
is recorded: numbers from a busy machine are low.

The peers (``--peers``, all four by default; see :mod:`evaluation.bench_peers`) run on the same
file in the same run, interleaved with ours (fp32, bf16, int8, TF-IDF + LR, embedding LR, SnowNLP,
VADER, fp32, ...), each as its own child process measured the same way (Python start, model and
library load, reading the file, predicting, writing JSON Lines). TF-IDF + LR and LR on frozen
base-encoder embeddings (fp32) are fitted once before the timed runs on a seeded sample of the
sentiment train splits of online_shopping_10_cats, waimai_10k and twitter_us_airline
(``--peer-train`` texts each, default 2,000; C chosen on 300 dev texts each), pooled into one
model; only loading and predicting is timed. SnowNLP handles the Chinese records only and VADER
the English ones only: their records/s is over the records they handle. The peers output a
document sentiment label and score only; ours adds topics with polarity and evidence,
touchpoints and triage. The results go under ``throughput.peers`` in the JSON, so ours and the
peers always come from the same run.

``--agreement`` runs every precision in-process on the mixed file (against fp32: sentiment label
agreement, exact topic-set agreement, mean absolute sentiment-score difference) and scores them on
the test splits of the three sentiment sets with the evaluation's own scorer.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaluation.bench_peers import (
    EMBED,
    OURS_OUTPUTS,
    PEERS,
    PeerTraining,
    base_encoder_dir,
    fit_peers,
    measure_child,
    one_peer_run,
    summarize,
)

OUT = Path(__file__).resolve().parent / "bench" / "classify.json"
SENTIMENT_SETS = ("online_shopping_10_cats", "waimai_10k", "twitter_us_airline")
PRECISIONS = ("fp32", "bf16", "int8")


def _one_run(records: Path, precision: str, model: Path | None) -> dict[str, Any]:
    """One ``verbatim classify`` child process: wall seconds and peak RSS (see ``measure_child``)."""
    verbatim = str(Path(sys.executable).with_name("verbatim"))
    with tempfile.TemporaryDirectory(prefix="verbatim-bench-") as tmp:
        cmd = [verbatim, "classify", str(records), "-o", f"{tmp}/out.jsonl"]
        cmd += ["--precision", precision]
        cmd += ["--model", str(model)] if model else []
        with open(f"{tmp}/stderr.txt", "w+", encoding="utf-8") as err:  # a file: a full pipe would block the child
            run = measure_child(cmd, stdout=subprocess.DEVNULL, stderr=err)
            err.seek(0)
            stderr = err.read()
        if run["exit"] != 0:
            raise RuntimeError(f"`{' '.join(cmd)}` failed: {stderr[-500:]}")
        lines = Path(f"{tmp}/out.jsonl").read_text(encoding="utf-8").splitlines()
    return {"seconds": run["seconds"], "records": len(lines), "peak_rss_mb": run["peak_rss_mb"]}


def throughput(*, runs: int, model: Path | None, precisions: Sequence[str] = PRECISIONS,
               peers: Sequence[str] = (), peer_training: PeerTraining | None = None, limit: int | None = None,
               others: Sequence[tuple[Path, str]] = ()) -> dict[str, Any]:
    """Ours at ``precisions``, ``others`` (more models, each at one precision) and the ``peers``
    interleaved, ``runs`` each; the median run of each.

    ``limit`` keeps only the first records of the mixed file: a smoke check, not the benchmark.
    """
    from training.data import load_mixed2000, write_records_jsonl

    examples = load_mixed2000()[:limit] if limit else load_mixed2000()
    with tempfile.TemporaryDirectory(prefix="verbatim-bench-") as tmp:
        records = Path(tmp) / "mixed2000.jsonl"
        write_records_jsonl(examples, records, qualify_ids=True)
        fitted: dict[str, Any] = {}
        base = None
        if peers:
            base = base_encoder_dir() if EMBED in peers else None
            training = peer_training or PeerTraining()
            fitted = fit_peers(peers, Path(tmp), training=training, base_dir=base)  # untimed
            print(f"peers fitted: {fitted}", file=sys.stderr)
        load_before = os.getloadavg()
        raw: dict[str, list[dict[str, Any]]] = {p: [] for p in [*precisions, *peers]}
        other_runs: list[list[dict[str, Any]]] = [[] for _ in others]
        for _ in range(runs):
            for precision in precisions:
                raw[precision].append(_one_run(records, precision, model))
                print(f"{precision}: {raw[precision][-1]}", file=sys.stderr)
            for (other, precision), rows in zip(others, other_runs, strict=True):
                rows.append(_one_run(records, precision, other))
                print(f"{other} {precision}: {rows[-1]}", file=sys.stderr)
            for peer in peers:
                raw[peer].append(one_peer_run(peer, records, models=Path(tmp), base_dir=base))
                print(f"{peer}: {raw[peer][-1]}", file=sys.stderr)
        load_after = os.getloadavg()
    out: dict[str, Any] = {"model": _model_id(model)}
    for precision in precisions:
        out[precision] = _median_row(raw[precision])
    if others:
        out["other_models"] = [_median_row(rows) | {"model": _model_id(other), "precision": precision}
                               for (other, precision), rows in zip(others, other_runs, strict=True)]
    if peers:
        out["peers"] = {peer: summarize(raw[peer], peer) | ({"fit": fitted[peer]} if peer in fitted else {})
                        for peer in peers}
        out["peer_training"] = {"sets": list(training.datasets), "train_per_set": training.train_per_set,
                                "dev_per_set": training.dev_per_set, "seed": training.seed,
                                "timed": "no: fitted once before the timed runs; each run times loading + predicting"}
    out["records_in_file"] = len(examples)
    if limit:
        out["limit"] = limit
        out["note"] = f"smoke check on the first {limit} records of the mixed file: NOT the benchmark"
    out["loadavg_before"] = [round(x, 2) for x in load_before]
    out["loadavg_after"] = [round(x, 2) for x in load_after]
    out["omp_num_threads"] = os.environ.get("OMP_NUM_THREADS")
    return out


def _median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    median = statistics.median(r["seconds"] for r in rows)
    return {
        "records": rows[0]["records"], "median_seconds": median, "records_per_s": round(rows[0]["records"] / median, 1),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in rows), "outputs": OURS_OUTPUTS, "runs": rows,
    }


def _model_id(model: Path | None) -> str:
    from models.classifier import default_model_dir

    config = json.loads((Path(model or os.environ.get("VERBATIM_MODEL") or default_model_dir()) / "config.json").read_text(encoding="utf-8"))
    return str(config.get("model_id") or f"{config.get('name')}@{config.get('version')}")


def _topics(result: dict[str, Any]) -> frozenset[str]:
    return frozenset(t["id"] for t in result.get("topics", []))


def _reference_accuracy() -> tuple[str, str | None, dict[str, float]]:
    """Sentiment accuracy from the last full evaluation run (``evaluation/results.json``): the
    precision it ran at, the model it scored and the accuracy per set."""
    path = Path(__file__).resolve().parent / "results.json"
    results = json.loads(path.read_text(encoding="utf-8"))
    meta = results.get("meta", {})
    accuracy = {name: round(results["sentiment"][name]["predictors"]["verbatim"]["accuracy"], 4) for name in SENTIMENT_SETS}
    return meta.get("precision") or "fp32", meta.get("model"), accuracy


def agreement(*, model: Path | None, accuracy_of: Sequence[str] = PRECISIONS) -> dict[str, Any]:
    """bf16 and int8 against fp32 on the mixed file, and sentiment accuracy of the precisions in ``accuracy_of``.

    The precision the last full evaluation ran at, when left out of ``accuracy_of`` (to save up to
    an hour of CPU), takes its accuracy from ``evaluation/results.json`` if that evaluation scored
    the same model, and the report says so.
    """
    from platformdirs import user_data_dir

    from evaluation.ours import classifier_predict_fn
    from evaluation.product import SENTIMENT_SETS as PLANS
    from evaluation.scoring import score_sentiment
    from models.classifier import default_model_dir
    from models.classifier.predict import Classifier
    from models.encoder import ensure_base_encoder
    from training.data import load_dataset, load_mixed2000

    home = Path(os.environ.get("VERBATIM_HOME") or user_data_dir("verbatim", appauthor=False))
    base = ensure_base_encoder(home)
    model_dir = model or os.environ.get("VERBATIM_MODEL") or default_model_dir()
    mixed = [{"id": str(i), "text": r.text} for i, r in enumerate(load_mixed2000())]
    labels = {plan.dataset: lab for plan, lab, _ in PLANS}
    results: dict[str, list[dict[str, Any]]] = {}
    accuracy: dict[str, dict[str, Any]] = {}
    for precision in PRECISIONS:
        clf = Classifier.load(model_dir, base_dir=base, precision=precision, triage=None)
        model_id = clf.model_id
        results[precision] = [r for start in range(0, len(mixed), 256) for r in clf.classify(mixed[start : start + 256])]
        print(f"{precision}: mixed file done", file=sys.stderr)
        if precision in accuracy_of:
            predict = classifier_predict_fn(clf)
            for name in SENTIMENT_SETS:
                test = [e for e in load_dataset(name, "test") if e.sentiment is not None]
                scored = score_sentiment(test, predict([e.text for e in test]), labels=labels[name])
                accuracy.setdefault(name, {"n": scored["n"]})[precision] = round(scored["accuracy"], 4)
                print(f"{precision} {name}: {scored['accuracy']:.4f}", file=sys.stderr)
        del clf
    sources = {p: "this run" for p in accuracy_of}
    ref_precision, ref_model, ref_accuracy = _reference_accuracy()
    if ref_precision not in accuracy_of and ref_model == model_id:
        for name, value in ref_accuracy.items():
            accuracy.setdefault(name, {})[ref_precision] = value
        sources[ref_precision] = f"evaluation/results.json (last full evaluation, same model, at {ref_precision})"
    return {"vs_fp32": {p: _agree(results["fp32"], results[p]) for p in PRECISIONS if p != "fp32"},
            "accuracy": accuracy, "accuracy_source": sources}


def _agree(fp32: list[dict[str, Any]], other: list[dict[str, Any]]) -> dict[str, Any]:
    pairs = [(a, b) for a, b in zip(fp32, other, strict=True) if "error" not in a and "error" not in b]
    diffs = [abs(a["sentiment"]["score"] - b["sentiment"]["score"]) for a, b in pairs]
    return {
        "records": len(pairs),
        "sentiment_label_agreement": round(sum(a["sentiment"]["label"] == b["sentiment"]["label"] for a, b in pairs) / len(pairs), 4),
        "topic_set_agreement": round(sum(_topics(a) == _topics(b) for a, b in pairs) / len(pairs), 4),
        "mean_abs_score_diff": round(sum(diffs) / len(diffs), 4),
        "max_abs_score_diff": round(max(diffs), 4),
    }


def markdown(report: dict[str, Any]) -> str:
    rows = ["| predictor | records handled | records/s (median) | peak RSS MB | outputs |", "|---|---:|---:|---:|---|"]
    t = report.get("throughput", {})
    for precision in PRECISIONS:
        if precision in t:
            p = t[precision]
            outputs = p.get("outputs", "sentiment + topics (polarity, evidence) + touchpoints + triage")
            rows.append(f"| Verbatim {precision} | {p['records']} | {p['records_per_s']} | {p['peak_rss_mb']} | {outputs} |")
    for p in t.get("other_models", []):
        rows.append(f"| {p['model']} {p['precision']} | {p['records']} | {p['records_per_s']} | {p['peak_rss_mb']} | {p['outputs']} |")
    for p in t.get("peers", {}).values():
        label = p["label"] + (f" ({p['precision']})" if "precision" in p else "")
        rows.append(f"| {label} | {p['records']} ({p['handles']}) | {p['records_per_s']} | {p['peak_rss_mb']} | {p['outputs']} |")
    if "peer_training" in t:
        pt = t["peer_training"]
        rows.append(f"\nsupervised peers fitted once, untimed, on {pt['train_per_set']:,} train texts "
                    f"(C on {pt['dev_per_set']:,} dev texts) from each of {', '.join(pt['sets'])} (seed {pt['seed']}), "
                    "one model for zh and en; each run times loading + predicting")
    if "note" in t:
        rows.append(f"\n**{t['note']}**")
    if t:
        rows.append(f"\nload average before {t['loadavg_before']}, after {t['loadavg_after']}")
    if "agreement" in report:
        a = report["agreement"]
        for precision, v in a.get("vs_fp32", {}).items():
            rows.append(f"\n{precision} vs fp32 on {v['records']} records: sentiment labels {v['sentiment_label_agreement']:.2%}, "
                        f"topic sets {v['topic_set_agreement']:.2%}, mean |score diff| {v['mean_abs_score_diff']}")
        rows += ["", "| data set | n | " + " | ".join(f"{p} accuracy" for p in PRECISIONS) + " |",
                 "|---|---:|" + "---:|" * len(PRECISIONS)]
        rows += [f"| {k} | {v.get('n')} | " + " | ".join(str(v.get(p)) for p in PRECISIONS) + " |" for k, v in a["accuracy"].items()]
        rows.append(f"\naccuracy from: {a['accuracy_source']}")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per precision (median reported)")
    parser.add_argument("--model", type=Path, help="model directory (default: VERBATIM_MODEL or the shipped model)")
    parser.add_argument("--agreement", action="store_true", help="also bf16/int8-vs-fp32 agreement and sentiment accuracy")
    parser.add_argument("--accuracy-of", nargs="*", choices=PRECISIONS, default=list(PRECISIONS),
                        help="precisions to score on the sentiment test sets (others: from evaluation/results.json)")
    parser.add_argument("--no-throughput", action="store_true", help="skip the throughput runs")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS),
                        help="our precisions in the throughput runs (default: all)")
    parser.add_argument("--also", nargs=2, action="append", default=[], metavar=("MODEL_DIR", "PRECISION"),
                        help="another model measured in the same throughput run at one precision (repeatable), "
                             "e.g. --also models/fast bf16")
    parser.add_argument("--peers", nargs="*", choices=PEERS, default=list(PEERS),
                        help="peers measured in the same throughput run (default: all four)")
    parser.add_argument("--no-peers", action="store_true", help="measure ours only")
    parser.add_argument("--peer-train", type=int, default=2_000,
                        help="train texts sampled from each sentiment set to fit the supervised peers (default 2,000; "
                             "C is chosen on min(300, N) dev texts of each)")
    parser.add_argument("--limit", type=int,
                        help="smoke check: only the first N records of the mixed file (NOT the benchmark; writes no "
                             "file unless --json-out is given)")
    parser.add_argument("--json-out", type=Path, help=f"where to write the results (default {OUT})")
    args = parser.parse_args(argv)
    for _, precision in args.also:
        if precision not in PRECISIONS:
            parser.error(f"--also: precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    json_out = args.json_out or (None if args.limit else OUT)
    # sections not re-run this time (throughput or agreement) keep their last results
    report: dict[str, Any] = json.loads(json_out.read_text(encoding="utf-8")) if json_out and json_out.is_file() else {}
    report |= {"cpus": os.cpu_count(), "machine": platform.platform(), "python": platform.python_version()}
    if not args.no_throughput:
        report["throughput"] = throughput(
            runs=args.runs, model=args.model, precisions=args.precisions,
            peers=[] if args.no_peers else args.peers, peer_training=PeerTraining(train_per_set=args.peer_train, dev_per_set=min(300, args.peer_train)),
            limit=args.limit, others=[(Path(d), p) for d, p in args.also])
    if args.agreement:
        report["agreement"] = agreement(model=args.model, accuracy_of=args.accuracy_of)
        report["agreement"]["model"] = _model_id(args.model)
    print(markdown(report))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
