"""Joined training texts (training.pairs): a joined text claims only what both halves support."""

from __future__ import annotations

import numpy as np
import pytest

from models.taxonomy import default_taxonomy
from training.pairs import join, pair_up
from training.targets import SENT_INDEX, TrainItem

TAX = default_taxonomy()
T, P = list(TAX.leaf_ids), list(TAX.touchpoint_ids)


def item(text: str, *, topics=(), known=None, sentiment: str | None = None, polarity=(), groups=(),
         tps=(), assumed=(), binary: bool = False) -> TrainItem:
    """``known``: the topics the item's scheme can say anything about (default: all of them)."""
    tt = np.zeros(len(T), np.float32)
    tt[[T.index(t) for t in topics]] = 1
    mask = np.ones(len(T), bool) if known is None else np.isin(T, list(known) + list(topics))
    pt = np.zeros(len(P), np.float32)
    pt[[P.index(t) for t in tps]] = 1
    absent = np.zeros(len(T), bool)
    absent[[T.index(t) for t in assumed]] = True
    return TrainItem(
        text=text, source="s", sentiment=SENT_INDEX[sentiment] if sentiment else -1, sentiment_binary=binary,
        topic_target=tt, topic_mask=mask, groups=[(tuple(T.index(x) for x in g), v) for g, v in groups],
        polarity=[((T.index(t),), SENT_INDEX[p]) for t, p in polarity], tp_target=pt,
        tp_mask=np.ones(len(P), bool), topic_assumed=absent,
    )


def test_a_joined_text_has_both_topics_and_only_negatives_both_halves_know():
    late = item("快递太慢了，等了一个星期才到。", topics=["delivery.timeliness"], known=["delivery.timeliness", "price.value"],
                sentiment="negative", polarity=[("delivery.timeliness", "negative")], tps=["fulfil"])
    silent = item("客服也不回复", topics=["service.responsiveness"], sentiment="negative",
                  polarity=[("service.responsiveness", "negative")])
    both = join(late, silent, "，")
    assert both.text == "快递太慢了，等了一个星期才到，客服也不回复"
    present = {T[i] for i in np.flatnonzero(both.topic_target)}
    assert present == {"delivery.timeliness", "service.responsiveness"}
    assert both.topic_mask[[T.index(t) for t in present]].all()
    # price.value is absent from both halves; product.quality only from the second: unknown
    assert both.topic_mask[T.index("price.value")] and both.topic_target[T.index("price.value")] == 0
    assert not both.topic_mask[T.index("product.quality")]
    assert {(T[g[0]], p) for g, p in both.polarity} == {("delivery.timeliness", SENT_INDEX["negative"]),
                                                          ("service.responsiveness", SENT_INDEX["negative"])}
    assert both.sentiment == SENT_INDEX["negative"]
    assert both.tp_target[P.index("fulfil")] == 1 and both.tp_mask.all()


def test_disagreeing_halves_keep_no_sentiment_and_no_polarity_on_a_shared_topic():
    good = item("The food was great", topics=["product.quality"], sentiment="positive",
                polarity=[("product.quality", "positive")])
    bad = item("the soup was cold", topics=["product.quality"], sentiment="negative",
               polarity=[("product.quality", "negative")])
    both = join(good, bad, ", and ")
    assert both.text == "The food was great, and the soup was cold"
    assert both.sentiment == -1 and both.polarity == []
    assert both.topic_target[T.index("product.quality")] == 1


def test_a_group_negative_survives_only_if_the_other_half_has_none_of_its_leaves():
    service = [t for t in T if t.startswith("service.")]
    no_service = item("Nice room", topics=["environment.facilities"], groups=[(service, 0.0)],
                      known=["environment.facilities"])
    rude = item("the clerk was rude", topics=["service.attitude"])
    assert join(no_service, rude, ". ").groups == []
    quiet = item("quiet street", topics=["environment.location"])  # knows every topic: no service leaf
    assert join(no_service, quiet, ". ").groups == [(tuple(T.index(x) for x in service), 0.0)]


def test_an_assumed_negative_stays_marked_only_where_the_joined_text_is_negative():
    bank = item("Why was I charged a fee?", topics=["billing.charges"], assumed=["price.value", "service.attitude"])
    rude = item("and the agent was rude", topics=["service.attitude"])
    both = join(bank, rude, " ")
    assert both.topic_assumed[T.index("price.value")] and not both.topic_assumed[T.index("service.attitude")]
    assert both.topic_target[T.index("service.attitude")] == 1


def test_pair_up_joins_texts_of_the_same_data_set_and_language_and_keeps_the_batch_size():
    def of(source: str, text: str, **kw) -> TrainItem:
        it = item(text, **kw)
        it.source = source
        return it

    late, silent = of("seeds", "快递太慢了", topics=["delivery.timeliness"]), of("seeds", "客服不回复", topics=["service.responsiveness"])
    dirty = of("seeds", "The room was dirty", topics=["environment.cleanliness"])
    rude = of("tweets", "the agent was rude", topics=["service.attitude"])
    plain = of("seeds", "还行吧")  # sentiment only: nothing to say about topics
    pools = {"seeds": [late, silent, dirty, plain], "tweets": [rude]}
    batch = [late, dirty, rude, plain]
    out = pair_up(batch, 1.0, np.random.default_rng(0), pools)
    assert len(out) == len(batch)
    assert out[0].text[:5] == "快递太慢了" and out[0].text[-5:] == "客服不回复" and len(out[0].text) == 11
    assert out[0].topic_target[T.index("service.responsiveness")] == 1
    # no English partner in its own set; the only tweet has no other tweet; nothing to say
    assert out[1] is dirty and out[2] is rude and out[3] is plain
    assert pair_up(batch, 0.0, np.random.default_rng(0), pools) == batch
    # long texts are not joined: the second half's labels would be truncated away
    long = of("seeds", "很" * 80 + "慢", topics=["delivery.timeliness"])
    assert pair_up([long], 1.0, np.random.default_rng(0), {"seeds": [long, of("seeds", "客服" * 20, topics=["service.responsiveness"])]})[0] is long


def test_batch_partners_join_texts_of_other_data_sets_in_the_batch():
    def of(source: str, text: str, **kw) -> TrainItem:
        it = item(text, **kw)
        it.source = source
        return it

    dirty = of("seeds", "The room was dirty", topics=["environment.cleanliness"])
    rude = of("tweets", "the agent was rude", topics=["service.attitude"])
    late = of("seeds", "快递太慢了", topics=["delivery.timeliness"])  # no Chinese partner in the batch
    batch = [dirty, rude, late]
    pools = {"seeds": [dirty, late], "tweets": [rude]}
    out = pair_up(batch, 1.0, np.random.default_rng(0), pools, partners="batch")
    assert out[0].text.startswith("The room was dirty") and out[0].text.endswith("the agent was rude")
    assert out[0].source == "seeds+tweets" and out[1].source == "tweets+seeds"
    assert out[2] is late
    # the same batch with same-set partners: the English texts have none
    same = pair_up(batch, 1.0, np.random.default_rng(0), pools)
    assert same[0] is dirty and same[1] is rude
    with pytest.raises(ValueError, match="partners is one of dataset, batch"):
        pair_up(batch, 1.0, np.random.default_rng(0), pools, partners="corpus")
