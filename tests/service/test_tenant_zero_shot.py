"""A tenant's new taxonomy node works at once, zero-shot, over HTTP with the real default model.

An analyst adds ``product.safety`` (过敏/食品安全, allergies and food safety: bilingual names,
description and seed phrases, the node of docs/analyst-walkthrough.sh) to the tenant's taxonomy
with ``PUT /v1/taxonomies/{id}``; without any training, ``POST /v1/classify`` then finds it in
real Chinese and English allergy complaints, marked ``zero_shot``, from a model whose version
says it was derived for that taxonomy. Another tenant never sees it; retiring it removes it; and
classification never fails while the taxonomy changes under concurrent requests. What the tenant
is served is what the rest of the API uses too: record filters, the model listing and the review
queue's zero-shot prior know the node, and the server that saves an edit follows it at once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from models.taxonomy import load_taxonomy
from service.app import create_app
from service.model_sources import default_sources
from service.settings import Settings
from service.storage import make_engine, make_session_factory
from service.storage.keys import create_key, get_or_create_tenant
from service.tenant_models import get_tenant_models

pytestmark = pytest.mark.slow

NODE = "product.safety"
SAFETY = {
    "id": NODE,
    "name": {"zh": "过敏/食品安全", "en": "Allergies and food safety"},
    "description": {
        "zh": "吃的、用的东西有没有危害健康：食物、化妆品、洗护用品或衣物引起的过敏，吃完后拉肚子、呕吐或"
        "食物中毒，饭菜里吃出虫子、头发、异物，以及商家是否照顾过敏和忌口要求。只是不新鲜、难吃而没有"
        "健康问题的属于 product.quality。",
        "en": "Whether what was eaten or used harmed the customer's health, covering allergic reactions "
        "to food, cosmetics, toiletries or clothes, diarrhoea, vomiting or food poisoning after eating, "
        "insects, hair or foreign objects in food, and whether allergy and dietary requests were "
        "respected. Food that is merely stale or tastes bad, with no risk to health, belongs to "
        "product.quality.",
    },
    "seeds": {
        "zh": ["备注了花生过敏还是放了花生", "吃完以后全身起红疹", "吃完就拉肚子了", "一家人吃了都上吐下泻",
               "饭里吃出了一只虫子", "菜里有头发太恶心了", "用了这个面霜脸上过敏了", "怀疑食物中毒了"],
        "en": ["I told them about my nut allergy and the dish still had nuts",
               "broke out in hives right after eating", "we all got food poisoning",
               "found a hair in my salad", "there was a bug in the rice",
               "the staff took my allergy seriously", "this cream gave me a rash",
               "I was sick all night after the meal"],
    },
    "touchpoints": ["use"],
    "severity": "high",
}  # fmt: skip

ALLERGY_ZH = "备注了花生过敏，宫保鸡丁里还是放了花生，孩子吃完全身起红疹，连夜去了医院。"
ALLERGY_EN = (
    "I told them twice about my peanut allergy, but the satay came with peanuts and I broke out "
    "in hives within minutes."
)
POISONING_ZH = "昨天在这家店吃了海鲜饭，晚上全家上吐下泻，怀疑是食物中毒。"
POISONING_EN = "We all got food poisoning after the chicken at dinner and spent the night vomiting."
DELIVERY_ZH = "快递太慢了，等了一个星期才到，客服也不回复。"
RUDE_EN = "The staff at the Leeds store were rude to my mother."
REFUND_EN = "The refund never arrived"
YAML_TYPE = {"Content-Type": "application/yaml"}


@dataclasses.dataclass
class Api:
    base_url: str
    keys: dict[str, str]
    derived: Counter[str]  # derived model versions built, by version
    app: Any

    def call(self, method: str, path: str, tenant: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[tenant]}", **kwargs.pop("headers", {})}
        return httpx.request(method, self.base_url + path, headers=headers, timeout=120, **kwargs)

    def classify(self, tenant: str, texts: list[str]) -> httpx.Response:
        items = [{"id": f"r{i}", "text": t} for i, t in enumerate(texts)]
        return self.call("POST", "/v1/classify", tenant, json={"items": items})

    def copy_default(self, tenant: str, key: str) -> tuple[str, dict[str, Any]]:
        """A copy of the default taxonomy for ``tenant``: its server id and its document."""
        made = self.call("POST", "/v1/taxonomies", tenant, json={"from": "default", "id": key})
        assert made.status_code == 201, made.text
        tid = made.json()["id"]
        exported = self.call("GET", f"/v1/taxonomies/{tid}?format=yaml", tenant)
        assert exported.status_code == 200, exported.text
        return tid, yaml.safe_load(exported.text)

    def put(self, tenant: str, tid: str, doc: dict[str, Any]) -> str:
        """Save ``doc`` as the next version; returns the hash its derived model is named by."""
        text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
        saved = self.call(
            "PUT", f"/v1/taxonomies/{tid}", tenant, content=text.encode(), headers=YAML_TYPE
        )
        assert saved.status_code == 200 and saved.json()["created"] is True, saved.text
        return load_taxonomy({**doc, "version": 1}).content_hash()[:8]

    def import_records(self, tenant: str, texts: list[str]) -> list[dict[str, Any]]:
        """Upload ``texts`` as a JSON Lines data set; its records once the import job is done."""
        dataset = self.import_dataset(tenant, texts)
        records = self.call("GET", f"/v1/datasets/{dataset}/records", tenant).json()["items"]
        return sorted(records, key=lambda r: r["id"])

    def import_dataset(self, tenant: str, texts: list[str]) -> str:
        """Upload ``texts`` (ids ``d0``, ``d1``…) as a JSON Lines data set; its id once imported."""
        lines = "\n".join(json.dumps({"id": f"d{i}", "text": t}) for i, t in enumerate(texts))
        files = {"file": ("feedback.jsonl", lines.encode())}
        upload = self.call("POST", "/v1/datasets", tenant, files=files)
        assert upload.status_code == 202, upload.text
        deadline = time.monotonic() + 120
        job_id = upload.json()["job"]["id"]
        while (job := self.call("GET", f"/v1/jobs/{job_id}", tenant).json())["state"] not in (
            "succeeded",
            "failed",
        ):
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
        assert job["state"] == "succeeded", job
        return upload.json()["dataset"]["id"]

    def wait_for_model(self, tenant: str, model: str, timeout: float = 180) -> dict[str, Any]:
        """Classify the allergy complaints until ``model`` answers (taxonomy polling, then the
        build); every answer on the way must be a 200."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.classify(tenant, [ALLERGY_ZH, ALLERGY_EN])
            assert response.status_code == 200, response.text
            body = response.json()
            if body["model"] == model:
                return body
            assert time.monotonic() < deadline, f"still {body['model']}, waiting for {model}"
            time.sleep(0.2)


