"""Peers: real slices of the public data, and zero-shot peers on clear examples."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation import scoring
from evaluation.peers import (
    CategoryPolarity,
    EmbeddingFeaturizer,
    LogRegClassifier,
    OneVsRestClassifier,
    SnowNLPSentiment,
    TfidfFeaturizer,
    VaderSentiment,
    sentiment_records,
    topic_records,
)
from evaluation.recipe import RecipeExample, few_shot
from evaluation.suite import sample


def test_vader_gets_obvious_english_right():
    texts = ["Thank you so much, the crew was wonderful and the flight was great!",
             "Worst airline ever. Lost my bag and the agent was rude. Terrible.",
             "Flight 123 departs at 5pm from gate B4."]
    assert VaderSentiment().predict(texts) == ["positive", "negative", "neutral"]
    rec = VaderSentiment().predict_records(texts[:1])[0]["sentiment"]
    assert rec["score"] > 0.5 and rec["confidence"] is None


def test_snownlp_gets_clear_chinese_reviews_right():
    texts = ["质量非常好，物流也很快，很满意，推荐购买", "太差了，完全不能用，客服态度恶劣，退货"]
    assert SnowNLPSentiment().predict(texts) == ["positive", "negative"]
    recs = SnowNLPSentiment().predict_records(texts)
    assert recs[0]["sentiment"]["score"] > 0 > recs[1]["sentiment"]["score"]


class _CountingEncoder:
    def __init__(self):
        self.calls = 0

    def encode(self, texts, prefix="query: "):
        self.calls += 1
        assert prefix == "query: "
        return np.asarray([[len(t), t.count("好"), 1.0] for t in texts], dtype=np.float32)


def test_embedding_featurizer_encodes_each_text_once_per_run():
    enc = _CountingEncoder()
    feat = EmbeddingFeaturizer(enc)
    a = feat.transform(["很好", "太慢", "很好"])
    b = feat.transform(["太慢", "很好"])
    assert enc.calls == 1 and a.shape == (3, 3)
    assert np.array_equal(a[0], b[1])


@pytest.mark.data
def test_tfidf_lr_trained_on_2000_waimai_rows_beats_080(shared_data):
    from training.data import load_dataset

    train = sample(load_dataset("waimai_10k", "train"), 2000, seed=0)
    dev = sample(load_dataset("waimai_10k", "dev"), 300, seed=0)
    test = sample(load_dataset("waimai_10k", "test"), 500, seed=0)
    clf = LogRegClassifier(TfidfFeaturizer()).fit(
        [e.text for e in train], [e.sentiment for e in train],
        dev_texts=[e.text for e in dev], dev_labels=[e.sentiment for e in dev])
    records = sentiment_records(clf, [e.text for e in test])
    scores = scoring.score_sentiment(test, records, labels=("negative", "positive"))
    assert scores["accuracy"] > 0.80
    assert clf.C_ in (0.5, 2.0, 8.0)
    assert clf.predict(["送餐太慢了，饭菜都凉了，差评", "很好吃，量足，送得也快"]).tolist() == [
        "negative", "positive"]


@pytest.mark.data
def test_topic_peer_finds_semeval_categories_and_their_polarity(shared_data):
    from training.data import dataset_info, load_dataset

    train = load_dataset("semeval2014_restaurants", "train")[:1500]
    test = load_dataset("semeval2014_restaurants", "test")[:300]
    det = OneVsRestClassifier(TfidfFeaturizer(), c_grid=(2.0,)).fit(
        [e.text for e in train], [sorted(e.topic_ids) for e in train])
    pol = CategoryPolarity(det.featurizer_).fit([e.text for e in train],
                                                [e.topic_polarities() for e in train])
    records = topic_records(det, [e.text for e in test], polarity=pol)
    info = dataset_info("semeval2014_restaurants")
    s = scoring.score_topics(test, records, space=info.topic_space, closed=info.closed_topics)
    assert s["micro_f1"] > 0.6 and s["polarity_accuracy"] > 0.6
    text = "The waiter was rude but the pasta was delicious."
    (rec,) = topic_records(det, [text], polarity=pol)
    found = {t["id"]: t["polarity"] for t in rec["topics"]}
    assert found.get("product.quality") == "positive"


def test_ten_shot_sampling_is_seeded_balanced_and_disjoint():
    pool = [RecipeExample(text=f"{label} {i}", label=label) for label in "abc" for i in range(30)]
    train, dev = few_shot(pool, 10, seed=3)
    again, _ = few_shot(pool, 10, seed=3)
    assert train == again
    assert sorted({e.label for e in train}) == ["a", "b", "c"] and len(train) == 30
    assert all(sum(e.label == k for e in train) == 10 for k in "abc") and len(dev) == 15
    assert not {e.text for e in train} & {e.text for e in dev}
