"""TargetBuilder: partial labels stay partial, closed schemes give negatives, groups, seeds."""

from __future__ import annotations

import numpy as np
import pytest

from models.taxonomy import default_taxonomy
from training.data.schema import DatasetInfo, Example, SentimentSource, TopicLabel
from training.targets import POL_INDEX, SENT_INDEX, TargetBuilder

TAX = default_taxonomy()
T = TAX.leaf_ids
P = TAX.touchpoint_ids
SERVICE_LEAVES = tuple(T.index(i) for i in TAX.leaves_under("service"))


def info(name: str = "restaurants", **kw) -> DatasetInfo:
    fields = {"splits": ("train", "test"), "sentiment_source": SentimentSource.label, **kw}
    return DatasetInfo(name=name, lang="en", path="x.jsonl", license="test", counts={}, **fields)


def example(text: str, *, dataset: str = "restaurants", split: str = "train", sentiment: str | None = None,
            topics: tuple[tuple[str, str | None], ...] = (), touchpoints: tuple[str, ...] = ()) -> Example:
    labels = tuple(TopicLabel(id=t, polarity=p, span=None, source_label=t) for t, p in topics)
    return Example(id=text[:12], dataset=dataset, split=split, lang="en", text=text, sentiment=sentiment,
                   topics=labels, touchpoints=touchpoints)


@pytest.fixture(scope="module")
def builder() -> TargetBuilder:
    return TargetBuilder(TAX, T, P)


def test_a_sentiment_only_example_teaches_nothing_about_topics_or_touchpoints(builder):
    ex = example("快递很快，东西也不错", sentiment="positive")
    item = builder.build(ex, info("waimai_10k"), ex.text)
    assert item.sentiment == SENT_INDEX["positive"]
    assert item.sentiment_binary  # waimai_10k only knows negative/positive
    assert not item.topic_mask.any() and not item.groups and not item.polarity
    assert not item.tp_mask.any()


def test_closed_topics_give_negatives_and_open_ones_stay_masked(builder):
    # SemEval-style scheme: food and price are annotated exhaustively; delivery is not in its scheme
    scheme = info(topic_space=frozenset({"product.quality", "price.value"}),
                  closed_topics=frozenset({"product.quality", "price.value"}))
    ex = example("The pasta was delicious", sentiment="positive", topics=(("product.quality", "positive"),))
    item = builder.build(ex, scheme, ex.text)
    q, v = T.index("product.quality"), T.index("price.value")
    assert item.topic_mask[q] and item.topic_target[q] == 1.0
    assert item.topic_mask[v] and item.topic_target[v] == 0.0  # a known negative
    assert item.topic_mask.sum() == 2  # every other topic (delivery, billing, ...) stays unknown
    assert item.polarity == [((q,), POL_INDEX["positive"])]
    assert not item.sentiment_binary


def test_an_unlabelled_split_gives_no_negatives(builder):
    scheme = info(splits=("train", "test_unlabeled"), unlabelled_splits=("test_unlabeled",),
                  closed_topics=frozenset({"price.value"}))
    ex = example("还行", split="test_unlabeled")
    assert not builder.build(ex, scheme, ex.text).topic_mask.any()


def test_a_level1_label_is_a_group_target_over_its_leaves(builder):
    scheme = info(topic_space=frozenset({"service"}), closed_topics=frozenset({"service"}))
    rude = example("The waiter ignored us for twenty minutes", sentiment="negative", topics=(("service", "negative"),))
    item = builder.build(rude, scheme, rude.text)
    assert item.groups == [(SERVICE_LEAVES, 1.0)]  # once, although both the scheme and the label name it
    assert not item.topic_mask[list(SERVICE_LEAVES)].any()  # no single leaf is claimed
    assert item.polarity == [(SERVICE_LEAVES, POL_INDEX["negative"])]
    # a labelled example of the same closed scheme without a service label: no service leaf at all
    food = example("Great sushi", sentiment="positive", topics=(("product.quality", "positive"),))
    item = builder.build(food, scheme, food.text)
    assert (SERVICE_LEAVES, 0.0) in item.groups
    # a leaf label under a closed level-1 node satisfies the group
    leaf = example("Staff were rude", topics=(("service.attitude", "negative"),))
    item = builder.build(leaf, scheme, leaf.text)
    assert item.groups == [(SERVICE_LEAVES, 1.0)]
    assert item.topic_target[T.index("service.attitude")] == 1.0


