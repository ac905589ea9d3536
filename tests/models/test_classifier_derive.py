"""Tiny-model tier: a loaded classifier derived for an edited taxonomy, without training.

``Classifier.derive`` must give exactly what ``CemClassifier.from_parent`` (the training path)
gives for the same taxonomy, while sharing the served classifier's encoder instead of loading
another: new nodes get their text prototype from the *base* encoder (the served one has its
adapters merged), learned rows carry over, retired nodes go, and the served classifier is left
as it was. The numbers of a 2-layer random encoder mean nothing; the equalities do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_encoder import build_tiny_base

from models.classifier.config import ClassifierConfig
from models.classifier.model import CemClassifier
from models.classifier.predict import Classifier
from models.taxonomy import Taxonomy, default_taxonomy, load_taxonomy, taxonomy_to_dict
from training.devscore import tokenize

NEW = "product.safety"
TEXTS = [
    "吃完全身起红疹，连夜去了医院",
    "we all got food poisoning",
    "快递太慢了",
    "the staff were rude",
]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny base and a trained-looking parent: non-zero adapters and node rows."""
    root = tmp_path_factory.mktemp("tiny-derive")
    base = build_tiny_base(root / "base", TEXTS)
    torch.manual_seed(0)
    tax = default_taxonomy()
    parent = CemClassifier.from_base(
        base, tax, ClassifierConfig(version="0.9.0", head_dim=16, lora_r=4, lora_alpha=8)
    )
    with torch.no_grad():
        for p in [*parent.encoder.parameters(), *parent.heads.parameters()]:
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.3)
    parent.config = parent.config.with_(
        trained_topic_ids=tax.leaf_ids, trained_touchpoint_ids=tax.touchpoint_ids
    )
    parent.save_pretrained(root / "parent")
    return base, root / "parent"


def edited() -> Taxonomy:
    """The default plus a new leaf under ``product``, ``price.promotion`` retired, and
    ``delivery.courier`` renamed (same id, new text)."""
    doc = json.loads(json.dumps(taxonomy_to_dict(default_taxonomy())))
    for node in doc["topics"]:
        if node["id"] == "price.promotion":
            node["status"] = "retired"
        if node["id"] == "delivery.courier":
            node["name"] = {"zh": "配送员", "en": "Couriers and riders"}
    doc["topics"].append({
        "id": NEW, "name": {"zh": "过敏/食品安全", "en": "Allergies and food safety"},
        "description": {"zh": "过敏、食物中毒", "en": "Allergic reactions and food poisoning"},
        "seeds": {"zh": ["吃完全身起红疹"], "en": ["we all got food poisoning"]},
    })  # fmt: skip
    doc["version"] = 2
    return load_taxonomy(doc)


def logits(model: CemClassifier) -> dict[str, torch.Tensor]:
    with torch.inference_mode():
        out = model(**tokenize(model, TEXTS))
    return {k: out[k] for k in ("topics", "polarity", "touchpoints", "sentiment")}


def test_derive_equals_from_parent_and_shares_the_encoder(tiny) -> None:
    base, parent_dir = tiny
    served = Classifier.load(parent_dir, base_dir=base, triage=None, precision="fp32")  # the reference is fp32
    before = logits(served.model)
    tax = edited()
    derived = served.derive(tax, base_dir=base, version="0.9.0+tax.abcd1234")

    assert derived.model.encoder is served.model.encoder  # shared, not copied
    assert derived.model_id == "verbatim-cem@0.9.0+tax.abcd1234"
    cfg = derived.config
    assert NEW in cfg.topic_ids and "price.promotion" not in cfg.topic_ids
    assert NEW not in cfg.trained_topic_ids  # results mark it zero_shot
    assert "delivery.courier" in cfg.trained_topic_ids  # renamed, still the node it learned
    assert cfg.taxonomy_hash == tax.content_hash() and cfg.training == {
        "parent": "verbatim-cem@0.9.0"
    }

    reference = CemClassifier.from_parent(parent_dir, base_dir=base, taxonomy=tax)
    reference.encoder = reference.encoder.merge_and_unload()
    reference.eval()
    assert reference.config.topic_ids == cfg.topic_ids
    for name in ("topic_protos", "touchpoint_protos"):
        assert torch.allclose(getattr(derived.model, name), getattr(reference, name), atol=1e-5), (
            name
        )
    for name, value in reference.heads.state_dict().items():
        assert torch.equal(derived.model.heads.state_dict()[name], value), name
    ours, theirs = logits(derived.model), logits(reference)
    for name in ours:
        assert torch.allclose(ours[name], theirs[name], atol=1e-4), name

    # the new node and the renamed one got fresh prototypes; the others kept the parent's
    parent_ids = served.config.topic_ids
    for node in ("delivery.courier", NEW):
        row = derived.model.topic_protos[cfg.topic_ids.index(node)]
        if node in parent_ids:
            assert not torch.allclose(row, served.model.topic_protos[parent_ids.index(node)])
    quality = cfg.topic_ids.index("product.quality")
    assert torch.equal(
        derived.model.topic_protos[quality],
        served.model.topic_protos[parent_ids.index("product.quality")],
    )
    # deriving left the served classifier exactly as it was
    after = logits(served.model)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_derived_results_mark_only_the_new_node_zero_shot(tiny) -> None:
    base, parent_dir = tiny
    served = Classifier.load(parent_dir, base_dir=base)
    derived = served.derive(edited(), base_dir=base, version="0.9.0+tax.abcd1234")
    derived.config = derived.config.with_(thresholds={**derived.config.thresholds, "topics": 0.0})
    results = derived.classify([{"id": str(i), "text": t} for i, t in enumerate(TEXTS)])
    for result in results:
        flagged = {t["id"] for t in result["topics"] if t.get("zero_shot")}
        assert flagged == {NEW} and result["model"] == "verbatim-cem@0.9.0+tax.abcd1234"
        assert "price.promotion" not in {t["id"] for t in result["topics"]}
        assert result["triage"]["priority"] in {"P1", "P2", "P3", "P4"}
    assert derived.triage.taxonomy is not None and NEW in derived.triage.taxonomy.leaf_ids
