"""ClassifierConfig: config.json round trip and clear errors for directories that are not models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.classifier import default_model_dir
from models.classifier.config import ClassifierConfig
from nlp.errors import ModelError


def test_config_survives_a_round_trip_with_its_label_maps(tmp_path):
    config = ClassifierConfig(
        version="1.2.3", hidden_size=32, head_dim=16, topic_ids=("product.quality", "delivery.timeliness"),
        touchpoint_ids=("fulfil",), trained_topic_ids=("product.quality",), taxonomy_hash="ab" * 32,
        temperatures={"sentiment": 1.3, "topics": 0.8, "touchpoints": 1.0, "polarity": 1.1},
        metrics={"dev": {"waimai_10k": {"sentiment_acc": 0.9}}}, training={"config": {"steps": 20}},
        zero_shot_calibration={"topics": [0.97, 0.56]},
    )
    config.save(tmp_path)
    loaded = ClassifierConfig.load(tmp_path)
    assert loaded == config
    assert isinstance(loaded.topic_ids, tuple) and isinstance(loaded.lora_targets, tuple)
    assert loaded.model_id == "verbatim-cem@1.2.3"


def test_a_zero_shot_node_is_calibrated_apart_from_trained_ones():
    """A node the heads never saw labels for (a tenant's new one) scores from its text alone and
    gets its own calibration; trained nodes keep the head's temperature."""
    ids = ("product.quality", "product.safety")
    config = ClassifierConfig(topic_ids=ids, trained_topic_ids=ids[:1], touchpoint_ids=("use",),
                              temperatures={"topics": 2.0, "touchpoints": 1.0})
    logits = np.array([[0.0, 0.0], [2.0, -1.0]])
    plain = config.node_probabilities("topics", logits)
    assert plain == pytest.approx(1 / (1 + np.exp(-logits / 2.0)))  # no calibration: the temperature
    calibrated = config.with_(zero_shot_calibration={"topics": [1.0, 1.0]}).node_probabilities("topics", logits)
    assert calibrated[:, 0] == pytest.approx(plain[:, 0])  # the trained node is unchanged
    assert calibrated[:, 1] == pytest.approx(1 / (1 + np.exp(-(logits[:, 1] + 1.0))))
    # touchpoints without a calibration of their own: every node by the temperature
    assert config.with_(zero_shot_calibration={"topics": [1.0, 1.0]}).node_probabilities(
        "touchpoints", np.array([[0.3]])) == pytest.approx(1 / (1 + np.exp(-0.3)))


def test_unknown_keys_from_a_newer_version_are_ignored(tmp_path):
    data = {**ClassifierConfig(version="9.0.0").to_dict(), "some_future_field": [1, 2]}
    (tmp_path / "config.json").write_text(json.dumps(data), encoding="utf-8")
    assert ClassifierConfig.load(tmp_path).version == "9.0.0"


def test_a_directory_without_config_json_is_not_a_model(tmp_path):
    with pytest.raises(ModelError) as err:
        ClassifierConfig.load(tmp_path)
    assert "config.json" in err.value.message and "verbatim train" in err.value.message


@pytest.mark.parametrize("content, words", [
    ("{not json", "not valid JSON"),
    ("[1, 2, 3]", "JSON object"),
    (b"\xff\xfe\x00garbage", "not valid JSON"),
    ('{"hidden_size": 32, "topic_ids": 5}', "not describe"),
])
def test_a_corrupt_config_json_is_a_model_error(tmp_path, content, words):
    path = tmp_path / "config.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ModelError) as err:
        ClassifierConfig.load(tmp_path)
    assert words in err.value.message


def test_the_shipped_default_model_config_describes_the_default_taxonomy():
    from models.taxonomy import default_taxonomy

    directory = default_model_dir()
    if not (directory / "config.json").is_file():
        pytest.fail(f"the default model is missing from {directory}")
    config = ClassifierConfig.load(directory)
    tax = default_taxonomy()
    assert config.model_id == "verbatim-cem@0.4.0"
    # a tenant's new node is scored by the zero-shot path's own calibration, fitted on dev
    assert set(config.zero_shot_calibration) >= {"topics"} and config.zero_shot_calibration["topics"][0] > 0
    card = (directory / "README.md").read_text(encoding="utf-8").splitlines()[0]
    assert config.model_id in card  # the model card describes the model that ships
    assert config.topic_ids == tax.leaf_ids and config.touchpoint_ids == tax.touchpoint_ids
    assert config.taxonomy_hash == tax.content_hash()
    assert all(0.4 <= t <= 4.0 for t in config.temperatures.values())


def test_the_prefix_is_kept_from_the_heads_as_the_model_was_trained():
    # "query: Rude staff" as XLM-R's tokenizer cuts it: <s> ▁que ry : ▁Rud e ▁staff </s> <pad>;
    # "query: " alone is four tokens (▁que ry : ▁), so counting tokens hides ▁Rud, a word of the text
    offsets = np.array([[(0, 0), (0, 3), (3, 5), (5, 6), (6, 10), (10, 11), (11, 17), (0, 0), (0, 0)]])
    special = np.array([[1, 0, 0, 0, 0, 0, 0, 1, 1]])
    old = ClassifierConfig().content_special(special, offsets, prefix_tokens=4)
    assert old.tolist() == [[1, 1, 1, 1, 1, 0, 0, 1, 1]]  # models before 0.4.0 were trained so
    new = ClassifierConfig(prefix_mask="offsets").content_special(special, offsets, prefix_tokens=4)
    assert new.tolist() == [[1, 1, 1, 1, 0, 0, 0, 1, 1]]  # ▁Rud is content
    # Chinese: <s> ▁que ry : ▁ 快递 ...: the lone ▁ is the prefix's space, not content, either way
    zh = np.array([[(0, 0), (0, 3), (3, 5), (5, 6), (6, 7), (7, 9), (0, 0)]])
    zh_special = np.array([[1, 0, 0, 0, 0, 0, 1]])
    assert ClassifierConfig(prefix_mask="offsets").content_special(zh_special, zh, 4).tolist() == \
        ClassifierConfig().content_special(zh_special, zh, 4).tolist() == [[1, 1, 1, 1, 1, 0, 1]]
    assert special.tolist() == [[1, 0, 0, 0, 0, 0, 0, 1, 1]]  # the caller's array is left alone
