"""The review queue over real HTTP, on SQLite and PostgreSQL.

The served classifier is a rule-based fake with a small zero-shot prior of its own (cue words
→ topic prototypes), so the test knows where model and prior disagree: the queue proposes
unlabelled records only, zh and en in turns, each with its reasons (uncertain, disagreement,
rare node, emerging cluster), and drops a record once it is labelled.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import torch
from fake_classifier import FakeClassifier

from service.app import create_app
from service.jobs import JobRunnerConfig
from service.settings import Settings
from service.storage import make_engine, make_session_factory
from service.storage.keys import create_key, get_or_create_tenant

FAST_JOBS = JobRunnerConfig(poll_interval_s=0.1, heartbeat_interval_s=0.2, stale_after_s=5)
TOPICS = ("delivery.timeliness", "delivery.condition", "service.attitude", "price.value",
          "product.quality")  # fmt: skip
PRIOR_CUES = {
    "delivery.timeliness": ("慢", "late", "等"),
    "delivery.condition": ("碎", "破", "crushed", "dented"),
    "service.attitude": ("客服", "staff", "rude"),
    "price.value": ("贵", "expensive", "价格"),
    "product.quality": ("质量", "quality"),
}  # fmt: skip
RECORDS = [
    {"id": "z1", "text": "快递太慢了，等了五天才到"},
    {"id": "z2", "text": "包装破了，杯子全碎了"},          # no topic for the model, the prior says condition
    {"id": "z3", "text": "也许还行吧，说不上来"},            # the model is unsure
    {"id": "z4", "text": "价格太贵了"},
    {"id": "z5", "text": "配送慢，等了很久"},
    {"id": "e1", "text": "The parcel was late again"},
    {"id": "e2", "text": "Box arrived crushed and dented"},  # the prior says condition
    {"id": "e3", "text": "maybe fine, hard to say"},         # the model is unsure
    {"id": "e4", "text": "Staff were rude at the desk"},
]  # fmt: skip


class _Model:
    """What the prior needs of a CEM classifier: prototypes, topic ids and base embeddings."""

    def __init__(self) -> None:
        self.config = type("Config", (), {"topic_ids": TOPICS})()
        self.topic_protos = torch.eye(len(TOPICS))
        self.encoder = type("Encoder", (), {"disable_adapter": lambda self: None})()

    def embed_plain(self, texts: list[str]) -> torch.Tensor:
        out = torch.full((len(texts), len(TOPICS)), 0.1)
        for i, text in enumerate(texts):
            for j, topic in enumerate(TOPICS):
                out[i, j] += sum(cue in text.lower() for cue in PRIOR_CUES[topic])
        return torch.nn.functional.normalize(out, dim=-1)


class PriorFake(FakeClassifier):
    """The fake classifier, unsure of 'maybe' texts, with a zero-shot prior."""

    def __init__(self) -> None:
        super().__init__()
        self.model = _Model()

    def classify(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results = super().classify(items)
        for item, result in zip(items, results, strict=True):
            if "maybe" in item["text"] or "也许" in item["text"]:
                result["sentiment"].update(label="neutral", confidence=0.41, uncertain=True)
        return results


@dataclass(frozen=True, kw_only=True)
class Api:
    base_url: str
    database_url: str
    keys: dict[str, str]
    dataset_id: str

    def request(self, method: str, path: str, key: str = "analyze", **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[key]}"}
        return httpx.request(method, self.base_url + path, headers=headers, timeout=60, **kw)

    def queue(self, key: str = "analyze", **params: Any) -> httpx.Response:
        return self.request("GET", "/v1/review-queue", key,
                            params={"dataset_id": self.dataset_id, **params})  # fmt: skip


def _import(base_url: str, key: str) -> str:
    body = "\n".join(json.dumps(r, ensure_ascii=False) for r in RECORDS).encode()
    headers = {"Authorization": f"Bearer {key}"}
    response = httpx.post(f"{base_url}/v1/datasets", headers=headers,
                          files={"file": ("评价.jsonl", body)}, timeout=60)  # fmt: skip
    assert response.status_code == 202, response.text
    job_id = response.json()["job"]["id"]
    for _ in range(600):
        job = httpx.get(f"{base_url}/v1/jobs/{job_id}", headers=headers, timeout=30).json()
        if job["state"] == "succeeded":
            return response.json()["dataset"]["id"]
        assert job["state"] not in ("failed", "cancelled"), job
        time.sleep(0.05)
    raise AssertionError("the import did not finish")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory, database_factory, live_server) -> Iterator[Api]:
    home = tmp_path_factory.mktemp("home")
    with database_factory(request.param, home) as url:
        app = create_app(Settings(home=home, database_url=url), classifier_factory=PriorFake,
                         jobs=FAST_JOBS)  # fmt: skip
        with live_server(app) as base_url:
            engine = make_engine(url)
            keys = {}
            with make_session_factory(engine).begin() as session:
                acme, _ = get_or_create_tenant(session, "acme")
                globex, _ = get_or_create_tenant(session, "globex")
                for label, tenant, scopes in [("analyze", acme, "analyze"), ("train", acme, "train"),
                                              ("classify", acme, "classify"),
                                              ("globex", globex, "admin")]:  # fmt: skip
                    keys[label] = create_key(session, tenant, scopes, name=label)[1]
            engine.dispose()
            dataset_id = _import(base_url, keys["analyze"])
            yield Api(base_url=base_url, database_url=url, keys=keys, dataset_id=dataset_id)


def _by_id(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["record_id"]: item for item in body["items"]}


def _kinds(item: dict[str, Any]) -> set[str]:
    return {reason["kind"] for reason in item["reasons"]}


def test_the_queue_takes_zh_and_en_in_turns_and_says_why(api: Api) -> None:
    response = api.queue(limit=9)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["candidates"] == 9 and body["prior"].startswith("zero-shot prior")
    langs = [item["lang"] for item in body["items"]]
    assert langs == ["zh", "en"] * 4 + ["zh"]  # 5 zh and 4 en records, in turns
    assert all(item["reasons"] and item["reasons"][0]["detail"] for item in body["items"])
    only_en = api.queue(limit=9, lang="en").json()["items"]
    assert {item["lang"] for item in only_en} == {"en"} and len(only_en) == 4


def test_disagreement_with_the_prior_and_uncertainty_come_first(api: Api) -> None:
    items = _by_id(api.queue(limit=9).json())
    broken = items["z2"]  # the model found no topic, the prior points to delivery.condition
    (reason,) = [r for r in broken["reasons"] if r["kind"] == "disagreement"]
    assert "delivery.condition" in reason["detail"] and "no topic" in reason["detail"]
    assert broken["prior_topics"][0]["id"] == "delivery.condition"
    assert "disagreement" in _kinds(items["e2"])
    assert "uncertain" in _kinds(items["z3"]) and "uncertain" in _kinds(items["e3"])
    assert "disagreement" not in _kinds(items["z1"])  # model and prior both say timeliness
    zh = [i["record_id"] for i in api.queue(limit=5, lang="zh").json()["items"]]
    assert set(zh[:2]) == {"z2", "z3"}  # ahead of the records the model and prior agree on
    en = [i["record_id"] for i in api.queue(limit=4, lang="en").json()["items"]]
    assert set(en[:2]) == {"e2", "e3"}


def test_labelled_records_leave_the_queue_and_rare_nodes_get_a_boost(api: Api) -> None:
    body = {"items": [
        {"dataset_id": api.dataset_id, "record_id": "z1", "sentiment": "negative",
         "topics": {"delivery.timeliness": "negative"}, "touchpoints": ["fulfil"]},
        {"text": "物流太慢", "sentiment": "negative", "topics": {"delivery.timeliness": "negative"}},
        {"text": "Shipping took ages", "sentiment": "negative",
         "topics": {"delivery.timeliness": "negative"}},
    ]}  # fmt: skip
    assert api.request("POST", "/v1/labels", "train", json=body).status_code == 200
    queue = api.queue(limit=9).json()
    items = _by_id(queue)
    assert "z1" not in items and queue["labelled_excluded"] == 1 and queue["candidates"] == 8
    rare = {r["kind"]: r for r in items["z4"]["reasons"]}["rare_node"]  # price.value: no label yet
    assert rare["detail"] == "price.value has 0 labels so far" and rare["score"] == 1.0
    slow = [r for r in items["z5"]["reasons"] if r["kind"] == "rare_node"]
    assert not slow or slow[0]["score"] < rare["score"]  # timeliness now has 3 labels


def test_records_of_an_emerging_cluster_are_proposed_as_such(api: Api) -> None:
    from service.storage.models import Analysis

    engine = make_engine(api.database_url)
    with make_session_factory(engine).begin() as session:
        tenant_id = get_or_create_tenant(session, "acme")[0].id
        session.add(Analysis(tenant_id=tenant_id, dataset_id=api.dataset_id, outcome="nps",
                             status="succeeded", result={"clusters": [
                                 {"id": "c2", "label": "杯子碎了 / broken cups", "size": 2,
                                  "emerging": True, "examples": ["z2", "e2"]},
                                 {"id": "c1", "label": "配送慢 / late delivery", "size": 3,
                                  "emerging": False, "examples": ["z5", "e1"]}]}))  # fmt: skip
    engine.dispose()
    items = _by_id(api.queue(limit=9).json())
    (reason,) = [r for r in items["e2"]["reasons"] if r["kind"] == "emerging_cluster"]
    assert "c2" in reason["detail"] and "broken cups" in reason["detail"]
    assert "emerging_cluster" not in _kinds(items["z5"])


def test_scopes_tenants_and_parameters(api: Api) -> None:
    assert api.queue(key="classify").status_code == 403
    assert api.queue(key="globex").status_code == 404
    assert api.queue(limit=0).status_code == 422 and api.queue(lang="fr").status_code == 422
    everything = api.request("GET", "/v1/review-queue", params={"limit": 3}).json()
    assert len(everything["items"]) == 3  # without dataset_id: all ready data sets