def test_conflicting_polarities_teach_no_polarity(builder):
    ex = example("Food was great but overpriced for what it is",
                 topics=(("product.quality", "positive"), ("product.quality", "negative")))
    item = builder.build(ex, info(), ex.text)
    assert item.topic_target[T.index("product.quality")] == 1.0
    assert item.polarity == []  # "conflict" is no polarity class


def test_labels_outside_the_taxonomy_are_ignored(builder):
    ex = example("whatever", topics=(("no.such_topic", "negative"),), touchpoints=("no_such_stage",))
    item = builder.build(ex, info(closed_topics=frozenset({"no.such_topic"})), ex.text)
    assert not item.topic_mask.any() and not item.groups and not item.polarity and not item.tp_mask.any()


def test_touchpoints_named_by_a_label_exclude_the_sets_other_stages(builder):
    scheme = info(touchpoint_space=frozenset({"fulfil", "purchase", "support"}))
    ex = example("My parcel never arrived", touchpoints=("fulfil",))
    item = builder.build(ex, scheme, ex.text)
    masked = {P[i] for i in np.flatnonzero(item.tp_mask)}
    assert masked == {"fulfil", "purchase", "support"}
    assert {P[i] for i in np.flatnonzero(item.tp_target)} == {"fulfil"}
    # without a touchpoint label nothing is said about stages
    bare = example("Nice", sentiment="positive")
    assert not builder.build(bare, scheme, bare.text).tp_mask.any()


def test_assume_closed_adds_negatives_only_for_labelled_examples():
    tweets = info("twitter_us_airline", topic_space=frozenset({"delivery.timeliness", "service.attitude"}))
    plain = TargetBuilder(TAX, T, P)
    closed = TargetBuilder(TAX, T, P, assume_closed=("twitter_us_airline",))
    late = example("@united flight delayed 4 hours again", dataset="twitter_us_airline", sentiment="negative",
                   topics=(("delivery.timeliness", "negative"),))
    a, b = T.index("delivery.timeliness"), T.index("service.attitude")
    item = plain.build(late, tweets, late.text)
    assert item.topic_mask[a] and not item.topic_mask[b]  # the data set promises nothing about absence
    item = closed.build(late, tweets, late.text)
    assert item.topic_mask[b] and item.topic_target[b] == 0.0  # single-reason tweet: not about attitude
    assert item.topic_target[a] == 1.0
    # an example without a topic label (e.g. a positive tweet) gets no negatives either way
    thanks = example("@united thanks, great crew!", dataset="twitter_us_airline", sentiment="positive")
    assert not closed.build(thanks, tweets, thanks.text).topic_mask.any()


def test_seed_items_are_one_hot_over_their_own_label_space(builder):
    items = list(builder.seed_items(lambda s: s.strip()))
    n_seeds = sum(len(n.seeds.zh) + len(n.seeds.en) for n in (*TAX.topic_leaves, *(TAX.touchpoint(t) for t in P)))
    assert len(items) == n_seeds
    quality = [it for it in items if it.text == "质量太差了用两天就坏了"]
    assert len(quality) == 1
    (it,) = quality
    assert it.topic_mask.all() and np.flatnonzero(it.topic_target).tolist() == [T.index("product.quality")]
    assert not it.tp_mask.any() and it.sentiment == -1 and it.source == "taxonomy-seeds"
    tp_items = [it for it in items if it.tp_mask.any()]
    assert tp_items and all(it.tp_target.sum() == 1 and not it.topic_mask.any() for it in tp_items)


