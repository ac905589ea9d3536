"""Fakes and helpers for the model-registry and training-run tests.

Model directories here are small fakes: a ``config.json`` with ``name``, ``version`` and
``misses`` (topic ids the "model" never predicts). Serving loads them as a cue-word
:class:`FakeClassifier` whose ``model_id`` is ``verbatim-cem@<version>``; the fake fine-tune writes
one and reports held-out scores, and the fake evaluation scores a directory the same way, both with
the real :func:`evaluation.compare.score_labels` and the real regression guard. So the service's
promotion rules are tested against real scores without training anything.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
from classify_support import FakeClassifier

from evaluation.compare import regression_guard, score_labels
from service.app import create_app
from service.cases import Actor
from service.jobs import JobRunnerConfig
from service.labels import LabelInput, add_labels
from service.settings import Settings
from service.storage import make_engine, make_session_factory
from service.storage.keys import create_key, get_or_create_tenant
from service.tenant_models import ModelSources
from service.training_runs import TrainingBackend
from training.finetune import split_holdout

DEFAULT_VERSION = "0.2.0"
TOPICS = ("delivery.timeliness", "service.attitude", "product.quality")


def labelled_verbatims() -> list[LabelInput]:
    """60 labelled complaints, 20 per topic, half Chinese and half English."""
    templates = {
        "delivery.timeliness": ("快递太慢了，等了{n}天才到，急用的东西都耽误了。",
                                "The parcel arrived {n} days late and nobody told me why."),
        "service.attitude": ("第{n}次去门店，店员态度还是很差，爱理不理。",
                             "On my visit number {n} the staff at the counter were rude again."),
        "product.quality": ("才用了{n}天就坏了，质量太差了。",
                            "It broke after only {n} days of normal use, really poor quality."),
    }  # fmt: skip
    items = []
    for topic, (zh, en) in templates.items():
        for n in range(2, 12):
            items.append(
                LabelInput(
                    text=zh.format(n=n), lang="zh", sentiment="negative", topics={topic: "negative"}
                )
            )
            items.append(
                LabelInput(
                    text=en.format(n=n), lang="en", sentiment="negative", topics={topic: "negative"}
                )
            )
    return items


def write_model_dir(path: Path, version: str, misses: tuple[str, ...] = ()) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    config = {"name": "verbatim-cem", "version": version, "misses": list(misses)}
    (path / "config.json").write_text(json.dumps(config), "utf-8")
    return path


def _config(model_dir: Path | str) -> dict[str, Any]:
    return json.loads((Path(model_dir) / "config.json").read_text("utf-8"))


def score_dir(model_dir: Path | str, examples, *, base_dir: Path | str | None = None):
    """The fake evaluation: the model predicts each example's gold topics except its ``misses``."""
    config = _config(model_dir)
    misses = set(config.get("misses") or ())
    results = [
        {"id": ex.id, "topics": [{"id": t, "polarity": p} for t, p in (ex.topics or {}).items() if t not in misses],
         "touchpoints": [], "sentiment": {"label": ex.sentiment or "neutral"}}
        for ex in examples
    ]  # fmt: skip
    return score_labels(
        examples, results, model=f"verbatim-cem@{config['version']}", topic_ids=TOPICS
    )


@dataclass
class FakeTrainer:
    """A fine-tune that writes a fake model missing ``misses`` (set per run by the test)."""

    misses: tuple[str, ...] = ()
    gate: threading.Event | None = None  # when set, waits for it mid-run
    fail: str | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, examples, *, parent_dir, base_dir, taxonomy, out_dir, version, steps=None, seed=13,
                 holdout=0.2, progress=None, **_: Any):  # fmt: skip
        from nlp.errors import InvalidInputError

        self.calls.append({"n": len(examples), "parent_dir": str(parent_dir), "version": version,
                           "taxonomy": getattr(taxonomy, "id", None), "holdout": holdout})  # fmt: skip
        report = progress or (lambda fraction, message: None)
        train, held = split_holdout(examples, holdout, seed=seed)
        for step in range(1, 11):
            if self.gate is not None and step == 5:
                time.sleep(1.1)  # the service writes progress at most once a second
            report(step / 10, f"training step {step}/10")
            if self.gate is not None and step == 5:
                assert self.gate.wait(30), "the test never opened the gate"
            time.sleep(0.01)
        if self.fail:
            raise InvalidInputError(self.fail)
        write_model_dir(Path(out_dir), version, self.misses)
        return SimpleNamespace(
            model_dir=Path(out_dir), train_ids=[e.id for e in train], heldout_ids=[e.id for e in held],
            report=score_dir(out_dir, held), seconds=0.1, steps=10, replay="labels-only",
        )  # fmt: skip


