"""Data sets over real HTTP (uvicorn on loopback) with a rule-based fake model, on SQLite and PostgreSQL.

Uploads in the three formats with bad rows, the import job's counts, rejections by line and reason,
stored records with labels and masked text, every filter, pagination, tenant isolation, deletion, and
whole-file errors that create nothing.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_classifier import MODEL_ID, FakeClassifier
from sqlalchemy import func, select

from service.app import create_app
from service.jobs import JobRunnerConfig
from service.settings import Settings
from service.storage import make_engine, make_session_factory
from service.storage.keys import create_key, get_or_create_tenant
from service.storage.models import DatasetRecord, RecordLabel

FAST_JOBS = JobRunnerConfig(poll_interval_s=0.1, heartbeat_interval_s=0.2, stale_after_s=5)

JSONL_ROWS: list[Any] = [
    {"id": "z1", "text": "快递太慢了，客服电话13812345678也打不通", "nps": 3, "lang": "zh",
     "channel": "app", "ts": "2024-05-01"},
    {"id": "e1", "text": "Great staff, quick checkout", "nps": 9, "csat": 5, "channel": "store",
     "ts": "2024-05-10T10:30:00+08:00"},
    {"id": "z2", "text": "价格太贵了", "nps": 5, "channel": "app", "ts": "2024-06-02"},
    {"id": "bad1", "text": "还行", "nps": 11},
    "{oops",
    {"id": "e2", "text": "The quality is good, love it", "nps": 10, "channel": "web",
     "recommend": True, "ts": "2024-06-20"},
    {"id": "z1", "text": "重复的编号"},
    {"id": "ctl", "text": "\u0001\u0002"},
]  # fmt: skip
JSONL = "\n".join(
    r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in JSONL_ROWS
)


@dataclass(frozen=True, kw_only=True)
class Api:
    base_url: str
    database_url: str
    home: Path
    keys: dict[str, str]

    def request(self, method: str, path: str, key: str = "acme", **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[key]}"} if key else {}
        return httpx.request(method, self.base_url + path, headers=headers, timeout=30, **kwargs)

    def upload(
        self, content: bytes | str, filename: str, key: str = "acme", **form: str
    ) -> httpx.Response:
        data = content.encode() if isinstance(content, str) else content
        return self.request(
            "POST", "/v1/datasets", key, files={"file": (filename, data)}, data=form
        )

    def wait(self, job_id: str, key: str = "acme", timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.request("GET", f"/v1/jobs/{job_id}", key).json()
            if job["state"] in ("succeeded", "failed", "cancelled"):
                return job
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} did not finish: {job}")

    def imported(self, content: bytes | str, filename: str, **form: str) -> tuple[dict, dict]:
        response = self.upload(content, filename, **form)
        assert response.status_code == 202, response.text
        body = response.json()
        job = self.wait(body["job"]["id"])
        dataset = self.request("GET", f"/v1/datasets/{body['dataset']['id']}").json()
        return dataset, job

    def records(self, dataset_id: str, key: str = "acme", **params: Any) -> httpx.Response:
        return self.request("GET", f"/v1/datasets/{dataset_id}/records", key, params=params)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory, database_factory, live_server) -> Iterator[Api]:
    home = tmp_path_factory.mktemp("home")
    with database_factory(request.param, home) as url:
        app = create_app(
            Settings(home=home, database_url=url),
            classifier_factory=FakeClassifier,
            jobs=FAST_JOBS,
        )
        with live_server(app) as base_url:
            engine = make_engine(url)
            keys = {}
            with make_session_factory(engine).begin() as session:
                acme, _ = get_or_create_tenant(session, "acme")
                globex, _ = get_or_create_tenant(session, "globex")
                for label, tenant, scopes in [
                    ("acme", acme, "analyze"),
                    ("acme_classify", acme, "classify"),
                    ("globex", globex, "analyze"),
                ]:
                    keys[label] = create_key(session, tenant, scopes, name=label)[1]
            engine.dispose()
            yield Api(base_url=base_url, database_url=url, home=home, keys=keys)


@pytest.fixture(scope="module")
def jsonl_dataset(api: Api) -> dict[str, Any]:
    dataset, job = api.imported(JSONL, "反馈.jsonl", name="五月反馈 May feedback")
    assert job["state"] == "succeeded", job
    return dataset


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()["items"]]


def test_jsonl_import_keeps_good_rows_and_lists_bad_ones_by_line(api: Api, jsonl_dataset) -> None:
    ds = jsonl_dataset
    assert ds["name"] == "五月反馈 May feedback" and ds["filename"] == "反馈.jsonl"
    assert ds["status"] == "ready" and ds["format"] == "jsonl" and ds["model"] == MODEL_ID
    assert ds["counts"] == {"total": 8, "accepted": 4, "rejected": 4, "classified": 4}
    job = api.request("GET", f"/v1/jobs/{ds['job_id']}").json()
    assert (
        job["progress"] == 1.0 and job["counts"] == ds["counts"] and job["dataset_id"] == ds["id"]
    )
    assert job["kind"] == "dataset_import" and job["attempts"] == 1 and job["finished_at"]
    rejections = api.request("GET", f"/v1/datasets/{ds['id']}/rejections").json()
    reasons = {r["line"]: (r["id"], r["reason"]) for r in rejections["items"]}
    assert sorted(reasons) == [4, 5, 7, 8] and rejections["total"] == 4
    assert reasons[4][0] == "bad1" and "nps must be between 0 and 10" in reasons[4][1]
    assert "JSON" in reasons[5][1] or "json" in reasons[5][1]
    assert "duplicate id 'z1'" in reasons[7][1] and "line 1" in reasons[7][1]
    assert reasons[8][0] == "ctl" and "cannot be analysed" in reasons[8][1]
    # the upload is not kept once the import is done (the records hold the text)
    assert not (api.home / "uploads").exists() or not any((api.home / "uploads").rglob("upload.*"))


def test_records_keep_text_masked_text_scores_metadata_and_labels(api: Api, jsonl_dataset) -> None:
    page = api.records(jsonl_dataset["id"]).json()
    assert [r["id"] for r in page["items"]] == ["z1", "e1", "z2", "e2"]  # file order
    z1, e1 = page["items"][0], page["items"][1]
    assert z1["text"] == "快递太慢了，客服电话13812345678也打不通" and z1["line"] == 1
    assert "13812345678" not in z1["masked_text"] and "[PHONE]" in z1["masked_text"]
    assert z1["scores"]["nps"] == 3 and z1["metadata"] == {"channel": "app"}
    assert z1["ts"].startswith("2024-05-01T00:00:00") and z1["lang"] == "zh"
    labels = z1["labels"]
    assert labels["sentiment"]["label"] == "negative" and labels["model"] == MODEL_ID
    assert {t["id"] for t in labels["topics"]} == {"delivery.timeliness", "service.attitude"}
    evidence = labels["topics"][0]["evidence"]
    assert z1["text"][evidence["start"] : evidence["end"]] == evidence["text"]
    assert e1["ts"].startswith("2024-05-10T02:30:00")  # +08:00 stored as UTC
    assert e1["scores"]["csat"] == 5 and e1["lang"] == "en" and e1["model"] == MODEL_ID


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"topic": "delivery"}, ["z1"]),  # a level-1 id matches its leaves
        ({"topic": "delivery.timeliness"}, ["z1"]),
        ({"topic": "service"}, ["z1", "e1"]),
        ({"topic": "service", "polarity": "positive"}, ["e1"]),
        ({"polarity": "negative"}, ["z1", "z2"]),
        ({"touchpoint": "fulfil"}, ["z1"]),
        ({"touchpoint": "support"}, ["z1", "e1"]),
        ({"sentiment": "positive"}, ["e1", "e2"]),
        ({"lang": "zh"}, ["z1", "z2"]),
        ({"nps_min": 5, "nps_max": 9}, ["e1", "z2"]),
        ({"nps_min": 9.5}, ["e2"]),
        ({"csat_min": 4}, ["e1"]),
        ({"recommend": "true"}, ["e2"]),
        ({"meta.channel": "app"}, ["z1", "z2"]),
        ({"meta.channel": "app", "sentiment": "negative", "topic": "price"}, ["z2"]),
        ({"from": "2024-05-01", "to": "2024-05-31"}, ["z1", "e1"]),
        ({"from": "2024-06-02T00:00:00Z"}, ["z2", "e2"]),
        ({"to": "2024-05-10"}, ["z1", "e1"]),  # a date-only 'to' includes that day
        ({"meta.channel": "fax"}, []),
    ],
)
def test_each_filter_narrows_the_records(api: Api, jsonl_dataset, params, expected) -> None:
    response = api.records(jsonl_dataset["id"], **params)
    assert ids(response) == expected
    assert response.json()["total"] == len(expected)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"topic": "delivery.speed"}, "Unknown topic 'delivery.speed'"),
        ({"touchpoint": "checkout"}, "Unknown touchpoint 'checkout'"),
        ({"sentiment": "angry"}, "sentiment"),
        ({"nps_min": 9, "nps_max": 3}, "nps_min (9) is above nps_max (3)"),
        ({"nps_min": "high"}, "nps_min"),
        ({"from": "May 1st"}, "ISO 8601"),
        ({"topics": "delivery"}, "Unknown query parameter 'topics'"),
        ({"limit": 501}, "limit"),
        ({"offset": -1}, "offset"),
    ],
)
def test_bad_filters_are_a_422_that_says_what_is_wrong(
    api: Api, jsonl_dataset, params, message
) -> None:
    response = api.records(jsonl_dataset["id"], **params)
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]["message"] + json.dumps(
        response.json()["error"]["details"]
    )


def test_records_and_lists_paginate(api: Api, jsonl_dataset) -> None:
    first = api.records(jsonl_dataset["id"], limit=3).json()
    assert [r["id"] for r in first["items"]] == ["z1", "e1", "z2"]
    assert (first["total"], first["limit"], first["next_offset"]) == (4, 3, 3)
    rest = api.records(jsonl_dataset["id"], limit=3, offset=first["next_offset"]).json()
    assert [r["id"] for r in rest["items"]] == ["e2"] and rest["next_offset"] is None
    rejections = api.request(
        "GET", f"/v1/datasets/{jsonl_dataset['id']}/rejections", params={"limit": 2, "offset": 1}
    ).json()
    assert [r["line"] for r in rejections["items"]] == [5, 7] and rejections["next_offset"] == 3
    listing = api.request("GET", "/v1/datasets", params={"limit": 1}).json()
    assert listing["total"] >= 1 and len(listing["items"]) == 1


def test_csv_upload_with_bad_rows(api: Api) -> None:
    csv = (
        "ID,Text,NPS,CSAT,channel,ts\n"
        "c1,送货太慢，包装也破了,2,1,app,2024-05-03\n"
        'c2,"Friendly support, fixed it fast",10,5,web,2024-05-04\n'
        "c3,,7,3,app,2024-05-05\n"
        "c4,Price is too expensive,4,9,store,2024-05-06\n"
        "c5,Delivery was late again,1,2,app,not a date\n"
        "c6,质量很好 非常满意,9,5,store,2024-05-07\n"
    )
    ds, job = api.imported(csv.encode("utf-8"), "survey.csv")
    assert job["state"] == "succeeded" and ds["format"] == "csv" and ds["name"] == "survey.csv"
    assert ds["counts"] == {"total": 6, "accepted": 3, "rejected": 3, "classified": 3}
    rejections = api.request("GET", f"/v1/datasets/{ds['id']}/rejections").json()["items"]
    assert [(r["line"], r["id"]) for r in rejections] == [
        (4, "c3"),
        (5, "c4"),
        (6, "c5"),
    ]  # header is row 1
    assert "text is required" in rejections[0]["reason"]
    assert "csat must be between 1 and 5" in rejections[1]["reason"]
    assert "ts must be an ISO 8601 date" in rejections[2]["reason"]
    assert ids(api.records(ds["id"], **{"meta.channel": "store"})) == ["c6"]
    assert ids(api.records(ds["id"], topic="delivery", sentiment="negative")) == ["c1"]


def test_xlsx_upload_with_bad_rows(api: Api) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["id", "text", "rating", "rating_scale", "region"])
    sheet.append(["x1", "客服态度很差，一直不回复", 1, 5, "华东"])
    sheet.append(["x2", "Love the quality, great price", 5, 5, "EU"])
    sheet.append(["x3", "评分超出范围", 7, 5, "华北"])
    sheet.append([17, "Support was slow", 2, 5, "EU"])
    buffer = io.BytesIO()
    book.save(buffer)
    ds, job = api.imported(buffer.getvalue(), "评价.xlsx")
    assert job["state"] == "succeeded" and ds["format"] == "xlsx"
    assert ds["counts"] == {"total": 4, "accepted": 3, "rejected": 1, "classified": 3}
    rejection = api.request("GET", f"/v1/datasets/{ds['id']}/rejections").json()["items"]
    assert [(r["line"], r["id"]) for r in rejection] == [(4, "x3")]
    assert "rating 7 is above rating_scale 5" in rejection[0]["reason"]
    assert ids(api.records(ds["id"], **{"meta.region": "EU"})) == ["x2", "17"]
    assert ids(api.records(ds["id"], rating_max=2)) == ["x1", "17"]


def _xlsx(*rows: list[Any]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_xlsx_formula_cells_reject_their_row_with_the_cell_named(api: Api) -> None:
    content = _xlsx(["id", "text"], ["f1", '=HYPERLINK("http://x","点我")'], ["f2", "Great staff"])
    ds, job = api.imported(content, "formula.xlsx")
    assert job["state"] == "succeeded"
    assert ds["counts"] == {"total": 2, "accepted": 1, "rejected": 1, "classified": 1}
    (rejection,) = api.request("GET", f"/v1/datasets/{ds['id']}/rejections").json()["items"]
    assert rejection["line"] == 2 and "cell B2 (text) holds a formula" in rejection["reason"]


@pytest.mark.parametrize(
    ("content", "filename", "message"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "reviews.csv", "PNG"),
        ("comment,score\n好评,5\n", "reviews.csv", "id and text"),
        ("id,text\n", "empty.csv", "no records"),
        (b"", "empty.jsonl", "empty"),
        ("_formula", "formula.xlsx", "header row holds formulas"),
    ],
)
def test_whole_file_problems_are_a_422_and_create_nothing(
    api: Api, content, filename, message
) -> None:
    if content == "_formula":
        content = _xlsx(["id", '=CONCAT("te","xt")'], ["f1", "好评"])
    before = api.request("GET", "/v1/datasets").json()["total"]
    response = api.upload(content, filename)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_file" and message in error["message"]
    assert api.request("GET", "/v1/datasets").json()["total"] == before
    uploads = api.home / "uploads"
    assert not uploads.exists() or not any(p.is_file() for p in uploads.rglob("*"))


def test_upload_needs_the_analyze_scope_and_a_file(api: Api) -> None:
    assert api.upload(JSONL, "a.jsonl", key="acme_classify").status_code == 403
    assert api.upload(JSONL, "a.jsonl", key="").status_code == 401
    response = api.request("POST", "/v1/datasets", data={"name": "no file"})
    assert response.status_code == 422 and "file" in response.text


def test_another_tenant_gets_404_everywhere_and_never_sees_it(api: Api, jsonl_dataset) -> None:
    ds = jsonl_dataset
    for path in (f"/v1/datasets/{ds['id']}", f"/v1/datasets/{ds['id']}/records",
                 f"/v1/datasets/{ds['id']}/rejections", f"/v1/jobs/{ds['job_id']}"):  # fmt: skip
        response = api.request("GET", path, "globex")
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    assert api.request("DELETE", f"/v1/datasets/{ds['id']}", "globex").status_code == 404
    assert ds["id"] not in [
        d["id"] for d in api.request("GET", "/v1/datasets", "globex").json()["items"]
    ]
    assert api.request("GET", f"/v1/datasets/{ds['id']}").status_code == 200  # still there


def test_delete_removes_the_dataset_records_labels_and_rejections(api: Api) -> None:
    ds, job = api.imported(JSONL, "to-delete.jsonl")
    assert job["state"] == "succeeded"
    response = api.request("DELETE", f"/v1/datasets/{ds['id']}")
    assert response.status_code == 204 and response.content == b""
    assert api.request("GET", f"/v1/datasets/{ds['id']}").status_code == 404
    assert api.records(ds["id"]).status_code == 404
    assert api.request("DELETE", f"/v1/datasets/{ds['id']}").status_code == 404
    assert ds["id"] not in [d["id"] for d in api.request("GET", "/v1/datasets").json()["items"]]
    engine = make_engine(api.database_url)
    try:
        with make_session_factory(engine)() as session:
            left = session.scalar(
                select(func.count())
                .select_from(DatasetRecord)
                .where(DatasetRecord.dataset_id == ds["id"])
            )
            orphans = session.scalar(
                select(func.count())
                .select_from(RecordLabel)
                .where(RecordLabel.record_pk.not_in(select(DatasetRecord.pk)))
            )
    finally:
        engine.dispose()
    assert (left, orphans) == (0, 0)
    assert api.request("GET", f"/v1/jobs/{job['id']}").json()["state"] == "succeeded"


def test_upload_answers_202_with_a_location_and_every_route_has_bilingual_examples(
    api: Api,
) -> None:
    response = api.upload(JSONL, "loc.jsonl")
    assert response.status_code == 202
    body = response.json()
    assert response.headers["location"] == f"/v1/jobs/{body['job']['id']}"
    assert body["dataset"]["status"] == "queued" and body["job"]["state"] in ("queued", "running")
    api.wait(body["job"]["id"])
    spec = httpx.get(api.base_url + "/openapi.json").json()
    for path in ("/v1/datasets", "/v1/datasets/{dataset_id}", "/v1/datasets/{dataset_id}/records",
                 "/v1/datasets/{dataset_id}/rejections", "/v1/jobs/{job_id}"):  # fmt: skip
        for method, op in spec["paths"][path].items():
            if method == "delete":
                continue
            content = next(r for s, r in op["responses"].items() if s in ("200", "202"))["content"]
            named = content["application/json"]["examples"]
            zh, en = (json.dumps(named[k], ensure_ascii=False) for k in ("zh", "en"))
            assert any("\u4e00" <= ch <= "\u9fff" for ch in zh), (method, path)  # Chinese
            assert "Chinese" in named["zh"]["summary"] and "English" in named["en"]["summary"]
            assert en.isascii(), (method, path)


def test_values_no_database_can_store_are_rejected_rows_not_errors(api: Api) -> None:
    rows = [
        {"id": "n1", "text": "含有\u0000空字符"},
        {"id": "n2", "text": "fine", "channel": "a\u0000b"},
        {"id": "n3", "text": "Great staff"},
    ]
    content = (
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows)
        + '\n{"id": "n4", "text": "ok", "store": "\\ud800"}'
    )
    ds, job = api.imported(content, "nul.jsonl")
    assert job["state"] == "succeeded", job
    assert ds["counts"] == {"total": 4, "accepted": 1, "rejected": 3, "classified": 1}
    reasons = [
        r["reason"]
        for r in api.request("GET", f"/v1/datasets/{ds['id']}/rejections").json()["items"]
    ]
    assert "text contains a NUL character" in reasons[0] and "metadata contains a NUL" in reasons[1]
    assert "lone surrogate" in reasons[2]


def test_odd_ids_and_offsets_are_a_404_or_422_never_a_500(api: Api, jsonl_dataset) -> None:
    assert api.request("GET", "/v1/datasets/ds_%00x").status_code == 404
    assert api.request("GET", "/v1/jobs/job_%00x").status_code == 404
    assert api.request("GET", "/v1/datasets/" + "x" * 300 + "/records").status_code == 404
    assert api.records(jsonl_dataset["id"], offset=10**30).status_code == 422
    assert api.records(jsonl_dataset["id"], **{"meta.channel": "a\u0000b"}).status_code == 422
    assert api.records(jsonl_dataset["id"], **{"meta.": "x"}).status_code == 422


def test_metrics_count_jobs_by_state(api: Api, jsonl_dataset) -> None:
    text = httpx.get(api.base_url + "/metrics").text
    line = next(s for s in text.splitlines() if s.startswith('verbatim_jobs{state="succeeded"}'))
    assert float(line.split()[-1]) >= 1
