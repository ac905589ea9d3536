"""Which taxonomy is a tenant's current one, and how serving follows it (fast tier).

``current_taxonomy`` runs on SQLite and PostgreSQL. The routing rules of
:class:`service.tenant_models.TenantModels` (build once, keep the old classifier while building,
fall back after a failed build) are checked with a classifier that only records what it is asked:
the real model's zero-shot results over HTTP are in ``test_tenant_zero_shot.py``.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from models.taxonomy import default_taxonomy, load_taxonomy, taxonomy_to_dict
from nlp.errors import ModelError
from service.derived_models import derived_version
from service.storage import make_engine, make_session_factory, upgrade_database
from service.storage.keys import get_or_create_tenant
from service.taxonomies import add_version, create_default_copy
from service.taxonomy_current import current_taxonomy, load_current
from service.tenant_models import ModelSources, TenantModels

ALLERGY = {
    "id": "product.safety",
    "name": {"zh": "过敏/食品安全", "en": "Allergies and food safety"},
    "description": {"zh": "过敏、食物中毒、饭菜里的异物", "en": "Allergies, food poisoning, foreign objects in food"},
    "seeds": {"zh": ["吃完全身起红疹"], "en": ["we all got food poisoning"]},
}  # fmt: skip


def with_allergy(key: str) -> str:
    doc = json.loads(json.dumps(taxonomy_to_dict(default_taxonomy())))  # plain lists
    doc["id"], doc["topics"] = key, [*doc["topics"], ALLERGY]
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


class Model:
    """A classifier that knows its version and taxonomy hash, as the real one does."""

    def __init__(self, version: str, taxonomy_hash: str) -> None:
        self.config = SimpleNamespace(version=version, taxonomy_hash=taxonomy_hash)
        self.model_id = f"verbatim-cem@{version}"

    def classify(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"id": item["id"], "model": self.model_id} for item in items]


class Deriver:
    """``derive`` for the sources: records its calls, can wait for a gate or fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.gate: threading.Event | None = None
        self.fail = False

    def __call__(self, base: Model, taxonomy: Any, version: str) -> Model:
        self.calls.append((version, taxonomy.leaf_ids))
        if self.gate is not None:
            assert self.gate.wait(10), "the test never opened the gate"
        if self.fail:
            raise ModelError("the base encoder is missing")
        return Model(version, taxonomy.content_hash())


def setup(database_url: str, tmp_path: Path, **kwargs: Any):
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    upgrade_database(database_url)
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    with factory.begin() as session:
        acme = get_or_create_tenant(session, "acme")[0].id
        globex = get_or_create_tenant(session, "globex")[0].id
    base = Model("0.1.0", default_taxonomy().content_hash())
    deriver = Deriver()
    sources = ModelSources(
        models_root=tmp_path / "models",
        default_dir=lambda: tmp_path / "default",
        base_dir=lambda: tmp_path / "base",
        load=lambda _: base,
        derive=deriver,
    )
    models = TenantModels(
        default=lambda: base, session_factory=factory, sources=sources, refresh_s=0.05, **kwargs
    )
    return engine, factory, acme, globex, base, deriver, models


def test_the_current_taxonomy_is_the_most_recently_changed_one(
    database_url: str, tmp_path: Path
) -> None:
    engine, factory, acme, globex, *_ = setup(database_url, tmp_path)
    try:
        with factory.begin() as session:
            assert current_taxonomy(session, acme) is None  # nothing of its own yet
            first = create_default_copy(session, acme, key="acme-cem").taxonomy
            second = create_default_copy(session, acme, key="acme-lab").taxonomy
        with factory.begin() as session:
            found = current_taxonomy(session, acme)
            assert found is not None and found.key == "acme-lab" and found.version == 1
            assert found.content_hash == default_taxonomy().content_hash()
            add_version(session, session.merge(first), with_allergy("acme-cem"))
        with factory() as session:
            found = current_taxonomy(session, acme)
            assert found is not None and (found.key, found.version) == ("acme-cem", 2)
            taxonomy = load_current(session, found)
            assert "product.safety" in taxonomy.leaf_ids
            assert (
                found.content_hash == taxonomy.content_hash() != default_taxonomy().content_hash()
            )
            assert current_taxonomy(session, globex) is None
            assert second.key == "acme-lab"
    finally:
        engine.dispose()


def test_an_edit_is_built_once_in_the_background_while_the_old_model_serves(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine, factory, acme, globex, base, deriver, models = setup(sqlite_url, tmp_path)
    try:
        with factory.begin() as session:
            row = create_default_copy(session, acme, key="acme-cem").taxonomy
        assert models.classifier(acme) is base and deriver.calls == []  # same nodes: no build
        with factory.begin() as session:
            add_version(session, session.merge(row), with_allergy("acme-cem"))
        deriver.gate = threading.Event()
        time.sleep(0.1)  # past refresh_s: the edit is seen
        with ThreadPoolExecutor(8) as pool:
            during = list(pool.map(lambda _: models.classifier(acme), range(40)))
        assert all(c is base for c in during)  # the old model until the new one is ready
        deriver.gate.set()
        deadline = time.monotonic() + 10
        while (chosen := models.classifier(acme)) is base:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        wanted = load_taxonomy(with_allergy("acme-cem")).content_hash()
        assert chosen.model_id == f"verbatim-cem@0.1.0+tax.{wanted[:8]}"
        assert len(deriver.calls) == 1 and "product.safety" in deriver.calls[0][1]
        assert models.classifier(globex) is base
        assert {m["model"] for m in models.loaded()} == {chosen.model_id}
    finally:
        engine.dispose()


def test_a_tenant_without_a_classifier_yet_waits_for_the_build_and_a_failure_falls_back(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine, factory, acme, _, base, deriver, models = setup(sqlite_url, tmp_path, retry_s=0.3)
    try:
        with factory.begin() as session:
            add_version(
                session,
                create_default_copy(session, acme, key="acme-cem").taxonomy,
                with_allergy("acme-cem"),
            )
        deriver.fail = True
        assert models.classifier(acme) is base  # the build failed: the model as it is
        assert models.classifier(acme) is base and len(deriver.calls) == 1  # not retried at once
        time.sleep(0.35)
        deriver.fail = False
        first = models.preload(acme, None, None)  # blocking: waits for the build
        assert first is not base and "+tax." in first.model_id and len(deriver.calls) == 2
        assert models.classifier(acme) is first
    finally:
        engine.dispose()


def test_derived_versions_stay_semver() -> None:
    assert derived_version("0.1.0", "2d74e5980abc") == "0.1.0+tax.2d74e598"
    assert derived_version("0.1.0+ft.2", "2d74e5980abc") == "0.1.0+ft.2.tax.2d74e598"
