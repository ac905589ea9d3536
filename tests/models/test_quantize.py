"""bf16 and batch-invariant int8: a text's result must not depend on what else is classified with it.

The unit tier checks the bf16 and int8 linear layers against fp32 and row by row; the real-model
tier checks the default model end to end, alone versus in mixed zh/en batches, and against fp32.
"""

from __future__ import annotations

import pytest
import torch

from models.classifier import default_model_dir
from models.classifier.quantize import (
    BF16Linear,
    Int8Linear,
    Precision,
    convert_linears,
    quantize_linears,
    resolve_precision,
)

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


@pytest.mark.parametrize(("layer", "low", "high"), [
    (Int8Linear, 0.0, 0.02),  # int8 per-channel / per-token: about 1% relative error
    (BF16Linear, 1e-6, 0.01),  # bf16 inputs and weights (8-bit mantissa), fp32 sums: a few tenths of a percent
])
def test_a_fast_linear_layer_is_close_to_the_fp32_layer_and_hands_on_fp32(layer, low, high):
    torch.manual_seed(0)
    linear = torch.nn.Linear(384, 1536)
    x = torch.randn(40, 384)
    with torch.inference_mode():
        want, got = linear(x), layer.from_linear(linear)(x)
    rel = (got - want).norm() / want.norm()
    assert got.shape == want.shape and got.dtype == torch.float32
    assert low < rel < high


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


def test_a_bf16_row_gives_the_same_bits_alone_and_among_other_rows():
    torch.manual_seed(1)
    layer = BF16Linear.from_linear(torch.nn.Linear(384, 1536))
    row = torch.randn(1, 384)
    others = torch.randn(63, 384) * 50
    with torch.inference_mode():
        alone = layer(row)
        among = layer(torch.cat([others[:7], row, others[7:]]))[7:8]
    assert torch.equal(alone, among)


def test_convert_linears_to_bf16_and_fp32_leaves_the_module_alone():
    def net() -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Sequential(torch.nn.Linear(16, 4)))

    kinds = [type(m).__name__ for m in convert_linears(net(), "bf16").modules()]
    assert "Linear" not in kinds and kinds.count("BF16Linear") == 2
    assert [type(m).__name__ for m in convert_linears(net(), "fp32").modules()].count("Linear") == 2


def test_bf16_hands_bf16_on_only_where_attention_or_gelu_takes_it():
    from transformers import XLMRobertaConfig, XLMRobertaModel

    torch.manual_seed(0)
    config = XLMRobertaConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                              intermediate_size=64, attn_implementation="sdpa")
    net = XLMRobertaModel(config, add_pooling_layer=False).eval()
    ids = torch.randint(5, 50, (2, 9))
    with torch.inference_mode():
        want = net(ids).last_hidden_state
        convert_linears(net, "bf16")
        got = net(ids).last_hidden_state
    bf16_out = sorted(n.split(".", 3)[-1] for n, m in net.named_modules() if isinstance(m, BF16Linear) and m.bf16_output)
    assert bf16_out == ["attention.self.key", "attention.self.query", "attention.self.value", "intermediate.dense"]
    assert got.dtype == torch.float32  # layer norms and what follows stay fp32
    assert ((got - want).norm() / want.norm()) < 0.02


def test_auto_precision_is_bf16_only_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert resolve_precision("auto") is Precision.fp32
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert resolve_precision("auto") is Precision.bf16
    assert resolve_precision("int8") is Precision.int8


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


@pytest.fixture(scope="module")
def fp32_classifier(base_encoder_dir):
    from models.classifier.predict import Classifier

    return Classifier.load(default_model_dir(), base_dir=base_encoder_dir, precision="fp32", triage=None)


@pytest.mark.slow
def test_a_bf16_text_reads_the_same_alone_or_in_any_batch_and_as_in_fp32(base_encoder_dir, fp32_classifier):
    from models.classifier.predict import Classifier

    clf = Classifier.load(default_model_dir(), base_dir=base_encoder_dir, precision="bf16", triage=None)
    assert clf.precision is Precision.bf16
    items = [{"id": str(i), "text": t} for i, t in enumerate(TEXTS)]
    alone = [clf.classify([it])[0] for it in items]
    together = clf.classify(items)
    shuffled = clf.classify(items[1::2] + items[::2])
    assert [_view(r) for r in together] == [_view(r) for r in alone]
    assert [_view(r) for r in shuffled] == [_view(r) for r in alone[1::2] + alone[::2]]
    for a, b, text in zip(fp32_classifier.classify(items), alone, TEXTS, strict=True):
        assert a["sentiment"]["label"] == b["sentiment"]["label"], text
        assert abs(a["sentiment"]["score"] - b["sentiment"]["score"]) < 0.02, text
        conf_a = {t["id"]: t["confidence"] for t in a["topics"]}
        conf_b = {t["id"]: t["confidence"] for t in b["topics"]}
        for topic in conf_a.keys() & conf_b.keys():
            assert abs(conf_a[topic] - conf_b[topic]) < 0.03, (text, topic)
        for topic in conf_a.keys() ^ conf_b.keys():  # only a topic at the threshold may flip
            assert conf_a.get(topic, conf_b.get(topic)) < 0.55, (text, topic)


@pytest.mark.slow
def test_int8_agrees_with_fp32_on_clear_reviews(int8_classifier, fp32_classifier):
    fp32 = fp32_classifier
    assert fp32.precision.value == "fp32"
    items = [{"id": str(i), "text": t} for i, t in enumerate(TEXTS)]
    for a, b, text in zip(fp32.classify(items), int8_classifier.classify(items), TEXTS, strict=True):
        assert a["sentiment"]["label"] == b["sentiment"]["label"], text
        assert abs(a["sentiment"]["score"] - b["sentiment"]["score"]) < 0.1, text
    assert int8_classifier.classify([{"id": "n", "text": TEXTS[0]}])[0]["sentiment"]["label"] == "negative"


def test_an_unknown_precision_is_refused_with_the_choices(tmp_path):
    from models.classifier.predict import Classifier
    from nlp.errors import ModelError

    with pytest.raises(ModelError, match="auto, fp32, bf16, int8"):
        Classifier.load(tmp_path, base_dir=tmp_path, precision="int4")
