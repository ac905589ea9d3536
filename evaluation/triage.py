"""Triage measured on hand-labelled real complaints: P1 precision and recall, priority confusion.

Two label files (``evaluation/triage_labels/``, guideline in ``GUIDELINE.md`` beside them), zh and
en records of the shared data sets whose priority was set blind from the text:

* ``complaints.jsonl`` (249): the **dev** set. Its errors informed the default policy's changes,
  so its "after" figures are optimistic.
* ``heldout.jsonl`` (227): the **held-out** set, labelled before anything was run on it and never
  used to change the policy: its figures are the honest ones.

Each set is classified once with the real default model and triaged under two policies: **before**
(``triage_labels/policy_before.yaml``, the default policy as it was before the recalibration) and
**after** (the shipped default, or ``policy``). The engine's priorities are compared with the labels
using scikit-learn: P1 precision / recall / F1, the same for "urgent" (P1 or P2, what opens a case),
the 4x4 confusion matrix, exact and within-one agreement, Cohen's kappa (plain and quadratic), per
language and per selection group. The result holds references, counts and the engine's reasons
for the P1 errors, never the texts.
"""

from __future__ import annotations

import csv
import gzip
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

LABELS_DIR = Path(__file__).resolve().parent / "triage_labels"
LABELS_FILE = LABELS_DIR / "complaints.jsonl"
HELDOUT_FILE = LABELS_DIR / "heldout.jsonl"
POLICY_BEFORE_FILE = LABELS_DIR / "policy_before.yaml"
SETS = {"dev": LABELS_FILE, "heldout": HELDOUT_FILE}
STUDY_FILE = Path(__file__).resolve().parent / "studies" / "triage.json"
PRIORITIES = ("P1", "P2", "P3", "P4")
ClassifyFn = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


# ----- labels and texts ---------------------------------------------------------------------------
def load_labels(path: Path = LABELS_FILE) -> list[dict[str, Any]]:
    """The labelled references, in file order."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _text_column(header: Sequence[str]) -> str:
    for name in ("review", "text", "content"):
        if name in header:
            return name
    raise ValueError(f"no text column among {list(header)}")


def resolve_texts(labels: Sequence[Mapping[str, Any]], data_dir: Path | None = None) -> list[str]:
    """The text of each labelled reference, read from the shared data (``$VERBATIM_DATA``).
    Raises :class:`nlp.errors.DataUnavailableError` when the data are absent, ``KeyError`` when a
    reference is not in its file."""
    from training.data import data_dir as resolve

    root = resolve(data_dir)
    wanted: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for lab in labels:
        wanted[lab["file"]][lab["id_field"]].add(str(lab["id"]))
    found: dict[tuple[str, str, str], str] = {}
    for file, fields in wanted.items():
        with gzip.open(root / file, "rt", encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            column = _text_column(reader.fieldnames or [])
            for row_no, row in enumerate(reader):
                for field, ids in fields.items():
                    key = str(row_no) if field == "row" else row.get(field, "")
                    if key in ids and (file, field, key) not in found:
                        found[(file, field, key)] = row[column]
    return [found[(lab["file"], lab["id_field"], str(lab["id"]))] for lab in labels]


# ----- scoring ------------------------------------------------------------------------------------
def score(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """P1 and urgent (P1/P2) precision, recall, F1; confusion (rows gold, columns predicted);
    agreement and Cohen's kappa."""
    from sklearn.metrics import (
        accuracy_score,
        cohen_kappa_score,
        confusion_matrix,
        precision_recall_fscore_support,
    )

    gold, predicted = list(gold), list(predicted)
    out: dict[str, Any] = {"n": len(gold), "gold_counts": dict(sorted(Counter(gold).items())),
                           "predicted_counts": dict(sorted(Counter(predicted).items()))}  # fmt: skip
    for name, positive in (("p1", {"P1"}), ("urgent", {"P1", "P2"})):
        g = [x in positive for x in gold]
        p = [x in positive for x in predicted]
        prec, rec, f1, _ = precision_recall_fscore_support(g, p, average="binary", zero_division=0)
        out[name] = {"precision": round(float(prec), 4), "recall": round(float(rec), 4),
                     "f1": round(float(f1), 4), "gold": sum(g), "predicted": sum(p),
                     "true_positives": sum(a and b for a, b in zip(g, p, strict=True))}  # fmt: skip
    ranks = [[int(x[1]) for x in seq] for seq in (gold, predicted)]
    out["agreement"] = round(float(accuracy_score(gold, predicted)), 4)
    out["within_one"] = round(sum(abs(a - b) <= 1 for a, b in zip(*ranks, strict=True)) / max(1, len(gold)), 4)
    both = len(set(gold) | set(predicted)) > 1
    out["kappa"] = round(float(cohen_kappa_score(gold, predicted, labels=list(PRIORITIES))), 4) if both else None
    out["kappa_quadratic"] = (
        round(float(cohen_kappa_score(*ranks, labels=[1, 2, 3, 4], weights="quadratic")), 4) if both else None
    )
    out["confusion"] = {"labels": list(PRIORITIES),
                        "matrix": confusion_matrix(gold, predicted, labels=list(PRIORITIES)).tolist()}  # fmt: skip
    return out


