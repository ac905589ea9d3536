"""Analyses over real HTTP (uvicorn on loopback), on SQLite and PostgreSQL.

A bilingual data set whose NPS is held down by slow delivery is uploaded and analysed by the
``analysis`` job (the rule-based fake model, with embeddings); the analysis JSON names that driver
first with a negative impact, matches the NPS computed by hand, and carries resolved share and time
to resolve from the support cases the import opened. Then: the HTML report, listing, the 4xx
errors (unknown score, data set not ready, no record with the score, no key, wrong scope, another
tenant), a graceful stop mid-classification that the next server resumes without classifying a
record twice, and one run with the real default model.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from html import unescape
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fake_classifier import MODEL_ID, FakeClassifier
from sqlalchemy import func, select, update

from service.analyses import create_analysis
from service.app import create_app
from service.jobs import JobRunnerConfig
from service.settings import Settings
from service.storage import make_engine, make_session_factory, upgrade_database
from service.storage.keys import create_key, get_or_create_tenant
from service.storage.models import (
    AnalysisItem,
    Case,
    CaseRecord,
    CaseStatus,
    Dataset,
    Job,
    JobState,
)

FAST_JOBS = JobRunnerConfig(poll_interval_s=0.1, heartbeat_interval_s=0.2, stale_after_s=5)

# (how many, nps range, zh template, en template): the fake model reads the cue words
GROUPS = [
    (40, (0, 4), "快递太慢了，等了{n}天才到", "Delivery was so slow, took {n} days"),
    (30, (4, 7), "价格太贵了，第{n}次买", "Too expensive for what it is, order {n}"),
    (30, (8, 10), "客服小姐姐很好，耐心解答{n}", "Support staff were friendly, ticket {n}"),
    (30, (9, 10), "质量很好，很满意{n}", "Great quality, love it {n}"),
    (20, (6, 9), "今天下单了{n}件", "Ordered {n} items today"),
]


def _rows() -> list[dict[str, Any]]:
    rng = random.Random(5)
    rows = []
    for g, (count, (lo, hi), zh, en) in enumerate(GROUPS):
        for i in range(count):
            zh_row = i % 2 == 0
            rows.append({
                "id": f"g{g}-{i:02d}", "text": (zh if zh_row else en).format(n=i + 2),
                "lang": "zh" if zh_row else "en", "nps": rng.randint(lo, hi),
                "channel": rng.choice(["app", "store"]),
                "ts": f"2024-0{rng.randint(4, 6)}-{rng.randint(10, 28)}",
            })  # fmt: skip
    rng.shuffle(rows)
    for row in rows[:10]:  # some answers without a score: classified, not scored
        del row["nps"]
    return rows


ROWS = _rows()
CONTENT = "\n".join(json.dumps(r, ensure_ascii=False) for r in ROWS)


def nps_by_hand(rows: list[dict[str, Any]]) -> float:
    scores = [r["nps"] for r in rows if "nps" in r]
    promoters = sum(s >= 9 for s in scores)
    detractors = sum(s <= 6 for s in scores)
    return 100 * (promoters - detractors) / len(scores)


@dataclass(frozen=True, kw_only=True)
class Api:
    base_url: str
    database_url: str
    keys: dict[str, str]

    def request(
        self, method: str, path: str, key: str | None = "acme", **kw: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[key]}"} if key else {}
        return httpx.request(method, self.base_url + path, headers=headers, timeout=60, **kw)

    def wait(self, job_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.request("GET", f"/v1/jobs/{job_id}").json()
            if job["state"] in ("succeeded", "failed", "cancelled"):
                return job
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} did not finish: {job}")

    def dataset(self, content: str, filename: str = "反馈.jsonl") -> dict[str, Any]:
        response = self.request(
            "POST", "/v1/datasets", files={"file": (filename, content.encode())}
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert self.wait(body["job"]["id"])["state"] == "succeeded"
        return self.request("GET", f"/v1/datasets/{body['dataset']['id']}").json()

    def analyse(self, dataset_id: str, key: str = "acme", **body: Any) -> httpx.Response:
        return self.request("POST", f"/v1/datasets/{dataset_id}/analyses", key, json=body)

    def db(self, fn):
        engine = make_engine(self.database_url)
        try:
            with make_session_factory(engine).begin() as session:
                return fn(session)
        finally:
            engine.dispose()


def _keys(url: str) -> dict[str, str]:
    engine = make_engine(url)
    keys = {}
    try:
        with make_session_factory(engine).begin() as session:
            acme, _ = get_or_create_tenant(session, "acme")
            globex, _ = get_or_create_tenant(session, "globex")
            for label, tenant, scopes in [
                ("acme", acme, "analyze"),
                ("acme_classify", acme, "classify,triage"),
                ("globex", globex, "analyze"),
            ]:
                keys[label] = create_key(session, tenant, scopes, name=label)[1]
    finally:
        engine.dispose()
    return keys


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory, database_factory, live_server) -> Iterator[Api]:
    home: Path = tmp_path_factory.mktemp("home")
    with database_factory(request.param, home) as url:
        app = create_app(
            Settings(home=home, database_url=url), classifier_factory=FakeClassifier, jobs=FAST_JOBS
        )
        with live_server(app) as base_url:
            yield Api(base_url=base_url, database_url=url, keys=_keys(url))


def _resolve_delivery_cases(session, dataset_id: str, n: int) -> int:
    """Resolve ``n`` of the data set's delivery cases, each 2 hours after it opened."""
    cases = session.scalars(
        select(Case)
        .where(
            Case.topic == "delivery.timeliness",
            Case.id.in_(select(CaseRecord.case_id).where(CaseRecord.dataset_id == dataset_id)),
        )
        .order_by(Case.created_at, Case.id)
    ).all()
    for case in cases[:n]:
        case.status = CaseStatus.resolved.value
        case.resolution_code = "refund"
        case.resolved_at = case.created_at + timedelta(hours=2)
    return len(cases)


