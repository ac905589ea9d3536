"""The model registry over HTTP: versions, the regression guard, promotion, roll-back, hot switching.

Runs on SQLite and PostgreSQL with fake model directories (see ``registry_support``): quality is
scored for real on held-out labels, but no model is trained.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from registry_support import DEFAULT_VERSION, serving

DEFAULT = f"verbatim-cem@{DEFAULT_VERSION}"
ZH = "快递太慢了，等了一个星期才到，客服也不回复。"
EN = "The staff at the Leeds store were rude to my mother."


def test_a_run_registers_a_version_with_taxonomy_data_metrics_and_lineage(
    tmp_path: Path, database_url: str, live_server
) -> None:
    with serving(tmp_path, database_url, live_server) as api:
        run = api.train()
        version = run["version"]
        assert version == f"{DEFAULT_VERSION}+ft.1"
        listing = api.call("GET", "/v1/models", "analyze").json()
        assert listing["default_model"] == DEFAULT and listing["promoted"] is None
        assert listing["serving"] == DEFAULT and listing["can_roll_back"] is False
        assert [m["version"] for m in listing["items"]] == [version]

        model = api.call("GET", f"/v1/models/{version}", "analyze").json()
        assert model["model"] == f"verbatim-cem@{version}" and model["status"] == "candidate"
        assert model["taxonomy"] == {"id": None, "key": "cem-default", "version": 1}
        assert model["lineage"] == {"parent": None, "base": DEFAULT, "training_run_id": run["id"]}
        assert model["data"]["labels"] == 60 and model["data"]["heldout"] == 30
        assert len(model["data"]["heldout_ids"]) == 30
        # a faithful copy of the default: the guard passes, every node keeps F1 1.0
        assert model["guard"]["allowed"] is True and model["guard"]["against"] is None
        assert model["metrics"]["candidate"]["per_node"]["delivery.timeliness"]["f1"] == 1.0
        assert model["metrics"]["promoted"]["model"] == DEFAULT
        # the run's own summary, and the model dir where the issue says
        assert run["status"] == "succeeded" and run["result"]["guard"]["allowed"] is True
        assert (tmp_path / "models" / api.tenant_id() / version / "config.json").is_file()
        # results still come from the default model until a promotion
        assert {r["model"] for r in api.classify([ZH, EN]).json()["results"]} == {DEFAULT}


def test_the_guard_refuses_a_regressing_version_until_forced_with_a_recorded_reason(
    tmp_path: Path, database_url: str, live_server
) -> None:
    with serving(tmp_path, database_url, live_server) as api:
        # this version never finds delivery complaints: 10 held-out labels go from F1 1.0 to 0
        version = api.train(misses=("delivery.timeliness",))["version"]
        model = api.call("GET", f"/v1/models/{version}", "analyze").json()
        assert model["guard"]["allowed"] is False
        assert any(
            r.startswith("delivery.timeliness: F1 1.000 -> 0.000")
            for r in model["guard"]["reasons"]
        )
        assert any("macro-F1" in r for r in model["guard"]["reasons"])

        refused = api.call("POST", f"/v1/models/{version}/promote", json={})
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert error["code"] == "promotion_refused"
        assert any("delivery.timeliness" in r for r in error["details"]["reasons"])
        assert {r["model"] for r in api.classify([ZH]).json()["results"]} == {DEFAULT}

        no_reason = api.call("POST", f"/v1/models/{version}/promote", json={"force": True})
        assert no_reason.status_code == 422 and "reason" in no_reason.json()["error"]["message"]

        forced = api.call(
            "POST",
            f"/v1/models/{version}/promote",
            "admin",
            json={"force": True, "reason": "delivery is handled by a rule this quarter"},
        )
        assert forced.status_code == 200, forced.text
        assert (
            forced.json()["forced"] is True and forced.json()["model"] == f"verbatim-cem@{version}"
        )
        assert {r["model"] for r in api.classify([ZH, EN]).json()["results"]} == {
            f"verbatim-cem@{version}"
        }

        events = api.call("GET", "/v1/models/events", "analyze").json()
        assert len(events) == 1
        event = events[0]
        assert event["action"] == "promote" and event["forced"] is True
        assert event["reason"] == "delivery is handled by a rule this quarter"
        assert event["actor"]["name"] == "admin-key" and event["previous_version"] is None
        assert any("delivery.timeliness" in r for r in event["guard"]["reasons_overridden"])


def test_promote_switches_results_and_rollback_walks_back_to_the_default(
    tmp_path: Path, database_url: str, live_server
) -> None:
    with serving(tmp_path, database_url, live_server) as api:
        v1 = api.train()["version"]
        assert api.call("POST", f"/v1/models/{v1}/promote").status_code == 200
        assert api.classify([ZH]).json()["model"] == f"verbatim-cem@{v1}"
        again = api.call("POST", f"/v1/models/{v1}/promote")
        assert again.status_code == 409 and "already" in again.json()["error"]["message"]

        v2 = api.train()["version"]  # evaluated against v1, now promoted
        run2 = api.call("GET", f"/v1/models/{v2}", "analyze").json()
        assert (
            run2["guard"]["against"] == v1
            and run2["metrics"]["promoted"]["model"] == f"verbatim-cem@{v1}"
        )
        assert api.call("POST", f"/v1/models/{v2}/promote").status_code == 200
        assert api.classify([EN]).json()["results"][0]["model"] == f"verbatim-cem@{v2}"
        listing = api.call("GET", "/v1/models", "analyze").json()
        statuses = {m["version"]: m["status"] for m in listing["items"]}
        assert statuses == {v2: "promoted", v1: "retired"} and listing["rollback_to"] == v1

        back = api.call("POST", "/v1/models/rollback", json={"reason": "complaints about v2"})
        assert back.status_code == 200 and back.json()["version"] == v1
        assert api.classify([EN]).json()["results"][0]["model"] == f"verbatim-cem@{v1}"
        # v2 was compared with v1 and v1 is promoted again: its evaluation holds
        stale = api.call("POST", f"/v1/models/{v1}/promote")
        assert stale.status_code == 409
        back = api.call("POST", "/v1/models/rollback")
        assert (
            back.status_code == 200
            and back.json()["version"] is None
            and back.json()["model"] == DEFAULT
        )
        assert api.classify([ZH]).json()["results"][0]["model"] == DEFAULT
        nothing = api.call("POST", "/v1/models/rollback")
        assert (
            nothing.status_code == 409
            and "Nothing to roll back" in nothing.json()["error"]["message"]
        )

        # v2 was evaluated against v1, but the default is promoted now: refused as stale
        stale = api.call("POST", f"/v1/models/{v2}/promote")
        assert stale.status_code == 409
        assert "evaluated against" in stale.json()["error"]["details"]["reasons"][0]

        events = api.call("GET", "/v1/models/events", "analyze").json()
        assert [(e["action"], e["version"]) for e in events] == [
            ("rollback", None),
            ("rollback", v1),
            ("promote", v2),
            ("promote", v1),
        ]
        assert events[1]["reason"] == "complaints about v2" and events[1]["previous_version"] == v2


def test_scopes_and_tenants(tmp_path: Path, sqlite_url: str, live_server) -> None:
    with serving(tmp_path, sqlite_url, live_server) as api:
        version = api.train()["version"]
        assert api.call("GET", "/v1/models", "classify").status_code == 403
        assert api.call("POST", f"/v1/models/{version}/promote", "analyze").status_code == 403
        assert api.call("POST", "/v1/models/rollback", "analyze").status_code == 403
        assert api.call("POST", "/v1/training-runs", "analyze", json={}).status_code == 403
        # another tenant sees none of it, and its traffic stays on the default model
        assert api.call("GET", f"/v1/models/{version}", "globex").status_code == 404
        assert api.call("POST", f"/v1/models/{version}/promote", "globex").status_code == 404
        assert api.call("GET", "/v1/models", "globex").json()["items"] == []
        assert api.call("POST", f"/v1/models/{version}/promote").status_code == 200
        assert api.classify([ZH], "globex").json()["model"] == DEFAULT
        assert api.classify([ZH]).json()["model"] == f"verbatim-cem@{version}"
        assert api.call("GET", "/v1/models/0.2.0+ft.99", "analyze").status_code == 404
        bad = api.call("POST", f"/v1/models/{version}/promote", json={"force": "yes please"})
        assert bad.status_code == 422


def test_promotion_and_rollback_under_concurrent_requests_fail_none(
    tmp_path: Path, database_url: str, live_server
) -> None:
    """Clients keep classifying over HTTP while the tenant promotes and rolls back: no request
    fails, every result names one of the two models, and after each switch new requests use
    the model switched to."""
    with serving(tmp_path, database_url, live_server, delay=0.005) as api:
        version = api.train()["version"]
        new = f"verbatim-cem@{version}"
        stop = threading.Event()
        seen: Counter[str] = Counter()
        failures: list[str] = []
        lock = threading.Lock()

        def client(n: int) -> int:
            sent = 0
            texts = [ZH, EN, "物流很快，包装也好", "The refund never arrived"]
            while not stop.is_set():
                response = api.classify([texts[(n + i) % 4] for i in range(1 + n % 3)])
                sent += 1
                with lock:
                    if response.status_code != 200:
                        failures.append(f"{response.status_code}: {response.text[:200]}")
                        continue
                    body = response.json()
                    models = {r.get("model") for r in body["results"]}
                    if (
                        len(models) != 1
                        or body["model"] not in models
                        or not models <= {DEFAULT, new}
                    ):
                        failures.append(f"mixed or unknown models: {models} / {body['model']}")
                    seen.update(models)
            return sent

        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(client, n) for n in range(6)]
            time.sleep(0.3)
            for _ in range(3):
                assert api.call("POST", f"/v1/models/{version}/promote").status_code == 200
                assert api.classify([ZH]).json()["model"] == new  # a request after the switch
                time.sleep(0.2)
                assert api.call("POST", "/v1/models/rollback").status_code == 200
                assert api.classify([ZH]).json()["model"] == DEFAULT
                time.sleep(0.2)
            stop.set()
            sent = sum(f.result() for f in futures)
        assert failures == []
        assert sent > 30 and seen[DEFAULT] > 0 and seen[new] > 0
        assert api.loads.count(version) == 1  # loaded once, before the first switch; then cached


@pytest.mark.parametrize("body", [{"holdout": 0.9}, {"steps": 0}, {"unknown": 1}])
def test_bad_training_parameters_get_422(
    tmp_path: Path, sqlite_url: str, live_server, body
) -> None:
    with serving(tmp_path, sqlite_url, live_server, labels=False) as api:
        assert api.call("POST", "/v1/training-runs", json=body).status_code == 422


def test_a_tenants_data_set_imports_are_classified_by_its_promoted_model(
    tmp_path: Path, sqlite_url: str, live_server
) -> None:
    """An analyst who promoted a version sees it in the records of the next upload; another
    tenant's upload stays on the default model."""
    lines = [{"id": "a1", "text": ZH, "nps": 2}, {"id": "a2", "text": EN, "nps": 4}]
    body = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)
    with serving(tmp_path, sqlite_url, live_server) as api:
        v1 = api.train()["version"]
        assert api.call("POST", f"/v1/models/{v1}/promote").status_code == 200
        for key, expected in (("train", f"verbatim-cem@{v1}"), ("globex", DEFAULT)):
            upload = api.call("POST", "/v1/datasets", key, files={"file": ("x.jsonl", body.encode())})
            assert upload.status_code == 202, upload.text
            deadline = time.monotonic() + 30
            while (job := api.call("GET", f"/v1/jobs/{upload.json()['job']['id']}", key).json())["state"] not in (
                "succeeded", "failed"
            ):
                assert time.monotonic() < deadline, job
                time.sleep(0.05)
            assert job["state"] == "succeeded", job
            dataset_id = upload.json()["dataset"]["id"]
            records = api.call("GET", f"/v1/datasets/{dataset_id}/records", key).json()["items"]
            assert {r["id"] for r in records} == {"a1", "a2"}
            assert {r["model"] for r in records} == {expected}
