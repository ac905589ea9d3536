"""Versioned YAML documents per tenant: one store for taxonomies and triage policies.

A document kind (a taxonomy, a triage policy) is a pair of tables, a row per document and an
immutable row per version of it, and the functions that read, write and diff its YAML. The rules
are the same for every kind:

- A document is found by its server id or its key (the YAML ``id``).
- Every change adds a version numbered 1, 2, 3…; stored versions are never changed. The server
  sets the YAML's ``version`` field to that number, whatever the upload said.
- Versions are stored as normalised YAML; an upload equal to the current version adds nothing.
- A new version must keep the document's key. Two saves from the same version: the first wins, the
  second is a :class:`ConflictError`, never a duplicate version (the table pair's primary key and
  a conditional update see to it).

Methods flush but never commit: the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.taxonomy import Problem
from nlp.errors import ConflictError, InvalidInputError, NotFoundError
from service.storage.base import utcnow


class Document(Protocol):
    """What the store needs of a parsed document (``Taxonomy``, ``TriagePolicy``)."""

    id: str
    version: int

    def content_hash(self) -> str: ...


D = TypeVar("D", bound=Document)


@dataclass(frozen=True, kw_only=True)
class Saved:
    """The outcome of a create or an update: the document's row, its (new or current) version row,
    the warnings of the upload, and whether a version was added."""

    row: Any
    version: Any
    warnings: tuple[Problem, ...] = ()
    created: bool = True


@dataclass(frozen=True, kw_only=True)
class Messages:
    """What the errors of one kind say; ``str.format`` templates over the named fields."""

    exists: str
    """Create when the tenant has one already: ``id``, ``key``, ``current_version``."""
    created_race: str
    """Create when another request created it at the same moment: ``key``."""
    saved_race: str
    """Update when another request saved that version at the same moment: ``key``, ``version``."""
    stale: str | None
    """Update from a version that is no longer current: ``id``, ``base`` (None: as ``saved_race``)."""
    not_found: str
    """No such document for this tenant: ``ref`` (the id or key asked for, cut to 80 characters)."""
    no_version: str
    """No such version: ``key``, ``version``, ``current_version``."""


@dataclass(frozen=True, kw_only=True)
class DocumentStore(Generic[D]):
    """The versioned store of one document kind, over its table pair.

    ``parse(text, version=, key=)`` validates an upload (raising with every problem) and returns the
    document and its warnings; ``load`` builds a document from a plain dict (``to_dict``'s shape),
    ``dump`` writes its normalised YAML, ``read`` gives the document of a stored version row.
    ``names`` are the row's columns taken from the document (e.g. ``name_zh``/``name_en``).
    ``one_per_tenant``: a tenant has at most one document of the kind (else one per key).
    ``context(session, tenant_id)`` gives ``parse`` more keyword arguments for the tenant whose
    upload it checks (e.g. the taxonomy a triage policy's topics must exist in)."""

    table: Any
    version_table: Any
    parent: str
    """The version table's column naming the document row (``taxonomy_id``)."""
    parse: Callable[..., tuple[D, list[Problem]]]
    load: Callable[[dict[str, Any]], D]
    to_dict: Callable[[D], dict[str, Any]]
    dump: Callable[[D], str]
    read: Callable[[Any], D]
    diff: Callable[[D, D], dict[str, Any]]
    names: Callable[[D], dict[str, str]]
    default: Callable[[], D]
    default_message: str
    one_per_tenant: bool
    messages: Messages
    saved: type[Saved] = Saved
    context: Callable[[Session, str], dict[str, Any]] | None = None

    def _parse(
        self, session: Session, tenant_id: str, text: str, **kw: Any
    ) -> tuple[D, list[Problem]]:
        extra = self.context(session, tenant_id) if self.context is not None else {}
        return self.parse(text, **kw, **extra)

    # ----- create and change ----------------------------------------------------------------------
    def renumbered(self, doc: D, version: int, key: str | None = None) -> D:
        """``doc`` with ``version`` (and the key ``key``), validated again."""
        data = self.to_dict(doc)
        data["version"] = version
        if key is not None:
            data["id"] = key
        return self.load(data)

    def create(
        self,
        session: Session,
        tenant_id: str,
        source: str | D | None,
        *,
        key: str | None = None,
        created_by: str | None = None,
        message: str | None = None,
    ) -> Saved:
        """Version 1 of a new document from YAML text, a document object, or (``None``) a copy of
        the default, under ``key`` if given. :class:`ConflictError` when the tenant has it already."""
        if isinstance(source, str):
            doc, warnings = self._parse(session, tenant_id, source, version=1)
            if key is not None:
                doc = self.renumbered(doc, 1, key)
        else:
            doc = self.renumbered(self.default() if source is None else source, 1, key)
            warnings = []
        if source is None:
            message = message or self.default_message
        existing = self.find(session, tenant_id, None if self.one_per_tenant else doc.id)
        if existing is not None:
            raise ConflictError(
                self.messages.exists.format(
                    id=existing.id, key=existing.key, current_version=existing.current_version
                ),
                details={
                    "id": existing.id,
                    "key": existing.key,
                    "current_version": existing.current_version,
                },
            )
        row = self.table(tenant_id=tenant_id, key=doc.id, current_version=1, **self.names(doc))
        session.add(row)
        _flush(session, self.messages.created_race.format(key=doc.id))
        version = self._version_row(row, doc, created_by=created_by, message=message)
        session.add(version)
        session.flush()
        return self.saved(row=row, version=version, warnings=tuple(warnings))

    def add_version(
        self,
        session: Session,
        row: Any,
        text: str,
        *,
        base_version: int | None = None,
        created_by: str | None = None,
        message: str | None = None,
    ) -> Saved:
        """Version ``current + 1`` of ``row`` from a full YAML ``text``; nothing is added when the
        upload equals the current version (``Saved.created`` false). ``base_version`` is the
        version the change was made from (default: the current one as read now);
        :class:`ConflictError` when another save got there first."""
        expected = row.current_version
        if base_version is not None and base_version != expected:
            raise self._stale(row, base_version)
        current = self.get_version(session, row, expected)
        doc, warnings = self._parse(session, row.tenant_id, text, version=expected + 1, key=row.key)
        if self.dump(self.renumbered(doc, expected)) == current.yaml:
            return self.saved(row=row, version=current, warnings=tuple(warnings), created=False)
        done = session.execute(
            update(self.table)
            .where(self.table.id == row.id, self.table.current_version == expected)
            .values(current_version=doc.version, updated_at=utcnow(), **self.names(doc))
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            raise self._stale(row, expected)
        version = self._version_row(row, doc, created_by=created_by, message=message)
        session.add(version)
        _flush(session, self.messages.saved_race.format(key=row.key, version=doc.version))
        session.refresh(row)
        return self.saved(row=row, version=version, warnings=tuple(warnings))

    def _stale(self, row: Any, base: int) -> ConflictError:
        if self.messages.stale is None:
            return ConflictError(self.messages.saved_race.format(key=row.key, version=base + 1))
        return ConflictError(
            self.messages.stale.format(id=row.id, base=base),
            details={"id": row.id, "base_version": base},
        )

    def _version_row(self, row: Any, doc: D, *, created_by: str | None, message: str | None) -> Any:
        return self.version_table(
            **{self.parent: row.id},
            version=doc.version,
            yaml=self.dump(doc),
            content_hash=doc.content_hash(),
            created_by=created_by,
            message=message,
        )

    # ----- reading --------------------------------------------------------------------------------
    def find(self, session: Session, tenant_id: str, key: str | None = None) -> Any | None:
        """The tenant's document with ``key`` (any key when the kind is one per tenant), or None."""
        query = select(self.table).where(self.table.tenant_id == tenant_id)
        if key is not None:
            query = query.where(self.table.key == key)
        return session.scalars(query).one_or_none()

    def get(
        self, session: Session, tenant_id: str, id_or_key: str, *, for_update: bool = False
    ) -> Any:
        """The tenant's document by server id or key; :class:`NotFoundError` for another tenant's.
        ``for_update`` locks the row until the transaction ends (PostgreSQL)."""
        query = select(self.table).where(
            self.table.tenant_id == tenant_id,
            (self.table.id == id_or_key) | (self.table.key == id_or_key),
        )
        if for_update:
            query = query.with_for_update()
        rows = session.scalars(query).all()
        row = next((r for r in rows if r.id == id_or_key), rows[0] if rows else None)
        if row is None:
            raise NotFoundError(
                self.messages.not_found.format(ref=id_or_key[:80]), details={"id": id_or_key[:80]}
            )
        return row

    def page(
        self, session: Session, tenant_id: str, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[Any], int]:
        """A page of the tenant's documents, most recently changed first, and the total."""
        query = select(self.table).where(self.table.tenant_id == tenant_id)
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(
            query.order_by(self.table.updated_at.desc(), self.table.id).limit(limit).offset(offset)
        ).all()
        return list(rows), total

    def list_versions(self, session: Session, row: Any) -> list[Any]:
        """Every version of ``row``, newest first."""
        parent = getattr(self.version_table, self.parent)
        return list(
            session.scalars(
                select(self.version_table)
                .where(parent == row.id)
                .order_by(self.version_table.version.desc())
            ).all()
        )

    def get_version(self, session: Session, row: Any, version: int) -> Any:
        """Version ``version`` of ``row``; :class:`NotFoundError` naming the versions there are."""
        found = session.get(self.version_table, (row.id, version))
        if found is None:
            raise NotFoundError(
                self.messages.no_version.format(
                    key=row.key, version=version, current_version=row.current_version
                ),
                details={"id": row.id, "version": version, "current_version": row.current_version},
            )
        return found

    def diff_versions(self, session: Session, row: Any, old: int, new: int) -> dict[str, Any]:
        """What changed from version ``old`` to ``new`` of ``row``, as the kind's ``diff`` says."""
        if old < 1 or new < 1:
            raise InvalidInputError(f"Versions start at 1; got from={old}, to={new}.")
        before = self.read(self.get_version(session, row, old))
        after = self.read(self.get_version(session, row, new))
        return self.diff(before, after)


def _flush(session: Session, what: str) -> None:
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise ConflictError(what) from None