@pytest.fixture(scope="module")
def analysed(api: Api) -> dict[str, Any]:
    dataset = api.dataset(CONTENT)
    delivery_cases = api.db(lambda s: _resolve_delivery_cases(s, dataset["id"], 10))
    response = api.analyse(dataset["id"], score="nps")
    assert response.status_code == 202, response.text
    body = response.json()
    # the first clustering in a process compiles UMAP's numba code: minutes on a busy machine
    job = api.wait(body["job"]["id"], timeout=600)
    analysis = api.request("GET", f"/v1/analyses/{body['analysis']['id']}").json()
    return {"dataset": dataset, "created": body, "location": response.headers["location"],
            "job": job, "analysis": analysis, "delivery_cases": delivery_cases}  # fmt: skip


def test_the_analysis_job_explains_the_nps_with_slow_delivery_first(api: Api, analysed) -> None:
    created, job, analysis = analysed["created"], analysed["job"], analysed["analysis"]
    assert created["analysis"]["status"] == "queued" and created["analysis"]["score"] == "nps"
    assert analysed["location"] == f"/v1/jobs/{created['job']['id']}"
    assert job["kind"] == "analysis" and job["state"] == "succeeded" and job["progress"] == 1.0
    assert job["dataset_id"] == analysed["dataset"]["id"]
    assert job["counts"] == {"records": len(ROWS), "classified": len(ROWS)}
    assert analysis["status"] == "succeeded" and analysis["records"] == len(ROWS)
    assert analysis["model"] == MODEL_ID and analysis["error"] is None
    assert analysis["report_url"] == f"/v1/analyses/{analysis['id']}/report"
    result = analysis["result"]
    assert result["outcome"] == "nps" and result["records"] == len(ROWS)
    assert result["overall"]["nps"] == pytest.approx(nps_by_hand(ROWS), abs=0.05)
    assert result["meta"]["scored"] == len(ROWS) - 10
    top = result["drivers"][0]
    assert top["driver"] == "delivery.timeliness:negative" and top["rank"] == 1
    assert top["impact"] < -10 and top["support"] == 40 - sum(
        1 for r in ROWS if r["id"].startswith("g0-") and "nps" not in r
    )
    assert set(top["examples"]) <= {r["id"] for r in ROWS if r["id"].startswith("g0-")}
    positive = {d["driver"]: d for d in result["drivers"]}
    assert positive["product.quality:positive"]["impact"] > 0
    assert result["clusters"], "the delivery complaints should form an issue cluster"
    # no checkpoint rows are left once the analysis is stored
    assert api.db(lambda s: s.scalar(select(func.count()).select_from(AnalysisItem))) == 0


def test_support_cases_give_resolved_share_and_time_to_resolve_per_topic(analysed) -> None:
    cases = analysed["analysis"]["result"]["cases"]
    by_topic = {row["topic"]: row for row in cases["by_topic"]}
    delivery = by_topic["delivery.timeliness"]
    assert delivery["cases"] == analysed["delivery_cases"] == 40  # every slow-delivery complaint
    assert delivery["resolved"] == 10 and delivery["resolved_share"] == pytest.approx(0.25)
    assert delivery["median_hours_to_resolve"] == pytest.approx(2.0)
    assert by_topic["price.value"]["resolved"] == 0 and by_topic["price.value"]["cases"] == 30


