"""Columns shared by the tables of versioned YAML documents (taxonomies, triage policies).

Each kind keeps its own pair of tables (fixed by its migration): a row per document, with the
document's key and the number of its newest version, and an immutable row per version. The columns
the kinds share are declared once here; ``sort_order`` keeps every table's columns in the order
of its migration (the document's ``id`` and ``key`` first, the kind's own columns after them).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.storage.base import TenantOwnedMixin, TimestampMixin, utcnow

FIRST = -1
"""The ``sort_order`` of a document table's leading columns (its ``id``, then ``key``)."""


class DocumentMixin(TenantOwnedMixin, TimestampMixin):
    """A tenant's document: its key (the YAML ``id``) and the number of its newest version. The
    table adds its ``id`` (with ``sort_order=FIRST``) and the names it shows."""

    key: Mapped[str] = mapped_column(String(64), nullable=False, sort_order=FIRST)
    current_version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    updated_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(id={self.id!r}, tenant_id={self.tenant_id!r}, "
            f"key={self.key!r}, current_version={self.current_version})"
        )


class DocumentVersionMixin(TimestampMixin):
    """One immutable version of a document: its number (part of the primary key, after the
    document's id), its normalised YAML, the hash of its content, who saved it and why."""

    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    yaml: Mapped[str] = mapped_column(Text, nullable=False)
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
