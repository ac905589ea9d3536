"""Fine-tuning a tenant's model from a parent model and labels (tiny tier + one real check).

The tiny tier (2-layer random encoder) checks mechanics a user relies on: the extended model keeps
what the parent learned for existing nodes and starts a new node zero-shot, the run writes a
loadable model with its lineage, held-out labels never train it, and progress is reported. The
real check fine-tunes the shipped model on a few dozen labels of a new node.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from models.classifier.config import ClassifierConfig
from models.classifier.model import CemClassifier
from models.taxonomy import default_taxonomy
from training.finetune import finetune, split_holdout
from training.labelset import LabelExample

NEW = "safety.food"
POS = ["吃完就拉肚子了", "菜里吃出一根头发", "米饭里有虫子", "粥已经馊了", "牛奶过期了还送来", "吃了上吐下泻",
       "found a hair in my soup", "got food poisoning from the chicken", "the yogurt was expired", "a bug in my salad"]
NEG = [("送餐太慢了，等了两个小时", "delivery.timeliness"), ("味道很好，分量也足", "product.quality"),
       ("骑手态度很差", "delivery.courier"), ("价格实惠", "price.value"),
       ("the delivery was two hours late", "delivery.timeliness"), ("the food tasted great", "product.quality"),
       ("the staff were rude", "service.attitude"), ("good value for money", "price.value")]


def labelled() -> list[LabelExample]:
    out = [LabelExample(id=f"p{i}", text=t, sentiment="negative", topics={NEW: "negative"}) for i, t in enumerate(POS)]
    out += [LabelExample(id=f"n{i}", text=t, topics={node: "negative" if "慢" in t or "late" in t or "rude" in t
                                                    or "差" in t else "positive"})
            for i, (t, node) in enumerate(NEG)]
    return out


def extended_taxonomy():
    from evaluation.fewshot import fewshot_taxonomy

    return fewshot_taxonomy()


def _tiny_encoder():
    if "tiny_encoder" in sys.modules:
        return sys.modules["tiny_encoder"]
    path = Path(__file__).resolve().parents[1] / "models" / "tiny_encoder.py"
    spec = importlib.util.spec_from_file_location("tiny_encoder", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["tiny_encoder"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny base and a parent model on it whose node rows are non-zero (as a trained model's are)."""
    root = tmp_path_factory.mktemp("tiny-finetune")
    base = _tiny_encoder().build_tiny_base(root / "base", POS + [t for t, _ in NEG])
    torch.manual_seed(0)
    tax = default_taxonomy()
    parent = CemClassifier.from_base(base, tax, ClassifierConfig(version="0.9.0", lora_r=4, lora_alpha=8))
    with torch.no_grad():
        for name in ("topic_offset", "topic_bias", "touchpoint_offset", "touchpoint_bias"):
            getattr(parent.heads, name).normal_()
    parent.config = parent.config.with_(trained_topic_ids=tax.leaf_ids, trained_touchpoint_ids=tax.touchpoint_ids)
    parent.save_pretrained(root / "parent")
    return base, root / "parent"


def test_an_extended_model_keeps_learned_rows_and_starts_the_new_node_zero_shot(tiny):
    base, parent_dir = tiny
    parent = CemClassifier.from_pretrained(parent_dir, base_dir=base)
    child = CemClassifier.from_parent(parent_dir, base_dir=base, taxonomy=extended_taxonomy(), version="acme-1")
    cfg = child.config
    assert cfg.topic_ids[-1] == NEW and cfg.topic_ids[:-1] == parent.config.topic_ids
    assert NEW not in cfg.trained_topic_ids and cfg.trained_topic_ids == parent.config.topic_ids
    assert cfg.training["parent"] == "verbatim-cem@0.9.0" and cfg.model_id == "verbatim-cem@acme-1"
    n = len(parent.config.topic_ids)
    assert torch.equal(child.heads.topic_offset[:n], parent.heads.topic_offset)
    assert torch.equal(child.heads.topic_bias[:n], parent.heads.topic_bias)
    assert torch.equal(child.topic_protos[:n], parent.topic_protos)
    assert float(child.heads.topic_offset[n].detach().abs().sum()) == 0.0 and float(child.heads.topic_bias[n].detach()) == 0.0
    assert float(child.topic_protos[n].norm()) == pytest.approx(1.0, abs=1e-4)  # its text prototype
    assert torch.equal(child.heads.sentiment[0].weight, parent.heads.sentiment[0].weight)
    assert any(p.requires_grad for n_, p in child.encoder.named_parameters() if "lora_" in n_)


def test_split_is_stable_stratified_and_disjoint():
    ex = labelled()
    train, held = split_holdout(ex, 0.25, seed=13)
    again = split_holdout(ex[::-1], 0.25, seed=13)  # the same labels in another order: the same split
    assert ({e.id for e in train}, {e.id for e in held}) == ({e.id for e in again[0]}, {e.id for e in again[1]})
    assert not {e.id for e in train} & {e.id for e in held} and len(train) + len(held) == len(ex)
    assert sum(NEW in (e.topics or {}) for e in held) in (2, 3)  # a quarter of the new node's ten labels


