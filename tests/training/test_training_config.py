"""Training settings from YAML, and recipe benchmarks' label sets as taxonomies."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from nlp.errors import DataUnavailableError, InvalidInputError, TaxonomyError
from training.config import TrainConfig
from training.recipe import label_ids, task_config, task_items, task_taxonomy
from training.targets import POL_INDEX

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_default_config_loads_and_names_known_data():
    from training.data import DATASETS
    from training.pools import SEEDS

    config = TrainConfig.from_yaml(REPO / "training" / "configs" / "default.yaml")
    assert config.steps > 0 and config.mixture
    assert set(config.mixture) <= set(DATASETS) | {SEEDS}
    assert sum(config.mixture.values()) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "training" / "configs").glob("*.yaml")))
def test_every_shipped_config_loads_and_names_known_data(name):
    from models.taxonomy import default_taxonomy
    from training.data import DATASETS
    from training.pools import SEEDS
    from training.targets import TargetBuilder

    config = TrainConfig.from_yaml(REPO / "training" / "configs" / name)
    assert set(config.mixture) <= set(DATASETS) | {SEEDS}
    tax = default_taxonomy()  # its training-only rules name real topics (checked when built)
    TargetBuilder(tax, tax.leaf_ids, tax.touchpoint_ids, assume_absent=config.assume_absent,
                  weak_topics=config.weak_topics)


def test_a_small_config_reads_its_values(tmp_path):
    path = write(tmp_path, "steps: 30\nbatch_size: 4\nassume_closed: [twitter_us_airline]\n"
                           "mixture:\n  waimai_10k: 0.7\n  taxonomy-seeds: 0.3\n")
    config = TrainConfig.from_yaml(path)
    assert (config.steps, config.batch_size) == (30, 4)
    assert config.assume_closed == ("twitter_us_airline",)
    assert config.mixture == {"waimai_10k": 0.7, "taxonomy-seeds": 0.3}
    assert config.to_dict()["mixture"] == config.mixture


def test_assume_absent_reads_as_rules_and_a_data_set_outside_the_mixture_is_refused(tmp_path):
    path = write(tmp_path, "mixture: {mams_acsa: 1.0}\n"
                           "assume_absent:\n  mams_acsa:\n    delivery.courier: []\n"
                           "    environment.cleanliness: [environment]\n")
    config = TrainConfig.from_yaml(path)
    assert config.assume_absent == {"mams_acsa": {"delivery.courier": (), "environment.cleanliness": ("environment",)}}
    path = write(tmp_path, "mixture: {mams_acsa: 1.0}\nassume_absent: {semeval2014_restaurants: {delivery.courier: []}}\n")
    with pytest.raises(InvalidInputError) as err:
        TrainConfig.from_yaml(path)
    assert "semeval2014_restaurants" in err.value.message
    path = write(tmp_path, "mixture: {mams_acsa: 1.0}\nassume_absent: {mams_acsa: [delivery.courier]}\n")
    with pytest.raises(InvalidInputError) as err:
        TrainConfig.from_yaml(path)
    assert "assume_absent.mams_acsa" in err.value.message


def test_weak_topics_read_as_patterns_and_a_broken_pattern_is_named(tmp_path):
    path = write(tmp_path, "mixture: {mams_acsa: 1.0}\nweak_topics: {environment.cleanliness: {en: 'dirty|filthy'}}\n")
    assert TrainConfig.from_yaml(path).weak_topics == {"environment.cleanliness": {"en": "dirty|filthy"}}
    path = write(tmp_path, "mixture: {mams_acsa: 1.0}\nweak_topics: {environment.cleanliness: {en: '(dirty'}}\n")
    with pytest.raises(InvalidInputError) as err:
        TrainConfig.from_yaml(path)
    assert "weak_topics.environment.cleanliness.en" in err.value.message
    path = write(tmp_path, "mixture: {mams_acsa: 1.0}\nweak_topics: {environment.cleanliness: {fr: sale}}\n")
    with pytest.raises(InvalidInputError):
        TrainConfig.from_yaml(path)


def test_an_unknown_setting_is_named_with_the_known_ones(tmp_path):
    path = write(tmp_path, "stpes: 10\nmixture: {waimai_10k: 1.0}\n")
    with pytest.raises(InvalidInputError) as err:
        TrainConfig.from_yaml(path)
    assert "stpes" in err.value.message and "steps" in err.value.message


@pytest.mark.parametrize("text, words", [
    ("steps: 10\n", "mixture"),
    ("", "mixture"),
    ("- steps\n- 10\n", "mapping"),
    ("steps: 0\nmixture: {waimai_10k: 1.0}\n", "positive"),
    ("steps: [10\n", "Cannot read"),
    ("pair_rate: 1.5\nmixture: {waimai_10k: 1.0}\n", "between 0 and 1"),
    ("pair_partners: corpus\nmixture: {waimai_10k: 1.0}\n", "pair_partners is one of dataset, batch"),
    ("prefix_mask: chars\nmixture: {waimai_10k: 1.0}\n", "prefix_mask is one of tokens, offsets"),
])
def test_configs_that_cannot_train_are_refused_with_the_reason(tmp_path, text, words):
    with pytest.raises(InvalidInputError) as err:
        TrainConfig.from_yaml(write(tmp_path, text))
    assert words in err.value.message


def test_a_missing_config_file_is_an_input_error(tmp_path):
    with pytest.raises(InvalidInputError, match="Cannot read"):
        TrainConfig.from_yaml(tmp_path / "nope.yaml")


# --------------------------------------------------------------------------- recipes
SEMEVAL14 = ["ambience", "anecdotes/misc", "food", "price", "service"]
BANKING = ["Refund_not_showing_up", "card_arrival", "top_up_by_bank_transfer_charge", "visa_or_mastercard"]


def test_benchmark_labels_become_valid_node_ids_named_by_their_words():
    ids = label_ids(SEMEVAL14 + BANKING)
    assert ids["anecdotes/misc"] == "bench.anecdotes_misc"
    assert ids["Refund_not_showing_up"] == "bench.refund_not_showing_up"
    assert label_ids(["24_hour_support"])["24_hour_support"] == "bench.l_24_hour_support"  # ids start with a letter
    tax = task_taxonomy("semeval2014_restaurants", SEMEVAL14)
    assert tax.id == "bench-semeval2014-restaurants"
    assert tax.leaf_ids == tuple(label_ids(SEMEVAL14)[lb] for lb in SEMEVAL14)  # label order = leaf order
    assert tax.topic("bench.anecdotes_misc").name.en == "anecdotes misc"
    bank = task_taxonomy("banking77", BANKING)
    assert bank.topic("bench.refund_not_showing_up").name.zh == "refund not showing up"
    assert bank.topic("bench.refund_not_showing_up").seeds.en == ("refund not showing up",)


def test_labels_that_collide_after_slugging_are_refused():
    with pytest.raises(TaxonomyError, match="duplicate"):
        task_taxonomy("x", ["food/quality", "food_quality"])


@pytest.mark.data
def test_every_banking77_intent_gets_its_own_node():
    from training.data import load_dataset

    try:
        intents = sorted({e.raw_labels["intent"] for e in load_dataset("banking77", "train")})
    except DataUnavailableError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"public data sets not available: {exc.message}")
    assert len(intents) == 77
    assert len(task_taxonomy("banking77", intents).leaf_ids) == 77


def test_recipe_items_are_exhaustive_and_carry_aspect_polarity():
    ex = SimpleNamespace
    aspects = SimpleNamespace(name="semeval", kind="aspect", labels=tuple(SEMEVAL14))
    items = task_items(aspects, [ex(text=" Great food but the waiter was rude ", aspects={"food": "positive", "service": "negative"}),
                                 ex(text="Mixed feelings", aspects={"food": "conflict"})], str.strip)
    first, second = items
    assert first.text == "Great food but the waiter was rude"
    assert first.topic_mask.all()  # a benchmark labels every category for every text
    assert np.flatnonzero(first.topic_target).tolist() == [SEMEVAL14.index("food"), SEMEVAL14.index("service")]
    assert first.polarity == [((2,), POL_INDEX["positive"]), ((4,), POL_INDEX["negative"])]
    assert second.topic_target[2] == 1.0 and second.polarity == []  # "conflict" has no polarity class
    intents = SimpleNamespace(name="banking77", kind="intent", labels=tuple(BANKING))
    (it,) = task_items(intents, [ex(text="where is my card?", label="card_arrival")], str.strip)
    assert np.flatnonzero(it.topic_target).tolist() == [1] and it.sentiment == -1


def test_recipe_training_length_follows_the_data():
    base = TrainConfig(mixture={"x": 1.0}, batch_size=16)
    task = SimpleNamespace(name="mams", kind="aspect_category", train=[None] * 2000)
    config = task_config(task, base)
    assert config.steps == 500 and config.mixture == {"mams": 1.0} and config.node_dropout == 0.0
    assert config.topic_loss == "bce"
    few = task_config(SimpleNamespace(name="few", kind="intent", train=[None] * 40), base)
    assert few.steps == 300 and few.topic_loss == "softmax"  # one label per text
    assert task_config(SimpleNamespace(name="big", kind="intent", train=[None] * 100_000), base).steps == 1500
