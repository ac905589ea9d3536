"""Triage policies per tenant over real HTTP (uvicorn on loopback), on SQLite and PostgreSQL.

A tenant starts on the default policy; an admin creates its own (a copy of the default, or YAML),
adds versions, exports them as YAML, diffs them. Invalid YAML is a 422 listing every problem with
its path; scopes and tenant isolation hold; concurrent PUTs never make a version twice. Then the
point of it all: a stricter policy makes a Chinese and an English complaint P1 for that tenant in
POST /v1/classify, in an imported data set and in the cases it opens, while another tenant's
results for the same texts stay on the default.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml

from models.taxonomy import default_taxonomy, taxonomy_to_dict
from models.triage import Triage, default_policy, load_policy, policy_to_dict
from nlp.prepare import prepare
from service.app import create_app
from service.jobs import JobRunnerConfig
from service.settings import Settings
from service.storage import make_engine, make_session_factory
from service.storage.keys import create_key, get_or_create_tenant

YAML = {"Content-Type": "application/yaml"}
FAST_JOBS = JobRunnerConfig(poll_interval_s=0.1, heartbeat_interval_s=0.2, stale_after_s=5)

# A late delivery and a delayed flight, both with a churn threat: P2 under the default policy.
ZH = "送餐晚了一个多小时，饭菜全凉了，以后再也不会在这家点了"
EN = "Flight delayed three hours and nobody told us anything. Never flying with you again."
MILD = "包装还行，味道一般"


class TriagingFake:
    """A stand-in for the model: negative sentiment and a delivery topic from cue words, then the
    real default triage, as ``Classifier.load`` attaches it."""

    model_id = "fake-cem@policy-test"

    def __init__(self) -> None:
        self.triage = Triage(taxonomy=default_taxonomy())

    def classify(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for item in items:
            prep = prepare(item["text"], lang=item.get("lang"))
            negative = any(c in item["text"] for c in ("晚", "凉", "delayed", "Never", "broken"))
            score = -0.8 if negative else 0.1
            topics = [{"id": "delivery.timeliness", "polarity": "negative", "confidence": 0.9}] if negative else []
            res = {
                "id": item["id"], "lang": prep.lang.value,
                "sentiment": {"label": "negative" if negative else "neutral", "score": score, "confidence": 0.9},
                "topics": topics, "touchpoints": [], "primary_touchpoint": None, "model": self.model_id,
            }  # fmt: skip
            res["triage"] = self.triage(res, prep)
            out.append(res)
        return out


def stricter(key: str = "acme-triage") -> dict[str, Any]:
    """The default policy with lower thresholds, churn lifted to P1 and shorter SLAs."""
    doc = json.loads(json.dumps(policy_to_dict(default_policy())))
    doc.update(id=key, name="极客外卖 triage / Acme triage",
               thresholds={"P1": 4.0, "P2": 2.5, "P3": 1.0},
               sla_hours={"P1": 2, "P2": 12, "P3": 48, "P4": 168})  # fmt: skip
    doc["cues"]["churn"]["floor"] = "P1"
    doc["cues"]["safety"]["zh"].append("吃坏肚子")
    return doc


def to_yaml(doc: dict[str, Any]) -> bytes:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False).encode()


@dataclass(frozen=True, kw_only=True)
class Api:
    base_url: str
    keys: dict[str, str]
    key_ids: dict[str, str]

    def request(self, method: str, path: str, key: str | None = "admin", **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if key:
            headers["Authorization"] = f"Bearer {self.keys[key]}"
        return httpx.request(method, self.base_url + path, headers=headers, timeout=30, **kw)

    def classify(self, key: str, *texts: str) -> list[dict[str, Any]]:
        items = [{"id": f"t{i}", "text": t} for i, t in enumerate(texts)]
        response = self.request("POST", "/v1/classify", key, json={"items": items})
        assert response.status_code == 200, response.text
        return response.json()["results"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory, database_factory, live_server) -> Iterator[Api]:
    home = tmp_path_factory.mktemp("home")
    with database_factory(request.param, home) as url:
        app = create_app(Settings(home=home, database_url=url), classifier_factory=TriagingFake, jobs=FAST_JOBS)
        with live_server(app) as base_url:
            engine = make_engine(url)
            keys, key_ids = {}, {}
            with make_session_factory(engine).begin() as session:
                tenants = {name: get_or_create_tenant(session, name)[0] for name in ("acme", "globex", "initech", "umbrella")}
                for label, tenant, scopes in [
                    ("admin", "acme", "admin"), ("analyze", "acme", "analyze"), ("agent", "acme", "triage"),
                    ("classify", "acme", "classify"), ("train", "acme", "train,analyze"),
                    ("globex", "globex", "admin"), ("initech", "initech", "admin"),
                    ("umbrella", "umbrella", "admin"),
                ]:  # fmt: skip
                    row, keys[label] = create_key(session, tenants[tenant], scopes, name=label)
                    key_ids[label] = row.id
            engine.dispose()
            yield Api(base_url=base_url, keys=keys, key_ids=key_ids)


@pytest.fixture(scope="module")
def acme(api: Api) -> dict[str, Any]:
    """acme's policy: version 1 a copy of the default, version 2 the stricter rules."""
    created = api.request("POST", "/v1/triage-policies", json={"from": "default", "id": "acme-triage"})
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    saved = api.request("PUT", f"/v1/triage-policies/{pid}", content=to_yaml(stricter()), headers=YAML,
                        params={"message": "流失风险一律P1 / churn is P1"})  # fmt: skip
    assert saved.status_code == 200, saved.text
    return saved.json()