def test_finetune_writes_a_loadable_model_with_lineage_and_reports_on_held_out_labels(tiny, tmp_path):
    base, parent_dir = tiny
    seen: list[tuple[float, str]] = []
    result = finetune(labelled(), parent_dir=parent_dir, base_dir=base, taxonomy=extended_taxonomy(),
                      out_dir=tmp_path / "acme-1", version="acme-1", steps=12, holdout=0.25, replay_data=False,
                      progress=lambda f, m: seen.append((f, m)))
    assert result.replay == "labels-only" and result.steps == 12 and result.parent == "verbatim-cem@0.9.0"
    assert not set(result.train_ids) & set(result.heldout_ids) and len(result.heldout_ids) in (4, 5)
    cfg = ClassifierConfig.load(result.model_dir)
    assert cfg.training["parent"] == "verbatim-cem@0.9.0"
    assert cfg.training["train_labels"] == 18 - len(result.heldout_ids) and cfg.training["replay"] == "labels-only"
    # the report is on the held-out labels only, with the new node among the scored ones
    assert result.report.n_examples == len(result.heldout_ids) and result.report.per_node[NEW].support >= 2
    assert result.report.model == "verbatim-cem@acme-1"
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and any("step 12/12" in m for _, m in seen)
    # the encoder stays the parent's; so do the shared heads and the rows of nodes no label speaks about
    assert load_file(str(parent_dir / "adapter" / "adapter_model.safetensors")).keys() == \
        load_file(str(result.model_dir / "adapter" / "adapter_model.safetensors")).keys()
    before, after = load_file(str(parent_dir / "heads.safetensors")), load_file(str(result.model_dir / "heads.safetensors"))
    for name in ("sentiment.0.weight", "topics.detect.0.weight", "topics.proto_proj.0.weight", "touchpoints.key.weight"):
        assert torch.equal(before[name], after[name]), name
    spoken = cfg.training["trained_rows"]["topics"]  # the rows the labels speak about, and where each stopped
    assert NEW in spoken and "delivery.timeliness" in spoken
    assert spoken[NEW]["anchor"] < spoken["delivery.timeliness"]["anchor"]  # a learned row is held closer
    assert set(result.trained_rows) == {t for t, r in spoken.items() if r["step"]}
    silent = [i for i, t in enumerate(cfg.topic_ids[:-1]) if t not in spoken]
    assert silent and torch.equal(before["topic_offset"][silent], after["topic_offset"][silent])
    assert torch.equal(before["topic_bias"][silent], after["topic_bias"][silent])
    assert cfg.training["stopped_at"] == result.stopped_at <= 12
    CemClassifier.from_pretrained(result.model_dir, base_dir=base)


def test_labels_for_nodes_outside_the_taxonomy_are_refused(tiny, tmp_path):
    from nlp.errors import InvalidInputError

    base, parent_dir = tiny
    with pytest.raises(InvalidInputError, match="safety.food"):
        finetune(labelled(), parent_dir=parent_dir, base_dir=base, taxonomy=None, out_dir=tmp_path / "x",
                 version="x", steps=2, replay_data=False)


@pytest.fixture(scope="module")
def real_base(tmp_path_factory) -> Path:
    from models.encoder import build_base_encoder, ensure_base_encoder

    home = os.environ.get("VERBATIM_HOME")
    if home:
        return ensure_base_encoder(Path(home))
    return build_base_encoder(tmp_path_factory.mktemp("verbatim-home") / "multilingual-e5-small")


@pytest.mark.slow
def test_real_model_new_node_is_zero_shot_before_and_trained_after(real_base, tmp_path):
    from models.classifier import default_model_dir
    from models.classifier.predict import Classifier

    tax = extended_taxonomy()
    unseen = ["昨天吃了他家的烤串，半夜开始拉肚子", "汤里有一只苍蝇", "my kid threw up after eating the nuggets"]
    other = ["配送员很准时，态度也好", "the room was spacious and quiet", "价格有点贵"]
    zero = CemClassifier.from_parent(default_model_dir(), base_dir=real_base, taxonomy=tax, version="zs")
    zero.encoder = zero.encoder.merge_and_unload()
    before = Classifier(zero, triage=None).classify([{"id": str(i), "text": t} for i, t in enumerate(unseen)])
    for res in before:  # the new node, when it shows, is marked zero-shot
        assert all(t.get("zero_shot") for t in res["topics"] if t["id"] == NEW)
    result = finetune(labelled(), parent_dir=default_model_dir(), base_dir=real_base, taxonomy=tax,
                      out_dir=tmp_path / "m", version="ft", steps=60, holdout=0.0, replay_data=False)
    clf = Classifier.load(result.model_dir, base_dir=real_base, triage=None)
    after = clf.classify([{"id": str(i), "text": t} for i, t in enumerate(unseen + other)])
    found = [[t for t in r["topics"] if t["id"] == NEW] for r in after]
    assert all(f and "zero_shot" not in f[0] for f in found[:3]), found
    assert not any(found[3:]), found


