"""Tiny-model tier of training: the real loop on a dozen lines and a 2-layer random encoder.

Checks what a user of ``verbatim train`` relies on: the model directory it writes, calibrated
temperatures, a loss that goes down, and that rerunning the command resumes exactly where a
killed or finished run stopped.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from models.classifier.config import ClassifierConfig
from models.classifier.model import CemClassifier
from models.taxonomy import default_taxonomy
from training.config import TrainConfig
from training.devscore import collect, fit_temperatures, fit_zero_shot, tokenize
from training.loss import multitask_loss
from training.pools import save_pools
from training.targets import SENT_INDEX, TrainItem
from training.trainer import train


def _tiny_encoder():
    """The tiny-base builder shared with tests/models (not a package, so loaded by path)."""
    if "tiny_encoder" in sys.modules:
        return sys.modules["tiny_encoder"]
    path = Path(__file__).resolve().parents[1] / "models" / "tiny_encoder.py"
    spec = importlib.util.spec_from_file_location("tiny_encoder", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["tiny_encoder"] = module
    spec.loader.exec_module(module)
    return module


TAX = default_taxonomy()
T, P = TAX.leaf_ids, TAX.touchpoint_ids
ZH = [
    ("质量太差了，用了两天就坏了", "negative", ["product.quality"], ["use"]),
    ("快递太慢了，等了一个星期", "negative", ["delivery.timeliness"], ["fulfil"]),
    ("客服态度很好，耐心解答", "positive", ["service.attitude"], ["support"]),
    ("价格实惠，性价比高", "positive", ["price.value"], ["purchase"]),
    ("房间很脏，床单有污渍", "negative", ["environment.cleanliness"], []),
    ("东西还行吧，一般般", "neutral", [], []),
]
EN = [
    ("The room was dirty and smelled bad", "negative", ["environment.cleanliness"], []),
    ("Great quality, it feels solid", "positive", ["product.quality"], ["use"]),
    ("My order arrived two weeks late", "negative", ["delivery.timeliness"], ["fulfil"]),
    ("The agent was rude and hung up on me", "negative", ["service.attitude"], ["support"]),
    ("Good value for the price", "positive", ["price.value"], ["purchase"]),
    ("It is an ordinary phone case", "neutral", [], []),
]
CONFIG = TrainConfig(
    steps=20, batch_size=4, lr=1e-2, head_lr=3e-2, warmup_steps=4, eval_every=5, checkpoint_every=5,
    node_dropout=0.3, max_length=64, lora_r=4, lora_alpha=8, mixture={"toy_zh": 0.5, "toy_en": 0.5},
)


def item(text: str, source: str, sentiment: str, topics: list[str], tps: list[str]) -> TrainItem:
    tt = np.zeros(len(T), np.float32)
    tt[[T.index(t) for t in topics]] = 1.0
    pt = np.zeros(len(P), np.float32)
    pt[[P.index(t) for t in tps]] = 1.0
    return TrainItem(
        text=text, source=source, sentiment=SENT_INDEX[sentiment], topic_target=tt, topic_mask=np.ones(len(T), bool),
        polarity=[((T.index(t),), SENT_INDEX[sentiment]) for t in topics], tp_target=pt, tp_mask=np.ones(len(P), bool),
    )


TRAIN = {"toy_zh": [item(t, "toy_zh", *r) for t, *r in ZH], "toy_en": [item(t, "toy_en", *r) for t, *r in EN]}
DEV = {name: items[:3] for name, items in TRAIN.items()}  # mechanics only: this tier reports no quality


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("tiny-train")
    base = _tiny_encoder().build_tiny_base(root / "base", [t for t, *_ in ZH + EN])
    pools = root / "pools.json.gz"
    save_pools(pools, TRAIN, DEV)
    return root, base, pools


def run(setup, name: str, config: TrainConfig = CONFIG) -> Path:
    root, base, pools = setup
    return train(config, root / name, base_dir=base, pools_file=pools, progress=False)


@pytest.fixture(scope="module")
def trained(setup) -> Path:
    return run(setup, "full")


def weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "checkpoint" / "trainable.safetensors"))


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs by {float((a[key] - b[key]).abs().max())}"


def test_training_writes_a_complete_model_directory(trained, setup):
    names = {p.name for p in trained.iterdir()}
    assert {"config.json", "adapter", "heads.safetensors", "taxonomy.yaml", "checkpoint", "best"} <= names
    config = ClassifierConfig.load(trained)
    assert config.hidden_size == 32 and config.model_id == "verbatim-cem@0.1.0"
    assert config.trained_topic_ids == T and config.trained_touchpoint_ids == P
    assert [h["step"] for h in config.training["history"]] == [5, 10, 15, 20]
    assert config.training["config"] == json.loads(json.dumps(CONFIG.to_dict()))
    assert config.training["data"] == ["toy_en", "toy_zh"]
    assert config.metrics["step"] in (5, 10, 15, 20) and set(config.metrics["dev"]) == {"toy_zh", "toy_en"}
    assert "torch" in config.package_versions
    model = CemClassifier.from_pretrained(trained, base_dir=setup[1])
    assert model.config == config


def test_temperatures_are_fitted_on_dev(trained, setup):
    model = CemClassifier.from_pretrained(trained, base_dir=setup[1])
    dev = [it for items in DEV.values() for it in items]
    logits = collect(model, dev)
    temps = model.config.temperatures
    assert set(temps) == {"sentiment", "topics", "touchpoints", "polarity"}
    assert temps == pytest.approx({**temps, **fit_temperatures(dev, logits)})
    assert all(0.4 <= t <= 4.0 for t in temps.values())
    # the chosen topic temperature is no worse on dev than none at all
    x = np.concatenate([logits["topics"][i][it.topic_mask] for i, it in enumerate(dev)])
    y = np.concatenate([it.topic_target[it.topic_mask] for it in dev])

    def bce(t: float) -> float:
        p = np.clip(1 / (1 + np.exp(-x / t)), 1e-7, 1 - 1e-7)
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())

    # (within float noise: dev logits recomputed here may differ from training's in the 5th digit
    # with another thread count, and near t = 1 the two losses are that close)
    assert bce(temps["topics"]) <= bce(1.0) * (1 + 1e-3)


def test_the_zero_shot_path_is_calibrated_on_dev(trained, setup):
    """Every trained node scored from its text alone (as a new node is) on dev: the stored
    calibration is the fit there, and it is no worse on dev than the plain temperature."""
    model = CemClassifier.from_pretrained(trained, base_dir=setup[1])
    dev = [it for items in DEV.values() for it in items]
    text = collect(model, dev, text_only=True)
    assert not np.allclose(text["topics"], collect(model, dev)["topics"])  # the learned rows matter
    calibration, report = fit_zero_shot(dev, text)
    assert set(model.config.zero_shot_calibration) == set(calibration) and "topics" in calibration
    for head, fitted in calibration.items():
        assert model.config.zero_shot_calibration[head] == pytest.approx(fitted, abs=1e-3)
    assert set(model.config.metrics["zero_shot_dev"]) == set(report) and "topics" in report
    x = np.concatenate([text["topics"][i][it.topic_mask] for i, it in enumerate(dev)])
    y = np.concatenate([it.topic_target[it.topic_mask] for it in dev])
    scale, shift = calibration["topics"]

    def bce(p: np.ndarray) -> float:
        p = np.clip(p, 1e-7, 1 - 1e-7)
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())

    assert bce(1 / (1 + np.exp(-(scale * x + shift)))) <= bce(1 / (1 + np.exp(-x / model.config.temperatures["topics"])))


def test_fit_zero_shot_moves_an_underconfident_path_up():
    """Positives whose text-only logits sit just under 0 (found too rarely at 0.5) get a shift up."""
    rng = np.random.default_rng(0)
    n, nodes = 400, 5
    gold = rng.random((n, nodes)) < 0.2
    logits = np.where(gold, rng.normal(-0.7, 1.0, (n, nodes)), rng.normal(-5.0, 1.0, (n, nodes))).astype(np.float32)
    items = [TrainItem(text="x", source="t", topic_target=g.astype(np.float32), topic_mask=np.ones(nodes, bool),
                       tp_target=np.zeros(2, np.float32), tp_mask=np.zeros(2, bool)) for g in gold]
    calibration, report = fit_zero_shot(items, {"topics": logits, "touchpoints": np.zeros((n, 2), np.float32)})
    assert set(calibration) == {"topics"}  # no touchpoint targets: nothing to fit there
    assert calibration["topics"][1] > 0.5
    assert report["topics"]["calibrated"]["recall"] > report["topics"]["uncalibrated"]["recall"]
    assert report["topics"]["calibrated"]["f1"] > report["topics"]["uncalibrated"]["f1"]


def loss_on_items(model) -> float:
    items = [it for pool in TRAIN.values() for it in pool]
    model.eval()
    with torch.inference_mode():
        return float(multitask_loss(model(**tokenize(model, [it.text for it in items])), items)[0])


def untrained(setup) -> CemClassifier:
    torch.manual_seed(CONFIG.seed)
    return CemClassifier.from_base(setup[1], TAX, ClassifierConfig(lora_r=4, lora_alpha=8))


def test_training_lowers_the_loss_on_its_items(trained, setup):
    before = loss_on_items(untrained(setup))
    after = loss_on_items(CemClassifier.from_pretrained(trained, base_dir=setup[1]))
    # the model kept is the best on a tiny dev set, which may be an early step (ties in the dev
    # score break by float rounding, which depends on torch's thread count): ask only for a drop
    assert after < before, (before, after)


def test_training_under_cpu_bf16_autocast_learns_too(trained, setup):
    half = run(setup, "bf16", dataclasses.replace(CONFIG, cpu_bf16=True))
    fp32, bf16 = weights(trained), weights(half)
    assert any(not torch.equal(fp32[k], bf16[k]) for k in fp32)  # the option changed the arithmetic
    assert loss_on_items(CemClassifier.from_pretrained(half, base_dir=setup[1])) < loss_on_items(untrained(setup))


def test_a_trained_model_marks_no_topic_zero_shot(trained, setup):
    from models.classifier.predict import Classifier

    clf = Classifier.load(trained, base_dir=setup[1], quantize=False, triage=None)
    (res,) = clf.classify([{"id": "a", "text": "质量太差了，用了两天就坏了"}])
    assert all("zero_shot" not in t for t in res["topics"])


class Killed(Exception):
    """Stands in for a run killed after its step-10 checkpoint."""


def test_rerunning_a_killed_run_resumes_and_matches_an_uninterrupted_one(trained, setup, monkeypatch, caplog):
    import training.trainer as trainer

    real_next, calls = trainer.MixtureSampler.next, {"n": 0}

    def dies_at_step_11(self):
        calls["n"] += 1
        if calls["n"] > 10:
            raise Killed
        return real_next(self)

    monkeypatch.setattr(trainer.MixtureSampler, "next", dies_at_step_11)
    with pytest.raises(Killed):
        run(setup, "killed")
    out = setup[0] / "killed"
    assert json.loads((out / "checkpoint" / "state.json").read_text())["step"] == 10
    assert not (out / "config.json").exists()  # no half-finished model is passed off as the result
    monkeypatch.setattr(trainer.MixtureSampler, "next", real_next)
    with caplog.at_level(logging.INFO, logger="training.trainer"):
        run(setup, "killed")
    assert "resumed from step 10" in caplog.text
    assert [h["step"] for h in ClassifierConfig.load(out).training["history"]] == [5, 10, 15, 20]
    assert_same(weights(out), weights(trained))  # same weights, optimizer moments, LR and dropout stream
    assert_same(load_file(str(out / "heads.safetensors")), load_file(str(trained / "heads.safetensors")))
    assert ClassifierConfig.load(out).temperatures == ClassifierConfig.load(trained).temperatures


def test_rerunning_with_more_steps_continues_a_finished_run(setup, caplog):
    # warm-up longer than the run keeps the learning-rate schedule independent of the total steps,
    # so a 10-step run extended to 20 must equal a 20-step run (otherwise the cosine decay differs)
    flat = dataclasses.replace(CONFIG, warmup_steps=100)
    run(setup, "short", dataclasses.replace(flat, steps=10))
    with caplog.at_level(logging.INFO, logger="training.trainer"):
        extended = run(setup, "short", flat)
    assert "resumed from step 10" in caplog.text
    assert [h["step"] for h in ClassifierConfig.load(extended).training["history"]] == [5, 10, 15, 20]
    assert_same(weights(extended), weights(run(setup, "long", flat)))


def test_joined_texts_change_training_and_a_resumed_run_joins_the_same_ones(trained, setup, caplog):
    flat = dataclasses.replace(CONFIG, warmup_steps=100, pair_rate=0.5)
    run(setup, "pairs-short", dataclasses.replace(flat, steps=10))
    with caplog.at_level(logging.INFO, logger="training.trainer"):
        extended = run(setup, "pairs-short", flat)
    assert "resumed from step 10" in caplog.text
    whole = weights(run(setup, "pairs-long", flat))
    assert_same(weights(extended), whole)  # joined per step from the seed: a resumed run joins the same texts
    plain = weights(run(setup, "pairs-none", dataclasses.replace(flat, pair_rate=0.0)))
    assert any(not torch.equal(plain[k], v) for k, v in whole.items())


def test_a_checkpoint_from_before_a_new_setting_resumes_while_the_setting_keeps_its_default(setup, caplog):
    import shutil

    run(setup, "old-ckpt", dataclasses.replace(CONFIG, steps=10))
    out = setup[0] / "old-ckpt"
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    del state["config"]["pair_rate"]  # written by a version without joined texts
    (out / "checkpoint" / "state.json").write_text(json.dumps(state))
    shutil.copytree(out, setup[0] / "old-ckpt-2")
    with caplog.at_level(logging.INFO, logger="training.trainer"):
        run(setup, "old-ckpt", CONFIG)
    assert "resumed from step 10" in caplog.text
    from nlp.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="differs in: pair_rate"):
        run(setup, "old-ckpt-2", dataclasses.replace(CONFIG, pair_rate=0.5))


def test_a_stage_that_reads_the_prefix_by_offsets_says_so_and_its_children_keep_it(trained, setup):
    assert ClassifierConfig.load(trained).prefix_mask == "tokens"  # the default: how 0.1-0.3 trained
    stage = run(setup, "offsets", dataclasses.replace(CONFIG, init_from=str(trained), steps=5, prefix_mask="offsets"))
    assert ClassifierConfig.load(stage).prefix_mask == "offsets"
    child = run(setup, "offsets-child", dataclasses.replace(CONFIG, init_from=str(stage), steps=5))
    assert ClassifierConfig.load(child).prefix_mask == "offsets"


def test_a_second_stage_starts_from_its_parent(trained, setup):
    # at a learning rate of 0 nothing moves, so the second stage must be its parent exactly
    still = dataclasses.replace(CONFIG, init_from=str(trained), lr=0.0, head_lr=0.0, steps=5, version="0.2.0")
    child_dir = run(setup, "stage2", still)
    child = ClassifierConfig.load(child_dir)
    assert child.training["parent"] == ClassifierConfig.load(trained).model_id
    assert child.model_id == "verbatim-cem@0.2.0" and child.training["config"]["init_from"] == str(trained)
    dev = [it for items in DEV.values() for it in items]
    ours = collect(CemClassifier.from_pretrained(child_dir, base_dir=setup[1]), dev)
    parents = collect(CemClassifier.from_pretrained(trained, base_dir=setup[1]), dev)
    for head in ("sentiment", "topics", "touchpoints"):
        np.testing.assert_array_equal(np.asarray(ours[head]), np.asarray(parents[head]))


def test_sampler_seed_draws_other_batches_and_defaults_to_the_seed(trained, setup):
    # a later stage keeps its parent's seed (the dev split) and draws other batches with sampler_seed
    same = run(setup, "sampler-same", dataclasses.replace(CONFIG, sampler_seed=CONFIG.seed))
    assert_same(weights(trained), weights(same))
    other = weights(run(setup, "sampler-other", dataclasses.replace(CONFIG, sampler_seed=CONFIG.seed + 1)))
    assert any(not torch.equal(other[k], v) for k, v in weights(trained).items())


def test_a_second_stage_needs_the_parents_adapter_shape(trained, setup):
    from nlp.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="lora_r"):
        run(setup, "stage2-bad", dataclasses.replace(CONFIG, init_from=str(trained), lora_r=8))


def test_resuming_with_another_config_is_refused(trained, setup):
    from nlp.errors import InvalidInputError

    # the finished run's checkpoint was made with CONFIG: other data or rates must not mix into it
    with pytest.raises(InvalidInputError, match=r"differs in: lr\b"):
        run(setup, "full", dataclasses.replace(CONFIG, lr=5e-3))
    assert ClassifierConfig.load(trained).training["config"]["lr"] == CONFIG.lr


def test_a_config_file_naming_a_missing_start_model_is_refused(tmp_path):
    from nlp.errors import InvalidInputError

    path = tmp_path / "stage.yaml"
    path.write_text("init_from: nowhere/model\nmixture: {waimai_10k: 1.0}\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="nowhere/model"):
        TrainConfig.from_yaml(path)


def test_distillation_is_at_its_minimum_where_the_student_matches_the_teacher():
    from training.loss import distill_loss

    torch.manual_seed(0)
    shapes = {"sentiment": (4, 3), "topics": (4, len(T)), "touchpoints": (4, len(P)), "polarity": (4, len(T), 3)}
    teacher = {k: torch.randn(*s) * 3 for k, s in shapes.items()}
    same = {k: v.clone().requires_grad_(True) for k, v in teacher.items()}
    distill_loss(same, teacher)[0].backward()
    assert all(float(same[k].grad.abs().max()) < 1e-6 for k in shapes)
    moved = {k: (v + torch.randn_like(v)) for k, v in teacher.items()}
    assert float(distill_loss(moved, teacher)[0]) > float(distill_loss(same, teacher)[0]) + 0.1


def test_a_distilled_student_ends_closer_to_its_teacher(trained, setup):
    from training.loss import distill_loss

    student = dataclasses.replace(CONFIG, encoder_layers=(1,), eval_every=20, checkpoint_every=20)
    plain = run(setup, "student-plain", student)
    taught = run(setup, "student-taught", dataclasses.replace(student, teacher=str(trained), distill_weight=5.0))
    assert ClassifierConfig.load(taught).training["teacher"] == ClassifierConfig.load(trained).model_id
    texts = [it.text for pool in TRAIN.values() for it in pool]
    teacher = CemClassifier.from_pretrained(trained, base_dir=setup[1])

    def gap(directory: Path) -> float:
        model = CemClassifier.from_pretrained(directory, base_dir=setup[1])
        with torch.inference_mode():
            return float(distill_loss(model(**tokenize(model, texts)), teacher(**tokenize(teacher, texts)))[0])

    assert gap(taught) < gap(plain)


@pytest.mark.parametrize(("line", "says"), [
    ("encoder_layers: [1, 1, 3]", "distinct layer numbers"),
    ("encoder_layers: [one, two]", "distinct layer numbers"),
    ("encoder_layers: [-1]", "distinct layer numbers"),
    ("distill_temperature: 0", "distill_temperature > 0"),
])
def test_a_config_with_impossible_student_settings_is_refused(tmp_path, line, says):
    from nlp.errors import InvalidInputError

    path = tmp_path / "student.yaml"
    path.write_text(f"{line}\nmixture: {{waimai_10k: 1.0}}\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=says):
        TrainConfig.from_yaml(path)

