"""Issue clustering study: our ``IssueClusterer`` against default BERTopic on Banking77 test.

The 77 intents of Banking77's test split are the gold clusters. Both methods get the same
embeddings, the default classifier's own (``Classifier.classify_with_embeddings``), and a fixed
``random_state``; the baseline is ``BERTopic()`` with its default UMAP/HDBSCAN settings. Scores:
NMI and ARI (scikit-learn) over every text, outliers counted as one extra cluster, and over the
clustered texts only; the number of clusters, the outlier share and the seconds each took.

Usage::

    python -m evaluation.clustering                       # writes evaluation/studies/clustering.json
    python -m evaluation.clustering --embeddings /tmp/b77.npy   # reuse (or create) an embedding cache
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

STUDY = Path(__file__).parent / "studies" / "clustering.json"
DATASET, SPLIT = "banking77", "test"


def _default_classifier() -> Any:
    from platformdirs import user_data_dir

    from models.classifier import default_model_dir
    from models.classifier.predict import Classifier
    from models.encoder import ensure_base_encoder

    home = Path(os.environ.get("VERBATIM_HOME") or user_data_dir("verbatim", appauthor=False))
    model = os.environ.get("VERBATIM_MODEL") or default_model_dir()
    return Classifier.load(model, base_dir=ensure_base_encoder(home))


def embed(texts: Sequence[str], classifier: Any = None, *, cache: Path | None = None) -> tuple[np.ndarray, str]:
    """Embeddings of ``texts`` from the classifier (loaded if not given), optionally cached in ``cache``.

    The cache is an ``.npy`` of the embeddings for exactly these texts in this order (checked by
    row count); it is for development runs only.
    """
    if cache is not None and cache.is_file():
        emb = np.load(cache)
        meta = cache.with_suffix(".json")
        model = json.loads(meta.read_text())["model"] if meta.is_file() else "cached"
        if emb.shape[0] == len(texts):
            return emb, model
    classifier = classifier or _default_classifier()
    _, emb = classifier.classify_with_embeddings([{"id": str(i), "text": t} for i, t in enumerate(texts)])
    if cache is not None:
        np.save(cache, emb)
        cache.with_suffix(".json").write_text(json.dumps({"model": classifier.model_id}))
    return emb, classifier.model_id


def _scores(gold: Sequence[str], labels: Sequence[Any], seconds: float) -> dict[str, Any]:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    pred = ["-1" if lab is None or lab == -1 else str(lab) for lab in labels]
    kept = [i for i, p in enumerate(pred) if p != "-1"]
    out = {
        "nmi": round(float(normalized_mutual_info_score(gold, pred)), 4),
        "ari": round(float(adjusted_rand_score(gold, pred)), 4),
        "n_clusters": len(set(pred) - {"-1"}),
        "outlier_share": round(1 - len(kept) / len(pred), 4),
        "seconds": round(seconds, 1),
    }
    if kept:
        g, p = [gold[i] for i in kept], [pred[i] for i in kept]
        out["nmi_clustered"] = round(float(normalized_mutual_info_score(g, p)), 4)
        out["ari_clustered"] = round(float(adjusted_rand_score(g, p)), 4)
    return out


def _default_bertopic(texts: list[str], emb: np.ndarray, random_state: int) -> list[int]:
    from bertopic import BERTopic
    from umap import UMAP

    # BERTopic's own default UMAP, only seeded
    umap_model = UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", low_memory=False,
                      random_state=random_state)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"n_jobs value .* overridden", category=UserWarning)
        topics, _ = BERTopic(embedding_model=None, umap_model=umap_model).fit_transform(texts, embeddings=emb)
    return list(topics)


def run_clustering(*, classifier: Any = None, data_dir: str | os.PathLike[str] | None = None,
                   embeddings_cache: Path | None = None, random_state: int = 42,
                   intents: Sequence[str] | None = None) -> dict[str, Any]:
    """Score ``IssueClusterer`` and default BERTopic on Banking77 test (JSON-able, no texts).

    ``classifier`` needs ``classify_with_embeddings`` and ``model_id`` (default: the shipped
    model); ``intents`` restricts the study to some intents (for quick checks).
    """
    from models.analytics.clusters import IssueClusterer
    from training.data.registry import load_dataset

    examples = load_dataset(DATASET, SPLIT, data_dir=data_dir)
    if intents is not None:
        examples = [e for e in examples if e.raw_labels["intent"] in set(intents)]
    texts = [e.text for e in examples]
    gold = [e.raw_labels["intent"] for e in examples]
    emb, model = embed(texts, classifier, cache=embeddings_cache)
    valid = np.isfinite(emb).all(axis=1)
    if not valid.all():
        raise ValueError(f"{int((~valid).sum())} texts could not be embedded")

    started = time.perf_counter()
    ours = IssueClusterer(random_state=random_state).fit(
        texts, emb, ids=[e.id for e in examples], langs=[e.lang for e in examples])
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    base = _default_bertopic(texts, emb, random_state)
    base_s = time.perf_counter() - started
    return {
        "dataset": DATASET,
        "split": SPLIT,
        "n": len(texts),
        "gold_clusters": len(set(gold)),
        "embeddings": model,
        "random_state": random_state,
        "methods": {
            "ours": _scores(gold, ours.labels, ours_s),
            "bertopic_default": _scores(gold, base, base_s),
        },
        "cpu_count": os.cpu_count(),
    }


_NAMES = {"ours": "Verbatim IssueClusterer", "bertopic_default": "BERTopic defaults (same embeddings)"}


def render_clustering(result: dict[str, Any]) -> list[str]:
    """Markdown lines for the evaluation report."""
    lines = [
        "## Issue clustering",
        "",
        f"{result['dataset']} {result['split']} ({result['n']:,} texts, {result['gold_clusters']} intents as gold "
        f"clusters), embeddings from `{result['embeddings']}`, random_state {result['random_state']}. "
        "NMI/ARI count outliers as one more cluster; the *clustered* columns score only the texts "
        "each method put in a cluster.",
        "",
        "| method | NMI | ARI | clusters | outliers | NMI clustered | ARI clustered | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, m in result["methods"].items():
        lines.append(
            f"| {_NAMES.get(key, key)} | {m['nmi']:.3f} | {m['ari']:.3f} | {m['n_clusters']} | "
            f"{m['outlier_share']:.1%} | {m.get('nmi_clustered', 0):.3f} | {m.get('ari_clustered', 0):.3f} | "
            f"{m['seconds']:.0f} |")
    lines.append("")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embeddings", type=Path, default=None, help="embedding cache (.npy), development only")
    parser.add_argument("--out", type=Path, default=STUDY)
    parser.add_argument("--random-state", type=int, default=42)
    args = parser.parse_args(argv)
    result = run_clustering(embeddings_cache=args.embeddings, random_state=args.random_state)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print("\n".join(render_clustering(result)))  # noqa: T201 - command-line output
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