def test_old_nodes_seed_phrases_say_nothing_about_a_new_node(tiny):
    from training.finetune import _seed_items
    from training.targets import TargetBuilder

    base, parent_dir = tiny
    child = CemClassifier.from_parent(parent_dir, base_dir=base, taxonomy=extended_taxonomy())
    cfg = child.config
    new, quality = cfg.topic_ids.index(NEW), cfg.topic_ids.index("product.quality")
    items = _seed_items(TargetBuilder(child.taxonomy, cfg.topic_ids, cfg.touchpoint_ids), cfg, str)
    moldy = next(it for it in items if it.text == "half the strawberries were moldy")  # a product.quality seed
    assert moldy.topic_target[quality] == 1 and not moldy.topic_mask[new]
    own = [it for it in items if it.topic_target[new] == 1]
    assert len(own) == 20 and all(it.topic_mask[new] for it in own)
    assert all(it.topic_mask[quality] for it in items if it.topic_mask.any())  # old nodes keep their negatives


def test_only_listed_rows_train_and_a_strong_anchor_keeps_them_at_their_start(tiny):
    from training import headfit
    from training.finetune import LABELS, _encode, _items
    from training.pools import MixtureSampler
    from training.trainer import _prepare_text

    base, parent_dir = tiny
    model = CemClassifier.from_parent(parent_dir, base_dir=base, taxonomy=extended_taxonomy())
    cfg = model.config
    items = _items(labelled(), cfg.topic_ids, cfg.touchpoint_ids, _prepare_text)
    states = _encode(model, [it.text for it in items], batch_size=32)
    new, courier = cfg.topic_ids.index(NEW), cfg.topic_ids.index("delivery.courier")
    start = headfit.snapshot_rows(model)

    def run(anchors: dict[int, float]) -> list:
        headfit.reset_rows(model, start)
        headfit.fit_rows(model, MixtureSampler({LABELS: items}, {LABELS: 1.0}, 8, 0), states,
                         topic_rows=anchors, tp_rows={}, fit=headfit.RowFit(steps=20, lr=1e-2))
        return headfit.snapshot_rows(model)

    offset, bias = run({new: 0.0})[:2]
    assert float((offset[new] - start[0][new]).abs().max()) > 0.05  # the new node's row learned
    others = [i for i in range(len(cfg.topic_ids)) if i != new]
    assert torch.equal(offset[others], start[0][others]) and torch.equal(bias[others], start[1][others])
    assert torch.equal(offset[courier], start[0][courier])  # labelled "courier", but not listed: unchanged
    held = run({new: 1e6})  # an anchor that undoes every step
    assert torch.allclose(held[0], start[0]) and torch.allclose(held[1], start[1])


def test_a_fitted_threshold_is_folded_into_the_bias_so_serving_decides_as_the_node_would(tiny):
    from training import headfit
    from training.finetune import _apply_thresholds, _encode
    from training.trainer import _prepare_text

    base, parent_dir = tiny
    model = CemClassifier.from_parent(parent_dir, base_dir=base, taxonomy=extended_taxonomy())
    texts = [_prepare_text(t) for t in POS + [t for t, _ in NEG]]
    states = _encode(model, texts, batch_size=32)
    new, temp = model.config.topic_ids.index(NEW), 1.3
    before = 1 / (1 + np.exp(-headfit.head_logits(model, states, texts)[:, new] / temp))
    threshold = float(np.median(before))
    assert _apply_thresholds(model, {new: threshold}, temp) == {NEW: round(threshold, 4)}
    after = 1 / (1 + np.exp(-headfit.head_logits(model, states, texts)[:, new] / temp))
    assert ((after >= 0.5) == (before >= threshold)).all() and 0 < (after >= 0.5).sum() < len(texts)


def test_the_threshold_with_the_best_f1_separates_the_classes_and_folds_are_stable():
    from training.headfit import assign_folds, best_threshold

    probs = np.array([0.30, 0.35, 0.42, 0.45, 0.10, 0.15, 0.22, 0.25])
    gold = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    th, f1 = best_threshold(probs, gold)
    assert 0.25 < th <= 0.30 and f1 == 1.0  # at 0.5 nothing would be found
    assert best_threshold(np.array([0.9, 0.8, 0.1]), np.array([1, 1, 0]))[0] == 0.5  # 0.5 already best: kept
    keys, strata = [f"id{i}" for i in range(12)], ["a"] * 4 + ["b"] * 8
    folds = assign_folds(keys, strata, 4, seed=13)
    assert folds == assign_folds(keys, strata, 4, seed=13) and sorted(folds) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert len({folds[i] for i in range(4)}) == 4  # every fold gets one of the rare stratum
