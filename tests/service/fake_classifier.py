"""A small rule-based stand-in for the classifier, shaped like the contract's output.

Cue words decide the sentiment, topics and touchpoints (Chinese and English), so tests know what to
expect of each verbatim without loading a model. ``delay`` (seconds per call) makes it slow enough
to interrupt an import; ``calls`` counts the items it saw. ``classify_with_embeddings`` adds a
deterministic L2-normalised embedding per text: one axis per cue rule it matches (so texts about the
same topic lie close together) plus hashed character bigrams, like the real model's pair.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import numpy as np

MODEL_ID = "fake-cem@test"
EMBEDDING_SIZE = 384

# (cues, topic, touchpoint)
_RULES = (
    (("慢", "slow", "late"), "delivery.timeliness", "fulfil"),
    (("客服", "staff", "support"), "service.attitude", "support"),
    (("贵", "价格", "price", "expensive"), "price.value", "purchase"),
    (("质量", "quality", "broke"), "product.quality", "use"),
)
_NEGATIVE = ("慢", "差", "不", "贵", "slow", "late", "rude", "bad", "expensive", "broke", "never")
_POSITIVE = ("好", "棒", "满意", "great", "love", "quick", "friendly", "good")


class FakeClassifier:
    """``classify(items) -> list[dict]`` and ``model_id``, like ``models.classifier.Classifier``."""

    model_id = MODEL_ID

    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls = 0
        self._lock = threading.Lock()

    def classify(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.calls += len(items)
        return [self._one(item) for item in items]

    def classify_with_embeddings(
        self, items: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], np.ndarray]:
        """``classify`` plus one unit-length float32 row per item (the real model's pair)."""
        results = self.classify(items)
        embeddings = (
            np.stack([embed(item["text"]) for item in items])
            if items
            else np.zeros((0, EMBEDDING_SIZE), dtype=np.float32)
        )
        return results, embeddings.astype(np.float32)

    def _one(self, item: dict[str, Any]) -> dict[str, Any]:
        text = item["text"]
        low = text.lower()
        lang = item.get("lang") or (
            "zh" if any("\u4e00" <= ch <= "\u9fff" for ch in text) else "en"
        )
        negative = any(cue in low for cue in _NEGATIVE)
        positive = any(cue in low for cue in _POSITIVE)
        label = "negative" if negative else "positive" if positive else "neutral"
        score = {"negative": -0.8, "neutral": 0.0, "positive": 0.8}[label]
        topics, touchpoints = [], []
        for cues, topic, touchpoint in _RULES:
            hit = next((c for c in cues if c in low), None)
            if hit is None:
                continue
            start = low.index(hit)
            topics.append(
                {
                    "id": topic,
                    "polarity": label,
                    "confidence": 0.9,
                    "evidence": {
                        "start": start,
                        "end": start + len(hit),
                        "text": text[start : start + len(hit)],
                    },
                }
            )
            if touchpoint not in [t["id"] for t in touchpoints]:
                touchpoints.append({"id": touchpoint, "confidence": 0.8})
        return {
            "id": item["id"],
            "lang": lang,
            "sentiment": {"label": label, "score": score, "confidence": 0.9},
            "topics": topics,
            "touchpoints": touchpoints,
            "primary_touchpoint": touchpoints[0]["id"] if touchpoints else None,
            "triage": {"priority": "P2" if negative else "P4", "reasons": []},
            "model": MODEL_ID,
        }


def embed(text: str) -> np.ndarray:
    """A deterministic unit vector: a strong axis per cue rule matched, weak hashed bigrams."""
    low = text.lower()
    vec = np.zeros(EMBEDDING_SIZE, dtype=np.float64)
    for axis, (cues, _, _) in enumerate(_RULES):
        if any(cue in low for cue in cues):
            vec[axis] = 1.0
    grams = [low[i : i + 2] for i in range(max(1, len(low) - 1))]
    for gram in grams:
        digest = hashlib.blake2b(gram.encode("utf-8"), digest_size=4).digest()
        axis = len(_RULES) + int.from_bytes(digest, "little") % (EMBEDDING_SIZE - len(_RULES))
        vec[axis] += 0.3 / len(grams)
    return (vec / np.linalg.norm(vec)).astype(np.float32)
