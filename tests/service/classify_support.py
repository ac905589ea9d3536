"""Helpers for the classification tests: a fake classifier, keys, and an app served with it.

``FakeClassifier`` stands in for ``models.classifier.predict.Classifier``: same interface (``model_id``, ``classify(items) -> list[dict]``), contract-shaped results computed
from a few bilingual cue words, so the tests can check that each result belongs to its own item.
It records the size of every call, to show that micro-batching merges concurrent requests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from service.app import create_app
from service.settings import Settings
from service.storage import make_engine, make_session_factory
from service.storage.keys import create_key, get_or_create_tenant

NEGATIVE = ("慢", "不回复", "差", "rude", "slow", "late", "broken")
POSITIVE = ("好", "满意", "friendly", "great", "quick")
TOPICS = {  # topic id -> (touchpoint, cues)
    "delivery.timeliness": ("fulfil", ("太慢", "一个星期", "late", "slow")),
    "service.attitude": ("use", ("态度", "rude", "friendly")),
    "service.responsiveness": ("support", ("不回复", "never answered")),
}


class FakeClassifier:
    """Deterministic, thread-safe, optionally slow; ``fail_on`` texts make the whole call raise."""

    def __init__(self, *, delay: float = 0.0, model_id: str = "verbatim-cem@test-1", fail_on: str | None = None) -> None:
        self.model_id = model_id
        self.delay = delay
        self.fail_on = fail_on
        self.batch_sizes: list[int] = []
        self.started = threading.Event()  # set when a call begins
        self._lock = threading.Lock()

    def classify(self, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        with self._lock:  # one call at a time, like the real model
            self.batch_sizes.append(len(items))
            self.started.set()
            if self.delay:
                time.sleep(self.delay)
            if self.fail_on is not None and any(it["text"] == self.fail_on for it in items):
                raise RuntimeError("the model crashed on this input")
            return [self._one(it) for it in items]

    def _one(self, item: dict[str, Any]) -> dict[str, Any]:
        text = item["text"]
        if not any(ch.isalnum() for ch in text):
            return {"id": item["id"], "error": {"code": "invalid_input", "message": "Nothing is left of the text after cleaning."}}
        neg = sum(text.count(c) for c in NEGATIVE)
        pos = sum(text.count(c) for c in POSITIVE)
        score = max(-1.0, min(1.0, 0.4 * (pos - neg)))
        label = "negative" if score < 0 else "positive" if score > 0 else "neutral"
        topics, touchpoints = [], []
        for topic, (touchpoint, cues) in TOPICS.items():
            for cue in cues:
                at = text.find(cue)
                if at >= 0:
                    topics.append({"id": topic, "polarity": label, "confidence": 0.9,
                                   "evidence": {"start": at, "end": at + len(cue), "text": cue}})
                    if touchpoint not in [t["id"] for t in touchpoints]:
                        touchpoints.append({"id": touchpoint, "confidence": 0.8})
                    break
        lang = item.get("lang") or ("zh" if any("\u4e00" <= ch <= "\u9fff" for ch in text) else "en")
        return {
            "id": item["id"], "lang": lang,
            "sentiment": {"label": label, "score": score, "confidence": 0.8},
            "topics": topics, "touchpoints": touchpoints,
            "primary_touchpoint": touchpoints[0]["id"] if touchpoints else None,
            "triage": {"priority": "P2" if label == "negative" else "P4",
                       "reasons": ["negative sentiment"] if label == "negative" else ["no urgency signal"]},
            "model": self.model_id,
        }


def make_keys(database_url: str) -> dict[str, str]:
    """Keys of tenant 'acme': one with the classify scope, one without, and a second classify key."""
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine).begin() as session:
            acme, _ = get_or_create_tenant(session, "acme")
            keys = {}
            for label, scopes in [("classify", "classify"), ("analyze", "analyze"), ("other", "classify")]:
                _, keys[label] = create_key(session, acme, scopes, name=label)
    finally:
        engine.dispose()
    return keys


@dataclass(frozen=True, kw_only=True)
class Service:
    base_url: str
    keys: dict[str, str]
    fake: FakeClassifier | None

    def post(self, body: Any, key: str | None = "classify", **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if key is not None:
            headers.setdefault("Authorization", f"Bearer {self.keys.get(key, key)}")
        if "content" not in kwargs:
            kwargs["json"] = body
        return httpx.post(self.base_url + "/v1/classify", headers=headers, timeout=60, **kwargs)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base_url + path, timeout=30)


@contextmanager
def running(folder: Path, live_server, *, fake: FakeClassifier | None = None,
            factory: Callable[[], Any] | None = None, **settings: Any) -> Iterator[Service]:
    url = f"sqlite:///{folder / 'verbatim.db'}"
    app = create_app(Settings(home=folder, database_url=url, **settings),
                     classifier_factory=factory or (lambda: fake))
    with live_server(app) as base_url:
        service = Service(base_url=base_url, keys=make_keys(url), fake=fake)
        if factory is None:
            wait_ready(service)
        yield service


def wait_ready(service: Service, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while service.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, service.get("/readyz").text
        time.sleep(0.02)