def test_assume_absent_adds_domain_negatives_to_train_items_only_and_respects_gates():
    rules = {"restaurants": {"delivery.courier": [], "environment.cleanliness": ["environment"],
                             "aftersales": []}}
    absent = TargetBuilder(TAX, T, P, assume_absent=rules)
    scheme = info(topic_space=frozenset({"product.quality", "environment.facilities"}),
                  closed_topics=frozenset({"product.quality", "environment.facilities"}))
    food = example("The pasta was superb", sentiment="positive", topics=(("product.quality", "positive"),))
    courier, clean = T.index("delivery.courier"), T.index("environment.cleanliness")
    returns, warranty = T.index("aftersales.returns"), T.index("aftersales.warranty")
    item = absent.build(food, scheme, food.text)
    for leaf in (courier, clean, returns, warranty):  # a level-1 rule covers each of its leaves
        assert item.topic_mask[leaf] and item.topic_target[leaf] == 0.0 and item.topic_assumed[leaf]
    assert item.topic_target[T.index("product.quality")] == 1.0
    assert item.topic_assumed.sum() == 4  # the data set's own labels are not marked as assumed
    # a text with a label under the gate keeps cleanliness unknown (ambience may be cleanliness)
    room = example("Cramped and grimy dining room", sentiment="negative",
                   topics=(("environment.facilities", "negative"),))
    item = absent.build(room, scheme, room.text)
    assert not item.topic_mask[clean] and item.topic_mask[courier]
    # a text labelled with the topic itself keeps it positive
    rider = example("The delivery guy was rude", topics=(("delivery.courier", "negative"),))
    item = absent.build(rider, scheme, rider.text)
    assert item.topic_target[courier] == 1.0 and not item.topic_assumed[courier]
    # dev items (train=False) and builders without the rule are left as the data set says
    assert not absent.build(food, scheme, food.text, train=False).topic_mask[courier]
    assert not TargetBuilder(TAX, T, P).build(food, scheme, food.text).topic_mask[courier]
    # other data sets are untouched
    other = example("The pasta was superb", dataset="acos", topics=(("product.quality", "positive"),))
    assert not absent.build(other, info("acos"), other.text).topic_mask[courier]


def test_assume_absent_naming_an_unknown_topic_is_refused_by_name():
    from nlp.errors import InvalidInputError

    with pytest.raises(InvalidInputError) as err:
        TargetBuilder(TAX, T, P, assume_absent={"restaurants": {"delivery.courrier": []}})
    assert "delivery.courrier" in err.value.message
    with pytest.raises(InvalidInputError) as err:
        TargetBuilder(TAX, T, P, assume_absent={"restaurants": {"delivery.courier": ["ambience"]}})
    assert "'ambience'" in err.value.message


def test_weak_topics_mark_matching_train_texts_unless_the_scheme_says_absent():
    weak = TargetBuilder(TAX, T, P, weak_topics={"environment.cleanliness": {"en": r"(?i)\bdirty\b", "zh": "房间.{0,4}脏"}},
                         assume_absent={"restaurants": {"environment.cleanliness": ["environment"]}})
    clean = T.index("environment.cleanliness")
    scheme = info(topic_space=frozenset({"product.quality"}), closed_topics=frozenset({"product.quality"}))
    dirty = example("Dirty tables and cold pasta", topics=(("product.quality", "negative"),))
    item = weak.build(dirty, scheme, dirty.text)
    assert item.topic_mask[clean] and item.topic_target[clean] == 1.0  # the weak positive wins over assume_absent
    assert not weak.build(dirty, scheme, dirty.text, train=False).topic_mask[clean]  # never on dev items
    pasta = example("Cold pasta", topics=(("product.quality", "negative"),))
    assert weak.build(pasta, scheme, pasta.text).topic_target[clean] == 0.0  # no match: assume_absent applies
    # a sentiment-only Chinese review gets the weak topic from its own language's pattern
    room = Example(id="h1", dataset="hotels", split="train", lang="zh", text="房间很脏，不会再来", sentiment="negative")
    item = weak.build(room, info("hotels"), room.text)
    assert np.flatnonzero(item.topic_mask).tolist() == [clean] and item.topic_target[clean] == 1.0
    # a scheme that can say the topic is absent keeps its word
    closed = info(topic_space=frozenset({"environment.cleanliness"}), closed_topics=frozenset({"environment.cleanliness"}))
    assert weak.build(pasta, closed, "Dirty? No, spotless").topic_target[clean] == 0.0
    grouped = info(topic_space=frozenset({"environment"}), closed_topics=frozenset({"environment"}))
    item = weak.build(pasta, grouped, "Dirty tables")  # a closed level-1 group: its scheme said no
    assert item.topic_target[clean] == 0.0 and any(clean in g and v == 0.0 for g, v in item.groups)
    with pytest.raises(Exception, match="environment.clean'"):
        TargetBuilder(TAX, T, P, weak_topics={"environment.clean": {"en": "dirty"}})