def test_a_tenant_without_a_policy_is_triaged_by_the_default(api: Api) -> None:
    current = api.request("GET", "/v1/triage-policies/current", "globex").json()
    assert current["source"] == "default" and current["ref"] == "default@2" and current["id"] is None
    assert current["policy"]["thresholds"] == {"P1": 6.0, "P2": 3.5, "P3": 1.5}
    assert api.request("GET", "/v1/triage-policies", "globex").json()["items"] == []
    zh, en = api.classify("globex", ZH, EN)
    assert (zh["triage"]["priority"], en["triage"]["priority"]) == ("P2", "P2")
    assert zh["triage"]["policy"] == en["triage"]["policy"] == "default@2"


def test_a_stricter_policy_makes_the_same_zh_and_en_complaints_p1_for_its_tenant_only(api: Api, acme: dict) -> None:
    assert acme["current_version"] == 2 and acme["version"]["ref"] == "acme-triage@2"
    zh, en, mild = api.classify("classify", ZH, EN, MILD)
    for result, cue in ((zh, "再也不会"), (en, "Never flying with you again")):
        triage = result["triage"]
        assert triage["priority"] == "P1" and triage["policy"] == "acme-triage@2", triage
        assert f"churn risk: {cue}" in triage["reasons"] and triage["score"] >= 4.0
        assert triage["sla_hours"] == 2
    assert mild["triage"]["priority"] == "P4" and mild["triage"]["policy"] == "acme-triage@2"
    # another tenant, same texts: still the default
    assert [r["triage"]["priority"] for r in api.classify("globex", ZH, EN)] == ["P2", "P2"]
    current = api.request("GET", "/v1/triage-policies/current", "agent").json()
    assert current["source"] == "tenant" and current["ref"] == "acme-triage@2" and current["id"] == acme["id"]