def with_safety(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with ``product.safety`` after ``product.as_described`` (as the walkthrough does)."""
    topics = [dict(t) for t in doc["topics"]]
    at = [t["id"] for t in topics].index("product.as_described") + 1
    return {**doc, "topics": [*topics[:at], SAFETY, *topics[at:]]}


def retired(doc: dict[str, Any], node: str) -> dict[str, Any]:
    topics = [{**t, "status": "retired"} if t["id"] == node else t for t in doc["topics"]]
    return {**doc, "topics": topics}


def topics(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["id"]: t for t in result["topics"]}


def make_keys(url: str) -> dict[str, str]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine).begin() as session:
            keys = {}
            for tenant in ("acme", "initech", "globex", "umbrella"):
                row, _ = get_or_create_tenant(session, tenant)
                _, keys[tenant] = create_key(session, row, "classify,analyze,train", name=tenant)
    finally:
        engine.dispose()
    return keys


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, live_server) -> Iterator[Api]:
    """The real app with the real default model (VERBATIM_HOME's encoder), on SQLite. Derived
    models are built by the real sources, counted by version."""
    from models.classifier import default_model_dir

    if not (default_model_dir() / "config.json").is_file():
        reason = f"the default model is not built yet ({default_model_dir()} has no config.json)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " (CI=true: the real-model test must run)", pytrace=False)
        pytest.skip(reason)
    folder: Path = tmp_path_factory.mktemp("zero-shot")
    url = f"sqlite:///{folder / 'verbatim.db'}"
    settings = Settings(database_url=url, model=None, rate_limit_per_minute=0)
    app = create_app(settings)
    real = default_sources(settings)
    built: Counter[str] = Counter()

    def derive(classifier: Any, taxonomy: Any, version: str) -> Any:
        built[version] += 1
        return real.derive(classifier, taxonomy, version)  # type: ignore[misc]

    app.state.model_sources = dataclasses.replace(real, derive=derive)
    with live_server(app) as base_url:
        deadline = time.monotonic() + 600
        while httpx.get(base_url + "/readyz", timeout=30).status_code != 200:
            assert time.monotonic() < deadline, "the real model did not load in 10 minutes"
            time.sleep(0.2)
        yield Api(base_url=base_url, keys=make_keys(url), derived=built, app=app)


def test_a_new_node_works_zero_shot_for_its_tenant_only_until_retired(api: Api) -> None:
    before = api.classify("acme", [ALLERGY_ZH, ALLERGY_EN])
    assert before.status_code == 200, before.text
    default = before.json()["model"]
    assert default.startswith("verbatim-cem@") and "+tax." not in default

    # a copy of the default has the default's nodes: still the default model, unchanged
    builds = Counter(api.derived)
    tid, doc = api.copy_default("acme", "acme-cem")
    assert api.classify("acme", [ALLERGY_ZH]).json()["model"] == default

    hash2 = api.put("acme", tid, with_safety(doc))
    derived = f"{default}+tax.{hash2}"
    body = api.wait_for_model("acme", derived)
    for result in body["results"]:
        assert result["model"] == derived
        found = topics(result)
        assert NODE in found, (result["id"], list(found))
        assert found[NODE]["zero_shot"] is True and found[NODE]["polarity"] == "negative"
        assert found[NODE]["confidence"] >= 0.5
        # the nodes the default model was trained on are not zero-shot
        assert all("zero_shot" not in t for i, t in found.items() if i != NODE)
    # food poisoning, in both languages, is found too; complaints about other things are not
    other = api.classify("acme", [POISONING_ZH, POISONING_EN, DELIVERY_ZH, RUDE_EN, REFUND_EN])
    poisoning_zh, poisoning_en, delivery, rude, refund = other.json()["results"]
    assert NODE in topics(poisoning_zh) and NODE in topics(poisoning_en)
    assert "delivery.timeliness" in topics(delivery)
    for result in (delivery, rude, refund):
        assert NODE not in topics(result), result
        assert result["model"] == derived
    assert api.derived - builds == Counter({derived.split("@", 1)[1]: 1})  # built once

    # a data set imported now is labelled by the same model (the import job's classifier)
    records = api.import_records("acme", [ALLERGY_ZH, POISONING_EN, DELIVERY_ZH])
    assert {r["model"] for r in records} == {derived}
    found = [topics(r["labels"]) for r in records]
    assert found[0][NODE]["zero_shot"] is True and found[1][NODE]["zero_shot"] is True
    assert NODE not in found[2]

    # another tenant, which edited nothing, never sees the node
    for _ in range(3):
        theirs = api.classify("globex", [ALLERGY_ZH, ALLERGY_EN, POISONING_EN]).json()
        assert theirs["model"] == default
        assert all(NODE not in topics(r) for r in theirs["results"])

    # retired: the node is gone at once, without training (a new derived model)
    hash3 = api.put("acme", tid, retired(with_safety(doc), NODE))
    assert hash3 != hash2
    gone = api.wait_for_model("acme", f"{default}+tax.{hash3}")
    for result in gone["results"]:
        assert NODE not in topics(result)
        assert "product.quality" in topics(result)  # what the default model said before


def test_classification_never_fails_while_the_taxonomy_changes(api: Api) -> None:
    """Clients classify over HTTP while the tenant adds the node and then retires it: no request
    fails, each answer comes from one model of the three, each client sees them in order, and
    each derived model is built once however many requests wanted it."""
    default = api.classify("initech", [REFUND_EN]).json()["model"]
    builds = Counter(api.derived)
    tid, doc = api.copy_default("initech", "initech-cem")
    stop = threading.Event()
    failures: list[str] = []
    seen: list[list[str]] = [[] for _ in range(4)]

    def client(n: int) -> None:
        texts = [ALLERGY_ZH, ALLERGY_EN, DELIVERY_ZH, RUDE_EN]
        while not stop.is_set():
            response = api.classify("initech", [texts[(n + i) % 4] for i in range(1 + n % 3)])
            if response.status_code != 200:
                failures.append(f"{response.status_code}: {response.text[:200]}")
                continue
            body = response.json()
            models = {r["model"] for r in body["results"]}
            if models != {body["model"]}:
                failures.append(f"one request, several models: {models}")
            if not seen[n] or seen[n][-1] != body["model"]:
                seen[n].append(body["model"])

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(client, n) for n in range(4)]
        time.sleep(0.5)
        added = f"{default}+tax.{api.put('initech', tid, with_safety(doc))}"
        body = api.wait_for_model("initech", added)
        assert all(NODE in topics(r) for r in body["results"])
        time.sleep(0.5)
        gone = f"{default}+tax.{api.put('initech', tid, retired(with_safety(doc), NODE))}"
        body = api.wait_for_model("initech", gone)
        assert all(NODE not in topics(r) for r in body["results"])
        time.sleep(0.5)
        stop.set()
        for future in futures:
            future.result()
    assert failures == []
    for models in seen:  # each client: the default, then the node, then without it
        assert models == [default, added, gone]
    versions = [m.split("@", 1)[1] for m in (added, gone)]
    assert api.derived - builds == Counter(versions)  # each built once


@dataclasses.dataclass(frozen=True)
class Edited:
    """umbrella's taxonomy: a copy of the default (``doc``, id ``tid``) with the node added, served
    by ``derived``; ``dataset`` holds the allergy complaints and two others, imported after."""

    tid: str
    doc: dict[str, Any]
    default: str
    derived: str
    dataset: str


@pytest.fixture(scope="module")
def umbrella(api: Api) -> Edited:
    default = api.classify("umbrella", [REFUND_EN]).json()["model"]
    tid, doc = api.copy_default("umbrella", "umbrella-cem")
    derived = f"{default}+tax.{api.put('umbrella', tid, with_safety(doc))}"
    api.wait_for_model("umbrella", derived)
    dataset = api.import_dataset("umbrella", [ALLERGY_ZH, ALLERGY_EN, DELIVERY_ZH, RUDE_EN])
    return Edited(tid=tid, doc=doc, default=default, derived=derived, dataset=dataset)


def test_records_filter_on_the_tenants_new_node(api: Api, umbrella: Edited) -> None:
    """``?topic=product.safety`` finds the allergy complaints the derived model labelled, rather
    than a 422 "Unknown topic" from checking against the default model's nodes."""
    path = f"/v1/datasets/{umbrella.dataset}/records"
    found = api.call("GET", path, "umbrella", params={"topic": NODE, "polarity": "negative"})
    assert found.status_code == 200, found.text
    assert sorted(r["id"] for r in found.json()["items"]) == ["d0", "d1"]
    assert {r["model"] for r in found.json()["items"]} == {umbrella.derived}
    level1 = api.call("GET", path, "umbrella", params={"topic": "product"}).json()["items"]
    assert {"d0", "d1"} <= {r["id"] for r in level1}  # a level-1 id matches its new leaf too
    typo = api.call("GET", path, "umbrella", params={"topic": "product.safty"})
    assert typo.status_code == 422 and "product.safty" in typo.text  # still checked


def test_the_model_listing_names_the_model_actually_served(api: Api, umbrella: Edited) -> None:
    listing = api.call("GET", "/v1/models", "umbrella")
    assert listing.status_code == 200, listing.text
    body = listing.json()
    assert body["serving"] == umbrella.derived and "+tax." in body["serving"]
    assert body["serving_base"] == body["default_model"] == umbrella.default
    assert body["promoted"] is None
    from models.classifier.quantize import resolve_precision

    assert body["precision"] == resolve_precision("auto").value  # the derived model runs on the served encoder
    theirs = api.call("GET", "/v1/models", "globex").json()  # no taxonomy of its own
    assert theirs["serving"] == theirs["serving_base"] == umbrella.default


def test_the_review_queue_prior_knows_the_tenants_new_node(api: Api, umbrella: Edited) -> None:
    """The zero-shot prior comes from the tenant's served model, so it points the allergy
    complaints at the new node (the default model has no prototype for it)."""
    queue = api.call("GET", "/v1/review-queue", "umbrella", params={"dataset_id": umbrella.dataset})
    assert queue.status_code == 200, queue.text
    body = queue.json()
    assert body["prior"] == "zero-shot prior from the base encoder", body["prior"]
    prior = {item["record_id"]: [t["id"] for t in item["prior_topics"]] for item in body["items"]}
    assert set(prior) == {"d0", "d1", "d2", "d3"}
    for record in ("d0", "d1"):  # peanut allergies, in Chinese and English
        assert prior[record][0] == NODE, (record, prior[record])
    assert NODE not in prior["d2"][:1] and NODE not in prior["d3"][:1]  # late parcel, rude staff


def test_a_taxonomy_edit_applies_at_once_on_the_server_that_saved_it(
    api: Api, umbrella: Edited
) -> None:
    """With polling slowed to 10 minutes, the server that saves the taxonomy still follows it at
    the tenant's very next request: back to the default model's nodes, then to the node again
    (whose derived model is still in memory)."""
    models = get_tenant_models(api.app.state)
    refresh_s, models.refresh_s = models.refresh_s, 600.0
    try:
        assert api.classify("umbrella", [ALLERGY_ZH]).json()["model"] == umbrella.derived
        api.put("umbrella", umbrella.tid, umbrella.doc)  # the node deleted: the default's nodes
        plain = api.classify("umbrella", [ALLERGY_ZH]).json()
        assert plain["model"] == umbrella.default
        assert NODE not in topics(plain["results"][0])
        api.put("umbrella", umbrella.tid, with_safety(umbrella.doc))
        again = api.classify("umbrella", [ALLERGY_ZH]).json()
        assert again["model"] == umbrella.derived
        assert NODE in topics(again["results"][0])
    finally:
        models.refresh_s = refresh_s