def test_the_report_is_one_offline_html_page(api: Api, analysed) -> None:
    response = api.request("GET", analysed["analysis"]["report_url"])
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = unescape(response.text)
    assert "<html" in html.lower()
    label = analysed["analysis"]["result"]["drivers"][0][
        "label"
    ]  # slow delivery, in both languages
    assert label["en"].startswith("Delivery") and label["zh"] in html and label["en"] in html
    assert not re.search(r"<script[^>]+src=[\"']https?:", html)
    assert not re.search(r"<link[^>]+href=[\"']https?:", html)


def test_a_data_sets_analyses_are_listed_newest_first_without_their_json(
    api: Api, analysed
) -> None:
    dataset_id = analysed["dataset"]["id"]
    second = api.analyse(dataset_id, outcome="nps")  # `outcome` is another name for `score`
    assert second.status_code == 202, second.text
    api.wait(second.json()["job"]["id"])
    page = api.request("GET", f"/v1/datasets/{dataset_id}/analyses", params={"limit": 1}).json()
    assert page["total"] == 2 and page["next_offset"] == 1
    assert [a["id"] for a in page["items"]] == [second.json()["analysis"]["id"]]
    assert page["items"][0]["result"] is None and page["items"][0]["status"] == "succeeded"
    rest = api.request("GET", f"/v1/datasets/{dataset_id}/analyses", params={"offset": 1}).json()
    assert [a["id"] for a in rest["items"]] == [analysed["analysis"]["id"]]


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == code and body["message"]
    return body


def test_an_unknown_score_is_a_422_that_lists_the_known_ones(api: Api, analysed) -> None:
    body = _error(api.analyse(analysed["dataset"]["id"], score="happiness"), 422, "invalid_input")
    assert "happiness" in body["message"] and body["details"]["allowed"] == [
        "nps", "csat", "ces", "rating", "recommend",
    ]  # fmt: skip
    _error(api.analyse(analysed["dataset"]["id"]), 422, "invalid_input")  # no score at all
    _error(api.analyse(analysed["dataset"]["id"], score="nps", extra=1), 422, "invalid_input")


def test_a_score_no_record_has_is_a_422_naming_the_scores_it_has(api: Api, analysed) -> None:
    body = _error(api.analyse(analysed["dataset"]["id"], score="csat"), 422, "invalid_input")
    assert "csat" in body["message"] and f"nps ({len(ROWS) - 10})" in body["message"]
    assert body["details"]["records_with_score"]["nps"] == len(ROWS) - 10


def test_a_data_set_that_is_not_ready_is_a_409(api: Api, analysed) -> None:
    dataset = api.dataset("\n".join(json.dumps(r, ensure_ascii=False) for r in ROWS[:5]), "a.jsonl")
    api.db(
        lambda s: s.execute(
            update(Dataset).where(Dataset.id == dataset["id"]).values(status="importing")
        )
    )
    body = _error(api.analyse(dataset["id"], score="nps"), 409, "conflict")
    assert "importing" in body["message"] and dataset["job_id"] in body["message"]
    api.db(
        lambda s: s.execute(
            update(Dataset).where(Dataset.id == dataset["id"]).values(status="failed")
        )
    )
    assert "failed" in _error(api.analyse(dataset["id"], score="nps"), 409, "conflict")["message"]


def test_keys_scopes_and_tenants(api: Api, analysed) -> None:
    dataset_id, analysis_id = analysed["dataset"]["id"], analysed["analysis"]["id"]
    _error(api.analyse(dataset_id, key=None, score="nps"), 401, "unauthorized")
    _error(api.analyse(dataset_id, key="acme_classify", score="nps"), 403, "forbidden")
    _error(api.request("GET", f"/v1/analyses/{analysis_id}", "acme_classify"), 403, "forbidden")
    for method, path, body in [
        ("POST", f"/v1/datasets/{dataset_id}/analyses", {"score": "nps"}),
        ("GET", f"/v1/datasets/{dataset_id}/analyses", None),
        ("GET", f"/v1/analyses/{analysis_id}", None),
        ("GET", f"/v1/analyses/{analysis_id}/report", None),
        ("DELETE", f"/v1/analyses/{analysis_id}", None),
        ("GET", "/v1/analyses/an_doesnotexist", None),
        ("GET", "/v1/analyses/" + "x" * 41, None),
    ]:
        _error(api.request(method, path, "globex", json=body), 404, "not_found")
    assert api.request("GET", f"/v1/analyses/{analysis_id}").status_code == 200  # still there


