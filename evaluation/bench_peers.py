"""The peers' side of the classification throughput benchmark (``evaluation.bench_classify``).

The peers are the evaluation's own (:mod:`evaluation.peers`): TF-IDF + logistic regression,
logistic regression on frozen base-encoder embeddings (fp32, as the evaluation runs it), SnowNLP
and VADER. Each is measured like ``verbatim classify``: a child process that starts Python, loads
its model and libraries, reads the records file, predicts and writes JSON Lines, timed end to end
by the parent with peak resident memory from ``wait4`` (:func:`measure_child`).

The two supervised peers are fitted once, before any timed run (:func:`fit_peers`), on a seeded
sample of the three sentiment train splits pooled into one model for Chinese and English (C
chosen on a seeded sample of the dev splits), and saved to a private temporary folder; the child
loads them (timed). SnowNLP handles only the Chinese records and VADER only the English ones (the
record's ``lang``, else :func:`nlp.lang.detect_language`); their records/s is over the records
they handle. Every peer outputs a document sentiment label with a score, nothing else.

Child entry point (what the parent runs)::

    python -m evaluation.bench_peers tfidf_lr --records mixed.jsonl --models DIR --out out.jsonl

It prints one JSON object: the peer, records read, records handled per language, and its own
load and predict seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluation.suite import EMBED, PEER_LABELS, SNOWNLP, TFIDF, VADER

PEERS = (TFIDF, EMBED, SNOWNLP, VADER)
SUPERVISED = (TFIDF, EMBED)
#: The one language a zero-shot peer handles; absent: every record.
PEER_LANG = {SNOWNLP: "zh", VADER: "en"}
SENTIMENT_SETS = ("online_shopping_10_cats", "waimai_10k", "twitter_us_airline")
OURS_OUTPUTS = ("document sentiment (label, score, confidence) + topics with polarity and evidence "
                "spans + touchpoints (primary touchpoint) + triage")
PEER_OUTPUTS = {
    TFIDF: "document sentiment label + score only (one 3-way model for zh and en)",
    EMBED: "document sentiment label + score only (one 3-way model for zh and en)",
    SNOWNLP: "document sentiment label (positive/negative) + score only, zh records only",
    VADER: "document sentiment label + compound score only, en records only",
}


@dataclass(frozen=True, kw_only=True)
class PeerTraining:
    """The seeded sample the supervised peers are fitted on (per sentiment data set)."""

    train_per_set: int = 2_000
    dev_per_set: int = 300
    seed: int = 0
    datasets: tuple[str, ...] = SENTIMENT_SETS


def base_encoder_dir() -> Path:
    """The frozen base encoder's directory (built under ``VERBATIM_HOME`` if missing)."""
    from platformdirs import user_data_dir

    from models.encoder import ensure_base_encoder

    home = Path(os.environ.get("VERBATIM_HOME") or user_data_dir("verbatim", appauthor=False))
    return ensure_base_encoder(home)


def training_sample(training: PeerTraining) -> dict[str, tuple[list[str], list[str]]]:
    """``{"train": (texts, labels), "dev": (texts, labels)}``: seeded samples of each set, pooled."""
    from evaluation.suite import sample
    from training.data import load_dataset

    out: dict[str, tuple[list[str], list[str]]] = {"train": ([], []), "dev": ([], [])}
    for name in training.datasets:
        for split, n in (("train", training.train_per_set), ("dev", training.dev_per_set)):
            rows = sample([e for e in load_dataset(name, split) if e.sentiment is not None], n, seed=training.seed)
            out[split][0].extend(e.text for e in rows)
            out[split][1].extend(str(e.sentiment) for e in rows)
    return out


