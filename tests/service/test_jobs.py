"""Jobs survive the server: a graceful stop hands the import back, a killed server's import is
resumed by the next one, and either way every accepted record is stored exactly once.

The servers are real: uvicorn on loopback in a thread (stopped the way a SIGTERM stops it) or in a
subprocess that is SIGKILLed mid-import. The model is a slow rule-based fake.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_classifier import FakeClassifier
from sqlalchemy import func, select

from service.app import create_app
from service.datasets import IMPORT_KIND
from service.jobs import JobRunner, JobRunnerConfig
from service.settings import Settings
from service.storage import make_engine, make_session_factory, upgrade_database
from service.storage.base import utcnow
from service.storage.keys import create_key, get_or_create_tenant
from service.storage.models import Dataset, DatasetRecord, Job, JobState

N = 60
BATCH = 5
JOBS = JobRunnerConfig(
    poll_interval_s=0.1, heartbeat_interval_s=0.2, stale_after_s=1.5, batch_size=BATCH
)
LINES = [
    {"id": f"r{i:03d}", "nps": i % 11,
     "text": f"第{i}单：快递太慢了，电话13800138{i:03d}" if i % 2 else f"Order {i}: great staff, quick checkout"}
    for i in range(N)
]  # fmt: skip
LINES.insert(7, {"id": "bad", "text": "", "nps": 3})
CONTENT = "\n".join(json.dumps(r, ensure_ascii=False) for r in LINES).encode()


def _key(url: str) -> str:
    upgrade_database(url)
    engine = make_engine(url)
    try:
        with make_session_factory(engine).begin() as session:
            tenant, _ = get_or_create_tenant(session, "acme")
            return create_key(session, tenant, "analyze")[1]
    finally:
        engine.dispose()


def _db(url: str, fn: Callable[[Any], Any]) -> Any:
    engine = make_engine(url)
    try:
        with make_session_factory(engine).begin() as session:
            return fn(session)
    finally:
        engine.dispose()


def _stored(url: str, dataset_id: str) -> tuple[int, int]:
    """(rows, distinct record ids) stored for the data set."""
    return _db(
        url,
        lambda s: s.execute(
            select(func.count(), func.count(DatasetRecord.record_id.distinct())).where(
                DatasetRecord.dataset_id == dataset_id
            )
        ).one(),
    )


def _get(base: str, path: str, key: str) -> dict[str, Any]:
    return httpx.get(base + path, headers={"Authorization": f"Bearer {key}"}, timeout=30).json()


def _upload(base: str, key: str) -> dict[str, Any]:
    response = httpx.post(
        base + "/v1/datasets",
        headers={"Authorization": f"Bearer {key}"},
        files={"file": ("orders.jsonl", CONTENT)},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    return response.json()


def _wait(cond: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _finish_on_a_new_server(live_server, home: Path, url: str, key: str, job_id: str) -> dict:
    app = create_app(
        Settings(home=home, database_url=url), classifier_factory=FakeClassifier, jobs=JOBS
    )
    with live_server(app) as base:
        return _wait(
            lambda: (
                (j := _get(base, f"/v1/jobs/{job_id}", key))["state"] in ("succeeded", "failed")
                and j
            ),
            what="the resumed job",
        )


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_graceful_stop_hands_the_import_back_and_the_next_server_finishes_it(
    kind, tmp_path, database_factory, live_server
) -> None:
    with database_factory(kind, tmp_path) as url:
        key = _key(url)
        slow = FakeClassifier(delay=0.1)
        app = create_app(
            Settings(home=tmp_path, database_url=url), classifier_factory=lambda: slow, jobs=JOBS
        )
        with live_server(app) as base:
            body = _upload(base, key)
            job_id, dataset_id = body["job"]["id"], body["dataset"]["id"]
            _wait(lambda: _get(base, f"/v1/jobs/{job_id}", key)["counts"]["classified"] >= 2 * BATCH,
                  what="two batches")  # fmt: skip
        # stopped (as on SIGTERM): the batch in flight was committed, the job handed back
        job = _db(url, lambda s: s.get(Job, job_id))
        stored, distinct = _stored(url, dataset_id)
        assert job.state == JobState.queued and job.attempts == 0
        assert 2 * BATCH <= stored < N and stored == distinct and stored % BATCH == 0
        assert job.counts["classified"] == stored  # progress committed with the records
        done = _finish_on_a_new_server(live_server, tmp_path, url, key, job_id)
        assert done["state"] == "succeeded" and done["attempts"] == 1, done
        assert done["counts"] == {"total": N + 1, "accepted": N, "rejected": 1, "classified": N}
        assert _stored(url, dataset_id) == (N, N)  # none lost, none twice


_SERVER = """
import sys, uvicorn
sys.path.insert(0, {tests!r})
from fake_classifier import FakeClassifier
from service.app import create_app
from service.jobs import JobRunnerConfig
from service.settings import Settings
app = create_app(Settings(home={home!r}, database_url={url!r}),
                 classifier_factory=lambda: FakeClassifier(delay=0.1),
                 jobs=JobRunnerConfig(poll_interval_s=0.1, heartbeat_interval_s=0.2, batch_size={batch}))
uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning")
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_killed_server_leaves_a_running_job_that_the_next_server_resumes(
    kind, tmp_path, database_factory, live_server
) -> None:
    with database_factory(kind, tmp_path) as url:
        key = _key(url)
        port = _free_port()
        code = _SERVER.format(tests=str(Path(__file__).parent), home=str(tmp_path), url=url,
                              batch=BATCH, port=port)  # fmt: skip
        server = subprocess.Popen([sys.executable, "-c", code], env={**os.environ})
        base = f"http://127.0.0.1:{port}"
        try:

            def up() -> bool:
                try:
                    return httpx.get(base + "/readyz", timeout=2).status_code == 200
                except httpx.TransportError:
                    assert server.poll() is None, "the server subprocess died"
                    return False

            _wait(up, what="the subprocess server")
            body = _upload(base, key)
            job_id, dataset_id = body["job"]["id"], body["dataset"]["id"]
            _wait(lambda: _get(base, f"/v1/jobs/{job_id}", key)["counts"]["classified"] >= 2 * BATCH,
                  what="two batches")  # fmt: skip
        finally:
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=30)
        job = _db(url, lambda s: s.get(Job, job_id))
        assert job.state == JobState.running and job.attempts == 1  # as the crash left it
        stored, distinct = _stored(url, dataset_id)
        assert BATCH <= stored < N and stored == distinct
        done = _finish_on_a_new_server(live_server, tmp_path, url, key, job_id)
        assert done["state"] == "succeeded" and done["attempts"] == 2, done
        assert done["counts"]["classified"] == N and done["counts"]["rejected"] == 1
        assert _stored(url, dataset_id) == (N, N)
        assert _db(url, lambda s: s.get(Dataset, dataset_id).status) == "ready"


def test_an_import_whose_upload_vanished_fails_with_the_reason(
    tmp_path, sqlite_url, live_server
) -> None:
    key = _key(sqlite_url)
    slow = FakeClassifier(delay=0.1)
    app = create_app(
        Settings(home=tmp_path, database_url=sqlite_url), classifier_factory=lambda: slow, jobs=JOBS
    )
    with live_server(app) as base:
        body = _upload(base, key)
        job_id, dataset_id = body["job"]["id"], body["dataset"]["id"]
        _wait(
            lambda: _get(base, f"/v1/jobs/{job_id}", key)["counts"]["classified"] >= BATCH,
            what="a batch",
        )
    uploads = tmp_path / "uploads"
    assert any(p.name == "upload.jsonl" for p in uploads.rglob("*"))
    for path in uploads.rglob("upload.jsonl"):
        path.unlink()
    done = _finish_on_a_new_server(live_server, tmp_path, sqlite_url, key, job_id)
    assert done["state"] == "failed" and "upload the file again" in done["error"]
    assert "missing" in done["error"]
    dataset = _get_dataset(live_server, tmp_path, sqlite_url, key, dataset_id)
    assert dataset["status"] == "failed" and dataset["error"] == done["error"]


def _get_dataset(live_server, home: Path, url: str, key: str, dataset_id: str) -> dict:
    app = create_app(
        Settings(home=home, database_url=url), classifier_factory=FakeClassifier, jobs=JOBS
    )
    with live_server(app) as base:
        return _get(base, f"/v1/datasets/{dataset_id}", key)


def test_deleting_a_data_set_mid_import_cancels_its_job(tmp_path, sqlite_url, live_server) -> None:
    key = _key(sqlite_url)
    slow = FakeClassifier(delay=0.1)
    app = create_app(
        Settings(home=tmp_path, database_url=sqlite_url), classifier_factory=lambda: slow, jobs=JOBS
    )
    with live_server(app) as base:
        body = _upload(base, key)
        job_id, dataset_id = body["job"]["id"], body["dataset"]["id"]
        _wait(lambda: _get(base, f"/v1/jobs/{job_id}", key)["state"] == "running", what="the start")
        response = httpx.delete(
            base + f"/v1/datasets/{dataset_id}", headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 204
        job = _get(base, f"/v1/jobs/{job_id}", key)
        assert job["state"] == "cancelled" and job["error"] == "The data set was deleted."
        time.sleep(1.5)  # longer than the whole import would take: it must have stopped
        assert slow.calls < N
        assert _get(base, f"/v1/jobs/{job_id}", key)["state"] == "cancelled"
    assert _stored(sqlite_url, dataset_id) == (0, 0)
    assert not any(p.is_file() for p in (tmp_path / "uploads").rglob("*"))


def _stale_job(session, tenant_id: str, attempts: int) -> str:
    job = Job(tenant_id=tenant_id, kind=IMPORT_KIND, state=JobState.running.value, attempts=attempts,
              payload={"dataset_id": "ds_none"}, heartbeat_at=utcnow() - timedelta(minutes=5))  # fmt: skip
    session.add(job)
    session.flush()
    return job.id


def test_recovery_requeues_stale_jobs_and_fails_them_after_max_attempts(database_url: str) -> None:
    upgrade_database(database_url)
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    try:
        with factory.begin() as session:
            tenant, _ = get_or_create_tenant(session, "acme")
            retry = _stale_job(session, tenant.id, attempts=1)
            give_up = _stale_job(session, tenant.id, attempts=3)
            fresh = Job(tenant_id=tenant.id, kind=IMPORT_KIND, state=JobState.running.value,
                        attempts=1, heartbeat_at=utcnow())  # fmt: skip
            session.add(fresh)
        runner = JobRunner(factory, {}, config=JobRunnerConfig(stale_after_s=60, max_attempts=3))
        assert runner.recover() == 2
        with factory() as session:
            states = {j.id: (j.state, j.error) for j in session.scalars(select(Job))}
        assert states[retry] == ("queued", None)
        assert states[give_up][0] == "failed" and "3 times" in states[give_up][1]
        assert states[fresh.id] == ("running", None)  # another live server's job is left alone
        assert runner.recover() == 0
    finally:
        engine.dispose()
