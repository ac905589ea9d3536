"""Support cases over real HTTP (uvicorn on loopback), on SQLite and PostgreSQL.

A data set import with a fake classifier that gives triage priorities opens cases for P1/P2
records, routed to team queues; a repeat complaint by the same customer joins the open case.
Then: filters and sorting, every legal and illegal status change, the audit trail with who and
when, tenant isolation, two concurrent PATCHes with the same version (one 200, one 409), the SLA
breach filter and the /metrics gauges.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from service.app import create_app
from service.jobs import JobRunnerConfig
from service.settings import Settings
from service.storage import make_engine, make_session_factory
from service.storage.keys import create_key, get_or_create_tenant
from service.storage.models import Case

FAST_JOBS = JobRunnerConfig(poll_interval_s=0.1, heartbeat_interval_s=0.2, stale_after_s=5)

# (cues, topic, touchpoint)
_TOPICS = (
    (("快递", "delivery", "parcel"), "delivery.timeliness", "fulfil"),
    (("扣费", "charged"), "billing.charges", "account"),
    (("闪退", "app keeps crashing"), "digital.usability", "use"),
    (("客服", "rude"), "service.attitude", "support"),
    (("质量",), "product.quality", "use"),
)
_P1 = ("起火", "12315", "lawyer")
_NEG = ("慢", "没人管", "差", "twice", "crashing", "rude", "terrible", "late")


class TriageFake:
    """Contract-shaped results whose triage priority follows cue words: P1 for safety or legal
    cues, P2 for other complaints, P3 for lukewarm text (一般), else P4."""

    model_id = "fake-triage@test"

    def classify(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self._one(item) for item in items]

    def _one(self, item: dict[str, Any]) -> dict[str, Any]:
        text = item["text"]
        low = text.lower()
        p1 = [c for c in _P1 if c in low]
        negative = bool(p1) or any(c in low for c in _NEG)
        priority = "P1" if p1 else "P2" if negative else "P3" if "一般" in text else "P4"
        label = "negative" if negative else "neutral" if priority == "P3" else "positive"
        topics = [{"id": t, "polarity": label, "confidence": 0.9 - 0.1 * i}
                  for i, (cues, t, _) in enumerate(_TOPICS) if any(c in low for c in cues)]  # fmt: skip
        touch = next((tp for cues, _, tp in _TOPICS if any(c in low for c in cues)), None)
        reasons = [f"safety or legal cue: {', '.join(p1)}"] if p1 else (
            ["negative sentiment"] if negative else [])  # fmt: skip
        return {
            "id": item["id"], "lang": item.get("lang") or ("zh" if any("\u4e00" <= ch <= "\u9fff" for ch in text) else "en"),
            "sentiment": {"label": label, "score": -0.9 if negative else 0.1, "confidence": 0.9},
            "topics": topics, "touchpoints": [{"id": touch, "confidence": 0.8}] if touch else [],
            "primary_touchpoint": touch,
            "triage": {"priority": priority, "reasons": reasons},
            "model": self.model_id,
        }  # fmt: skip


ROWS = [
    {"id": "z1", "text": "快递太慢了，箱子里的充电宝还起火了，我要投诉到12315", "customer_id": "C1", "lang": "zh"},
    {"id": "e1", "text": "I was charged twice this month, terrible", "user_id": "u-1"},
    {"id": "e2", "text": "The app keeps crashing at checkout"},
    {"id": "z2", "text": "快递又慢了，电话13812345678一直没人管", "customer_id": "C1", "lang": "zh"},
    {"id": "z3", "text": "质量一般", "customer_id": "C9"},
    {"id": "e3", "text": "Great store, love it", "customer_id": "C1"},
    {"id": "e4", "text": "The support agent was rude to me", "user_id": "u-1"},
    {"id": "z4", "text": "客服态度差", "customer": "C2", "lang": "zh"},
]  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Api:
    base_url: str
    database_url: str
    keys: dict[str, str]
    key_ids: dict[str, str]

    def request(self, method: str, path: str, key: str = "agent", **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[key]}"}
        return httpx.request(method, self.base_url + path, headers=headers, timeout=30, **kw)

    def cases(self, key: str = "agent", **params: Any) -> dict[str, Any]:
        response = self.request("GET", "/v1/cases", key, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def case_by_record(self, record_id: str) -> dict[str, Any]:
        items = self.cases(limit=100)["items"]
        return next(c for c in items if record_id in [r["record_id"] for r in c["records"]])

    def patch(self, case_id: str, key: str = "agent", **body: Any) -> httpx.Response:
        return self.request("PATCH", f"/v1/cases/{case_id}", key, json=body)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory, database_factory, live_server) -> Iterator[Api]:
    home: Path = tmp_path_factory.mktemp("home")
    with database_factory(request.param, home) as url:
        app = create_app(Settings(home=home, database_url=url), classifier_factory=TriageFake, jobs=FAST_JOBS)
        with live_server(app) as base_url:
            engine = make_engine(url)
            keys, key_ids = {}, {}
            with make_session_factory(engine).begin() as session:
                acme, _ = get_or_create_tenant(session, "acme")
                globex, _ = get_or_create_tenant(session, "globex")
                for label, tenant, scopes in [
                    ("analyst", acme, "analyze"), ("agent", acme, "triage"),
                    ("agent2", acme, "triage"), ("globex", globex, "triage,analyze"),
                ]:  # fmt: skip
                    row, keys[label] = create_key(session, tenant, scopes, name=label)
                    key_ids[label] = row.id
            engine.dispose()
            yield Api(base_url=base_url, database_url=url, keys=keys, key_ids=key_ids)


@pytest.fixture(scope="module")
def imported(api: Api) -> dict[str, Any]:
    body = "\n".join(json.dumps(r, ensure_ascii=False) for r in ROWS)
    response = api.request("POST", "/v1/datasets", "analyst", files={"file": ("complaints.jsonl", body.encode())},
                           data={"name": "投诉 complaints"})  # fmt: skip
    assert response.status_code == 202, response.text
    job_id = response.json()["job"]["id"]
    for _ in range(300):
        job = api.request("GET", f"/v1/jobs/{job_id}", "analyst").json()
        if job["state"] in ("succeeded", "failed"):
            break
        threading.Event().wait(0.05)
    assert job["state"] == "succeeded", job
    return response.json()["dataset"]


def test_import_opens_routed_cases_for_p1_p2_and_repeat_complaints_join(api: Api, imported: dict) -> None:
    page = api.cases()
    by_topic = {c["topic"]: c for c in page["items"]}
    # z3 (P3) and e3 (P4) open nothing; z1 + z2 (same customer, same topic) are one case
    assert page["total"] == 5
    assert set(by_topic) == {"delivery.timeliness", "billing.charges", "digital.usability", "service.attitude"}
    teams = sorted((c["team"], c["customer_id"]) for c in page["items"])
    assert teams == [("billing", "u-1"), ("customer-care", "C2"), ("customer-care", "u-1"),
                     ("digital", None), ("logistics", "C1")]  # fmt: skip
    delivery = by_topic["delivery.timeliness"]
    assert delivery["priority"] == "P1" and delivery["repeat_count"] == 2
    assert [r["record_id"] for r in delivery["records"]] == ["z1", "z2"]
    assert "routed to logistics by rule logistics" in delivery["reasons"]
    # P1 first (default sort: priority then due), every case open, due per the policy's SLA hours
    assert page["items"][0]["id"] == delivery["id"]
    assert {c["status"] for c in page["items"]} == {"open"}
    for case in page["items"]:
        created, due = (datetime.fromisoformat(case[k]) for k in ("created_at", "due_at"))
        assert due - created == timedelta(hours=4 if case["priority"] == "P1" else 24)
        assert case["sla_breached"] is False
        assert case["version"] == case["repeat_count"]  # joining a case is a change too


def test_case_detail_shows_masked_texts_reasons_and_the_audit(api: Api, imported: dict) -> None:
    case = api.case_by_record("z1")
    detail = api.request("GET", f"/v1/cases/{case['id']}").json()
    texts = [r["masked_text"] for r in detail["case_records"]]
    assert "起火" in texts[0] and "12315" in texts[0]
    assert "13812345678" not in texts[1] and "没人管" in texts[1]  # the phone number is masked
    assert detail["case_records"][0]["reasons"] == ["safety or legal cue: 起火, 12315"]
    assert detail["case_records"][1]["priority"] == "P2"
    fields = [a["field"] for a in detail["audit"]]
    assert fields == ["created", "repeat_count"]
    assert {a["actor_id"] for a in detail["audit"]} == {"system"}


def test_filters_and_sorting(api: Api, imported: dict) -> None:
    assert [c["team"] for c in api.cases(team="logistics")["items"]] == ["logistics"]
    assert {c["priority"] for c in api.cases(priority="P2")["items"]} == {"P2"}
    assert api.cases(priority="P2")["total"] == 4
    assert [c["topic"] for c in api.cases(topic="delivery")["items"]] == ["delivery.timeliness"]
    assert api.cases(topic="deliver")["total"] == 0  # a prefix is not a topic
    assert api.cases(min_age_hours=1)["total"] == 0
    page = api.cases(sort="-created_at", limit=2)
    assert len(page["items"]) == 2 and page["next_offset"] == 2 and page["total"] == 5
    stamps = [c["created_at"] for c in api.cases(sort="created_at")["items"]]
    assert stamps == sorted(stamps)
    bad = api.request("GET", "/v1/cases", params={"sort": "team"})
    assert bad.status_code == 422


def test_every_transition_and_the_audit_trail(api: Api, imported: dict) -> None:
    case = api.case_by_record("e1")
    cid, version = case["id"], case["version"]
    started = datetime.now(UTC)

    def step(expect: int = 200, key: str = "agent", **body: Any) -> dict[str, Any]:
        nonlocal version
        response = api.patch(cid, key, version=version, **body)
        assert response.status_code == expect, response.text
        if expect == 200:
            version = response.json()["version"]
        return response.json()

    # illegal from open: closed, reopened; the message names the allowed ones
    error = step(422, status="closed")["error"]
    assert "'open' to 'closed'" in error["message"] and "'in_progress', 'resolved'" in error["message"]
    assert error["details"]["allowed"] == ["in_progress", "resolved"]
    step(422, status="reopened")
    assert step(assignee="maria", status="in_progress", note="已致电客户")["status"] == "in_progress"
    # a resolution code only when resolving; resolving needs one
    assert "resolution_code" in step(422, resolution_code="refunded")["error"]["message"]
    assert "needs a resolution_code" in step(422, status="resolved")["error"]["message"]
    step(422, status="closed")
    resolved = step(status="resolved", resolution_code="refunded", key="agent2")
    assert resolved["resolution_code"] == "refunded" and resolved["resolved_at"]
    step(422, status="in_progress")
    step(422, status="open")
    assert step(status="closed")["status"] == "closed"
    for illegal in ("open", "in_progress", "resolved"):
        step(422, status=illegal)
    reopened = step(status="reopened", note="Customer says the refund never arrived")
    assert reopened["resolution_code"] is None and reopened["resolved_at"] is None
    step(422, status="closed")
    step(422, status="open")
    assert step(status="in_progress")["status"] == "in_progress"
    assert step(status="open", unassign=True)["assignee"] is None  # handed back to the queue
    step(status="resolved", resolution_code="explained")
    step(status="reopened")
    final = step(status="resolved", resolution_code="refunded")
    assert final["version"] == 1 + 9

    audit = api.request("GET", f"/v1/cases/{cid}/audit").json()
    assert audit == final["audit"]
    mine = [a for a in audit if a["actor_id"] != "system"]
    statuses = [(a["old"], a["new"]) for a in mine if a["field"] == "status"]
    assert statuses == [("open", "in_progress"), ("in_progress", "resolved"), ("resolved", "closed"),
                        ("closed", "reopened"), ("reopened", "in_progress"), ("in_progress", "open"),
                        ("open", "resolved"), ("resolved", "reopened"), ("reopened", "resolved")]  # fmt: skip
    resolver = next(a for a in mine if a["field"] == "resolution_code")
    assert (resolver["actor_id"], resolver["actor_name"]) == (api.key_ids["agent2"], "agent2")
    assert {a["actor_name"] for a in mine} == {"agent", "agent2"}
    for a in mine:
        assert started - timedelta(seconds=5) <= datetime.fromisoformat(a["at"]) <= datetime.now(UTC)
    assert [n["text"] for n in final["notes"]] == ["已致电客户", "Customer says the refund never arrived"]
    assert final["notes"][0]["by"] == "agent"
    assert ("maria", None) in [(a["old"], a["new"]) for a in mine if a["field"] == "assignee"]
    # an unchanged field writes no audit row and no new version; a stale version is a 409
    same = api.patch(cid, version=version, status="resolved").json()
    assert same["version"] == version and len(same["audit"]) == len(audit)
    stale = api.patch(cid, version=version - 1, note="late")
    assert stale.status_code == 409 and "changed by someone else" in stale.json()["error"]["message"]
    assert api.request("DELETE", f"/v1/cases/{cid}").status_code == 405  # nothing is deleted


def test_concurrent_patches_with_one_version_give_one_200_and_one_409(api: Api, imported: dict) -> None:
    case = api.case_by_record("e4")
    barrier = threading.Barrier(2)
    results: dict[str, httpx.Response] = {}

    def worker(name: str, key: str) -> None:
        barrier.wait()
        results[name] = api.patch(case["id"], key, version=case["version"], assignee=name, note=f"taken by {name}")

    threads = [threading.Thread(target=worker, args=(n, k)) for n, k in (("li", "agent"), ("sam", "agent2"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    codes = sorted(r.status_code for r in results.values())
    assert codes == [200, 409], {k: r.text for k, r in results.items()}
    winner = next(n for n, r in results.items() if r.status_code == 200)
    now = api.request("GET", f"/v1/cases/{case['id']}").json()
    assert now["assignee"] == winner and now["version"] == case["version"] + 1
    assert [n["text"] for n in now["notes"]] == [f"taken by {winner}"]  # no lost or double update


def test_tenant_isolation_and_scope(api: Api, imported: dict) -> None:
    case = api.case_by_record("z1")
    assert api.cases("globex")["total"] == 0
    for method, path, kw in [("GET", f"/v1/cases/{case['id']}", {}), ("GET", f"/v1/cases/{case['id']}/audit", {}),
                             ("PATCH", f"/v1/cases/{case['id']}", {"json": {"version": 1, "note": "x"}})]:  # fmt: skip
        response = api.request(method, path, "globex", **kw)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert api.request("GET", "/v1/cases", "analyst").status_code == 403
    assert api.request("GET", "/v1/cases/case_missing").status_code == 404


def test_sla_breach_filter_and_metrics_gauges(api: Api, imported: dict) -> None:
    case = api.case_by_record("e2")  # the digital team's P2 case
    engine = make_engine(api.database_url)
    with make_session_factory(engine).begin() as session:  # time passes: due two hours ago
        session.execute(update(Case).where(Case.id == case["id"]).values(due_at=datetime.now(UTC) - timedelta(hours=2)))
    engine.dispose()
    late = api.cases(sla_breached="true")
    assert [c["id"] for c in late["items"]] == [case["id"]] and late["items"][0]["sla_breached"] is True
    assert case["id"] not in [c["id"] for c in api.cases(sla_breached="false")["items"]]
    metrics = httpx.get(api.base_url + "/metrics", timeout=10).text
    assert 'verbatim_cases_sla_breached{team="digital"} 1.0' in metrics
    assert 'verbatim_cases_open{team="logistics"} 1.0' in metrics
    assert 'verbatim_cases_sla_breached{team="logistics"} 0.0' in metrics