def _held_analysis(session, dataset_id: str) -> tuple[str, str]:
    """An analysis whose job no handler claims (its kind is unknown to the runner)."""
    tenant, _ = get_or_create_tenant(session, "acme")
    dataset = session.get(Dataset, dataset_id)
    analysis, job = create_analysis(
        session, SimpleNamespace(tenant_id=tenant.id), dataset, outcome="nps"
    )
    job.kind = "held"
    return analysis.id, job.id


def test_a_report_before_success_is_a_409_and_deleting_cancels_the_job(api: Api, analysed) -> None:
    dataset_id = analysed["dataset"]["id"]
    analysis_id, job_id = api.db(lambda s: _held_analysis(s, dataset_id))
    queued = api.request("GET", f"/v1/analyses/{analysis_id}").json()
    assert (
        queued["status"] == "queued" and queued["result"] is None and queued["report_url"] is None
    )
    body = _error(api.request("GET", f"/v1/analyses/{analysis_id}/report"), 409, "conflict")
    assert "queued" in body["message"] and job_id in body["message"]
    assert api.request("DELETE", f"/v1/analyses/{analysis_id}").status_code == 204
    _error(api.request("GET", f"/v1/analyses/{analysis_id}"), 404, "not_found")
    job = api.request("GET", f"/v1/jobs/{job_id}").json()
    assert job["state"] == "cancelled" and job["error"] == "The analysis was deleted.", job
    ids = [
        a["id"] for a in api.request("GET", f"/v1/datasets/{dataset_id}/analyses").json()["items"]
    ]
    assert analysis_id not in ids


def test_deleting_the_data_set_deletes_its_analyses(api: Api) -> None:
    dataset = api.dataset(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in ROWS[:40]), "b.jsonl"
    )
    response = api.analyse(dataset["id"], score="nps")
    api.wait(response.json()["job"]["id"])
    assert api.request("DELETE", f"/v1/datasets/{dataset['id']}").status_code == 204
    _error(
        api.request("GET", f"/v1/analyses/{response.json()['analysis']['id']}"), 404, "not_found"
    )
    _error(api.request("GET", f"/v1/datasets/{dataset['id']}/analyses"), 404, "not_found")


# ---- a graceful stop mid-classification ------------------------------------------------------

BATCH = 5
STOPPING_JOBS = JobRunnerConfig(
    poll_interval_s=0.1, heartbeat_interval_s=0.2, stale_after_s=1.5, batch_size=BATCH
)