def test_versions_yaml_export_and_diff(api: Api, acme: dict) -> None:
    pid = acme["id"]
    versions = api.request("GET", f"/v1/triage-policies/{pid}/versions", "analyze").json()
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[0]["message"] == "流失风险一律P1 / churn is P1" and versions[1]["message"] == "copy of the default policy"
    assert versions[0]["created_by"] == api.key_ids["admin"]
    exported = api.request("GET", f"/v1/triage-policies/{pid}/versions/1", "agent", params={"format": "yaml"})
    assert exported.headers["content-type"].startswith("text/yaml")
    v1 = load_policy(exported.text)
    assert v1.ref == "acme-triage@1" and v1.content_hash() == default_policy().content_hash()
    by_key = api.request("GET", "/v1/triage-policies/acme-triage", "analyze").json()
    assert by_key["id"] == pid and by_key["policy"]["cues"]["churn"]["floor"] == "P1"
    diff = api.request("GET", f"/v1/triage-policies/{pid}/diff", "analyze").json()
    assert diff["from"] == "acme-triage@1" and diff["to"] == "acme-triage@2" and not diff["same_rules"]
    assert "thresholds.P1: 6.0 -> 4.0" in diff["summary"] and "cues.safety.zh: +吃坏肚子" in diff["summary"]
    assert "cues.churn.floor: added" in diff["summary"] and "sla_hours.P1: 4.0 -> 2.0" in diff["summary"]
    # re-uploading the current version adds nothing
    again = api.request("PUT", f"/v1/triage-policies/{pid}", content=to_yaml(stricter()), headers=YAML)
    assert again.status_code == 200 and again.json()["created"] is False and again.json()["current_version"] == 2
    missing = api.request("GET", f"/v1/triage-policies/{pid}/versions/9", "analyze")
    assert missing.status_code == 404 and "versions are 1 to 2" in missing.json()["error"]["message"]


def test_invalid_policies_are_422_with_every_problem_and_its_path(api: Api, acme: dict) -> None:
    doc = stricter()
    doc["thresholds"]["P2"] = 7.0  # above P1
    del doc["sla_hours"]["P4"]
    doc["cues"]["legal"]["related_topics"].append("billing.charge")  # a typo of billing.charges
    doc["cues"]["churn"]["en"].append(False)  # what YAML makes of an unquoted `no`
    doc["weights"]["urgency"] = 2  # not a field
    response = api.request("PUT", f"/v1/triage-policies/{acme['id']}", content=to_yaml(doc), headers=YAML)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_policy"
    paths = {p["path"] for p in error["details"] if p["level"] == "error"}
    assert {"thresholds.P2", "sla_hours.P4", "weights.urgency"} <= paths, error["details"]
    assert any(p.startswith("cues.churn.en") for p in paths) and any(p.startswith("cues.legal.related_topics") for p in paths)
    assert all(p["line"] for p in error["details"]), error["details"]
    broken = api.request("POST", "/v1/triage-policies", "initech", content=b"id: x\nthresholds: [1, 2\n", headers=YAML)
    assert broken.status_code == 422 and broken.json()["error"]["details"][0]["line"] is not None
    renamed = api.request("PUT", f"/v1/triage-policies/{acme['id']}", content=to_yaml(stricter("other")), headers=YAML)
    assert renamed.status_code == 422 and renamed.json()["error"]["details"][0]["path"] == "id"
    # nothing was saved
    assert api.request("GET", f"/v1/triage-policies/{acme['id']}", "analyze").json()["current_version"] == 2


def test_scopes_and_tenant_isolation(api: Api, acme: dict) -> None:
    pid = acme["id"]
    assert api.request("GET", f"/v1/triage-policies/{pid}", "classify").status_code == 403
    assert api.request("GET", f"/v1/triage-policies/{pid}", None).status_code == 401
    for key in ("analyze", "agent", "train"):  # reading is fine, changing needs admin
        assert api.request("GET", f"/v1/triage-policies/{pid}", key).status_code == 200
        put = api.request("PUT", f"/v1/triage-policies/{pid}", key, content=to_yaml(stricter()), headers=YAML)
        assert put.status_code == 403, put.text
    assert api.request("POST", "/v1/triage-policies", "agent", json={"from": "default"}).status_code == 403
    for path in (f"/v1/triage-policies/{pid}", f"/v1/triage-policies/{pid}/versions",
                 f"/v1/triage-policies/{pid}/versions/1", f"/v1/triage-policies/{pid}/diff",
                 "/v1/triage-policies/acme-triage"):  # fmt: skip
        assert api.request("GET", path, "globex").status_code == 404, path
    put = api.request("PUT", f"/v1/triage-policies/{pid}", "globex", content=to_yaml(stricter()), headers=YAML)
    assert put.status_code == 404
    again = api.request("POST", "/v1/triage-policies", json={"from": "default"})
    assert again.status_code == 409 and pid in again.json()["error"]["message"]