def fit_peers(names: Sequence[str], out_dir: Path, *, training: PeerTraining,
              base_dir: Path | None = None,
              data: dict[str, tuple[list[str], list[str]]] | None = None) -> dict[str, Any]:
    """Fit the supervised peers among ``names`` and save them in ``out_dir`` (untimed).

    ``data`` replaces the sentiment-set sample (tests pass a handful of lines). The files are
    pickles in a folder the benchmark made for itself; only the child of the same run reads them.
    The embedding peer is saved without its encoder (the child loads the encoder, timed).
    """
    from evaluation.peers import EmbeddingFeaturizer, LogRegClassifier, TfidfFeaturizer

    data = data if data is not None else training_sample(training)
    (texts, labels), (dev_texts, dev_labels) = data["train"], data["dev"]
    info: dict[str, Any] = {}
    for name in (n for n in names if n in SUPERVISED):
        if name == TFIDF:
            featurizer: Any = TfidfFeaturizer()
        else:
            from models.encoder import Encoder

            featurizer = EmbeddingFeaturizer(Encoder.from_pretrained(base_dir or base_encoder_dir()))
        started = time.perf_counter()
        clf = LogRegClassifier(featurizer).fit(texts, labels, dev_texts=dev_texts or None,
                                               dev_labels=dev_labels or None)
        seconds = time.perf_counter() - started
        if name == EMBED:  # drop the encoder and the cached training embeddings
            clf.featurizer = clf.featurizer_ = EmbeddingFeaturizer(None, prefix=featurizer.prefix,
                                                                  batch_size=featurizer.batch_size)
        (out_dir / f"{name}.pkl").write_bytes(pickle.dumps(clf))
        info[name] = {"n_train": len(texts), "n_dev": len(dev_texts), "C": clf.C_,
                      "dev_accuracy": round(float(clf.dev_score_), 4), "fit_seconds": round(seconds, 1),
                      "classes": [str(c) for c in clf.classes_]}
    return info


def _load_peer(name: str, models: Path | None, base_dir: Path | None) -> Any:
    from evaluation.peers import SnowNLPSentiment, VaderSentiment

    if name == SNOWNLP:
        peer = SnowNLPSentiment()
        peer.predict_records(["好"])  # SnowNLP reads its model on first use: count it as load
        return peer
    if name == VADER:
        peer = VaderSentiment()
        peer.predict_records(["ok"])  # builds the lexicon-based analyzer
        return peer
    if models is None:
        raise ValueError(f"peer {name} needs --models (the folder fit_peers wrote)")
    clf = pickle.loads((models / f"{name}.pkl").read_bytes())  # noqa: S301 - written by this run
    if name == EMBED:
        from models.encoder import Encoder

        clf.featurizer_.encoder = Encoder.from_pretrained(base_dir or base_encoder_dir()).load()
    return clf


def run_peer(name: str, records: Path, *, models: Path | None = None, base_dir: Path | None = None,
             out: Path | None = None) -> dict[str, Any]:
    """The child's work: load the peer, read ``records``, predict the ones it handles, write ``out``."""
    from evaluation.peers import sentiment_records
    from nlp.lang import detect_language
    from nlp.records import read_records

    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; expected one of {', '.join(PEERS)}")
    started = time.perf_counter()
    peer = _load_peer(name, models, base_dir)
    loaded = time.perf_counter()
    rows = read_records(records).records
    langs = [r.lang or str(detect_language(r.text)) for r in rows]
    wanted = PEER_LANG.get(name)
    handled = [(r, lang) for r, lang in zip(rows, langs, strict=True) if wanted is None or lang == wanted]
    texts = [r.text for r, _ in handled]
    preds = sentiment_records(peer, texts) if name in SUPERVISED else peer.predict_records(texts)
    if out is not None:
        with out.open("w", encoding="utf-8") as fh:
            for (r, lang), p in zip(handled, preds, strict=True):
                fh.write(json.dumps({"id": r.id, "lang": lang} | p, ensure_ascii=False) + "\n")
    done = time.perf_counter()
    return {
        "peer": name, "records_in": len(rows), "records_handled": len(handled),
        "handled_by_lang": dict(Counter(lang for _, lang in handled)),
        "skipped_by_lang": dict(Counter(lang for r, lang in zip(rows, langs, strict=True)
                                        if wanted is not None and lang != wanted)),
        "labels": dict(Counter(p["sentiment"]["label"] for p in preds)),
        "load_seconds": round(loaded - started, 2), "predict_seconds": round(done - loaded, 2),
    }


# Peak RSS comes from wait4 in a small launcher, not in this process: Linux counts the memory a
# process had before exec in its child's ru_maxrss (the forked copy's high-water mark), so a child
# of a parent that fitted the embedding peer (torch, 1.7 GB) would report at least 1.7 GB.
_LAUNCHER = """\
import json, os, subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
proc = subprocess.Popen(cmd)
_, status, usage = os.wait4(proc.pid, 0)
seconds = time.perf_counter() - started
with open(out, "w") as fh:
    json.dump({"seconds": seconds, "maxrss_kb": usage.ru_maxrss, "exit": os.waitstatus_to_exitcode(status)}, fh)
"""


