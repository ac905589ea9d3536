"""Analysts' labels: validate, store with history, read back, and export for training.

Rules (documented in the API):

- A label is about a stored record (``dataset_id`` + ``record_id``; its text and language come
  from the record) or about free text (``text``, optional ``lang`` and example ``id``; without an
  id the text itself identifies the example). It carries any of ``sentiment``, ``topics`` (leaf id
  → polarity; ``{}`` = "no topic applies") and ``touchpoints`` (``[]`` = "none applies"); a field
  left out is "not labelled", never "none".
- Ids are checked against the named taxonomy (``taxonomy``: its key or ``tax_…`` id; default: the
  tenant's most recently changed taxonomy, or the shipped ``cem-default`` when it has none) at the
  named version (default: its current one). Topics must be active leaves; touchpoints active.
- A label naming an **older** version of the taxonomy is rejected, saying what changed; with
  ``map_forward`` its ids are mapped to the current version with
  :func:`models.taxonomy.label_mapping` instead (merged nodes follow ``replaced_by``; an id retired
  without replacement, or two ids merging with different polarities, still rejects the label).
  Stored labels therefore always name the version they were checked against.
- A new label of the same record (or example) is a correction: it is stored as the next revision
  and the previous one is marked superseded. Nothing is deleted; the current label is the latest.

Functions flush but never commit: the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.taxonomy import NodeKind, label_mapping
from nlp.errors import ConflictError, InvalidInputError, NotFoundError
from service.cases import Actor
from service.label_taxonomy import TaxonomyBook, check_polarity, check_taxonomy
from service.storage.models import AnalystLabel, Dataset, DatasetRecord, LabelSource

if TYPE_CHECKING:
    from training.labelset import LabelExample

MAX_TEXT_CHARS = 10_000
MAX_ID_CHARS = 256


@dataclass(frozen=True, kw_only=True)
class LabelInput:
    """One label as submitted (an API item or an import row); validated by :func:`add_labels`."""

    dataset_id: str | None = None
    record_id: str | None = None
    id: str | None = None
    text: str | None = None
    lang: str | None = None
    sentiment: str | None = None
    topics: dict[str, str] | None = None
    touchpoints: Sequence[str] | None = None
    taxonomy: str | None = None
    taxonomy_version: int | None = None
    note: str | None = None
    line: int | None = None  # the file row (imports) ...
    index: int | None = None  # ... or the position in the request's items

    @property
    def ref(self) -> str | None:
        """How the caller named the subject, for error reports."""
        if self.record_id is not None:
            return f"{self.dataset_id}/{self.record_id}"
        return self.id


@dataclass(frozen=True, kw_only=True)
class Rejected:
    """A label that was not stored: where it was (line or index), what it named, and why."""

    reason: str
    line: int | None = None
    index: int | None = None
    ref: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"line": self.line} if self.line is not None else {"index": self.index}
        return {**out, "ref": self.ref, "reason": self.reason}


@dataclass(kw_only=True)
class LabelBatch:
    """The outcome of :func:`add_labels`: per stored label its input, its row and the id of the
    label it supersedes (None for a first label); and the rejected ones."""

    accepted: list[tuple[LabelInput, AnalystLabel, str | None]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


# ----- subjects ------------------------------------------------------------------------------
def _example_id(text: str, lang: str | None) -> str:
    digest = hashlib.sha256(f"{lang or ''}\x1f{text}".encode()).hexdigest()[:24]
    return f"text-{digest}"


def _subject(session: Session, tenant_id: str, item: LabelInput, datasets: dict[str, bool]):
    """``(subject, dataset_id, record_id, text, lang)`` of the item, checking what it names."""
    if item.record_id is not None or item.dataset_id is not None:
        if not item.dataset_id or not item.record_id:
            raise InvalidInputError(
                "a label of a stored record needs both dataset_id and record_id (or give text "
                "instead, for an example in no data set)."
            )
        if item.dataset_id not in datasets:
            datasets[item.dataset_id] = (
                session.scalar(
                    select(func.count()).where(
                        Dataset.id == item.dataset_id, Dataset.tenant_id == tenant_id
                    )
                )
                or 0
            ) > 0
        if not datasets[item.dataset_id]:
            raise InvalidInputError(f"unknown dataset_id {item.dataset_id!r} for this tenant.")
        record = session.execute(
            select(DatasetRecord.text, DatasetRecord.lang).where(
                DatasetRecord.dataset_id == item.dataset_id,
                DatasetRecord.record_id == item.record_id,
            )
        ).one_or_none()
        if record is None:
            raise InvalidInputError(
                f"unknown record_id {item.record_id!r}: data set {item.dataset_id} has no such "
                "record (GET /v1/datasets/{id}/records lists them)."
            )
        if item.text is not None and item.text.strip() != record.text.strip():
            raise InvalidInputError(
                f"the text differs from record {item.record_id!r} of {item.dataset_id}: check "
                "the record id (or leave text out for a stored record)."
            )
        subject = f"rec:{item.dataset_id}:{item.record_id}"
        return subject, item.dataset_id, item.record_id, record.text, record.lang
    text = (item.text or "").strip()
    if not text:
        raise InvalidInputError(
            "a label needs a record (dataset_id + record_id) or its own non-empty text."
        )
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInputError(f"text has {len(text)} characters; at most {MAX_TEXT_CHARS}.")
    lang = item.lang
    if lang is not None and lang not in ("zh", "en"):
        raise InvalidInputError(f"lang must be zh or en (or absent to detect it); got {lang!r}.")
    if lang is None:
        from nlp.lang import detect_language

        detected = detect_language(text).value
        lang = detected if detected in ("zh", "en") else None
    example = (item.id or "").strip() or _example_id(text, lang)
    if len(example) > MAX_ID_CHARS or "/" in example:
        raise InvalidInputError(
            f"an example id has at most {MAX_ID_CHARS} characters and no '/'; got {example[:40]!r}."
        )
    return f"ex:{example}", None, None, text, lang


def _current(session: Session, tenant_id: str, subject: str) -> AnalystLabel | None:
    return session.scalars(
        select(AnalystLabel).where(
            AnalystLabel.tenant_id == tenant_id,
            AnalystLabel.subject == subject,
            AnalystLabel.superseded_by.is_(None),
        )
    ).one_or_none()


def _validate(item: LabelInput) -> None:
    strings = [item.dataset_id, item.record_id, item.id, item.text, item.lang, item.sentiment,
               item.taxonomy, item.note, *(item.topics or {}), *(item.topics or {}).values(),
               *(item.touchpoints or ())]  # fmt: skip
    if any(not isinstance(v, str) or "\x00" in v for v in strings if v is not None):
        raise InvalidInputError("the label holds a NUL character or a non-text value; remove it.")
    if item.sentiment is None and item.topics is None and item.touchpoints is None:
        raise InvalidInputError(
            "the label says nothing: give sentiment, topics and/or touchpoints."
        )
    if item.sentiment is not None:
        check_polarity(item.sentiment, "sentiment")


def add_labels(
    session: Session,
    tenant_id: str,
    author: Actor,
    items: Iterable[LabelInput],
    *,
    source: LabelSource = LabelSource.api,
    map_forward: bool = False,
) -> LabelBatch:
    """Validate and store each item; bad ones are listed with their line/index and reason."""
    book, datasets, batch = TaxonomyBook(session, tenant_id), {}, LabelBatch()
    for item in items:
        try:
            _validate(item)
            checked, key, version = check_taxonomy(item, book, map_forward=map_forward)
            subject, dataset_id, record_id, text, lang = _subject(
                session, tenant_id, checked, datasets
            )
        except (InvalidInputError, NotFoundError) as exc:
            batch.rejected.append(
                Rejected(reason=exc.message, line=item.line, index=item.index, ref=item.ref)
            )
            continue
        previous = _current(session, tenant_id, subject)
        label = AnalystLabel(
            tenant_id=tenant_id,
            subject=subject,
            revision=(previous.revision + 1) if previous else 1,
            dataset_id=dataset_id,
            record_id=record_id,
            text=text,
            lang=lang,
            sentiment=checked.sentiment,
            topics=dict(checked.topics) if checked.topics is not None else None,
            touchpoints=list(checked.touchpoints) if checked.touchpoints is not None else None,
            taxonomy_key=key,
            taxonomy_version=version,
            author_id=author.id[:40],
            author_name=(author.name or author.id)[:100],
            source=source.value,
            note=checked.note,
        )
        session.add(label)
        try:
            session.flush()
        except IntegrityError:
            session.rollback()
            raise ConflictError(
                f"{item.ref or subject} was labelled by another request at the same time; retry."
            ) from None
        if previous is not None:
            previous.superseded_by = label.id
        batch.accepted.append((checked, label, previous.id if previous else None))
    session.flush()
    return batch


# ----- reading -------------------------------------------------------------------------------
def current_labels(
    session: Session,
    tenant_id: str,
    *,
    dataset_id: str | None = None,
    record_id: str | None = None,
    history: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[AnalystLabel], int]:
    """A page of the tenant's labels (current ones unless ``history``), newest first, and the total."""
    if "\x00" in (dataset_id or "") + (record_id or ""):
        return [], 0
    query = select(AnalystLabel).where(AnalystLabel.tenant_id == tenant_id)
    if not history:
        query = query.where(AnalystLabel.superseded_by.is_(None))
    if dataset_id is not None:
        query = query.where(AnalystLabel.dataset_id == dataset_id)
    if record_id is not None:
        query = query.where(AnalystLabel.record_id == record_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(AnalystLabel.created_at.desc(), AnalystLabel.revision.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total


def label_history(session: Session, tenant_id: str, label_id: str) -> list[AnalystLabel]:
    """Every revision of the subject of label ``label_id``, newest first; 404 for another tenant's."""
    row = None if "\x00" in label_id else session.scalars(
        select(AnalystLabel).where(AnalystLabel.tenant_id == tenant_id, AnalystLabel.id == label_id)
    ).one_or_none()
    if row is None:
        raise NotFoundError(
            f"No label with id {label_id[:60]!r} for this API key's tenant (GET /v1/labels lists them).",
            details={"id": label_id[:60]},
        )
    return list(
        session.scalars(
            select(AnalystLabel)
            .where(AnalystLabel.tenant_id == tenant_id, AnalystLabel.subject == row.subject)
            .order_by(AnalystLabel.revision.desc())
        ).all()
    )


def labelled_records(session: Session, tenant_id: str, dataset_ids: Sequence[str]) -> set[tuple[str, str]]:
    """``(dataset_id, record_id)`` of every record of these data sets with a label (any revision)."""
    if not dataset_ids:
        return set()
    rows = session.execute(
        select(AnalystLabel.dataset_id, AnalystLabel.record_id)
        .where(AnalystLabel.tenant_id == tenant_id, AnalystLabel.dataset_id.in_(list(dataset_ids)))
        .distinct()
    ).all()
    return {(d, r) for d, r in rows}


def label_counts(session: Session, tenant_id: str) -> dict[str, int]:
    """How many current labels name each topic and touchpoint id (coverage of the taxonomy)."""
    counts: dict[str, int] = {}
    rows = session.execute(
        select(AnalystLabel.topics, AnalystLabel.touchpoints).where(
            AnalystLabel.tenant_id == tenant_id, AnalystLabel.superseded_by.is_(None)
        )
    ).all()
    for topics, touchpoints in rows:
        for node in list(topics or {}) + list(touchpoints or []):
            counts[node] = counts.get(node, 0) + 1
    return counts


# ----- export for training -------------------------------------------------------------------
def _mapped(values: Iterable[str], mapping: dict[str, str | None] | None) -> list[str] | None:
    out: list[str] = []
    for value in values:
        target = value if mapping is None else mapping.get(value)
        if target is None:
            return None  # an id with no counterpart: the field counts as not labelled
        out.append(target)
    return out


def label_examples(
    session: Session,
    tenant_id: str,
    *,
    taxonomy_version: int | None = None,
    taxonomy: str | None = None,
) -> list[LabelExample]:
    """The tenant's current labels as training examples of one taxonomy at one version.

    ``taxonomy`` defaults as for new labels; ``taxonomy_version`` to its current version. Labels
    made with an earlier version are mapped forward to it (:func:`models.taxonomy.label_mapping`);
    a field with an id that has no counterpart there is left unlabelled (``None``) rather than
    guessed; labels of later versions, or of other taxonomies, are left out. Example ids are
    ``<dataset_id>/<record_id>`` for records and the example id for free text.
    """
    from training.labelset import LabelExample

    book = TaxonomyBook(session, tenant_id)
    key, current = book.current_version(taxonomy)
    target = taxonomy_version or current
    if not 1 <= target <= current:
        raise InvalidInputError(
            f"taxonomy {key} has no version {target}: its versions are 1 to {current}."
        )
    rows = session.scalars(
        select(AnalystLabel)
        .where(
            AnalystLabel.tenant_id == tenant_id,
            AnalystLabel.superseded_by.is_(None),
            AnalystLabel.taxonomy_key == key,
            AnalystLabel.taxonomy_version <= target,
        )
        .order_by(AnalystLabel.subject)
    ).all()
    mappings: dict[tuple[int, NodeKind], dict[str, str | None] | None] = {}

    def mapping(version: int, kind: NodeKind) -> dict[str, str | None] | None:
        if (version, kind) not in mappings:
            mappings[(version, kind)] = (
                None if version == target
                else label_mapping(book.get(key, version), book.get(key, target), kind)
            )  # fmt: skip
        return mappings[(version, kind)]

    examples = []
    for row in rows:
        topics = None
        if row.topics is not None:
            ids = _mapped(row.topics, mapping(row.taxonomy_version, NodeKind.topic))
            if ids is not None:
                topics = {}
                for new, polarity in zip(ids, row.topics.values(), strict=True):
                    topics[new] = polarity if topics.get(new, polarity) == polarity else None
                topics = None if None in topics.values() else topics
        touchpoints = None
        if row.touchpoints is not None:
            ids = _mapped(row.touchpoints, mapping(row.taxonomy_version, NodeKind.touchpoint))
            touchpoints = None if ids is None else tuple(dict.fromkeys(ids))
        if row.sentiment is None and topics is None and touchpoints is None:
            continue
        example_id = f"{row.dataset_id}/{row.record_id}" if row.record_id else row.subject[3:]
        examples.append(
            LabelExample(
                id=example_id,
                text=row.text,
                lang=row.lang if row.lang in ("zh", "en") else None,
                sentiment=row.sentiment,
                topics=topics,
                touchpoints=touchpoints,
            )
        )
    return examples
