"""Storage on SQLite and on a real PostgreSQL server: migrations, tenants, keys, tenant scoping."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nlp.errors import ConflictError, InvalidInputError, NotFoundError, StorageError
from service.storage import Base, make_engine, make_session_factory, upgrade_database
from service.storage.keys import (
    Principal,
    Scope,
    authenticate,
    create_key,
    create_tenant,
    get_or_create_tenant,
    list_keys,
    parse_scopes,
    revoke_key,
)
from service.storage.migrate import current_revision, head_revision
from service.storage.models import ApiKey, Tenant
from service.storage.tenancy import get_owned


@pytest.fixture
def session(database_url: str):
    upgrade_database(database_url)
    engine = make_engine(database_url)
    with make_session_factory(engine)() as s:
        yield s
    engine.dispose()


def test_migrations_build_the_schema_from_empty_and_match_the_models(database_url: str) -> None:
    assert current_revision(database_url) is None
    assert upgrade_database(database_url) == head_revision()
    assert upgrade_database(database_url) == head_revision()  # a second run changes nothing
    engine = make_engine(database_url)
    try:
        assert {"tenants", "api_keys", "alembic_version"} <= set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            drift = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert drift == [], f"models and migrations differ; add a migration: {drift}"
    finally:
        engine.dispose()


def test_sqlite_default_uses_wal_foreign_keys_and_creates_its_folder(sqlite_url: str) -> None:
    upgrade_database(sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
    finally:
        engine.dispose()


def test_tenants_are_unique_by_name(session: Session) -> None:
    acme = create_tenant(session, "  acme-零售 ")
    assert acme.name == "acme-零售" and acme.id.startswith("ten_")
    with pytest.raises(ConflictError, match="already exists"):
        create_tenant(session, "acme-零售")
    again, created = get_or_create_tenant(session, "acme-零售")
    assert (again.id, created) == (acme.id, False)
    other, created = get_or_create_tenant(session, "globex")
    assert created and other.id != acme.id
    with pytest.raises(InvalidInputError, match="tenant name"):
        create_tenant(session, "   ")


def test_keys_are_stored_hashed_and_listed_without_secrets(session: Session) -> None:
    acme, _ = get_or_create_tenant(session, "acme")
    globex, _ = get_or_create_tenant(session, "globex")
    key, secret = create_key(session, acme, "analyze, classify", name="crm-prod")
    create_key(session, globex, ["triage"])
    session.commit()

    assert secret.startswith("vb_") and len(secret) >= 40
    assert key.prefix == secret[:8]
    assert key.hash == hashlib.sha256(secret.encode()).hexdigest() != secret
    assert key.scopes == ["classify", "analyze"]  # canonical order
    # the secret is nowhere in the table
    row = session.execute(select(ApiKey.__table__).where(ApiKey.id == key.id)).one()
    assert all(secret not in str(value) for value in row)

    assert [k.tenant.name for k in list_keys(session)] == ["acme", "globex"]
    only = list_keys(session, "acme")
    assert [(k.id, k.name) for k in only] == [(key.id, "crm-prod")]
    with pytest.raises(NotFoundError, match="No tenant named 'initech'"):
        list_keys(session, "initech")


def test_keys_authenticate_until_revoked(session: Session) -> None:
    acme, _ = get_or_create_tenant(session, "acme")
    key, secret = create_key(session, acme, "classify")
    session.commit()

    principal = authenticate(session, secret)
    session.commit()
    assert principal == Principal(
        tenant_id=acme.id, tenant_name="acme", key_id=key.id, scopes=frozenset({Scope.classify})
    )
    session.refresh(key)
    assert key.last_used_at is not None and key.last_used_at.tzinfo is not None
    assert abs(key.last_used_at - datetime.now(UTC)) < timedelta(minutes=1)

    tampered = secret[:-1] + ("A" if secret[-1] != "A" else "B")  # same prefix, wrong key
    assert authenticate(session, tampered) is None
    assert authenticate(session, "vb_" + "x" * 43) is None
    assert authenticate(session, "") is None

    revoked, changed = revoke_key(session, key.id)
    session.commit()
    assert changed and revoked.revoked_at is not None
    assert authenticate(session, secret) is None
    assert revoke_key(session, key.id)[1] is False  # revoking twice is harmless
    with pytest.raises(NotFoundError, match="keys list"):
        revoke_key(session, "key_doesnotexist")


def test_scopes_admin_implies_all_and_unknown_ones_are_refused() -> None:
    admin = Principal(tenant_id="t", tenant_name="t", key_id="k", scopes=frozenset({Scope.admin}))
    assert all(admin.has(s) for s in Scope)
    analyst = Principal(
        tenant_id="t", tenant_name="t", key_id="k", scopes=frozenset({Scope.analyze})
    )
    assert analyst.has("analyze") and not analyst.has(Scope.classify)
    assert parse_scopes("Triage,classify,triage") == [Scope.classify, Scope.triage]
    with pytest.raises(InvalidInputError, match="Unknown scope.*clasify.*Valid scopes: classify"):
        parse_scopes("clasify,analyze")
    with pytest.raises(InvalidInputError, match="No scope"):
        parse_scopes(" , ")


def test_another_tenants_object_looks_exactly_like_a_missing_one(session: Session) -> None:
    acme, _ = get_or_create_tenant(session, "acme")
    globex, _ = get_or_create_tenant(session, "globex")
    acme_key, _ = create_key(session, acme, "classify")
    session.commit()
    as_acme = Principal(tenant_id=acme.id, tenant_name="acme", key_id="k", scopes=frozenset())
    as_globex = Principal(tenant_id=globex.id, tenant_name="globex", key_id="k", scopes=frozenset())

    assert get_owned(session, ApiKey, acme_key.id, as_acme).id == acme_key.id
    with pytest.raises(NotFoundError) as foreign:
        get_owned(session, ApiKey, acme_key.id, as_globex, what="key")
    with pytest.raises(NotFoundError) as missing:
        get_owned(session, ApiKey, "key_nosuchkey", as_globex, what="key")
    assert foreign.value.message.replace(acme_key.id, "ID") == missing.value.message.replace(
        "key_nosuchkey", "ID"
    )


def test_foreign_keys_are_enforced_and_tenant_deletion_cascades(session: Session) -> None:
    acme, _ = get_or_create_tenant(session, "acme")
    create_key(session, acme, "classify")
    session.commit()
    session.add(ApiKey(tenant_id="ten_missing", prefix="vb_x", hash="0" * 64, scopes=["classify"]))
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()

    session.execute(Tenant.__table__.delete().where(Tenant.id == acme.id))
    session.commit()
    assert session.scalars(select(ApiKey)).all() == []


def test_timestamps_round_trip_in_utc(session: Session) -> None:
    acme, _ = get_or_create_tenant(session, "acme")
    key, _ = create_key(session, acme, "classify")
    shanghai = datetime(2024, 3, 1, 17, 30, tzinfo=timezone(timedelta(hours=8)))
    key.revoked_at = shanghai
    session.commit()
    session.expire_all()
    stored = session.get(ApiKey, key.id)
    assert stored is not None and stored.revoked_at == shanghai
    assert stored.revoked_at.utcoffset() == timedelta(0) and stored.revoked_at.hour == 9


def test_unreachable_database_is_a_clear_error_without_the_password() -> None:
    with pytest.raises(StorageError) as err:
        upgrade_database("postgresql://verbatim:hunter2@127.0.0.1:1/verbatim")
    assert "127.0.0.1:1" in err.value.message and "hunter2" not in err.value.message
    with pytest.raises(StorageError, match="not a database URL"):
        make_engine("not a url")


def test_a_database_from_a_newer_version_is_refused(database_url: str) -> None:
    upgrade_database(database_url)
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StorageError, match="newer version of Verbatim"):
        upgrade_database(database_url)
