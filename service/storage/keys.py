"""Tenants and API keys: create, list, revoke, authenticate.

Keys are ``vb_`` followed by 43 URL-safe characters from :func:`secrets.token_urlsafe` (256 random
bits). Only a SHA-256 of the key is stored: a key has too much entropy to be guessed or
brute-forced from its hash, so the slow password hashes (scrypt, bcrypt) that protect
low-entropy passwords add only latency here. The first 8 characters (the ``prefix``) are kept in
clear, to show in listings and to find the candidate row, whose hash is then compared in constant
time.

Scopes: ``classify``, ``analyze``, ``train``, ``triage`` and ``admin``; ``admin`` implies all others.

These functions flush but never commit: the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from nlp.errors import ConflictError, InvalidInputError, NotFoundError
from service.storage.base import utcnow
from service.storage.models import ApiKey, Tenant

KEY_PREFIX = "vb_"
PREFIX_CHARS = 8
_MAX_KEY_CHARS = 200
_LAST_USED_RESOLUTION = timedelta(minutes=1)  # writes at most once a minute per key


class Scope(StrEnum):
    """What a key may do. ``admin`` implies every other scope."""

    classify = "classify"
    analyze = "analyze"
    train = "train"
    triage = "triage"
    admin = "admin"


@dataclass(frozen=True, kw_only=True)
class Principal:
    """Who is calling: the tenant and key behind a request, and what the key may do."""

    tenant_id: str
    tenant_name: str
    key_id: str
    scopes: frozenset[Scope]

    def has(self, scope: Scope | str) -> bool:
        """Whether the key carries ``scope`` (``admin`` carries every scope)."""
        return Scope.admin in self.scopes or Scope(scope) in self.scopes


def parse_scopes(value: str | Iterable[str]) -> list[Scope]:
    """``"classify,analyze"`` (or a list) to scopes, in canonical order; unknown names are an error."""
    names = value.split(",") if isinstance(value, str) else list(value)
    names = [n.strip().lower() for n in names if n and n.strip()]
    valid = [s.value for s in Scope]
    unknown = sorted({n for n in names if n not in valid})
    if unknown:
        raise InvalidInputError(
            f"Unknown scope(s): {', '.join(unknown)}. Valid scopes: {', '.join(valid)} "
            "(admin implies all the others); separate several with commas.",
            details={"unknown": unknown, "valid": valid},
        )
    if not names:
        raise InvalidInputError(
            f"No scope given. Pass one or more of: {', '.join(valid)}, separated by commas."
        )
    return [s for s in Scope if s.value in set(names)]


def hash_secret(secret: str) -> str:
    """The stored form of a key: its SHA-256, hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def validate_tenant_name(name: str) -> str:
    """A tenant name is 1 to 100 printable characters (surrounding spaces are trimmed)."""
    cleaned = (name or "").strip()
    if not cleaned or len(cleaned) > 100 or not cleaned.isprintable():
        raise InvalidInputError(
            f"Invalid tenant name {name!r}: expected 1 to 100 printable characters, e.g. 'acme-retail'."
        )
    return cleaned


def find_tenant(session: Session, name: str) -> Tenant | None:
    """The tenant called ``name``, or ``None``."""
    return session.scalars(select(Tenant).where(Tenant.name == name.strip())).one_or_none()


def get_tenant(session: Session, name: str) -> Tenant:
    """The tenant called ``name``; :class:`NotFoundError` if there is none."""
    tenant = find_tenant(session, name)
    if tenant is None:
        raise NotFoundError(
            f"No tenant named {name!r}. Create one with a key: verbatim keys create."
        )
    return tenant


def create_tenant(session: Session, name: str) -> Tenant:
    """A new tenant; :class:`ConflictError` if the name is taken."""
    name = validate_tenant_name(name)
    if find_tenant(session, name) is not None:
        raise ConflictError(f"A tenant named {name!r} already exists.")
    tenant = Tenant(name=name)
    session.add(tenant)
    session.flush()
    return tenant


def get_or_create_tenant(session: Session, name: str) -> tuple[Tenant, bool]:
    """The tenant called ``name``, created if missing; the flag says whether it was created."""
    name = validate_tenant_name(name)
    tenant = find_tenant(session, name)
    if tenant is not None:
        return tenant, False
    return create_tenant(session, name), True


def create_key(
    session: Session, tenant: Tenant, scopes: str | Iterable[str], name: str = ""
) -> tuple[ApiKey, str]:
    """A new key for ``tenant``: the stored row and the secret, which is shown this once only."""
    parsed = parse_scopes(scopes)
    if len(name) > 100:
        raise InvalidInputError(f"Key name too long ({len(name)} characters); at most 100.")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        tenant=tenant,
        tenant_id=tenant.id,
        name=name,
        prefix=secret[:PREFIX_CHARS],
        hash=hash_secret(secret),
        scopes=[s.value for s in parsed],
    )
    session.add(key)
    session.flush()
    return key, secret


def list_keys(session: Session, tenant: str | None = None) -> list[ApiKey]:
    """Every key (revoked ones too), oldest first; ``tenant`` (a name) narrows to one tenant."""
    query = select(ApiKey).join(ApiKey.tenant).order_by(ApiKey.created_at, ApiKey.id)
    if tenant is not None:
        query = query.where(Tenant.name == get_tenant(session, tenant).name)
    return list(session.scalars(query))


def revoke_key(session: Session, key_id: str) -> tuple[ApiKey, bool]:
    """Revoke a key now; the flag is ``False`` when it was already revoked.

    :class:`NotFoundError` if no key has that id.
    """
    key = session.get(ApiKey, key_id.strip())
    if key is None:
        raise NotFoundError(f"No API key with id {key_id!r}. `verbatim keys list` shows the ids.")
    if key.revoked_at is not None:
        return key, False
    key.revoked_at = utcnow()
    session.flush()
    return key, True


def authenticate(session: Session, secret: str, *, now: datetime | None = None) -> Principal | None:
    """The principal behind ``secret``, or ``None`` for an unknown, malformed or revoked key.

    Records ``last_used_at`` (at most once a minute per key); the caller commits.
    """
    if not secret.startswith(KEY_PREFIX) or len(secret) > _MAX_KEY_CHARS:
        return None
    digest = hash_secret(secret)
    candidates = session.scalars(select(ApiKey).where(ApiKey.prefix == secret[:PREFIX_CHARS]))
    match = None
    for key in candidates:
        if hmac.compare_digest(key.hash, digest):
            match = key
    if match is None or match.revoked_at is not None:
        return None
    now = now or utcnow()
    if match.last_used_at is None or now - match.last_used_at >= _LAST_USED_RESOLUTION:
        match.last_used_at = now
        session.flush()
    valid = {s.value for s in Scope}
    return Principal(
        tenant_id=match.tenant_id,
        tenant_name=match.tenant.name,
        key_id=match.id,
        scopes=frozenset(Scope(s) for s in match.scopes if s in valid),
    )
