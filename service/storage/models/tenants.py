"""Tenants: the unit of isolation. Every other resource belongs to exactly one."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from service.storage.base import Base, TimestampMixin, new_id


def _tenant_id() -> str:
    return new_id("ten")


class Tenant(TimestampMixin, Base):
    """A customer of the service (a CEM platform, or one of its own customers)."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=_tenant_id)
    name: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)

    def __repr__(self) -> str:
        return f"Tenant(id={self.id!r}, name={self.name!r})"
