"""Analysts' labels: the sentiment, topics and touchpoints a person gave one verbatim.

A label refers to a stored record (``dataset_id`` + ``record_id``) or stands alone with its own
text (an example that is in no data set); the text is always kept with it so training can use it
whatever happens to the data set. Labels of the same *subject* (one record, or one free-text
example id) form a history numbered by ``revision``: a correction adds revision ``n + 1`` and sets
``superseded_by`` on the one it replaces; nothing is ever deleted. The current label of a subject is
the one with ``superseded_by`` NULL (the highest revision). ``(tenant_id, subject, revision)`` is
unique, so two concurrent corrections of one subject cannot both win.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.storage.base import Base, JSONType, TenantOwnedMixin, TimestampMixin, new_id


def _label_id() -> str:
    return new_id("lbl")


class LabelSource(StrEnum):
    """How a label arrived: the JSON API, a CSV/XLSX import, or the command line."""

    api = "api"
    import_ = "import"
    cli = "cli"


class AnalystLabel(TenantOwnedMixin, TimestampMixin, Base):
    """One revision of a person's label for one verbatim, with who, when and which taxonomy."""

    __tablename__ = "analyst_labels"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "subject", "revision", name="uq_analyst_labels_tenant_id_subject_revision"
        ),
        Index(
            "ix_analyst_labels_tenant_id_dataset_id_record_id",
            "tenant_id",
            "dataset_id",
            "record_id",
        ),
        Index("ix_analyst_labels_tenant_id_superseded_by", "tenant_id", "superseded_by"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=_label_id)
    #: ``rec:<dataset_id>:<record_id>`` or ``ex:<example id>``: what the label is about.
    subject: Mapped[str] = mapped_column(String(320), nullable=False)
    revision: Mapped[int] = mapped_column(Integer, nullable=False)
    dataset_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    record_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    lang: Mapped[str | None] = mapped_column(String(8), nullable=True)
    #: ``negative``/``neutral``/``positive``, or None when the analyst did not label sentiment.
    sentiment: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: leaf topic id -> polarity (``{}``: no topic applies; None: topics not labelled).
    topics: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    #: touchpoint ids (``[]``: none applies; None: not labelled).
    touchpoints: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    taxonomy_key: Mapped[str] = mapped_column(String(64), nullable=False)
    taxonomy_version: Mapped[int] = mapped_column(Integer, nullable=False)
    author_id: Mapped[str] = mapped_column(String(40), nullable=False)
    author_name: Mapped[str] = mapped_column(String(100), nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False, default=LabelSource.api.value)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    superseded_by: Mapped[str | None] = mapped_column(String(40), nullable=True)

    def __repr__(self) -> str:
        return (
            f"AnalystLabel(id={self.id!r}, tenant_id={self.tenant_id!r}, subject={self.subject!r}, "
            f"revision={self.revision})"
        )
