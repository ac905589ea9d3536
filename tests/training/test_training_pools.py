"""Pools on disk and the resumable mixture sampler."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

from training.pools import MixtureSampler, load_pools, save_pools
from training.targets import TrainItem

ZH = ["物流很快", "包装破损了，里面的杯子碎了", "客服一直不回复消息", "价格便宜质量也好", "房间很干净",
      "等了一个多小时才上菜，服务员还态度很差", "一般般", "退款申请了一周还没到账", "屏幕很清晰", "电池不耐用",
      "送餐小哥很有礼貌", "味道太咸了"]
EN = ["Late again!", "The staff were lovely and the room spotless", "Refund still not showing up",
      "Battery died after a day", "Great value", "Delivery driver left the parcel in the rain"]


def item(text: str, source: str, k: int) -> TrainItem:
    tt = np.zeros(6, np.float32)
    tm = np.zeros(6, bool)
    tm[[k % 6, (k + 1) % 6]] = True
    tt[k % 6] = 1.0
    pt, pm = np.zeros(4, np.float32), np.zeros(4, bool)
    pm[k % 4] = True
    pt[k % 4] = float(k % 2)
    assumed = np.zeros(6, bool)
    assumed[(k + 1) % 6] = k % 2 == 1  # a domain negative (assume_absent) on some items
    return TrainItem(
        text=text, source=source, sentiment=k % 3 - (k % 5 == 0), sentiment_binary=k % 2 == 0,
        topic_target=tt, topic_mask=tm, groups=[((1, 2, 3), float(k % 2))] if k % 3 else [],
        polarity=[((k % 6,), k % 3)], tp_target=pt, tp_mask=pm, topic_assumed=assumed,
    )


def pools() -> dict[str, list[TrainItem]]:
    return {"zh": [item(t, "zh", k) for k, t in enumerate(ZH)], "en": [item(t, "en", k) for k, t in enumerate(EN)]}


def same(a: TrainItem, b: TrainItem) -> bool:
    arrays = ("topic_target", "topic_mask", "tp_target", "tp_mask", "topic_assumed")
    return (
        (a.text, a.source, a.sentiment, a.sentiment_binary, a.groups, a.polarity)
        == (b.text, b.source, b.sentiment, b.sentiment_binary, b.groups, b.polarity)
        and all(np.array_equal(getattr(a, f), getattr(b, f)) and getattr(a, f).dtype == getattr(b, f).dtype for f in arrays)
    )


def test_pools_survive_a_round_trip_through_disk(tmp_path):
    train, dev = pools(), {"zh": pools()["zh"][:3]}
    path = tmp_path / "pools.json.gz"
    save_pools(path, train, dev)
    train2, dev2 = load_pools(path)
    assert list(train2) == ["zh", "en"] and list(dev2) == ["zh"]
    for name in train:
        assert len(train2[name]) == len(train[name])
        assert all(same(a, b) for a, b in zip(train[name], train2[name], strict=True))
    assert all(same(a, b) for a, b in zip(dev["zh"], dev2["zh"], strict=True))
    assert any(it.groups for it in train2["zh"]) and any(it.sentiment == -1 for it in train2["zh"])
    assert any(it.topic_assumed.any() for it in train2["zh"])


def draw(sampler: MixtureSampler, n: int) -> list[list[str]]:
    return [[it.text for it in sampler.next()] for _ in range(n)]


def test_the_same_seed_gives_the_same_batches_and_another_seed_others():
    mix = {"zh": 0.5, "en": 0.5}
    a = draw(MixtureSampler(pools(), mix, 4, seed=3), 12)
    assert a == draw(MixtureSampler(pools(), mix, 4, seed=3), 12)
    assert a != draw(MixtureSampler(pools(), mix, 4, seed=4), 12)


def test_a_batch_comes_from_one_source_and_a_small_pool_is_seen_whole_before_repeats():
    sampler = MixtureSampler(pools(), {"zh": 1.0}, 4, seed=0)
    batches = draw(sampler, 3)
    assert all(len(b) == 4 for b in batches)
    assert Counter(t for b in batches for t in b) == Counter(ZH)  # one pass over the 12 lines
    sampler = MixtureSampler(pools(), {"zh": 0.5, "en": 0.5}, 4, seed=0)
    for batch in draw(sampler, 20):
        assert set(batch) <= set(ZH) or set(batch) <= set(EN)


def test_batches_group_similar_lengths():
    sampler = MixtureSampler(pools(), {"zh": 1.0}, 4, seed=1)
    spans = [max(map(len, b)) - min(map(len, b)) for b in draw(sampler, 3)]
    lengths = sorted(len(t) for t in ZH)
    # the sorted pool cut in three: each batch spans one third of the length range, not all of it
    assert sum(spans) <= lengths[-1] - lengths[0]


def test_the_mixture_sets_each_sources_share_and_empty_pools_are_skipped():
    p = pools()
    p["empty"] = []
    sampler = MixtureSampler(p, {"zh": 0.8, "en": 0.2, "empty": 5.0, "missing": 1.0}, 2, seed=7)
    assert sampler.names == ["zh", "en"]
    sources = Counter(sampler.next()[0].source for _ in range(1000))
    assert 0.75 < sources["zh"] / 1000 < 0.85


def test_a_restored_state_continues_the_same_stream_of_batches():
    mix = {"zh": 0.6, "en": 0.4}
    sampler = MixtureSampler(pools(), mix, 4, seed=11)
    draw(sampler, 5)  # mid-epoch: some queued batches are left
    state = json.loads(json.dumps(sampler.state()))  # as the checkpoint stores it (state.json)
    expected = draw(sampler, 15)
    fresh = MixtureSampler(pools(), mix, 4, seed=999)
    fresh.load_state(state)
    assert draw(fresh, 15) == expected