def fake_sources(folder: Path, loads: list[str], *, delay: float = 0.0) -> ModelSources:
    """Fake model directories under ``folder``; every load appends the version to ``loads``."""
    default_dir = write_model_dir(folder / "shipped-default", DEFAULT_VERSION)

    def load(model_dir: Path) -> FakeClassifier:
        version = _config(model_dir)["version"]
        loads.append(version)
        return FakeClassifier(model_id=f"verbatim-cem@{version}", delay=delay)

    return ModelSources(
        models_root=folder / "models",
        default_dir=lambda: default_dir,
        base_dir=lambda: folder / "base",
        load=load,
    )


def make_keys(url: str) -> dict[str, str]:
    """Keys of tenant ``acme`` (train, analyze, classify, admin) and of tenant ``globex``."""
    engine = make_engine(url)
    try:
        with make_session_factory(engine).begin() as session:
            acme, _ = get_or_create_tenant(session, "acme")
            globex, _ = get_or_create_tenant(session, "globex")
            keys = {}
            for name, scopes in [("train", "train,analyze"), ("analyze", "analyze"), ("classify", "classify"),
                                 ("admin", "admin")]:  # fmt: skip
                _, keys[name] = create_key(session, acme, scopes, name=f"{name}-key")
            _, keys["globex"] = create_key(session, globex, "admin", name="globex-admin")
    finally:
        engine.dispose()
    return keys


def add_tenant_labels(url: str, tenant: str, items: list[LabelInput]) -> int:
    engine = make_engine(url)
    try:
        with make_session_factory(engine).begin() as session:
            row, _ = get_or_create_tenant(session, tenant)
            batch = add_labels(session, row.id, Actor(id="key_test", name="analyst"), items)
            assert not batch.rejected, batch.rejected
            return len(batch.accepted)
    finally:
        engine.dispose()


@dataclass
class Api:
    base_url: str
    keys: dict[str, str]
    trainer: FakeTrainer
    loads: list[str]
    url: str

    def tenant_id(self, name: str = "acme") -> str:
        engine = make_engine(self.url)
        try:
            with make_session_factory(engine)() as session:
                return get_or_create_tenant(session, name)[0].id
        finally:
            engine.dispose()

    def call(self, method: str, path: str, key: str = "train", **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[key]}"}
        return httpx.request(method, self.base_url + path, headers=headers, timeout=30, **kwargs)

    def classify(self, texts: list[str], key: str = "classify") -> httpx.Response:
        items = [{"id": f"r{i}", "text": t} for i, t in enumerate(texts)]
        return self.call("POST", "/v1/classify", key, json={"items": items})

    def wait_job(self, job_id: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.call("GET", f"/v1/jobs/{job_id}").json()
            if job["state"] in ("succeeded", "failed", "cancelled"):
                return job
            assert time.monotonic() < deadline, job
            time.sleep(0.05)

    def train(self, misses: tuple[str, ...] = (), **body: Any) -> dict[str, Any]:
        """Start a run whose model misses ``misses``, wait for it, return the run."""
        self.trainer.misses = misses
        response = self.call("POST", "/v1/training-runs", json={"holdout": 0.5, **body})
        assert response.status_code == 202, response.text
        job = self.wait_job(response.json()["job_id"])
        assert job["state"] == "succeeded", job
        return self.call("GET", f"/v1/training-runs/{response.json()['id']}").json()


@contextmanager
def serving(
    folder: Path, url: str, live_server: Callable, *, delay: float = 0.0, labels: bool = True
) -> Iterator[Api]:
    """The real app over HTTP with a fake default model, fake model sources and a fake trainer."""
    trainer, loads = FakeTrainer(), []
    sources = fake_sources(folder, loads, delay=delay)
    default = FakeClassifier(model_id=f"verbatim-cem@{DEFAULT_VERSION}", delay=delay)
    app = create_app(
        Settings(home=folder, database_url=url, rate_limit_per_minute=0),
        classifier_factory=lambda: default,
        jobs=JobRunnerConfig(poll_interval_s=0.05, heartbeat_interval_s=0.5),
    )
    app.state.model_sources = sources
    app.state.training_backend = TrainingBackend(
        finetune=trainer, evaluate=score_dir, guard=regression_guard
    )
    with live_server(app) as base_url:
        keys = make_keys(url)
        if labels:
            add_tenant_labels(url, "acme", labelled_verbatims())
        api = Api(base_url=base_url, keys=keys, trainer=trainer, loads=loads, url=url)
        deadline = time.monotonic() + 30
        while httpx.get(base_url + "/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        yield api
