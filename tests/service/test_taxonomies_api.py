"""Taxonomies over real HTTP (uvicorn on loopback), on SQLite and PostgreSQL.

Create from the default and from YAML, every problem of an invalid upload with path and line, new
versions on PUT with the server's version numbers, diffs with label mapping, YAML export that loads
and re-imports unchanged, tenant isolation and scopes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fake_classifier import FakeClassifier
from taxonomy_support import default_doc, default_yaml, edited, to_yaml

from models.taxonomy import default_taxonomy, load_taxonomy
from service.app import create_app
from service.routes.taxonomies_schemas import EXAMPLE_YAML
from service.settings import Settings
from service.storage import make_engine, make_session_factory
from service.storage.keys import create_key, get_or_create_tenant

YAML = {"Content-Type": "application/yaml"}


@dataclass(frozen=True, kw_only=True)
class Api:
    base_url: str
    keys: dict[str, str]
    key_ids: dict[str, str]

    def request(
        self, method: str, path: str, key: str | None = "train", **kw: Any
    ) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if key:
            headers["Authorization"] = f"Bearer {self.keys[key]}"
        return httpx.request(method, self.base_url + path, headers=headers, timeout=30, **kw)

    def create_default(self, key: str, who: str = "train") -> dict[str, Any]:
        response = self.request("POST", "/v1/taxonomies", who, json={"from": "default", "id": key})
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory, database_factory, live_server) -> Iterator[Api]:
    home = tmp_path_factory.mktemp("home")
    with database_factory(request.param, home) as url:
        app = create_app(Settings(home=home, database_url=url), classifier_factory=FakeClassifier)
        with live_server(app) as base_url:
            engine = make_engine(url)
            keys, key_ids = {}, {}
            with make_session_factory(engine).begin() as session:
                acme, _ = get_or_create_tenant(session, "acme")
                globex, _ = get_or_create_tenant(session, "globex")
                for label, tenant, scopes in [
                    ("train", acme, "train"),
                    ("analyze", acme, "analyze"),
                    ("classify", acme, "classify"),
                    ("globex", globex, "admin"),
                ]:
                    row, keys[label] = create_key(session, tenant, scopes, name=label)
                    key_ids[label] = row.id
            engine.dispose()
            yield Api(base_url=base_url, keys=keys, key_ids=key_ids)


def test_a_copy_of_the_default_is_version_1_and_reads_back_by_id_and_key(api: Api) -> None:
    created = api.create_default("acme-cem")
    assert created["key"] == "acme-cem" and created["current_version"] == 1 and created["created"]
    assert created["id"].startswith("tax_") and created["name"]["zh"] == "默认客户体验分类体系"
    assert created["counts"] == {"touchpoints": 6, "topics": 29, "leaves": 20, "retired": 0}
    assert created["version"]["created_by"] == api.key_ids["train"]
    by_id = api.request("GET", f"/v1/taxonomies/{created['id']}", "analyze").json()
    by_key = api.request("GET", "/v1/taxonomies/acme-cem", "analyze").json()
    assert by_id == by_key and by_id["taxonomy"]["id"] == "acme-cem"
    assert by_id["taxonomy"]["topics"][1]["name"]["zh"] == "质量"
    listed = api.request("GET", "/v1/taxonomies", "analyze").json()
    assert created["id"] in [t["id"] for t in listed["items"]]
    # the YAML link gives a file that loads, with the default's nodes and the new id
    exported = api.request("GET", by_id["yaml_url"], "analyze")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/yaml")
    loaded = load_taxonomy(exported.text)
    assert (loaded.id, loaded.version) == ("acme-cem", 1)
    assert loaded.content_hash() == default_taxonomy().content_hash()
    assert "快递到现在还没发货" in exported.text  # Chinese stays readable, not \u escapes
    again = api.request("POST", "/v1/taxonomies", json={"from": "default", "id": "acme-cem"})
    assert again.status_code == 409 and created["id"] in again.json()["error"]["message"]


def test_a_yaml_upload_gets_version_1_whatever_it_says_and_reports_warnings(api: Api) -> None:
    text = EXAMPLE_YAML.replace("id: acme-cem", "id: acme-food").replace("version: 1", "version: 7")
    response = api.request("POST", "/v1/taxonomies", content=text.encode(), headers=YAML)
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/taxonomies/{body['id']}"
    assert body["current_version"] == 1 and body["taxonomy"]["version"] == 1
    assert body["name"] == {"zh": "极客外卖客户体验", "en": "Acme delivery CEM"}
    assert body["counts"]["leaves"] == 1
    # two seeds per language: saved, with a warning pointing at the node
    paths = {w["path"] for w in body["warnings"]}
    assert any(p.startswith("topics[1].seeds") for p in paths), body["warnings"]
    assert all(w["level"] == "warning" and w["line"] for w in body["warnings"])


def test_an_invalid_upload_is_a_422_listing_every_problem_with_path_and_line(api: Api) -> None:
    before = api.request("GET", "/v1/taxonomies", "analyze").json()["total"]
    bad = (
        EXAMPLE_YAML.replace("id: acme-cem", "id: acme-bad")
        .replace("name: {zh: 时效, en: Timeliness}", "name: {zh: 时效}")
        .replace("touchpoints: [fulfil]", "touchpoints: [checkout]")
    )
    response = api.request("POST", "/v1/taxonomies", content=bad.encode(), headers=YAML)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_taxonomy"
    problems = {(d["path"], d["line"]) for d in error["details"] if d["level"] == "error"}
    lines = bad.splitlines()
    assert any(p.startswith("topics[1].name") and "时效" in lines[n - 1] for p, n in problems)
    assert any(
        p.startswith("topics[1].touchpoints") and "checkout" in lines[n - 1] for p, n in problems
    )
    assert "checkout" in json.dumps(error["details"])
    syntax = api.request("POST", "/v1/taxonomies", content=b"id: x\ntopics: [\n", headers=YAML)
    assert syntax.status_code == 422 and syntax.json()["error"]["details"][0]["line"] >= 2
    wrong_type = api.request("POST", "/v1/taxonomies", content=EXAMPLE_YAML.encode(),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert wrong_type.status_code == 415 and "application/yaml" in wrong_type.text
    total = api.request("GET", "/v1/taxonomies", "analyze").json()["total"]
    assert total == before  # nothing was created


def test_put_makes_version_2_and_the_diff_lists_merge_rename_and_label_mapping(api: Api) -> None:
    created = api.create_default("acme-v")
    tid = created["id"]
    v2_text = to_yaml(edited(default_doc("acme-v")))
    response = api.request(
        "PUT", f"/v1/taxonomies/{tid}", json={"yaml": v2_text, "message": "加入食品安全"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["created"] and body["current_version"] == 2 and body["taxonomy"]["version"] == 2
    assert body["version"]["message"] == "加入食品安全" and body["counts"]["retired"] == 1
    versions = api.request("GET", f"/v1/taxonomies/{tid}/versions", "analyze").json()
    assert [v["version"] for v in versions] == [2, 1]
    diff = api.request("GET", f"/v1/taxonomies/{tid}/diff", "analyze", params={"from": 1, "to": 2})
    assert diff.status_code == 200, diff.text
    d = diff.json()
    changes = {(c["change"], c["id"]): c for c in d["changes"]}
    assert changes[("merged", "price.promotion")]["target"] == "price.value"
    assert "配送员" in changes[("renamed", "delivery.courier")]["detail"]
    assert ("added", "food_safety.allergens") in changes
    assert d["label_mapping"]["topics"]["price.promotion"] == "price.value"
    assert d["label_mapping"]["topics"]["delivery.courier"] == "delivery.courier"
    assert d["summary"][0].startswith("acme-v v1 -> acme-v v2")
    assert "> topic price.promotion merged into price.value" in d["summary"]
    # the same document again saves nothing; version 1 is unchanged
    same = api.request("PUT", f"/v1/taxonomies/{tid}", content=v2_text.encode(), headers=YAML)
    assert same.status_code == 200 and not same.json()["created"]
    assert same.json()["current_version"] == 2
    v1 = api.request(
        "GET", f"/v1/taxonomies/{tid}/versions/1", "analyze", params={"format": "yaml"}
    )
    assert load_taxonomy(v1.text).content_hash() == default_taxonomy().content_hash()
    # a third version; the default diff is current against the one before
    v3 = edited(default_doc("acme-v"))
    v3["topics"] = [t for t in v3["topics"] if not t["id"].startswith("food_safety")]
    assert (
        api.request(
            "PUT", f"/v1/taxonomies/{tid}", content=to_yaml(v3).encode(), headers=YAML
        ).json()["current_version"]
        == 3
    )
    latest = api.request("GET", f"/v1/taxonomies/{tid}/diff", "analyze").json()
    assert (latest["from"]["version"], latest["to"]["version"]) == (2, 3)
    assert latest["label_mapping"]["topics"]["food_safety.allergens"] is None
    assert any(c["change"] == "removed" for c in latest["changes"])


def test_put_refuses_another_id_and_invalid_yaml_without_a_new_version(api: Api) -> None:
    tid = api.create_default("acme-guard")["id"]
    other = default_yaml("someone-else")
    response = api.request("PUT", f"/v1/taxonomies/{tid}", content=other.encode(), headers=YAML)
    assert response.status_code == 422
    detail = response.json()["error"]["details"][0]
    assert detail["path"] == "id" and detail["line"] == 1 and "acme-guard" in detail["message"]
    broken = (
        default_yaml("acme-guard")
        .replace("replaced_by", "replaced")
        .replace("severity: medium", "severity: urgent", 1)
    )
    response = api.request("PUT", f"/v1/taxonomies/{tid}", content=broken.encode(), headers=YAML)
    assert response.status_code == 422 and any(
        d["path"].endswith(".severity") for d in response.json()["error"]["details"]
    )
    assert api.request("GET", f"/v1/taxonomies/{tid}", "analyze").json()["current_version"] == 1
    missing = api.request("GET", f"/v1/taxonomies/{tid}/versions/9", "analyze")
    assert (
        missing.status_code == 404 and "versions are 1 to 1" in missing.json()["error"]["message"]
    )


def test_the_yaml_export_reimports_unchanged(api: Api) -> None:
    tid = api.create_default("acme-rt")["id"]
    api.request("PUT", f"/v1/taxonomies/{tid}", content=to_yaml(edited(default_doc("acme-rt"))).encode(), headers=YAML)  # fmt: skip
    exported = api.request(
        "GET", f"/v1/taxonomies/{tid}/versions/2", "analyze", params={"format": "yaml"}
    )
    loaded = load_taxonomy(exported.text)
    meta = api.request("GET", f"/v1/taxonomies/{tid}/versions/2", "analyze").json()
    assert loaded.version == 2 and loaded.content_hash() == meta["version"]["content_hash"]
    assert "food_safety.allergens" in loaded.leaf_ids and "price.promotion" not in loaded.leaf_ids
    again = api.request("PUT", f"/v1/taxonomies/{tid}", content=exported.content, headers=YAML)
    assert again.status_code == 200 and not again.json()["created"]


def test_another_tenants_taxonomy_is_a_404_and_keys_do_not_collide(api: Api) -> None:
    tid = api.create_default("acme-private")["id"]
    for method, path in [
        ("GET", f"/v1/taxonomies/{tid}"),
        ("GET", "/v1/taxonomies/acme-private"),
        ("GET", f"/v1/taxonomies/{tid}/versions"),
        ("GET", f"/v1/taxonomies/{tid}/versions/1?format=yaml"),
        ("GET", f"/v1/taxonomies/{tid}/diff?from=1&to=1"),
    ]:
        response = api.request(method, path, "globex")
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == "not_found"
    put = api.request("PUT", f"/v1/taxonomies/{tid}", "globex", content=default_yaml("acme-private").encode(), headers=YAML)  # fmt: skip
    assert put.status_code == 404
    assert tid not in [
        t["id"] for t in api.request("GET", "/v1/taxonomies", "globex").json()["items"]
    ]
    theirs = api.create_default("acme-private", who="globex")  # same key, another tenant: fine
    assert theirs["id"] != tid
    assert api.request("GET", "/v1/taxonomies/acme-private", "analyze").json()["id"] == tid


def test_reading_needs_analyze_and_changing_needs_train(api: Api) -> None:
    tid = api.create_default("acme-scopes")["id"]
    assert api.request("GET", f"/v1/taxonomies/{tid}", "classify").status_code == 403
    assert api.request("GET", "/v1/taxonomies", None).status_code == 401
    denied = api.request("POST", "/v1/taxonomies", "analyze", json={"from": "default", "id": "x1"})
    assert denied.status_code == 403 and "'train' scope" in denied.json()["error"]["message"]
    put = api.request("PUT", f"/v1/taxonomies/{tid}", "analyze", content=default_yaml("acme-scopes").encode(), headers=YAML)  # fmt: skip
    assert put.status_code == 403
    assert api.request("GET", f"/v1/taxonomies/{tid}").status_code == 403  # train alone cannot read


def test_openapi_documents_bilingual_examples_and_both_body_types(api: Api) -> None:
    spec = httpx.get(api.base_url + "/openapi.json", timeout=30).json()
    post = spec["paths"]["/v1/taxonomies"]["post"]
    assert {"application/yaml", "application/json"} <= set(post["requestBody"]["content"])
    example = post["requestBody"]["content"]["application/yaml"]["examples"]["bilingual"]["value"]
    assert load_taxonomy(example).topic("delivery.timeliness").name.zh == "时效"
    yaml_out = spec["paths"]["/v1/taxonomies/{taxonomy_id}/versions/{version}"]["get"]["responses"][
        "200"
    ]
    assert "text/yaml" in yaml_out["content"] and "application/json" in yaml_out["content"]


def test_concurrent_puts_each_get_their_own_version_or_a_409(api: Api) -> None:
    from concurrent.futures import ThreadPoolExecutor

    tid = api.create_default("acme-race")["id"]

    def put(i: int) -> httpx.Response:
        doc = default_doc("acme-race")
        doc["topics"][1]["name"]["en"] = f"Quality {i}"
        return api.request(
            "PUT", f"/v1/taxonomies/{tid}", content=to_yaml(doc).encode(), headers=YAML
        )

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(put, range(4)))
    codes = sorted(r.status_code for r in responses)
    assert set(codes) <= {200, 409} and 200 in codes, [r.text for r in responses]
    saved = sorted(r.json()["current_version"] for r in responses if r.status_code == 200)
    assert saved == list(range(2, 2 + len(saved)))  # no number twice, none skipped
    versions = api.request("GET", f"/v1/taxonomies/{tid}/versions", "analyze").json()
    assert [v["version"] for v in versions] == list(range(1 + len(saved), 0, -1))
