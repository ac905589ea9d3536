"""Which taxonomy a label names, and checking its ids there (see :mod:`service.labels`).

A label names a taxonomy by key or ``tax_…`` id (default: the tenant's most recently changed one,
or the shipped ``cem-default``) and a version (default: the current one). Ids must be active
leaves and touchpoints of that version. An older version is rejected unless ``map_forward``, in
which case ids follow :func:`models.taxonomy.label_mapping` to the current version.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.taxonomy import NodeKind, Taxonomy, default_taxonomy, label_mapping
from nlp.errors import InvalidInputError, NotFoundError
from service.storage.models import TenantTaxonomy
from service.taxonomies import find_by_key, get_taxonomy, get_version, version_taxonomy

if TYPE_CHECKING:
    from service.labels import LabelInput

POLARITIES = ("negative", "neutral", "positive")


class TaxonomyBook:
    """The taxonomies one tenant's labels may name, each version loaded once per request."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self.session, self.tenant_id = session, tenant_id
        self._names: dict[str, tuple[str, int]] = {}
        self._rows: dict[str, TenantTaxonomy] = {}
        self._cache: dict[tuple[str, int], Taxonomy] = {}

    def default_key(self) -> str:
        """The tenant's most recently changed taxonomy, or the shipped default."""
        key = self.session.scalar(
            select(TenantTaxonomy.key)
            .where(TenantTaxonomy.tenant_id == self.tenant_id)
            .order_by(TenantTaxonomy.updated_at.desc(), TenantTaxonomy.id)
            .limit(1)
        )
        return key or default_taxonomy().id

    def current_version(self, name: str | None) -> tuple[str, int]:
        """``(key, current version)`` of the taxonomy named by key or ``tax_…`` id (default:
        :meth:`default_key`); :class:`NotFoundError` for a taxonomy the tenant does not have."""
        name = name or self.default_key()
        if "\x00" in name:
            raise NotFoundError(f"No taxonomy with id {name[:64]!r} for this tenant.")
        if name not in self._names:
            row = find_by_key(self.session, self.tenant_id, name)
            shipped = default_taxonomy()
            if row is None and name != shipped.id:
                row = get_taxonomy(self.session, self.tenant_id, name)
            if row is None:
                self._names[name] = (shipped.id, shipped.version)
            else:
                self._rows[row.key] = row
                self._names[name] = (row.key, row.current_version)
        return self._names[name]

    def get(self, key: str, version: int) -> Taxonomy:
        """Version ``version`` of taxonomy ``key`` (a key :meth:`current_version` returned)."""
        if (key, version) not in self._cache:
            if key not in self._rows:  # find the tenant's row; none: the shipped default
                self.current_version(key)
            row = self._rows.get(key)
            self._cache[(key, version)] = (
                default_taxonomy() if row is None
                else version_taxonomy(get_version(self.session, row, version))
            )  # fmt: skip
        return self._cache[(key, version)]


def check_polarity(value: str, what: str) -> str:
    """``value`` if it is a polarity, else :class:`InvalidInputError` naming ``what``."""
    if value not in POLARITIES:
        raise InvalidInputError(
            f"{what} must be negative, neutral or positive; got {value!r}."
        )
    return value


def _check_ids(item: LabelInput, taxonomy: Taxonomy) -> None:
    leaves, level1 = set(taxonomy.leaf_ids), set(taxonomy.level1_ids)
    where = f"taxonomy {taxonomy.id} version {taxonomy.version}"
    for topic, polarity in (item.topics or {}).items():
        check_polarity(polarity, f"the polarity of topic {topic!r}")
        if topic in leaves:
            continue
        if topic in level1:
            raise InvalidInputError(
                f"topic {topic!r} is a level-1 node of {where}; label one of its leaves: "
                f"{', '.join(taxonomy.leaves_under(topic))}."
            )
        if topic in taxonomy and topic in taxonomy.retired_ids(NodeKind.topic):
            to = taxonomy.resolve(topic)
            hint = f" (use {to!r})" if to else ""
            raise InvalidInputError(f"topic {topic!r} is retired in {where}{hint}.")
        raise InvalidInputError(
            f"unknown topic id {topic!r}: it is not a leaf of {where} (GET /v1/taxonomies/"
            f"{taxonomy.id} lists them, e.g. {', '.join(taxonomy.leaf_ids[:3])})."
        )
    active = set(taxonomy.touchpoint_ids)
    for tp in item.touchpoints or ():
        if tp not in active:
            raise InvalidInputError(
                f"unknown touchpoint id {tp!r}: the touchpoints of {where} are "
                f"{', '.join(taxonomy.touchpoint_ids)}."
            )


def _map_forward(item: LabelInput, old: Taxonomy, new: Taxonomy) -> LabelInput:
    topics = None
    if item.topics is not None:
        mapping, topics = label_mapping(old, new, NodeKind.topic), {}
        for topic, polarity in item.topics.items():
            target = mapping.get(topic)
            if target is None:
                raise InvalidInputError(
                    f"topic {topic!r} of version {old.version} has no counterpart in version "
                    f"{new.version} of {new.id} (retired without replacement); relabel it."
                )
            if topics.get(target, polarity) != polarity:
                raise InvalidInputError(
                    f"topics merge into {target!r} in version {new.version} with different "
                    f"polarities ({topics[target]} and {polarity}); relabel against version "
                    f"{new.version}."
                )
            topics[target] = polarity
    touchpoints = None
    if item.touchpoints is not None:
        mapping, touchpoints = label_mapping(old, new, NodeKind.touchpoint), []
        for tp in item.touchpoints:
            target = mapping.get(tp)
            if target is None:
                raise InvalidInputError(
                    f"touchpoint {tp!r} of version {old.version} has no counterpart in version "
                    f"{new.version} of {new.id}; relabel it."
                )
            if target not in touchpoints:
                touchpoints.append(target)
    return replace(item, topics=topics, touchpoints=touchpoints)


def check_taxonomy(
    item: LabelInput, book: TaxonomyBook, *, map_forward: bool = False
) -> tuple[LabelInput, str, int]:
    """The item's ids checked (and mapped forward when allowed); its taxonomy key and version."""
    key, current = book.current_version(item.taxonomy)
    version = item.taxonomy_version or current
    if version > current or version < 1:
        raise InvalidInputError(
            f"taxonomy {key} has no version {version}: its versions are 1 to {current}."
        )
    if version < current:
        old, new = book.get(key, version), book.get(key, current)
        _check_ids(item, old)
        if not map_forward:
            changed = {
                k: v
                for kind in (NodeKind.topic, NodeKind.touchpoint)
                for k, v in label_mapping(old, new, kind).items()
                if k != v
            }
            what = (
                "; changed since: " + ", ".join(f"{k} → {v or 'retired'}" for k, v in changed.items())
                if changed else ""
            )  # fmt: skip
            raise InvalidInputError(
                f"taxonomy version {version} of {key} is not current (current: {current}){what}. "
                f"Label against version {current}, or send map_forward=true to map the ids "
                "forward."
            )
        item = _map_forward(item, old, new)
    _check_ids(item, book.get(key, current))
    return item, key, current
