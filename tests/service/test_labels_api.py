"""Analysts' labels over real HTTP (uvicorn on loopback), on SQLite and PostgreSQL.

Labels of stored records and of free text keep who, when and which taxonomy version; corrections
supersede and keep history; bad items and bad import rows (CSV, XLSX) are reported by index or
line with the reason while good ones are stored; an old taxonomy version is rejected or mapped
forward; the export reads back as a training label set; scopes and tenant isolation; the CLI.
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
from fake_classifier import FakeClassifier
from taxonomy_support import default_doc, edited, to_yaml
from typer.testing import CliRunner

from service.app import create_app
from service.jobs import JobRunnerConfig
from service.settings import Settings
from service.storage import make_engine, make_session_factory
from service.storage.keys import create_key, get_or_create_tenant
from training.labelset import read_label_set

FAST_JOBS = JobRunnerConfig(poll_interval_s=0.1, heartbeat_interval_s=0.2, stale_after_s=5)
RECORDS = [
    {"id": "z1", "text": "快递太慢了，等了五天才到", "lang": "zh"},
    {"id": "z2", "text": "客服态度很差，问了三遍都不理人", "lang": "zh"},
    {"id": "z3", "text": "衣服质量很好，面料舒服", "lang": "zh"},
    {"id": "e1", "text": "The delivery was late and the box was crushed", "lang": "en"},
    {"id": "e2", "text": "Great staff, quick checkout", "lang": "en"},
    {"id": "e3", "text": "Way too expensive for what you get", "lang": "en"},
]  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Api:
    base_url: str
    database_url: str
    home: Path
    keys: dict[str, str]
    key_ids: dict[str, str]

    def request(self, method: str, path: str, key: str | None = "train", **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[key]}"} if key else {}
        return httpx.request(method, self.base_url + path, headers=headers, timeout=60, **kw)

    def label(self, *items: dict[str, Any], key: str = "train", **body: Any) -> httpx.Response:
        return self.request("POST", "/v1/labels", key, json={"items": list(items), **body})

    def upload_labels(self, content: bytes | str, name: str, key: str = "train", **form: Any):
        data = content.encode() if isinstance(content, str) else content
        return self.request("POST", "/v1/labels/import", key, files={"file": (name, data)},
                            data=form)  # fmt: skip

    def dataset(self, rows: list[dict[str, Any]], key: str = "analyze") -> str:
        body = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows)
        response = self.request("POST", "/v1/datasets", key,
                                files={"file": ("反馈.jsonl", body.encode())})  # fmt: skip
        assert response.status_code == 202, response.text
        job_id = response.json()["job"]["id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            job = self.request("GET", f"/v1/jobs/{job_id}", key).json()
            if job["state"] in ("succeeded", "failed"):
                assert job["state"] == "succeeded", job
                return response.json()["dataset"]["id"]
            time.sleep(0.05)
        raise AssertionError("the import did not finish")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory, database_factory, live_server) -> Iterator[Api]:
    home = tmp_path_factory.mktemp("home")
    with database_factory(request.param, home) as url:
        app = create_app(Settings(home=home, database_url=url), classifier_factory=FakeClassifier,
                         jobs=FAST_JOBS)  # fmt: skip
        with live_server(app) as base_url:
            engine = make_engine(url)
            keys, key_ids = {}, {}
            with make_session_factory(engine).begin() as session:
                tenants = {n: get_or_create_tenant(session, n)[0] for n in ("acme", "globex", "initech")}
                for label, tenant, scopes in [
                    ("train", "acme", "train"), ("analyze", "acme", "analyze"),
                    ("classify", "acme", "classify"), ("globex", "globex", "admin"),
                    ("initech", "initech", "admin"),
                ]:  # fmt: skip
                    row, keys[label] = create_key(session, tenants[tenant], scopes, name=label)
                    key_ids[label] = row.id
            engine.dispose()
            yield Api(base_url=base_url, database_url=url, home=home, keys=keys, key_ids=key_ids)


@pytest.fixture(scope="module")
def ds(api: Api) -> str:
    return api.dataset(RECORDS)


def test_labels_keep_who_when_the_taxonomy_version_and_the_text(api: Api, ds: str) -> None:
    response = api.label(
        {"dataset_id": ds, "record_id": "z1", "sentiment": "negative",
         "topics": {"delivery.timeliness": "negative"}, "touchpoints": ["fulfil"]},
        {"text": "Lovely staff but the room smelled of smoke", "sentiment": "negative",
         "topics": {"service.attitude": "positive", "environment.cleanliness": "negative"},
         "touchpoints": ["use"], "note": "mixed aspects"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["counts"] == {"accepted": 2, "rejected": 0}
    assert [a["index"] for a in summary["accepted"]] == [0, 1]
    assert summary["accepted"][0]["ref"] == f"{ds}/z1" and summary["accepted"][0]["revision"] == 1
    listed = api.request("GET", "/v1/labels", "analyze", params={"dataset_id": ds}).json()
    (record,) = [i for i in listed["items"] if i["record_id"] == "z1"]
    assert record["text"] == "快递太慢了，等了五天才到" and record["lang"] == "zh"
    assert record["taxonomy"] == {"key": "cem-default", "version": 1}
    assert record["created_by"] == {"id": api.key_ids["train"], "name": "train"}
    assert record["topics"] == {"delivery.timeliness": "negative"} and record["current"]
    free = api.request("GET", f"/v1/labels/{summary['accepted'][1]['id']}", "analyze").json()
    (only,) = free["items"]
    assert only["lang"] == "en" and only["dataset_id"] is None  # detected language
    assert only["example_id"].startswith("text-") and only["note"] == "mixed aspects"


def test_a_correction_supersedes_the_label_and_keeps_its_history(api: Api, ds: str) -> None:
    first = api.label({"dataset_id": ds, "record_id": "e1", "sentiment": "negative",
                       "topics": {"delivery.timeliness": "negative"}}).json()  # fmt: skip
    old_id = first["accepted"][0]["id"]
    fixed = api.label({"dataset_id": ds, "record_id": "e1", "sentiment": "negative",
                       "topics": {"delivery.timeliness": "negative",
                                  "delivery.condition": "negative"},
                       "touchpoints": ["fulfil"]}).json()  # fmt: skip
    accepted = fixed["accepted"][0]
    assert accepted["revision"] == 2 and accepted["supersedes"] == old_id
    current = api.request("GET", "/v1/labels", "analyze",
                          params={"dataset_id": ds, "record_id": "e1"}).json()  # fmt: skip
    assert [i["id"] for i in current["items"]] == [accepted["id"]]
    history = api.request("GET", f"/v1/labels/{old_id}", "analyze").json()["items"]
    assert [(h["revision"], h["current"]) for h in history] == [(2, True), (1, False)]
    assert history[1]["superseded_by"] == accepted["id"] and history[1]["topics"] == {
        "delivery.timeliness": "negative"
    }
    everything = api.request("GET", "/v1/labels", "analyze",
                             params={"record_id": "e1", "history": True}).json()  # fmt: skip
    assert everything["total"] == 2


def test_bad_items_are_rejected_with_their_reason_and_the_good_ones_stored(api: Api, ds: str) -> None:
    other = api.dataset([{"id": "g1", "text": "物流很快"}], key="globex")
    response = api.label(
        {"dataset_id": ds, "record_id": "z2", "topics": {"service.attitude": "negative"}},
        {"dataset_id": ds, "record_id": "z2", "topics": {"delivery.speed": "negative"}},
        {"dataset_id": ds, "record_id": "z2", "topics": {"delivery": "negative"}},
        {"dataset_id": ds, "record_id": "z2", "topics": {"service.attitude": "angry"}},
        {"dataset_id": ds, "record_id": "z2", "touchpoints": ["checkout"]},
        {"dataset_id": ds, "record_id": "nope", "sentiment": "negative"},
        {"dataset_id": other, "record_id": "g1", "sentiment": "positive"},
        {"text": "挺好的"},
        {"text": "物流很快", "sentiment": "positive", "taxonomy_version": 3},
    )
    assert response.status_code == 207, response.text
    body = response.json()
    assert [a["index"] for a in body["accepted"]] == [0]
    reasons = {r["index"]: r["reason"] for r in body["rejected"]}
    assert "unknown topic id 'delivery.speed'" in reasons[1]
    assert "level-1" in reasons[2] and "delivery.timeliness" in reasons[2]
    assert "negative, neutral or positive" in reasons[3] and "'angry'" in reasons[3]
    assert "unknown touchpoint id 'checkout'" in reasons[4] and "fulfil" in reasons[4]
    assert "unknown record_id 'nope'" in reasons[5]
    assert f"unknown dataset_id {other!r}" in reasons[6]  # another tenant's data set
    assert "says nothing" in reasons[7]
    assert "no version 3" in reasons[8] and "1 to 1" in reasons[8]
    nothing = api.label({"dataset_id": ds, "record_id": "z2", "sentiment": "furious"})
    assert nothing.status_code == 422
    error = nothing.json()["error"]
    assert error["code"] == "invalid_input" and error["details"]["counts"]["accepted"] == 0
    assert "'furious'" in error["details"]["rejected"][0]["reason"]


def test_a_csv_import_reports_every_bad_row_by_line_and_stores_the_rest(api: Api, ds: str) -> None:
    csv_text = (
        "dataset_id,record_id,text,lang,sentiment,topics,touchpoints,taxonomy_version,reviewer\n"
        f'{ds},z3,,,positive,"product.quality:positive; product.design:positive",use,1,王芳\n'
        f'{ds},e3,,,负面,price.value:负面,purchase,,Sam\n'
        f"{ds},e2,,,positive,service.attitude,use,,Sam\n"
        f"{ds},e2,,,positive,staff.friendliness:positive,use,,Sam\n"
        f"{ds},e2,,,positive,,,2,Sam\n"
        ",,包装破了，里面的杯子碎了,zh,negative,delivery.condition:negative,fulfil,,王芳\n"
        f"{ds},missing,,,negative,,,,Sam\n"
        ",,,,negative,,,,Sam\n"
    )
    response = api.upload_labels(csv_text, "labels.csv")
    assert response.status_code == 207, response.text
    body = response.json()
    assert sorted(a["line"] for a in body["accepted"]) == [2, 3, 7]
    reasons = {r["line"]: r["reason"] for r in body["rejected"]}
    assert sorted(reasons) == [4, 5, 6, 8, 9]
    assert "lacks its polarity" in reasons[4]
    assert "unknown topic id 'staff.friendliness'" in reasons[5]
    assert "no version 2" in reasons[6]
    assert "unknown record_id 'missing'" in reasons[8]
    assert "needs a record" in reasons[9]
    assert body["ignored_columns"] == ["reviewer"]
    stored = api.request("GET", "/v1/labels", "analyze", params={"record_id": "e3"}).json()
    assert stored["items"][0]["sentiment"] == "negative"  # 负面 read as negative
    assert stored["items"][0]["topics"] == {"price.value": "negative"}
    assert stored["items"][0]["touchpoints"] == ["purchase"]
    assert stored["items"][0]["source"] == "import"


def test_an_xlsx_import_reports_bad_rows_by_spreadsheet_row(api: Api, ds: str) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Record_ID", "Dataset_ID", "Sentiment", "Topics", "Touchpoints"])
    sheet.append(["z2", ds, "negative", "service.attitude:negative\nservice.responsiveness:negative", "support"])
    sheet.append(["z2", ds, "negative", "service.attitude:negative", "call-centre"])
    buffer = io.BytesIO()
    book.save(buffer)
    response = api.upload_labels(buffer.getvalue(), "复核.xlsx")
    assert response.status_code == 207, response.text
    body = response.json()
    assert [a["line"] for a in body["accepted"]] == [2]
    assert body["rejected"][0]["line"] == 3 and "'call-centre'" in body["rejected"][0]["reason"]
    broken = api.upload_labels(b"PK\x03\x04 not really a workbook", "bad.xlsx")
    assert broken.status_code == 422 and broken.json()["error"]["code"] == "invalid_file"
    headless = api.upload_labels("foo,bar\n1,2\n", "x.csv")
    assert headless.status_code == 422 and "record_id" in headless.json()["error"]["message"]


def test_an_old_taxonomy_version_is_rejected_or_mapped_forward(api: Api) -> None:
    created = api.request("POST", "/v1/taxonomies", "initech",
                          json={"from": "default", "id": "initech-cem"}).json()  # fmt: skip
    old = api.label({"text": "优惠券用不了", "sentiment": "negative",
                     "topics": {"price.promotion": "negative"}}, key="initech")  # fmt: skip
    assert old.status_code == 200, old.text  # version 1 is current: stored as version 1
    v2 = api.request("PUT", f"/v1/taxonomies/{created['id']}", "initech",
                     json={"yaml": to_yaml(edited(default_doc("initech-cem")))})  # fmt: skip
    assert v2.status_code == 200 and v2.json()["current_version"] == 2, v2.text
    item = {"text": "满减活动根本不划算", "sentiment": "negative",
            "topics": {"price.promotion": "negative"}, "taxonomy_version": 1}  # fmt: skip
    rejected = api.label(item, key="initech")
    assert rejected.status_code == 422
    reason = rejected.json()["error"]["details"]["rejected"][0]["reason"]
    assert "version 1 of initech-cem is not current (current: 2)" in reason
    assert "price.promotion → price.value" in reason and "map_forward" in reason
    mapped = api.label(item, key="initech", map_forward=True)
    assert mapped.status_code == 200, mapped.text
    label = api.request("GET", f"/v1/labels/{mapped.json()['accepted'][0]['id']}", "initech").json()
    assert label["items"][0]["topics"] == {"price.value": "negative"}
    assert label["items"][0]["taxonomy"] == {"key": "initech-cem", "version": 2}
    retired = api.label({"text": "满减活动根本不划算", "topics": {"price.promotion": "negative"}},
                        key="initech")  # fmt: skip
    assert "retired" in retired.json()["error"]["details"]["rejected"][0]["reason"]
    new_leaf = api.label({"text": "吃完过敏了，菜里有花生没有标注", "lang": "zh",
                          "topics": {"food_safety.allergens": "negative"}}, key="initech")
    assert new_leaf.status_code == 200, new_leaf.text  # fmt: skip
    # the export maps the version-1 label forward to version 2
    exported = api.request("GET", "/v1/labels/export", "initech").text.splitlines()
    by_text = {json.loads(line)["text"]: json.loads(line) for line in exported}
    assert by_text["优惠券用不了"]["topics"] == {"price.value": "negative"}
    assert by_text["吃完过敏了，菜里有花生没有标注"]["topics"] == {"food_safety.allergens": "negative"}
    as_v1 = api.request("GET", "/v1/labels/export", "initech", params={"taxonomy_version": 1})
    assert [json.loads(line)["text"] for line in as_v1.text.splitlines()] == ["优惠券用不了"]


def test_the_export_is_a_training_label_set_of_current_labels(api: Api, ds: str, tmp_path: Path) -> None:
    api.label({"dataset_id": ds, "record_id": "z1", "sentiment": "negative",
               "topics": {"delivery.timeliness": "negative", "delivery.courier": "negative"},
               "touchpoints": ["fulfil"]})  # fmt: skip
    response = api.request("GET", "/v1/labels/export", "analyze")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/x-ndjson")
    path = tmp_path / "labels.jsonl"
    path.write_bytes(response.content)
    examples = {e.id: e for e in read_label_set(path)}
    z1 = examples[f"{ds}/z1"]  # the correction, not the first label
    assert z1.topics == {"delivery.timeliness": "negative", "delivery.courier": "negative"}
    assert z1.text == "快递太慢了，等了五天才到" and z1.lang == "zh" and z1.touchpoints == ("fulfil",)
    assert examples[f"{ds}/e1"].topics == {"delivery.timeliness": "negative",
                                           "delivery.condition": "negative"}  # fmt: skip
    again = api.upload_labels(response.content, "labels.jsonl")
    assert again.status_code == 200, again.text
    assert all(a["revision"] >= 2 for a in again.json()["accepted"] if "/" in (a["ref"] or ""))


def test_scopes_and_tenants(api: Api, ds: str) -> None:
    item = {"dataset_id": ds, "record_id": "z1", "sentiment": "negative"}
    assert api.label(item, key="analyze").status_code == 403
    assert api.request("GET", "/v1/labels", "classify").status_code == 403
    assert api.request("GET", "/v1/labels", None).status_code == 401
    mine = api.request("GET", "/v1/labels", "analyze").json()["items"][0]["id"]
    assert api.request("GET", f"/v1/labels/{mine}", "globex").status_code == 404
    assert api.request("GET", "/v1/labels", "globex").json()["total"] == 0
    assert api.request("GET", "/v1/labels/export", "globex").text == ""
    assert api.request("GET", "/v1/review-queue", "globex", params={"dataset_id": ds}).status_code == 404


def test_the_command_line_imports_and_exports(api: Api, ds: str, tmp_path: Path, monkeypatch) -> None:
    from service.cli import app as cli

    monkeypatch.setenv("VERBATIM_DATABASE_URL", api.database_url)
    monkeypatch.setenv("VERBATIM_HOME", str(api.home))
    source = tmp_path / "labels.csv"
    source.write_text(
        "dataset_id,record_id,sentiment,topics\n"
        f"{ds},z2,negative,service.attitude:negative\n"
        f"{ds},z2,negative,service.rudeness:negative\n", encoding="utf-8")  # fmt: skip
    result = CliRunner().invoke(cli, ["labels", "import", str(source), "--tenant", "acme"])
    assert result.exit_code == 0, result.output
    assert "line 3: unknown topic id 'service.rudeness'" in result.output
    assert "1 label(s) stored, 1 rejected" in result.output
    out = tmp_path / "set.jsonl"
    result = CliRunner().invoke(cli, ["labels", "export", "--tenant", "acme", "--out", str(out)])
    assert result.exit_code == 0, result.output
    z2 = {e.id: e for e in read_label_set(out)}[f"{ds}/z2"]
    assert z2.topics == {"service.attitude": "negative"}
    history = api.request("GET", "/v1/labels", "analyze", params={"record_id": "z2"}).json()
    assert history["items"][0]["created_by"]["id"] == "cli"
    bad = CliRunner().invoke(cli, ["labels", "import", str(source), "--tenant", "nobody"])
    assert bad.exit_code == 1
