"""Bilingual survey records with a planted root cause, and fast stand-ins for the model parts.

The planted story: late delivery (配送慢 / late delivery) comes with low NPS, is concentrated in the
store ``北京朝阳`` and grows over the weeks; good quality comes with high NPS. The stand-ins
(``fake_classify``, ``KeywordClusterer``) are for tests where the model does not matter (report
rendering, error paths); the real-model tests classify the same records with the real classifier.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

import numpy as np

from models.analytics.clusters import Cluster, ClusterSet
from nlp.records import Record

LATE_ZH = ["配送太慢了，等了一个星期才到", "快递太慢，催了好几次都没用", "物流慢得离谱，下单五天还没发货",
           "送货太慢了，说好两天到结果等了一周", "发货速度太慢，等得心烦"]
LATE_EN = ["Delivery took two weeks, far too slow.", "The package arrived ten days late.",
           "Shipping was painfully slow and nobody told me why.", "My order was delayed again, still waiting.",
           "Very late delivery, the courier missed every promised date."]
GOOD_ZH = ["质量很好，做工精细，很满意", "东西质量不错，用着很舒服", "产品质量非常好，物超所值"]
GOOD_EN = ["Great quality, works perfectly.", "Excellent build quality, I love it.", "The product quality is superb."]
MEH_ZH = ["还行吧，一般般", "价格还可以"]
MEH_EN = ["It is okay I guess.", "Average product, nothing special."]
STORES = ("北京朝阳", "上海徐汇", "广州天河", "深圳南山")
START = date(2024, 3, 4)  # a Monday


def make_records(n: int = 120, seed: int = 0) -> list[Record]:
    """``n`` records cycling through late / good / so-so texts in both languages."""
    rng = np.random.default_rng(seed)
    kinds = [("late", LATE_ZH + LATE_EN), ("good", GOOD_ZH + GOOD_EN), ("meh", MEH_ZH + MEH_EN)]
    records = []
    for i in range(n):
        kind, texts = kinds[0] if i % 5 in (0, 1) else kinds[1] if i % 5 in (2, 3) else kinds[2]
        text = texts[(i // 5) % len(texts)]
        week = i * 8 // n
        if kind == "late":
            nps = int(rng.integers(0, 6))
            store = STORES[0] if rng.random() < 0.7 else STORES[int(rng.integers(1, 4))]
        else:
            nps = int(rng.integers(9, 11)) if kind == "good" else int(rng.integers(7, 9))
            store = STORES[int(rng.integers(0, 4))]
        records.append(Record(
            id=f"r{i}", text=text, line=i + 2, nps=float(nps), ts=START + timedelta(days=7 * week + i % 7),
            metadata={"store": store, "channel": ("app", "web")[i % 2], "customer": f"u{i}"},
        ))
    return records


def _vector(seed_text: str, base: int) -> np.ndarray:
    rng = np.random.default_rng(int(hashlib.sha1(seed_text.encode()).hexdigest()[:8], 16))
    centre = np.random.default_rng(base).normal(size=384)
    v = centre + 0.4 * rng.normal(size=384)
    return v / np.linalg.norm(v)


def fake_classify(items: list[dict]) -> tuple[list[dict], np.ndarray]:
    """Keyword rules in the contract's shape: late -> delivery.timeliness:negative (with the
    clause as evidence), quality -> product.quality:positive; an empty text fails."""
    results, vectors = [], []
    for item in items:
        text = item["text"]
        if not text.strip():
            results.append({"id": item["id"], "error": {"code": "invalid_input", "message": "text is empty"}})
            vectors.append(np.full(384, np.nan))
            continue
        lang = "en" if text.isascii() else "zh"
        late = any(w in text for w in ("慢", "late", "slow", "delayed"))
        good = any(w in text for w in ("质量", "quality"))
        topics = []
        if late:
            end = next((i for i, ch in enumerate(text) if ch in "，,."), len(text))
            topics.append({"id": "delivery.timeliness", "polarity": "negative", "confidence": 0.92,
                           "polarity_confidence": 0.95, "uncertain": False,
                           "evidence": {"start": 0, "end": end, "text": text[:end]}})
        if good:
            topics.append({"id": "product.quality", "polarity": "positive", "confidence": 0.9,
                           "polarity_confidence": 0.93, "uncertain": False, "evidence": None})
        label = "negative" if late else "positive" if good else "neutral"
        tp = "fulfil" if late else "use"
        results.append({
            "id": item["id"], "lang": lang,
            "sentiment": {"label": label, "score": {"negative": -0.8, "positive": 0.8}.get(label, 0.0),
                          "confidence": 0.9, "uncertain": False},
            "topics": topics, "touchpoints": [{"id": tp, "confidence": 0.9}], "primary_touchpoint": tp,
            "triage": {"priority": "P2" if late else "P4", "reasons": []}, "model": "fake@0",
        })
        vectors.append(_vector(text, 1 if late else 2 if good else 3))
    return results, np.asarray(vectors, dtype=np.float32)


class KeywordClusterer:
    """Clusters by the same keyword rules (late / quality); the rest are outliers."""

    def fit(self, texts, embeddings, *, ids, langs, topics=None, taxonomy=None) -> ClusterSet:
        rules = {"c1": ("慢", "late", "slow", "delayed"), "c2": ("质量", "quality")}
        labels = [next((cid for cid, words in rules.items() if any(w in t for w in words)), None) for t in texts]
        names = {"c1": ("配送慢", "late delivery", ["配送", "慢", "late", "delivery"], "delivery.timeliness"),
                 "c2": ("质量好", "good quality", ["质量", "quality"], "product.quality")}
        clusters = []
        for cid, (zh, en, keywords, topic) in names.items():
            members = [i for i, lab in zip(ids, labels, strict=True) if lab == cid]
            clusters.append(Cluster(
                id=cid, label=f"{zh} / {en}", label_zh=zh, label_en=en, keywords=tuple(keywords),
                keywords_zh=tuple(k for k in keywords if not k.isascii()),
                keywords_en=tuple(k for k in keywords if k.isascii()), size=len(members),
                examples=tuple(members[:5]), topic=topic, overlap=1.0, emerging=False,
            ))
        return ClusterSet(labels=labels, clusters=clusters)


CASES = [
    {"topic": "delivery.timeliness", "priority": "P2", "status": "resolved", "resolution_code": "refund",
     "created_at": "2024-03-05T09:00:00", "resolved_at": "2024-03-06T09:00:00"},
    {"topic": "delivery.timeliness", "priority": "P2", "status": "closed", "resolution_code": "reshipped",
     "opened_at": "2024-03-05T09:00:00+08:00", "resolved_at": "2024-03-05T13:00:00+08:00"},
    {"topic": "delivery.timeliness", "priority": "P1", "status": "open", "created_at": "2024-03-07T10:00:00"},
    {"topic": "product.quality", "priority": "P3", "status": "reopened", "resolution_code": "explained",
     "created_at": "2024-03-01T10:00:00", "resolved_at": "2024-03-02T10:00:00"},
]