def _group(selection: str) -> str:
    return "cue" if selection.startswith("cue:") else selection.split("-")[0]


# ----- the study ----------------------------------------------------------------------------------
def default_classify_fn() -> ClassifyFn:
    """The shipped default model (it attaches the default triage policy)."""
    from evaluation.skytrax import default_classify_fn as load

    return load()


def _classify(classify_fn: ClassifyFn, texts: Sequence[str], labels: Sequence[Mapping[str, Any]],
              batch_size: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for start in range(0, len(labels), batch_size):
        items = [{"id": str(i), "text": texts[i], "lang": labels[i]["lang"]}
                 for i in range(start, min(start + batch_size, len(labels)))]  # fmt: skip
        results += classify_fn(items)
    return results


def measure(labels: Sequence[Mapping[str, Any]], triage: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Scores of one set under one policy: overall, per language, per selection group, P1 errors."""
    predicted = [t.get("priority", "P4") for t in triage]
    gold = [lab["priority"] for lab in labels]
    return {
        "policy": next((t["policy"] for t in triage if t.get("policy")), None),
        "overall": score(gold, predicted),
        "by_lang": {lang: score(*_subset(gold, predicted, labels, lambda lab, lg=lang: lab["lang"] == lg))
                    for lang in ("zh", "en")},
        "by_selection": {g: score(*_subset(gold, predicted, labels, lambda lab, g=g: _group(lab["selection"]) == g))
                         for g in sorted({_group(lab["selection"]) for lab in labels})},
        "p1_errors": [
            {"dataset": lab["dataset"], "id": lab["id"], "lang": lab["lang"], "gold": g, "predicted": p,
             "score": t.get("score"), "reasons": (t.get("reasons") or [])[:3]}
            for lab, g, p, t in zip(labels, gold, predicted, triage, strict=True)
            if (g == "P1") != (p == "P1")
        ],
    }  # fmt: skip


def _policy_info(policy: Any, source: str) -> dict[str, Any]:
    return {"ref": policy.ref, "hash": policy.content_hash()[:12], "source": source}


def run_triage(
    classify_fn: ClassifyFn | None = None,
    *,
    policy: Any = None,
    before: Any = None,
    data_dir: Path | None = None,
    sets: Mapping[str, Path] | None = None,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Classify each labelled set once and score its priorities under the policy before and after.

    ``classify_fn`` defaults to the real default model; ``policy`` (a ``TriagePolicy``) is "after"
    (default: the shipped default policy), ``before`` the baseline (default:
    ``triage_labels/policy_before.yaml``); ``sets`` maps a set name to its labels file (default:
    dev and held-out)."""
    from models.taxonomy import default_taxonomy
    from models.triage import Triage, default_policy, load_policy

    after = policy if policy is not None else default_policy()
    before_source = "given" if before is not None else _relative(POLICY_BEFORE_FILE)
    before = before if before is not None else load_policy(POLICY_BEFORE_FILE)
    taxonomy = default_taxonomy()
    engines = {"before": Triage(before, taxonomy), "after": Triage(after, taxonomy)}
    classify_fn = classify_fn or default_classify_fn()
    out: dict[str, Any] = {
        "model": None, "errors": 0, "seconds": 0.0,
        "policies": {"before": _policy_info(before, before_source),
                     "after": _policy_info(after, "models/triage/default_policy.yaml" if policy is None else "given")},
        "sets": {},
    }  # fmt: skip
    for name, path in (sets or SETS).items():
        labels = load_labels(path)
        texts = resolve_texts(labels, data_dir)
        started = time.perf_counter()
        results = _classify(classify_fn, texts, labels, batch_size)
        out["seconds"] = round(out["seconds"] + time.perf_counter() - started, 1)
        out["model"] = out["model"] or next((r.get("model") for r in results if r.get("model")), None)
        out["errors"] += sum(1 for r in results if "error" in r)
        entry: dict[str, Any] = {"labels": _relative(path), "n": len(labels)}
        for which, engine in engines.items():
            entry[which] = measure(labels, _retriage(results, texts, labels, engine))
        out["sets"][name] = entry
    return out


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(LABELS_DIR.parents[1]))
    except ValueError:
        return str(path)


def _subset(gold, predicted, labels, keep) -> tuple[list[str], list[str]]:
    pairs = [(g, p) for g, p, lab in zip(gold, predicted, labels, strict=True) if keep(lab)]
    return [g for g, _ in pairs], [p for _, p in pairs]


def _retriage(results, texts, labels, engine) -> list[dict[str, Any]]:
    from nlp.prepare import prepare

    return [{} if "error" in r else engine(r, prepare(t, lang=lab["lang"]))
            for r, t, lab in zip(results, texts, labels, strict=True)]  # fmt: skip


def save(result: Mapping[str, Any], path: Path = STUDY_FILE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path


# ----- rendering ----------------------------------------------------------------------------------
def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _confusion_lines(matrix: Sequence[Sequence[int]]) -> list[str]:
    lines = ["| gold \\ engine | " + " | ".join(PRIORITIES) + " |", "|---|" + "---|" * len(PRIORITIES)]
    lines += [f"| {g} | " + " | ".join(str(v) for v in row) + " |" for g, row in zip(PRIORITIES, matrix, strict=True)]
    return lines


def _row(name: str, s: Mapping[str, Any]) -> str:
    return (f"| {name} | {s['n']} | {_pct(s['p1']['precision'])} | {_pct(s['p1']['recall'])} | {_pct(s['p1']['f1'])} | "
            f"{_pct(s['urgent']['precision'])} | {_pct(s['urgent']['recall'])} | {_pct(s['agreement'])} | "
            f"{_pct(s['within_one'])} | {s['kappa']} | {s['kappa_quadratic']} |")  # fmt: skip


def render_triage(result: Mapping[str, Any]) -> list[str]:
    """Markdown lines: per set (dev, held-out) and policy (before, after) P1 and urgent
    precision/recall, agreement, per language, the confusions, and where the P1 errors come from."""
    pol = result["policies"]
    lines = ["## Triage vs hand labels", "",
             "Real complaints and comments (zh: waimai_10k, online_shopping_10_cats; en: twitter_us_airline, "
             "skytrax), labelled blind from the text by a written guideline (`evaluation/triage_labels/GUIDELINE.md`; "
             f"one annotator per set). Model `{result['model']}`. Policy before: `{pol['before']['ref']}` "
             f"(hash {pol['before']['hash']}, `{pol['before']['source']}`); after: `{pol['after']['ref']}` "
             f"(hash {pol['after']['hash']}). The **dev** set's errors shaped the changes, so its 'after' is "
             "optimistic; the **held-out** set was labelled before any run and never used to tune: it is the "
             "honest figure.", "",
             "| set / policy | n | P1 precision | P1 recall | P1 F1 | urgent (P1+P2) precision | urgent recall | exact agreement | within one | kappa | quadratic kappa |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, entry in result["sets"].items():
        for which in ("before", "after"):
            m = entry[which]
            lines.append(_row(f"{name} {which}", m["overall"]))
            lines += [_row(f"{name} {which}: {lang}", s) for lang, s in m["by_lang"].items()]
    for name, entry in result["sets"].items():
        for which in ("before", "after"):
            o = entry[which]["overall"]
            errors = entry[which]["p1_errors"]
            missed = [e for e in errors if e["gold"] == "P1"]
            alarms = [e for e in errors if e["gold"] != "P1"]
            lines += ["", f"**{name}, {which}**: P1 {o['p1']['gold']} labelled, {o['p1']['predicted']} predicted, "
                      f"{o['p1']['true_positives']} both; misses {len(missed)} (engine said "
                      + (", ".join(f"{k} x{v}" for k, v in sorted(Counter(e['predicted'] for e in missed).items())) or "-")
                      + f"), false alarms {len(alarms)} (labelled "
                      + (", ".join(f"{k} x{v}" for k, v in sorted(Counter(e['gold'] for e in alarms).items())) or "-")
                      + "). Rows: label, columns: engine.", ""] + _confusion_lines(o["confusion"]["matrix"])  # fmt: skip
    return lines


if __name__ == "__main__":  # python -m evaluation.triage: measure and save the study
    import logging

    logging.basicConfig(level=logging.INFO)
    saved = save(run_triage())
    print("\n".join(render_triage(json.loads(saved.read_text(encoding="utf-8")))))  # noqa: T201