def test_concurrent_puts_each_get_their_own_version_or_a_409(api: Api) -> None:
    created = api.request("POST", "/v1/triage-policies", "initech", json={"from": "default", "id": "initech"})
    assert created.status_code == 201, created.text
    pid = created.json()["id"]

    def put(i: int) -> httpx.Response:
        doc = stricter("initech")
        doc["thresholds"]["P1"] = 4.0 + i / 10
        return api.request("PUT", f"/v1/triage-policies/{pid}", "initech", content=to_yaml(doc), headers=YAML)

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(put, range(4)))
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 409} and 200 in codes, [r.text for r in responses]
    saved = sorted(r.json()["current_version"] for r in responses if r.status_code == 200)
    assert saved == list(range(2, 2 + len(saved)))  # no number twice, none skipped
    versions = api.request("GET", f"/v1/triage-policies/{pid}/versions", "initech").json()
    assert [v["version"] for v in versions] == list(range(1 + len(saved), 0, -1))
    # an edit made from an old version is refused, not silently overwriting the newer one
    stale = api.request("PUT", f"/v1/triage-policies/{pid}", "initech", content=to_yaml(stricter("initech")),
                        headers={**YAML, "If-Match": '"1"'})  # fmt: skip
    assert stale.status_code == 409 and "changed since version 1" in stale.json()["error"]["message"]


def test_an_import_triages_and_opens_cases_under_the_tenants_policy(api: Api, acme: dict) -> None:
    rows = [{"id": "z1", "text": ZH, "customer_id": "C1"}, {"id": "e1", "text": EN, "customer_id": "C2"},
            {"id": "m1", "text": MILD}]  # fmt: skip
    body = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode()
    response = api.request("POST", "/v1/datasets", "admin", files={"file": ("complaints.jsonl", body)},
                           data={"name": "投诉 complaints"})  # fmt: skip
    assert response.status_code == 202, response.text
    job_id, dataset_id = response.json()["job"]["id"], response.json()["dataset"]["id"]
    for _ in range(300):
        job = api.request("GET", f"/v1/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed"):
            break
        threading.Event().wait(0.05)
    assert job["state"] == "succeeded", job
    records = api.request("GET", f"/v1/datasets/{dataset_id}/records").json()["items"]
    triage = {r["id"]: r["labels"]["triage"] for r in records}
    assert {k: (t["priority"], t["policy"]) for k, t in triage.items()} == {
        "z1": ("P1", "acme-triage@2"), "e1": ("P1", "acme-triage@2"), "m1": ("P4", "acme-triage@2")}
    cases = api.request("GET", "/v1/cases", "agent", params={"limit": 100}).json()["items"]
    mine = [c for c in cases if {r["record_id"] for r in c["records"]} & {"z1", "e1"}]
    assert len(mine) == 2
    for case in mine:  # the policy's routing, its 2-hour P1 SLA, and its version on the case
        assert case["priority"] == "P1" and case["policy"] == "acme-triage@2" and case["team"] == "logistics"
        created, due = (datetime.fromisoformat(case[k]) for k in ("created_at", "due_at"))
        assert due - created == timedelta(hours=2)


