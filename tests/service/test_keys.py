"""API keys over real HTTP (uvicorn on loopback) and through the real command line.

401 for no key, a malformed header, a wrong or revoked key; 403 for a key without the scope; 404 for
another tenant's object, indistinguishable from a missing one. Run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter

from service.app import create_app
from service.deps import ClassifyPrincipal, PrincipalDep, SessionDep
from service.settings import Settings
from service.storage import make_engine, make_session_factory
from service.storage.keys import authenticate, create_key, get_or_create_tenant, revoke_key
from service.storage.models import ApiKey
from service.storage.tenancy import get_owned

VERBATIM = str(Path(sys.executable).with_name("verbatim"))
KEY_LINE = re.compile(r"^vb_[A-Za-z0-9_-]{40,}$")

# Test-only routes: one needs the classify scope, one reads a tenant-owned object.
probe = APIRouter(prefix="/test-probe")


@probe.get("/classify")
def classify_probe(principal: ClassifyPrincipal) -> dict[str, object]:
    return {"tenant": principal.tenant_name, "scopes": sorted(principal.scopes)}


@probe.get("/keys/{key_id}")
def key_probe(key_id: str, principal: PrincipalDep, session: SessionDep) -> dict[str, str]:
    key = get_owned(session, ApiKey, key_id, principal, what="key")
    return {"id": key.id, "name": key.name}


@dataclass(frozen=True, kw_only=True)
class Api:
    base_url: str
    database_url: str
    home: Path
    keys: dict[str, str]  # label -> secret
    ids: dict[str, str]  # label -> key id

    def get(self, path: str, key: str | None = None, **headers: str) -> httpx.Response:
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return httpx.get(self.base_url + path, headers=headers, timeout=30)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "VERBATIM_HOME": str(self.home),
            "VERBATIM_DATABASE_URL": self.database_url,
        }
        return subprocess.run(
            [VERBATIM, *args], capture_output=True, text=True, env=env, timeout=120, check=False
        )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory, database_factory, live_server) -> Iterator[Api]:
    home = tmp_path_factory.mktemp("home")
    with database_factory(request.param, home) as url:
        app = create_app(Settings(home=home, database_url=url))
        app.include_router(probe)
        with live_server(app) as base_url:  # the app's start-up migrates the empty database
            engine = make_engine(url)
            keys, ids = {}, {}
            with make_session_factory(engine).begin() as session:
                acme, _ = get_or_create_tenant(session, "acme")
                globex, _ = get_or_create_tenant(session, "globex")
                for label, tenant, scopes in [
                    ("acme_classify", acme, "classify"),
                    ("acme_analyze", acme, "analyze,train,triage"),
                    ("acme_admin", acme, "admin"),
                    ("acme_revoked", acme, "classify"),
                    ("globex_classify", globex, "classify"),
                ]:
                    key, keys[label] = create_key(session, tenant, scopes, name=label)
                    ids[label] = key.id
                revoke_key(session, ids["acme_revoked"])
            engine.dispose()
            yield Api(base_url=base_url, database_url=url, home=home, keys=keys, ids=ids)


def _assert_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("x-request-id")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert len(body["error"]["message"]) > 10
    return body["error"]["message"]


@pytest.mark.parametrize(
    "case",
    [
        "no header",
        "basic auth",
        "empty bearer",
        "no scheme",
        "unknown key",
        "tampered key",
        "revoked key",
    ],
)
def test_requests_without_a_valid_key_get_401(api: Api, case: str) -> None:
    good = api.keys["acme_classify"]
    authorization = {
        "no header": None,
        "basic auth": "Basic YWNtZTpzZWNyZXQ=",
        "empty bearer": "Bearer",
        "no scheme": good,
        "unknown key": "Bearer vb_" + "Q" * 43,
        "tampered key": "Bearer " + good[:-2] + ("zz" if good[-2:] != "zz" else "yy"),
        "revoked key": "Bearer " + api.keys["acme_revoked"],
    }[case]
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = api.get("/test-probe/classify", **headers)
    message = _assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert good not in response.text and "vb_" in message  # tells how to send a key, echoes none


def test_a_key_without_the_scope_gets_403_and_the_right_key_200(api: Api) -> None:
    response = api.get(
        "/test-probe/classify", api.keys["acme_analyze"], **{"X-Request-ID": "req-403"}
    )
    message = _assert_error(response, 403, "forbidden")
    assert response.headers["x-request-id"] == "req-403"
    assert "'classify' scope" in message and "analyze" in message

    ok = api.get("/test-probe/classify", api.keys["acme_classify"])
    assert ok.status_code == 200 and ok.json() == {"tenant": "acme", "scopes": ["classify"]}
    admin = api.get("/test-probe/classify", api.keys["acme_admin"])
    assert admin.status_code == 200 and admin.json()["scopes"] == [
        "admin"
    ]  # admin implies classify


def test_another_tenants_object_is_404_like_a_missing_one(api: Api) -> None:
    acme_key_id = api.ids["acme_analyze"]
    own = api.get(f"/test-probe/keys/{acme_key_id}", api.keys["acme_classify"])
    assert own.status_code == 200 and own.json() == {"id": acme_key_id, "name": "acme_analyze"}

    foreign = api.get(f"/test-probe/keys/{acme_key_id}", api.keys["globex_classify"])
    missing = api.get("/test-probe/keys/key_doesnotexist", api.keys["globex_classify"])
    _assert_error(foreign, 404, "not_found")
    _assert_error(missing, 404, "not_found")
    assert foreign.text.replace(acme_key_id, "ID") == missing.text.replace("key_doesnotexist", "ID")


def test_cli_creates_a_key_that_authenticates_and_revokes_it(api: Api) -> None:
    created = api.cli(
        "keys", "create", "--tenant", "initech", "--scopes", "classify,analyze", "--name", "crm"
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert KEY_LINE.match(key), created.stdout
    assert created.stdout.strip() == key  # nothing else on standard output
    assert "created tenant 'initech'" in created.stderr and "classify, analyze" in created.stderr

    response = api.get("/test-probe/classify", key)
    assert response.status_code == 200 and response.json()["tenant"] == "initech"

    listed = api.cli("keys", "list", "--tenant", "initech")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.strip().splitlines()
    assert lines[0].split("\t")[:5] == ["id", "tenant", "name", "prefix", "scopes"]
    assert len(lines) == 2 and key[:8] in lines[1] and key not in listed.stdout
    key_id = lines[1].split("\t")[0]

    revoked = api.cli("keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    assert api.get("/test-probe/classify", key).status_code == 401  # at once, no restart


def test_cli_reports_bad_arguments_on_stderr_with_a_nonzero_exit(api: Api) -> None:
    bad_scope = api.cli("keys", "create", "--tenant", "acme", "--scopes", "classify,clasify")
    assert bad_scope.returncode != 0 and bad_scope.stdout == ""
    assert "Unknown scope(s): clasify" in bad_scope.stderr and "triage" in bad_scope.stderr

    unknown = api.cli("keys", "revoke", "key_doesnotexist")
    assert unknown.returncode == 1 and "No API key with id 'key_doesnotexist'" in unknown.stderr

    no_tenant = api.cli("keys", "list", "--tenant", "nobody")
    assert no_tenant.returncode == 1 and "No tenant named 'nobody'" in no_tenant.stderr


def test_serve_demo_prints_a_ready_to_use_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "VERBATIM_DATABASE_URL"}
    env["VERBATIM_HOME"] = str(tmp_path)
    proc = subprocess.Popen(
        [VERBATIM, "serve", "--demo", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert line.startswith("API key: "), line
    secret = line.removeprefix("API key: ").strip()
    assert KEY_LINE.match(secret)
    url = Settings(home=tmp_path).resolved_database_url  # the default SQLite file in VERBATIM_HOME
    assert Path(url.removeprefix("sqlite:///")).is_file()
    engine = make_engine(url)
    with make_session_factory(engine).begin() as session:
        principal = authenticate(session, secret)
    engine.dispose()
    assert principal is not None and principal.tenant_name == "demo"
    assert {s.value for s in principal.scopes} == {
        "classify",
        "analyze",
        "train",
        "triage",
        "admin",
    }
