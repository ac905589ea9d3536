"""Saving and loading an :class:`~models.analytics.clusters.IssueClusterer`: a model directory.

``config.json`` holds the settings, the segmenter's settings, the clusters (ids, labels, keywords)
and package versions; ``arrays.safetensors`` holds the centroids, radii (edge, typical, match) and language shifts. No
pickle. The segmenter's word lists travel with the directory: a user dictionary or stop-word list
given as a file is copied into ``segmenter/``, one named from ``nlp/resources`` is stored by name.
"""

from __future__ import annotations

import json
import shutil
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.analytics._cluster_fit import ClusterParams
from nlp.errors import ModelError
from nlp.segment import Segmenter

if TYPE_CHECKING:
    from models.analytics.clusters import IssueClusterer

FORMAT = "verbatim-issue-clusters"
VERSION = 1
CONFIG = "config.json"
ARRAYS = "arrays.safetensors"
_SEGMENTER_DIR = "segmenter"
_SETTINGS = ("min_cluster_size", "min_samples", "random_state", "outlier_target", "min_overlap",
             "top_n_keywords", "n_examples", "align_languages")


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("bertopic", "umap-learn", "hdbscan", "scikit-learn", "jieba"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _word_list_out(value: str | Path | None, directory: Path, field: str) -> dict[str, Any] | None:
    if value is None:
        return None
    path = Path(value)
    if path.is_file():
        (directory / _SEGMENTER_DIR).mkdir(exist_ok=True)
        name = f"{field}{path.suffix or '.txt'}"
        shutil.copyfile(path, directory / _SEGMENTER_DIR / name)
        return {"file": f"{_SEGMENTER_DIR}/{name}"}
    return {"resource": str(value)}


def _word_list_in(entry: dict[str, Any] | None, directory: Path) -> str | Path | None:
    if entry is None:
        return None
    if "file" in entry:
        path = directory / entry["file"]
        if not path.is_file():
            raise ModelError(f"{directory} lacks {entry['file']}, the segmenter word list it was saved with")
        return path
    return str(entry["resource"])


def save_clusterer(clusterer: IssueClusterer, directory: Path) -> Path:
    """Write ``clusterer`` (fitted) into ``directory``; returns the directory."""
    from safetensors.numpy import save_file

    directory.mkdir(parents=True, exist_ok=True)
    seg = clusterer.segmenter
    segmenter = None
    if seg is not None:
        segmenter = {"user_dict": _word_list_out(seg.user_dict, directory, "user_dict"),
                     "stopwords_zh": _word_list_out(seg.stopwords_zh, directory, "stopwords_zh"),
                     "stopwords_en": _word_list_out(seg.stopwords_en, directory, "stopwords_en"),
                     "hmm": bool(seg.hmm)}
    langs = sorted(clusterer.shifts_)
    config = {
        "format": FORMAT,
        "version": VERSION,
        "settings": {k: getattr(clusterer, k) for k in _SETTINGS},
        "segmenter": segmenter,
        "topic_ids": clusterer.topic_ids_,
        "next_id": clusterer.next_id_,
        "cluster_ids": clusterer.cluster_ids_,
        "clusters": [c.to_dict() for c in clusterer.clusters_],
        "shift_langs": langs,
        "versions": _versions(),
    }
    arrays = {"centroids": np.ascontiguousarray(clusterer.centroids_, dtype=np.float32),
              "radii": np.ascontiguousarray(clusterer.radii_, dtype=np.float32)}
    for i, lang in enumerate(langs):
        arrays[f"shift_{i}"] = np.ascontiguousarray(clusterer.shifts_[lang], dtype=np.float32)
    save_file(arrays, str(directory / ARRAYS))
    (directory / CONFIG).write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
    return directory


def load_clusterer(cls: type[IssueClusterer], directory: Path) -> IssueClusterer:
    """Rebuild an ``IssueClusterer`` written by :func:`save_clusterer`."""
    from safetensors.numpy import load_file

    from models.analytics.clusters import Cluster

    try:
        config = json.loads((directory / CONFIG).read_text(encoding="utf-8"))
        arrays = load_file(str(directory / ARRAYS))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{directory} is not a saved IssueClusterer ({exc}); save one with IssueClusterer.save") from exc
    if config.get("format") != FORMAT or config.get("version") != VERSION:
        raise ModelError(f"{directory / CONFIG} is format {config.get('format')!r} v{config.get('version')}, "
                         f"expected {FORMAT!r} v{VERSION}")
    seg = config["segmenter"]
    segmenter = None
    if seg is not None:
        segmenter = Segmenter(user_dict=_word_list_in(seg["user_dict"], directory),
                              stopwords_zh=_word_list_in(seg["stopwords_zh"], directory),
                              stopwords_en=_word_list_in(seg["stopwords_en"], directory), hmm=seg["hmm"])
    settings = config["settings"]
    clusterer = cls(segmenter, **settings)
    clusterer.params_ = ClusterParams(min_cluster_size=settings["min_cluster_size"],
                                      min_samples=settings["min_samples"], random_state=settings["random_state"],
                                      outlier_target=settings["outlier_target"])
    clusterer.topic_ids_ = config["topic_ids"]
    clusterer.next_id_ = int(config["next_id"])
    clusterer.cluster_ids_ = list(config["cluster_ids"])
    clusterer.clusters_ = [Cluster.from_dict(c) for c in config["clusters"]]
    clusterer.centroids_ = arrays["centroids"]
    clusterer.radii_ = arrays["radii"]
    clusterer.shifts_ = {lang: arrays[f"shift_{i}"] for i, lang in enumerate(config["shift_langs"])}
    return clusterer