def _wait_for(cond, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := cond():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_stopped_analysis_resumes_on_the_next_server_without_classifying_twice(
    kind, tmp_path, database_factory, live_server
) -> None:
    with database_factory(kind, tmp_path) as url:
        upgrade_database(url)
        keys = _keys(url)
        slow = FakeClassifier(delay=0.05)
        settings = Settings(home=tmp_path, database_url=url)
        app = create_app(settings, classifier_factory=lambda: slow, jobs=STOPPING_JOBS)
        with live_server(app) as base:
            api = Api(base_url=base, database_url=url, keys=keys)
            dataset = api.dataset(CONTENT)
            slow.delay = 0.2  # classification for the analysis is slow enough to stop midway
            before = slow.calls
            body = api.analyse(dataset["id"], score="nps").json()
            job_id = body["job"]["id"]
            _wait_for(lambda: api.request("GET", f"/v1/jobs/{job_id}").json()["counts"]["classified"]
                      >= 2 * BATCH, what="two batches")  # fmt: skip
        job = api.db(lambda s: s.get(Job, job_id))
        kept = api.db(lambda s: s.scalar(select(func.count()).select_from(AnalysisItem)))
        assert job.state == JobState.queued and job.attempts == 0  # handed back, not an attempt
        assert 2 * BATCH <= kept < len(ROWS) and kept % BATCH == 0
        assert job.counts["classified"] == kept  # progress committed with the checkpoints
        assert kept <= slow.calls - before <= kept + BATCH  # at most the batch in flight is lost
        fresh = FakeClassifier()
        app = create_app(settings, classifier_factory=lambda: fresh, jobs=STOPPING_JOBS)
        with live_server(app) as base:
            api = Api(base_url=base, database_url=url, keys=keys)
            done = api.wait(job_id)
            assert done["state"] == "succeeded" and done["attempts"] == 1, done
            assert fresh.calls == len(ROWS) - kept  # only what was missing
            analysis = api.request("GET", f"/v1/analyses/{body['analysis']['id']}").json()
            assert analysis["records"] == len(ROWS)
            assert analysis["result"]["drivers"][0]["driver"] == "delivery.timeliness:negative"


# ---- the real default model --------------------------------------------------------------------

REAL_ROWS = [
    ("快递太慢了，等了一个星期才到", 2), ("物流太慢，催了好几次都没人回复", 1),
    ("送货速度太慢了，下次不买了", 3), ("配送延迟了五天，非常失望", 2),
    ("快递员态度很差，还把包裹扔在门口", 1), ("包装破损，东西都摔坏了", 2),
    ("质量很好，用着很满意", 10), ("东西不错，性价比高", 9), ("客服很耐心，问题很快解决了", 10),
    ("价格有点贵，但质量还行", 6), ("发货很快，第二天就到了", 10), ("屏幕用了一周就坏了，质量太差", 0),
    ("退款到现在还没到账", 1), ("会员积分规则太复杂了", 5), ("App 经常闪退，根本没法下单", 2),
    ("门店环境干净，店员热情", 9), ("整体满意，会推荐给朋友", 10), ("等了半个月还没发货", 0),
    ("尺码偏小，换货很麻烦", 4), ("一般般吧，没什么特别的", 7),
    ("Delivery took two weeks, way too slow", 1), ("My parcel arrived late and damaged", 2),
    ("Shipping was slow and nobody answered my emails", 0), ("The courier left my package in the rain", 2),
    ("Great quality, I love it", 10), ("Customer service was quick and friendly", 10),
    ("Too expensive for what you get", 4), ("Arrived the next day, very happy", 9),
    ("The app keeps crashing at checkout", 2), ("Still waiting for my refund after a month", 0),
    ("Staff in the store were rude", 1), ("Good value for money, would recommend", 9),
    ("The product broke after two days", 1), ("Easy returns, no questions asked", 10),
    ("Average experience, nothing special", 7), ("Late again, third time this month", 1),
    ("Checkout was smooth and fast", 9), ("The size chart is wrong, had to exchange", 5),
    ("Excellent packaging and fast delivery", 10), ("They charged me twice for one order", 0),
]  # fmt: skip


@pytest.mark.slow
def test_the_real_default_model_analyses_a_small_bilingual_data_set(tmp_path, live_server) -> None:
    from models.classifier import default_model_dir
    from models.classifier.predict import Classifier
    from models.encoder import ensure_base_encoder

    if not (default_model_dir() / "config.json").is_file():
        pytest.fail(f"the default model is missing from {default_model_dir()}")

    def real() -> Classifier:
        return Classifier.load(default_model_dir(), base_dir=ensure_base_encoder(Settings().home))

    url = f"sqlite:///{tmp_path / 'verbatim.db'}"
    upgrade_database(url)
    keys = _keys(url)
    rows = [
        {"id": f"r{i:02d}", "text": text, "nps": nps} for i, (text, nps) in enumerate(REAL_ROWS)
    ]
    app = create_app(
        Settings(home=tmp_path, database_url=url), classifier_factory=real, jobs=FAST_JOBS
    )
    with live_server(app) as base:
        api = Api(base_url=base, database_url=url, keys=keys)
        _wait_for(lambda: httpx.get(base + "/readyz").status_code == 200, 120, "the model")
        dataset = api.dataset("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
        started = time.monotonic()
        body = api.analyse(dataset["id"], score="nps").json()
        job = api.wait(body["job"]["id"], timeout=300)
        seconds = time.monotonic() - started
        assert job["state"] == "succeeded", job
        analysis = api.request("GET", f"/v1/analyses/{body['analysis']['id']}").json()
        result = analysis["result"]
        assert analysis["model"].startswith("verbatim-cem@") and result["records"] == len(rows)
        assert result["overall"]["nps"] == pytest.approx(nps_by_hand(rows), abs=0.05)
        assert result["meta"]["languages"] == {"en": 20, "zh": 20}
        negative = [d for d in result["drivers"] if d["impact"] is not None and d["impact"] < 0]
        assert negative and any(d["driver"].startswith("delivery.") for d in negative[:5]), [
            (d["driver"], d["impact"]) for d in result["drivers"]
        ]
        report = api.request("GET", f"/v1/analyses/{analysis['id']}/report")
        assert report.status_code == 200 and "<html" in report.text.lower()
        assert seconds < 120, f"{len(rows)} records took {seconds:.0f} s"