def measure_child(cmd: Sequence[str], *, stdout: Any, stderr: Any, cwd: Path | None = None) -> dict[str, Any]:
    """Run ``cmd`` to the end: wall seconds, peak resident memory (MB) and exit code.

    The command is started by a minimal Python launcher (``-I -S``, about 10 MB), so its peak
    memory is its own and not this process's; ``stdout``/``stderr`` are open files.
    """
    with tempfile.TemporaryDirectory(prefix="verbatim-bench-") as tmp:
        result = Path(tmp) / "rusage.json"
        subprocess.run([sys.executable, "-I", "-S", "-c", _LAUNCHER, str(result), *cmd],
                       stdout=stdout, stderr=stderr, cwd=cwd, check=False)
        if not result.is_file():
            raise RuntimeError(f"the benchmark launcher did not report on `{' '.join(cmd)}`")
        got = json.loads(result.read_text(encoding="utf-8"))
    return {"seconds": round(got["seconds"], 2), "peak_rss_mb": round(got["maxrss_kb"] / 1024), "exit": got["exit"]}


def one_peer_run(name: str, records: Path, *, models: Path | None, base_dir: Path | None = None) -> dict[str, Any]:
    """One child process for peer ``name``: wall seconds end to end, peak RSS and its summary."""
    cmd = [sys.executable, "-m", "evaluation.bench_peers", name, "--records", str(records)]
    cmd += ["--models", str(models)] if models else []
    cmd += ["--base", str(base_dir)] if base_dir else []
    with tempfile.TemporaryDirectory(prefix="verbatim-bench-") as tmp:
        cmd += ["--out", f"{tmp}/out.jsonl"]
        with open(f"{tmp}/stdout.txt", "w+", encoding="utf-8") as so, open(f"{tmp}/stderr.txt", "w+", encoding="utf-8") as se:
            run = measure_child(cmd, stdout=so, stderr=se, cwd=Path(__file__).resolve().parents[1])
            so.seek(0)
            se.seek(0)
            stdout, stderr = so.read(), se.read()
        if run["exit"] != 0:
            raise RuntimeError(f"`{' '.join(cmd)}` failed: {stderr[-500:]}")
        written = len(Path(f"{tmp}/out.jsonl").read_text(encoding="utf-8").splitlines())
    summary = json.loads(stdout.strip().splitlines()[-1])
    if written != summary["records_handled"]:
        raise RuntimeError(f"peer {name} wrote {written} records but says it handled {summary['records_handled']}")
    return {"seconds": run["seconds"], "records": written, "peak_rss_mb": run["peak_rss_mb"],
            "load_seconds": summary["load_seconds"], "predict_seconds": summary["predict_seconds"],
            "handled_by_lang": summary["handled_by_lang"]}


def summarize(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The median run of one peer, with what it handles and outputs."""
    import statistics

    median = statistics.median(r["seconds"] for r in rows)
    return {
        "label": PEER_LABELS[name], "records": rows[0]["records"],
        "handles": f"{PEER_LANG[name]} records only" if name in PEER_LANG else "every record, zh and en",
        "handled_by_lang": rows[0]["handled_by_lang"], "outputs": PEER_OUTPUTS[name],
        "median_seconds": median, "records_per_s": round(rows[0]["records"] / median, 1) if rows[0]["records"] else None,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in rows), "runs": rows,
        **({"precision": "fp32"} if name == EMBED else {}),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One peer over a records file (a child of evaluation.bench_classify).")
    parser.add_argument("peer", choices=PEERS)
    parser.add_argument("--records", type=Path, required=True, help="records file (JSON Lines, CSV or XLSX)")
    parser.add_argument("--models", type=Path, help="folder with the fitted supervised peers (from fit_peers)")
    parser.add_argument("--base", type=Path, help="base encoder folder (embedding peer; default: the built one)")
    parser.add_argument("--out", type=Path, help="where to write the predictions (JSON Lines)")
    args = parser.parse_args(argv)
    summary = run_peer(args.peer, args.records, models=args.models, base_dir=args.base, out=args.out)
    sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
