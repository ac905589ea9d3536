"""API keys: a tenant's credentials, stored hashed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.storage.base import Base, JSONType, TenantOwnedMixin, TimestampMixin, new_id
from service.storage.models.tenants import Tenant


def _key_id() -> str:
    return new_id("key")


class ApiKey(TenantOwnedMixin, TimestampMixin, Base):
    """One API key. The secret itself is never stored: only its SHA-256 and first characters.

    ``prefix`` (the secret's first 8 characters, e.g. ``vb_Ab3dE``) is shown in listings so a person
    can tell keys apart, and indexes the look-up; ``hash`` is compared in constant time.
    """

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=_key_id)
    name: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    prefix: Mapped[str] = mapped_column(String(16), index=True, nullable=False)
    hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    scopes: Mapped[list[str]] = mapped_column(JSONType, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(nullable=True)

    tenant: Mapped[Tenant] = relationship(lazy="joined")

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def __repr__(self) -> str:
        return f"ApiKey(id={self.id!r}, tenant_id={self.tenant_id!r}, prefix={self.prefix!r})"
