"""Batch-invariant int8: a text's result must not depend on what else is classified with it.

The unit tier checks the int8 linear layer against fp32 and row by row; the real-model tier checks
the default model end to end, alone versus in mixed zh/en batches, and against fp32.
"""

from __future__ import annotations

import pytest
import torch

from models.classifier import default_model_dir
from models.classifier.quantize import Int8Linear, quantize_linears

TEXTS = (
    "质量太差了，用了两天就坏了，再也不买了",
    "快递太慢了，等了一个星期才到，客服也不回复。",
    "酒店房间很干净，前台服务态度特别好，就是隔音差了点。",
    "骑手态度恶劣，外卖送到的时候汤都洒了，打电话给商家也没人接，退款申请提交了三天还在审核中，以后不会再点这家了。",
    "好吃",
    "Absolutely love it, great quality and fast shipping!",
    "The room was dirty",
    "Flight delayed three hours with no explanation, then they lost my bag and the agent at the desk just shrugged.",
    "I was charged twice for the same order and nobody answers the support line.",
    "ok",
)


# ---- the layer ----------------------------------------------------------------------------------


def test_int8_linear_is_close_to_the_fp32_layer():
    torch.manual_seed(0)
    linear = torch.nn.Linear(384, 1536)
    x = torch.randn(40, 384)
    with torch.inference_mode():
        want, got = linear(x), Int8Linear.from_linear(linear)(x)
    rel = (got - want).norm() / want.norm()
    assert got.shape == want.shape and got.dtype == torch.float32
    assert rel < 0.02  # int8 per-channel / per-token: about 1% relative error


def test_a_row_gives_the_same_bits_alone_and_among_rows_of_any_scale():
    torch.manual_seed(1)
    layer = Int8Linear.from_linear(torch.nn.Linear(384, 384))
    row = torch.randn(1, 384)
    others = torch.randn(30, 384) * 50  # large activations elsewhere must not coarsen this row's scale
    with torch.inference_mode():
        alone = layer(row)
        among = layer(torch.cat([others[:7], row, others[7:]]))[7:8]
        batched = layer(torch.stack([torch.cat([row, others[:5]]), torch.cat([others[5:10], row])]))
    assert torch.equal(alone, among)
    assert torch.equal(alone[0], batched[0, 0]) and torch.equal(alone[0], batched[1, 5])


def test_quantize_linears_replaces_every_linear_and_keeps_the_rest():
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Sequential(torch.nn.Linear(16, 4), torch.nn.LayerNorm(4)))
    quantize_linears(net)
    kinds = [type(m).__name__ for m in net.modules()]
    assert "Linear" not in kinds and kinds.count("Int8Linear") == 2 and "LayerNorm" in kinds


# ---- the real model -----------------------------------------------------------------------------


def _view(result: dict) -> tuple:
    """What a user reads off a result, scores to 3 decimals."""
    s = result["sentiment"]
    return (
        s["label"], round(s["score"], 3), round(s["confidence"], 3),
        tuple((t["id"], t["polarity"], round(t["confidence"], 3), round(t["polarity_confidence"], 3),
               (t["evidence"] or {}).get("text")) for t in result["topics"]),
        tuple((t["id"], round(t["confidence"], 3)) for t in result["touchpoints"]),
    )


@pytest.fixture(scope="module")
def int8_classifier(base_encoder_dir):
    from models.classifier.predict import Classifier

    if not (default_model_dir() / "config.json").is_file():
        pytest.fail(f"the default model is missing from {default_model_dir()}")
    return Classifier.load(default_model_dir(), base_dir=base_encoder_dir, precision="int8", triage=None)


@pytest.mark.slow
def test_an_int8_text_reads_the_same_alone_or_in_any_batch(int8_classifier):
    from models.classifier.quantize import Precision

    clf = int8_classifier
    assert clf.precision is Precision.int8
    items = [{"id": str(i), "text": t} for i, t in enumerate(TEXTS)]
    alone = [_view(clf.classify([it])[0]) for it in items]
    together = [_view(r) for r in clf.classify(items)]
    reversed_ = [_view(r) for r in clf.classify(items[::-1])][::-1]
    shuffled = items[1::2] + items[::2]
    clf.batch_size = 3  # other batch boundaries, other neighbours
    try:
        regrouped = [_view(r) for r in clf.classify(shuffled)]
    finally:
        clf.batch_size = 32
    for i, view in enumerate(alone):
        assert together[i] == view, TEXTS[i]
        assert reversed_[i] == view, TEXTS[i]
    assert regrouped == alone[1::2] + alone[::2]


@pytest.mark.slow
def test_int8_agrees_with_fp32_on_clear_reviews(int8_classifier, base_encoder_dir):
    from models.classifier.predict import Classifier

    fp32 = Classifier.load(default_model_dir(), base_dir=base_encoder_dir, triage=None)
    assert fp32.precision.value == "fp32"  # the default
    items = [{"id": str(i), "text": t} for i, t in enumerate(TEXTS)]
    for a, b, text in zip(fp32.classify(items), int8_classifier.classify(items), TEXTS, strict=True):
        assert a["sentiment"]["label"] == b["sentiment"]["label"], text
        assert abs(a["sentiment"]["score"] - b["sentiment"]["score"]) < 0.1, text
    assert int8_classifier.classify([{"id": "n", "text": TEXTS[0]}])[0]["sentiment"]["label"] == "negative"


def test_an_unknown_precision_is_refused_with_the_choices(tmp_path):
    from models.classifier.predict import Classifier
    from nlp.errors import ModelError

    with pytest.raises(ModelError, match="fp32, int8"):
        Classifier.load(tmp_path, base_dir=tmp_path, precision="int4")
