"""Schema-driven fuzzing: schemathesis generates requests from the app's own OpenAPI document.

Valid and invalid bodies, parameters and headers go to every route of the real app on loopback
(with the fake classifier), once with a key holding every scope and once without a key. No answer
may be a 5xx: bad input is the caller's mistake, answered with a 4xx in the JSON error shape.
The number of examples is bounded so the whole file runs in well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from classify_support import FakeClassifier, Service, running
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from service.storage import make_engine, make_session_factory
from service.storage.keys import Scope, create_key, get_or_create_tenant

EXAMPLES_PER_ROUTE = 40


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory, live_server) -> Iterator[tuple[Service, str]]:
    folder = tmp_path_factory.mktemp("fuzz")
    with running(folder, live_server, fake=FakeClassifier(), rate_limit_per_minute=0, max_body_bytes=2_000_000) as service:
        engine = make_engine(f"sqlite:///{folder / 'verbatim.db'}")
        with make_session_factory(engine).begin() as session:
            tenant, _ = get_or_create_tenant(session, "fuzz")
            _, admin_key = create_key(session, tenant, list(Scope), name="fuzz")
        engine.dispose()
        yield service, admin_key


def _openapi() -> dict:
    """The app's OpenAPI document; building the app starts nothing (no database, no model)."""
    from service.app import create_app
    from service.settings import Settings

    return create_app(Settings(database_url="sqlite://")).openapi()


# (schemathesis.pytest.from_fixture would load it from the live server, but it breaks on pytest 9)
schema = schemathesis.openapi.from_dict(_openapi())
schema.config.generation.update(
    modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
    max_examples=EXAMPLES_PER_ROUTE,
)


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_ROUTE, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_server_fail(case, fuzzed) -> None:
    service, key = fuzzed
    for headers in ({"Authorization": f"Bearer {key}"}, {}):
        response = case.call(base_url=service.base_url, headers=headers, timeout=30)
        case.validate_response(response, checks=[not_a_server_error])
        if response.status_code >= 400:  # every refusal in the contract's error shape
            assert response.headers.get("x-request-id")
            body = response.json()
            assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"]
