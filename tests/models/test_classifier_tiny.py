"""Tiny-model tier: the classifier's model directory and its predictor, on a 2-layer random encoder.

The numbers such a model gives mean nothing; these tests check what must hold for any model:
saving and loading, refusing broken directories, the output contract, order, errors in place and
evidence offsets into the caller's original text.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import torch
from tiny_encoder import HIDDEN, build_tiny_base

from models.classifier.config import ClassifierConfig
from models.classifier.model import CemClassifier
from models.classifier.predict import Classifier
from models.taxonomy import default_taxonomy
from nlp.errors import ModelError
from training.devscore import tokenize

TEXTS = [
    "质量太差了，用了两天就坏了，再也不买了",
    "Absolutely love it, great quality and fast shipping!",
    "The room was dirty",
    "快递太慢了，等了一个星期才到",
    "客服态度很好，耐心解答了我的问题，退款也很快到账了",
    "ok",
    "The agent was rude and hung up on me. I want my refund now!",
    "价格实惠",
]
# HTML, an entity and full-width letters: the prepared text is shorter than the original
MESSY = "<p>这款ＴＷＳ耳机的音质&amp;做工都很差！</p>客服态度也很差，退款一直没到账。"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return build_tiny_base(tmp_path_factory.mktemp("tiny") / "base", [*TEXTS, MESSY])


@pytest.fixture(scope="module")
def model(base) -> CemClassifier:
    torch.manual_seed(0)
    model = CemClassifier.from_base(base, default_taxonomy(), ClassifierConfig(head_dim=16, lora_r=4, lora_alpha=8))
    with torch.no_grad():  # as if trained: LoRA's B matrices start at zero, which would hide the adapters
        for p in model.encoder.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.3)
    return model.eval()


@pytest.fixture(scope="module")
def model_dir(model, tmp_path_factory) -> Path:
    return model.save_pretrained(tmp_path_factory.mktemp("tiny") / "model")


def copy_model(model_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(model_dir, tmp_path / "copy"))


def forward(model: CemClassifier, texts: list[str]) -> dict[str, torch.Tensor]:
    with torch.inference_mode():
        return model(**tokenize(model, texts))


def test_the_heads_are_sized_by_the_encoder_they_sit_on(model):
    # the config asked for nothing about width: the default (384) must give way to the encoder's
    assert model.config.hidden_size == HIDDEN
    tax = default_taxonomy()
    assert model.topic_protos.shape == (len(tax.leaf_ids), HIDDEN)
    assert torch.allclose(model.topic_protos.norm(dim=-1), torch.ones(len(tax.leaf_ids)), atol=1e-5)
    out = forward(model, TEXTS[:3])
    assert out["topics"].shape == (3, len(tax.leaf_ids)) and out["polarity"].shape == (3, len(tax.leaf_ids), 3)
    assert out["touchpoints"].shape == (3, len(tax.touchpoint_ids))


def test_a_saved_model_loads_back_with_identical_outputs(model, model_dir, base):
    assert {p.name for p in model_dir.iterdir()} >= {"config.json", "adapter", "heads.safetensors", "taxonomy.yaml"}
    loaded = CemClassifier.from_pretrained(model_dir, base_dir=base)
    assert loaded.config == model.config
    a, b = forward(model, TEXTS), forward(loaded, TEXTS)
    for key in ("sentiment", "topics", "polarity", "touchpoints", "topic_attention"):
        assert torch.equal(a[key], b[key]), key
    with loaded.encoder.disable_adapter():  # the adapters were saved and do matter
        assert not torch.allclose(forward(loaded, TEXTS)["sentiment"], a["sentiment"])


def test_a_student_keeps_the_layers_it_names_and_loads_back_the_same(base, tmp_path):
    torch.manual_seed(0)
    student = CemClassifier.from_base(
        base, default_taxonomy(), ClassifierConfig(head_dim=16, lora_r=4, lora_alpha=8, encoder_layers=(1,)),
    ).eval()
    full = CemClassifier.from_base(base, default_taxonomy(), ClassifierConfig(head_dim=16, lora_r=4, lora_alpha=8))
    assert len(student.encoder.base_model.model.encoder.layer) == 1
    kept = student.encoder.base_model.model.encoder.layer[0].attention.self.query.base_layer.weight
    assert torch.equal(kept, full.encoder.base_model.model.encoder.layer[1].attention.self.query.base_layer.weight)
    loaded = CemClassifier.from_pretrained(student.save_pretrained(tmp_path / "student"), base_dir=base)
    assert loaded.config.encoder_layers == (1,)
    a, b = forward(student, TEXTS), forward(loaded, TEXTS)
    for key in ("sentiment", "topics", "touchpoints"):
        assert torch.equal(a[key], b[key]), key
    (res,) = Classifier.load(tmp_path / "student", base_dir=base, precision="fp32", triage=None).classify(
        [{"id": "s", "text": TEXTS[0]}]
    )
    assert res["sentiment"]["label"] in ("negative", "neutral", "positive")


def test_a_student_naming_layers_the_base_lacks_is_refused(base):
    with pytest.raises(ModelError, match=r"layers \[0, 5\].*has 2"):
        CemClassifier.from_base(base, default_taxonomy(), ClassifierConfig(encoder_layers=(0, 5)))


def test_merged_loading_gives_bit_for_bit_what_peft_merging_gives(model_dir, base):
    """Inference loads the encoder with the adapters merged in: the same weights and outputs."""
    via_peft = CemClassifier.from_pretrained(model_dir, base_dir=base)
    via_peft.encoder = via_peft.encoder.merge_and_unload()
    merged = CemClassifier.from_pretrained(model_dir, base_dir=base, merged=True)
    assert type(merged.encoder) is type(via_peft.encoder) and not hasattr(merged.encoder, "peft_config")
    a, b = via_peft.state_dict(), merged.state_dict()
    assert a.keys() == b.keys() and [k for k in a if not torch.equal(a[k], b[k])] == []
    out_a, out_b = forward(via_peft, TEXTS), forward(merged, TEXTS)
    for key in ("sentiment", "topics", "polarity", "touchpoints", "topic_attention"):
        assert torch.equal(out_a[key], out_b[key]), key


def test_an_edited_taxonomy_yaml_is_refused_with_the_fix(model_dir, base, tmp_path):
    broken = copy_model(model_dir, tmp_path)
    path = broken / "taxonomy.yaml"
    text = path.read_text(encoding="utf-8")
    assert "质量太差了用两天就坏了" in text
    path.write_text(text.replace("质量太差了用两天就坏了", "质量很差"), encoding="utf-8")
    with pytest.raises(ModelError) as err:
        CemClassifier.from_pretrained(broken, base_dir=base)
    assert "does not match" in err.value.message and "Restore taxonomy.yaml or retrain" in err.value.message


@pytest.mark.parametrize("missing", ["heads.safetensors", "adapter", "taxonomy.yaml"])
def test_an_incomplete_model_directory_says_what_it_lacks(model_dir, base, tmp_path, missing):
    broken = copy_model(model_dir, tmp_path)
    target = broken / missing
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(ModelError) as err:
        CemClassifier.from_pretrained(broken, base_dir=base)
    assert missing in err.value.message and "incomplete" in err.value.message


def test_a_model_on_the_wrong_base_encoder_is_refused(model_dir, base, tmp_path):
    other = copy_model(model_dir, tmp_path)
    ClassifierConfig.load(other).with_(hidden_size=384).save(other)  # as trained on the real e5-small
    with pytest.raises(ModelError, match="hidden size 384"):
        CemClassifier.from_pretrained(other, base_dir=base)
    with pytest.raises(ModelError, match="verbatim setup"):
        CemClassifier.from_pretrained(model_dir, base_dir=tmp_path / "no-base")


def test_a_corrupt_heads_file_is_a_model_error(model_dir, base, tmp_path):
    broken = copy_model(model_dir, tmp_path)
    (broken / "heads.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="Cannot read the weights"):
        CemClassifier.from_pretrained(broken, base_dir=base)


# --------------------------------------------------------------------------- the predictor
@pytest.fixture(scope="module")
def classifier(model_dir, base) -> Classifier:
    return Classifier.load(model_dir, base_dir=base, quantize=False, batch_size=3)


@pytest.fixture(scope="module")
def open_classifier(model_dir, base, tmp_path_factory) -> Classifier:
    """Thresholds at zero (set in config.json, as a user would): every node is reported."""
    directory = Path(shutil.copytree(model_dir, tmp_path_factory.mktemp("open") / "model"))
    config = ClassifierConfig.load(directory)
    config.with_(thresholds={**config.thresholds, "topics": 0.0, "touchpoints": 0.0}).save(directory)
    return Classifier.load(directory, base_dir=base, quantize=False, batch_size=3)


def test_each_result_has_the_contract_shape(open_classifier):
    tax = default_taxonomy()
    items = [{"id": f"r{i}", "text": t} for i, t in enumerate(TEXTS)]
    results = open_classifier.classify(items)
    assert len(results) == len(items)
    for item, res in zip(items, results, strict=True):
        assert set(res) == {"id", "lang", "sentiment", "topics", "touchpoints", "primary_touchpoint", "triage", "model"}
        assert res["id"] == item["id"] and res["model"] == "verbatim-cem@0.0.0"
        assert res["lang"] == ("zh" if any("\u4e00" <= ch <= "\u9fff" for ch in item["text"]) else "en")
        s = res["sentiment"]
        assert s["label"] in ("negative", "neutral", "positive") and -1 <= s["score"] <= 1 and 0 < s["confidence"] <= 1
        if s["label"] != "neutral":  # score = p(positive) - p(negative) agrees with the label
            assert (s["score"] > 0) == (s["label"] == "positive")
        assert [t["id"] for t in res["topics"]] and {t["id"] for t in res["topics"]} == set(tax.leaf_ids)
        confidences = [t["confidence"] for t in res["topics"]]
        assert confidences == sorted(confidences, reverse=True)
        for topic in res["topics"]:
            assert topic["polarity"] in ("negative", "neutral", "positive") and 0 <= topic["confidence"] <= 1
            assert topic["zero_shot"] is True  # this model has seen no labels: every node works from its text
            ev = topic["evidence"]
            assert item["text"][ev["start"]:ev["end"]] == ev["text"] and ev["text"].strip()
        assert [t["id"] for t in res["touchpoints"]] and {t["id"] for t in res["touchpoints"]} == set(tax.touchpoint_ids)
        assert res["primary_touchpoint"] == res["touchpoints"][0]["id"]
        assert res["triage"]["priority"] in ("P1", "P2", "P3", "P4") and res["triage"]["reasons"]


def test_default_thresholds_report_only_confident_nodes(classifier):
    (res,) = classifier.classify([{"id": "a", "text": TEXTS[0]}])
    assert all(t["confidence"] >= 0.5 for t in res["topics"])
    assert all(t["confidence"] >= 0.5 for t in res["touchpoints"])
    assert res["primary_touchpoint"] == (res["touchpoints"][0]["id"] if res["touchpoints"] else None)


def signature(res: dict) -> tuple:
    return (res["id"], res["sentiment"]["label"], [(t["id"], t["evidence"]) for t in res["topics"]]), (
        res["sentiment"]["score"], [t["confidence"] for t in res["topics"]])


def test_results_come_back_in_input_order_whatever_the_batching(open_classifier):
    items = [{"id": f"r{i}", "text": t} for i, t in enumerate(TEXTS)]
    alone = {it["id"]: open_classifier.classify([it])[0] for it in items}
    assert len({r["sentiment"]["score"] for r in alone.values()}) > 3  # the texts are told apart
    for seed in (1, 2):
        shuffled = items[:]
        random.Random(seed).shuffle(shuffled)
        results = open_classifier.classify(shuffled)  # batches of 3, sorted by length inside
        assert [r["id"] for r in results] == [it["id"] for it in shuffled]
        for res in results:
            (key, scores), (key_alone, scores_alone) = signature(res), signature(alone[res["id"]])
            assert key[0] == key_alone[0] and key[1] == key_alone[1]
            assert dict(key[2]) == dict(key_alone[2])  # each topic's evidence, batched as alone
            assert scores[0] == pytest.approx(scores_alone[0], abs=2e-3)
            assert dict(zip([t for t, _ in key[2]], scores[1], strict=True)) == pytest.approx(
                dict(zip([t for t, _ in key_alone[2]], scores_alone[1], strict=True)), abs=2e-3)


def test_a_bad_item_gets_an_error_in_its_place_and_the_rest_classify(classifier):
    items = [
        {"id": "ok1", "text": TEXTS[0]},
        {"id": "blank", "text": " \n\t "},
        {"id": "ok2", "text": TEXTS[1], "lang": "en"},
        {"id": "french", "text": "Le colis est arrivé en retard", "lang": "fr"},
        {"id": "ok3", "text": TEXTS[3], "lang": "zh"},
    ]
    done: list[int] = []
    results = classifier.classify(items, on_batch=done.append)
    assert [r["id"] for r in results] == [it["id"] for it in items]
    assert done[0] == 2 and sum(done) == len(items)  # progress counts the rejected too, first
    for res in (results[1], results[3]):
        assert set(res) == {"id", "error"} and res["error"]["code"] == "invalid_input"
    assert "empty" in results[1]["error"]["message"]
    assert "'fr'" in results[3]["error"]["message"] and "zh" in results[3]["error"]["message"]
    assert all("sentiment" in results[i] for i in (0, 2, 4))
    assert classifier.classify([{"id": "x", "text": ""}])[0]["error"]["code"] == "invalid_input"
    assert classifier.classify([]) == []


def test_evidence_offsets_index_the_original_text(open_classifier):
    (res,) = open_classifier.classify([{"id": "m", "text": MESSY}])
    clauses = {  # the three clauses, as spans of the original (HTML, entity, full-width letters kept)
        (MESSY.index("这款"), MESSY.index("！")),
        (MESSY.index("客服"), MESSY.index("，")),
        (MESSY.index("退款"), MESSY.index("。")),
    }
    spans = set()
    for topic in res["topics"]:
        ev = topic["evidence"]
        assert MESSY[ev["start"]:ev["end"]] == ev["text"]
        spans.add((ev["start"], ev["end"]))
    assert spans and spans <= clauses  # never a span of the prepared text, e.g. (0, 16) for the first clause


def test_a_long_text_is_read_as_overlapping_windows_that_cover_all_of_it():
    from models.classifier.predict import _windows

    head, max_length = 4, 12  # start token and a 3-token prefix; 7 content tokens a window
    ids = [0, 90, 91, 92, *range(100, 120), 2]
    special = [1, 0, 0, 0, *[0] * 20, 1]
    offsets = [(0, 0), (0, 3), (3, 5), (5, 7), *[(7 + 2 * k, 9 + 2 * k) for k in range(20)], (0, 0)]
    wins = _windows(ids, special, offsets, head=head, max_length=max_length)
    assert len(wins) > 1 and all(w.windows == len(wins) for w in wins)
    covered = set()
    for w in wins:
        assert len(w.ids) <= max_length and w.ids[:head] == ids[:head] and w.ids[-1] == 2
        assert len(w.ids) == len(w.special) == len(w.offsets)
        content = w.ids[head:-1]
        assert content == list(range(content[0], content[0] + len(content)))  # a contiguous slice
        assert [w.offsets[k] for k in range(head, len(w.ids) - 1)] == [offsets[ids.index(t)] for t in content]
        covered |= set(content)
    assert covered == set(range(100, 120))  # every content token is read
    assert wins[-1].ids[-2] == 119  # the last window ends where the text ends
    assert set(wins[0].ids) & set(wins[1].ids) - set(ids[:head]) - {2}  # neighbours overlap
    short = _windows(ids[:10] + [2], special[:10] + [1], offsets[:10] + [(0, 0)], head=head, max_length=max_length)
    assert len(short) == 1 and short[0].ids == ids[:10] + [2]  # a text that fits is itself


@pytest.fixture(scope="module")
def short_window(model_dir, base, tmp_path_factory) -> Classifier:
    """The tiny model reading at most 16 tokens at a time, thresholds at zero."""
    directory = Path(shutil.copytree(model_dir, tmp_path_factory.mktemp("short") / "model"))
    config = ClassifierConfig.load(directory)
    config.with_(max_length=16, thresholds={**config.thresholds, "topics": 0.0, "touchpoints": 0.0}).save(directory)
    return Classifier.load(directory, base_dir=base, quantize=False, batch_size=3)


def test_a_text_longer_than_the_model_reads_gets_one_result_from_all_its_windows(short_window):
    long = "快递太慢了，等了一个星期才到。" * 3 + "客服也不回复，打了三次电话都没人接，最后只能申请退款。"
    items = [{"id": "long", "text": long}, {"id": "short", "text": TEXTS[1]}, {"id": "long-en", "text": TEXTS[0] * 4}]
    results = short_window.classify(items)
    assert [r["id"] for r in results] == ["long", "short", "long-en"]
    seen_tail = False
    for item, res in zip(items, results, strict=True):
        assert -1 <= res["sentiment"]["score"] <= 1 and res["topics"] and res["touchpoints"]
        for topic in res["topics"]:
            ev = topic["evidence"]
            assert item["text"][ev["start"]:ev["end"]] == ev["text"]
            seen_tail |= item["id"] == "long" and ev["start"] >= long.index("客服")
    assert seen_tail  # evidence can come from past the first window
    # a long text's result does not depend on what it is classified with
    (alone,) = short_window.classify([items[0]])
    assert alone["sentiment"]["score"] == pytest.approx(results[0]["sentiment"]["score"], abs=2e-3)
    assert {t["id"]: t["confidence"] for t in alone["topics"]} == pytest.approx(
        {t["id"]: t["confidence"] for t in results[0]["topics"]}, abs=2e-3)
    assert {t["id"]: t["evidence"]["start"] for t in alone["topics"]} == {
        t["id"]: t["evidence"]["start"] for t in results[0]["topics"]}