SAFETY = {
    "id": "product.safety",
    "name": {"zh": "过敏/食品安全", "en": "Allergies and food safety"},
    "description": {"zh": "过敏、食物中毒、饭菜里的异物", "en": "Allergies, food poisoning, foreign objects in food"},
    "seeds": {"zh": ["吃完全身起红疹", "备注了花生过敏还是放了花生", "饭里吃出了虫子"],
              "en": ["we all got food poisoning", "broke out in hives after eating", "found a hair in my salad"]},
}  # fmt: skip


def with_safety_node(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` (a policy) lifting the tenant's new node ``product.safety`` to critical and
    counting it among the safety cues' topics."""
    doc = json.loads(json.dumps(doc))
    doc["topics"]["severity"]["product.safety"] = "critical"
    doc["cues"]["safety"]["related_topics"].append("product.safety")
    return doc


def test_a_policy_may_name_the_tenants_own_new_taxonomy_node(api: Api) -> None:
    """umbrella added ``product.safety`` to its taxonomy: its policy may name the node (create and
    PUT); a tenant on the default taxonomy naming it gets a 422 that says which taxonomy lacks it."""
    taxonomy = json.loads(json.dumps(taxonomy_to_dict(default_taxonomy())))
    taxonomy.update(id="umbrella-cem", topics=[*taxonomy["topics"], SAFETY])
    made = api.request("POST", "/v1/taxonomies", "umbrella", content=to_yaml(taxonomy), headers=YAML)
    assert made.status_code == 201, made.text
    policy = with_safety_node(stricter("umbrella-triage"))
    created = api.request("POST", "/v1/triage-policies", "umbrella", content=to_yaml(policy), headers=YAML)
    assert created.status_code == 201, created.text
    assert created.json()["policy"]["topics"]["severity"]["product.safety"] == "critical"
    policy["thresholds"]["P1"] = 4.5
    saved = api.request("PUT", f"/v1/triage-policies/{created.json()['id']}", "umbrella",
                        content=to_yaml(policy), headers=YAML)  # fmt: skip
    assert saved.status_code == 200 and saved.json()["current_version"] == 2, saved.text
    # a typo of the node is still caught, against the tenant's taxonomy
    typo = json.loads(json.dumps(policy))
    typo["topics"]["severity"]["product.safty"] = typo["topics"]["severity"].pop("product.safety")
    refused = api.request("PUT", f"/v1/triage-policies/{created.json()['id']}", "umbrella",
                          content=to_yaml(typo), headers=YAML)  # fmt: skip
    assert refused.status_code == 422, refused.text
    problem = next(d for d in refused.json()["error"]["details"] if "product.safty" in d["path"])
    assert "'umbrella-cem'" in problem["message"] and "product.safety" in problem["message"]
    # globex has no taxonomy of its own: the default one, which lacks the node
    theirs = with_safety_node(stricter("globex-triage"))
    other = api.request("POST", "/v1/triage-policies", "globex", content=to_yaml(theirs), headers=YAML)
    assert other.status_code == 422, other.text
    paths = {d["path"]: d["message"] for d in other.json()["error"]["details"]}
    assert "product.safety" in paths.get("topics.severity.product.safety", ""), paths


@pytest.mark.parametrize(
    ("text", "character", "line"), [("\u0089", "U+0089", 1), ("id: x\nname: 坏\u0007了\n", "U+0007", 2)]
)
def test_a_control_character_in_the_yaml_is_a_422_naming_it(api: Api, text: str, character: str, line: int) -> None:
    """YAML refuses control characters before parsing: that is the caller's mistake (a 422 naming
    the character and its line), never a 500; for a policy and for a taxonomy alike."""
    for path in ("/v1/triage-policies", "/v1/taxonomies"):
        before = api.request("GET", path, "initech").json()["total"]
        response = api.request("POST", path, "initech", json={"yaml": text})
        assert response.status_code == 422, (path, response.text)
        error = response.json()["error"]
        assert error["code"] in ("invalid_policy", "invalid_taxonomy"), error
        assert character in error["details"][0]["message"] and error["details"][0]["line"] == line, error
        assert api.request("GET", path, "initech").json()["total"] == before  # nothing saved
