"""Few-shot study: a node the default taxonomy lacks, zero-shot and after 10, 25 and 50 labels.

The node is ``safety.food`` (过敏/食品安全, allergies and food safety), added under a new level-1
``safety`` to the default taxonomy. Labels are ours, read by hand from the public waimai_10k and
online_shopping_10_cats reviews (``evaluation/fewshot_labels/``: ids and labels only, the guideline
in ``GUIDELINE.md``). For each shot count k the model is fine-tuned from the default model on the
first k positive and k negative training labels (:func:`training.finetune.finetune`, nothing held
out: the study has its own held-out set) and scored:

- the new node's precision/recall/F1 on held-out dev/test texts (positives and realistic
  negatives, keyword hits included);
- the other nodes' macro-F1 on public labelled test data (closed topics of zhijiang dev, SemEval-16
  restaurants, MAMS and ACOS test samples), before (the default model) and after.

    python -m evaluation.fewshot --out evaluation/studies/fewshot.json
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["NODE", "fewshot_taxonomy", "load_fewshot_labels", "render_fewshot", "run_fewshot"]

NODE = "safety.food"
LABELS_DIR = Path(__file__).resolve().parent / "fewshot_labels"
OTHER_SETS = (("zhijiang2019_makeup_opinion", "dev"), ("semeval2016_restaurants", "test"),
              ("mams_acsa", "test"), ("acos", "test"))

_NODES = [
    {"id": "safety", "name": {"zh": "安全/健康", "en": "Safety"},
     "description": {"zh": "产品或服务对顾客健康和安全造成的风险或伤害。",
                     "en": "Risks or harm to the customer's health and safety from a product or service."},
     "route": "product"},
    {"id": NODE, "name": {"zh": "过敏/食品安全", "en": "Allergies & food safety"},
     "description": {
         "zh": "吃喝或使用后出现过敏、拉肚子、呕吐、食物中毒等身体不适；食物里有头发、虫子、异物；食物变质、发霉、馊了或过期。",
         "en": "Allergic reactions, stomach upsets, vomiting or food poisoning after eating, drinking or using something; "
               "hair, insects or foreign objects in food; spoiled, mouldy, rancid or expired food."},
     "seeds": {
         "zh": ["吃完就拉肚子了", "菜里吃出一根头发", "饭里有虫子", "粥已经馊了", "牛奶过期了", "说了过敏还放了花生",
                "用了以后皮肤过敏起红疹", "吃了上吐下泻像是食物中毒", "肉都变质发臭了", "面包发霉了"],
         "en": ["got food poisoning after eating here", "found a hair in my food", "there was a bug in the salad",
                "the milk was past its expiry date", "I told them about my nut allergy and they still added nuts",
                "my skin broke out in a rash after using it", "the chicken was raw inside and made me sick",
                "the meat smelled rotten", "the bread was mouldy", "a piece of plastic was in my soup"]},
     "touchpoints": ["use"], "severity": "critical"},
]


def fewshot_taxonomy():
    """The default taxonomy plus ``safety`` / ``safety.food`` (id ``cem-fewshot``)."""
    import yaml

    import models.taxonomy
    from models.taxonomy import DEFAULT_TAXONOMY_FILE, load_taxonomy

    data = yaml.safe_load((Path(models.taxonomy.__file__).parent / DEFAULT_TAXONOMY_FILE).read_text(encoding="utf-8"))
    data["id"], data["version"] = "cem-fewshot", 1
    data["topics"] = [*data["topics"], *_NODES]
    return load_taxonomy(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


def _texts(keys: set[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
    from training.data import load_dataset

    out = {}
    for ds, split in {(d, s) for d, s, _ in keys}:
        for ex in load_dataset(ds, split):
            if (ds, split, ex.id) in keys:
                out[(ds, split, ex.id)] = ex.text
    missing = keys - set(out)
    if missing:
        from nlp.errors import DataUnavailableError

        raise DataUnavailableError(f"{len(missing)} labelled rows are not in the shared data (first: {sorted(missing)[0]})")
    return out


def load_fewshot_labels(labels_dir: Path = LABELS_DIR):
    """(positives, negatives, held-out): LabelExamples in study order, and (text, is_safety) pairs."""
    from training.labelset import LabelExample

    train = [json.loads(line) for line in (labels_dir / "train.jsonl").read_text(encoding="utf-8").splitlines() if line]
    held = [json.loads(line) for line in (labels_dir / "heldout.jsonl").read_text(encoding="utf-8").splitlines() if line]
    texts = _texts({(r["dataset"], r["split"], r["id"]) for r in train + held})

    def example(r: dict) -> LabelExample:
        return LabelExample(id=f"{r['dataset']}:{r['split']}:{r['id']}", text=texts[(r["dataset"], r["split"], r["id"])],
                            lang="zh", topics=dict(r["topics"]))

    pos = [example(r) for r in sorted((r for r in train if r["role"] == "positive"), key=lambda r: r["rank"])]
    neg = [example(r) for r in sorted((r for r in train if r["role"] == "negative"), key=lambda r: r["rank"])]
    heldout = [(texts[(r["dataset"], r["split"], r["id"])], bool(r["safety"])) for r in held]
    return pos, neg, heldout


def _other_examples(per_set: int, seed: int = 0):
    import numpy as np

    from training.data import dataset_info, load_dataset

    out = {}
    for name, split in OTHER_SETS:
        info = dataset_info(name)
        ex = [e for e in load_dataset(name, split) if e.topics or info.closed_topics]
        idx = np.random.default_rng(seed).permutation(len(ex))[:per_set]
        out[name] = [ex[i] for i in sorted(idx)]
    return out


def _score(clf, heldout, others) -> dict[str, Any]:
    from evaluation import scoring
    from evaluation.metrics import per_class_prf
    from training.data import dataset_info

    res = clf.classify([{"id": str(i), "text": t, "lang": "zh"} for i, (t, _) in enumerate(heldout)])
    pred = ["yes" if any(t["id"] == NODE for t in r.get("topics", [])) else "no" for r in res]
    gold = ["yes" if y else "no" for _, y in heldout]
    node = per_class_prf(gold, pred, labels=["yes"])["yes"]
    other: dict[str, Any] = {}
    for name, examples in others.items():
        info = dataset_info(name)
        records = clf.classify([{"id": e.id, "text": e.text} for e in examples])
        s = scoring.score_topics(examples, records, space=info.topic_space, closed=info.closed_topics)
        other[name] = {"macro_f1": s["macro_f1"], "micro_f1": s["micro_f1"], "n": s["n"]}
    macros = [v["macro_f1"] for v in other.values() if v["macro_f1"] is not None]
    return {"node": {k: node[k] for k in ("precision", "recall", "f1")} | {"predicted": pred.count("yes")},
            "other_nodes": other, "other_macro_f1": sum(macros) / len(macros) if macros else None}


def run_fewshot(*, parent_dir: Path | None = None, base_dir: Path | None = None, work_dir: Path | None = None,
                shots: tuple[int, ...] = (10, 25, 50), steps: int | None = None, other_per_set: int = 100,
                time_labels: int = 500) -> dict[str, Any]:
    """Zero-shot, then one fine-tune per shot count; returns the JSON-able result (no texts).

    Defaults: the shipped model, the base encoder under ``VERBATIM_HOME`` and a temporary work
    folder. ``time_labels`` > 0 also times one fine-tune as a training run makes it
    (:func:`time_finetune`).
    """
    import tempfile

    from models.classifier.model import CemClassifier
    from models.classifier.predict import Classifier
    from training.finetune import finetune

    parent_dir, base_dir = _defaults(parent_dir, base_dir)
    scratch = None
    if work_dir is None:
        scratch = tempfile.TemporaryDirectory(prefix="verbatim-fewshot-")
        work_dir = Path(scratch.name)
    taxonomy = fewshot_taxonomy()
    pos, neg, heldout = load_fewshot_labels()
    others = _other_examples(other_per_set)
    runs: list[dict[str, Any]] = []
    cache: dict = {}  # encoder states of the replay and seed texts, shared by the runs (same parent)
    t0 = time.perf_counter()
    parent = _load_fp32(parent_dir, base_dir)
    before = _score(parent, heldout, others)
    before_id = parent.model_id
    runs.append({"shots": None, "model": f"{before_id} (no safety.food node)", **before})
    log.info("default: other macro-F1 %.3f", before["other_macro_f1"])
    del parent
    zero = CemClassifier.from_parent(parent_dir, base_dir=base_dir, taxonomy=taxonomy, version="fewshot-0")
    zero.encoder = zero.encoder.merge_and_unload()
    runs.append({"shots": 0, "model": "zero-shot (node text and seeds only)",
                 **_score(Classifier(zero, triage=None), heldout, others)})
    log.info("zero-shot: %s", runs[-1]["node"])
    del zero
    for k in shots:
        examples = pos[:k] + neg[:k]
        result = finetune(examples, parent_dir=parent_dir, base_dir=base_dir, taxonomy=taxonomy,
                          out_dir=Path(work_dir) / f"k{k}", version=f"fewshot-{k}", steps=steps, holdout=0.0,
                          cache=cache)
        clf = _load_fp32(result.model_dir, base_dir)
        runs.append({"shots": k, "model": f"fine-tuned on {k} positive + {min(k, len(neg))} negative labels",
                     "steps": result.steps, "stopped_at": result.stopped_at, "threshold": result.thresholds.get(NODE),
                     "trained_rows": result.trained_rows, "replay": result.replay,
                     "finetune_seconds": round(result.seconds, 1), "finetune_cpu_seconds": round(result.cpu_seconds, 1),
                     **_score(clf, heldout, others)})
        log.info("k=%d: %s other %.3f", k, runs[-1]["node"], runs[-1]["other_macro_f1"])
    out = {
        "node": NODE, "taxonomy": taxonomy.id, "parent": str(parent_dir), "parent_model": before_id,
        "method": "node rows the labels speak about, anchored, stopped and thresholded by cross-fitting on the "
                  "training labels; encoder and shared heads frozen (settings chosen on halves of the training "
                  "labels and on dev samples of the other sets, never on the held-out file)",
        "heldout": {"n": len(heldout), "positives": sum(y for _, y in heldout),
                    "sources": "waimai_10k and online_shopping_10_cats dev/test, labelled by hand"},
        "train_pool": {"positives": len(pos), "negatives": len(neg)},
        "other_sets": {name: len(v) for name, v in others.items()},
        "runs": runs,
    }
    if time_labels:
        out["timing"] = time_finetune(time_labels, parent_dir=parent_dir, base_dir=base_dir,
                                      out_dir=Path(work_dir) / f"timing-{time_labels}")
    out["seconds"] = round(time.perf_counter() - t0, 1)
    if scratch is not None:
        scratch.cleanup()
    return out


def _load_fp32(model_dir: Path, base_dir: Path):
    """A model directory as a classifier in fp32, as the zero-shot model is scored (every row of the
    table then differs only by its weights, not by how the encoder computes)."""
    from models.classifier.model import CemClassifier
    from models.classifier.predict import Classifier

    model = CemClassifier.from_pretrained(model_dir, base_dir=base_dir)
    if hasattr(model.encoder, "merge_and_unload"):
        model.encoder = model.encoder.merge_and_unload()
    return Classifier(model, triage=None)


def time_finetune(n: int, *, parent_dir: Path | None = None, base_dir: Path | None = None,
                  out_dir: Path) -> dict[str, Any]:
    """Time one fine-tune as ``POST /v1/training-runs`` runs it (20% held out, replay, evaluation)
    on ``n`` labels: the study's 100 training labels plus zhijiang train labels
    (:func:`training.labelset.labels_from_dataset`), for the few-shot taxonomy."""
    import os

    from training.finetune import finetune
    from training.labelset import labels_from_dataset

    parent_dir, base_dir = _defaults(parent_dir, base_dir)
    taxonomy = fewshot_taxonomy()
    pos, neg, _ = load_fewshot_labels()
    examples = (pos + neg + labels_from_dataset("zhijiang2019_makeup_opinion", "train", n, taxonomy=taxonomy))[:n]
    load_before = os.getloadavg()
    result = finetune(examples, parent_dir=parent_dir, base_dir=base_dir, taxonomy=taxonomy, out_dir=out_dir,
                      version=f"timing-{n}")
    return {"labels": len(examples), "train": len(result.train_ids), "heldout": len(result.heldout_ids),
            "steps": result.steps, "stopped_at": result.stopped_at, "replay": result.replay,
            "seconds": round(result.seconds, 1), "cpu_seconds": round(result.cpu_seconds, 1),
            "threads": _threads(), "cpus": os.cpu_count(),
            "load_average": {"before": [round(x, 2) for x in load_before],
                             "after": [round(x, 2) for x in os.getloadavg()]}}


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _defaults(parent_dir: Path | None, base_dir: Path | None) -> tuple[Path, Path]:
    import os

    from platformdirs import user_data_dir

    from models.classifier import default_model_dir
    from models.encoder import ensure_base_encoder

    if parent_dir is None:
        parent_dir = default_model_dir()
    if base_dir is None:
        home = Path(os.environ.get("VERBATIM_HOME") or user_data_dir("verbatim", appauthor=False))
        base_dir = ensure_base_encoder(home)
    return Path(parent_dir), Path(base_dir)


def _f(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def render_fewshot(result: dict[str, Any]) -> list[str]:
    """Markdown lines: the new node's held-out P/R/F1 and the other nodes' macro-F1 per run."""
    h = result["heldout"]
    lines = [
        f"### Few-shot: a new node `{result['node']}` (过敏/食品安全)",
        "",
        f"Held-out: {h['n']} hand-labelled reviews ({h['positives']} positive; {h['sources']}). "
        f"Other nodes: macro-F1 over the closed topics of {', '.join(result['other_sets'])} "
        f"({sum(result['other_sets'].values())} labelled test texts).",
        "",
    ]
    if result.get("method"):
        lines += [f"Fine-tuning: {result['method']}.", ""]
    lines += [
        "| model | new node P | R | F1 | other nodes macro-F1 | stopped at / of steps | threshold | fine-tune (wall s / CPU s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        n = r["node"]
        cost = f"{r['finetune_seconds']:.0f} / {r['finetune_cpu_seconds']:.0f}" if "finetune_seconds" in r else ""
        stop = f"{r['stopped_at']} / {r['steps']}" if "stopped_at" in r else ""
        th = _f(r.get("threshold")) if "stopped_at" in r else ""
        lines.append(f"| {r['model']} | {_f(n['precision'])} | {_f(n['recall'])} | {_f(n['f1'])} | "
                     f"{_f(r['other_macro_f1'])} | {stop} | {th} | {cost} |")
    t = result.get("timing")
    if t:
        load = t["load_average"]
        lines += ["", f"A training run on {t['labels']} labels ({t['train']} trained on, {t['heldout']} held out, "
                  f"{t['replay']} replay, {t['stopped_at']} of {t['steps']} steps kept, evaluation included): "
                  f"{t['seconds'] / 60:.1f} min wall, {t['cpu_seconds'] / 60:.1f} min CPU on {t['threads']} thread(s) of "
                  f"{t['cpus']} cores, load average {load['before'][0]:.1f} before and {load['after'][0]:.1f} after."]
    lines.append("")
    return lines


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "studies" / "fewshot.json")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--time-labels", type=int, default=500, help="labels for the timed run (0: no timing)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    result = run_fewshot(work_dir=args.work, steps=args.steps, time_labels=args.time_labels)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    log.info("\n%s", "\n".join(render_fewshot(result)))


if __name__ == "__main__":
    main()
