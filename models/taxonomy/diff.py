"""What changed between two versions of a taxonomy, and where old labels go.

Parents are derived from ids, so a node cannot change parent in place: moving
``delivery.courier`` under ``service`` means retiring it with ``replaced_by: service.courier``
and adding the new node. The diff reports that as *moved*; a retired node whose replacement
already existed in the old version (or that shares a new replacement with other nodes) is
*merged*.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from models.taxonomy.schema import LANGS, Node, NodeKind, Taxonomy


class ChangeKind(StrEnum):
    added = "added"
    removed = "removed"
    retired = "retired"
    restored = "restored"
    merged = "merged"
    moved = "moved"
    renamed = "renamed"
    description_changed = "description_changed"
    seeds_changed = "seeds_changed"
    attributes_changed = "attributes_changed"


_SIGN = {
    ChangeKind.added: "+",
    ChangeKind.removed: "-",
    ChangeKind.retired: "-",
    ChangeKind.restored: "+",
    ChangeKind.merged: ">",
    ChangeKind.moved: ">",
}


@dataclass(frozen=True, kw_only=True)
class NodeChange:
    """One change to one node. ``target`` is the replacement id of a merge or a move."""

    change: ChangeKind
    kind: NodeKind
    id: str
    target: str | None = None
    detail: str = ""

    def __str__(self) -> str:
        verb = {ChangeKind.merged: "merged into", ChangeKind.moved: "moved to"}.get(
            self.change, self.change.value.replace("_", " ")
        )
        head = f"{_SIGN.get(self.change, '~')} {self.kind.value} {self.id} {verb}"
        if self.target:
            head += f" {self.target}"
        return f"{head}: {self.detail}" if self.detail else head


@dataclass(frozen=True, kw_only=True)
class TaxonomyDiff:
    """Changes from ``old`` to ``new``, touchpoints first, then topics, in file order."""

    old_id: str
    old_version: int
    new_id: str
    new_version: int
    changes: tuple[NodeChange, ...]

    def of(
        self, change: ChangeKind | str, kind: NodeKind | str | None = None
    ) -> tuple[NodeChange, ...]:
        change = ChangeKind(change)
        kind = NodeKind(kind) if kind is not None else None
        return tuple(
            c for c in self.changes if c.change is change and (kind is None or c.kind is kind)
        )

    @property
    def added(self) -> tuple[NodeChange, ...]:
        return self.of(ChangeKind.added)

    @property
    def removed(self) -> tuple[NodeChange, ...]:
        return self.of(ChangeKind.removed)

    @property
    def retired(self) -> tuple[NodeChange, ...]:
        return self.of(ChangeKind.retired)

    @property
    def renamed(self) -> tuple[NodeChange, ...]:
        return self.of(ChangeKind.renamed)

    @property
    def moved(self) -> tuple[NodeChange, ...]:
        return self.of(ChangeKind.moved)

    @property
    def merged(self) -> tuple[NodeChange, ...]:
        return self.of(ChangeKind.merged)

    @property
    def is_empty(self) -> bool:
        return not self.changes

    def summary(self) -> list[str]:
        """Human-readable lines: a header, then one line per change."""
        counts = Counter(c.change.value.replace("_", " ") for c in self.changes)
        tally = ", ".join(f"{n} {what}" for what, n in counts.items()) or "no changes"
        head = f"{self.old_id} v{self.old_version} -> {self.new_id} v{self.new_version}: {tally}"
        return [head, *(str(c) for c in self.changes)]

    def as_dict(self) -> dict[str, Any]:
        return {
            "old": {"id": self.old_id, "version": self.old_version},
            "new": {"id": self.new_id, "version": self.new_version},
            "changes": [
                {
                    "change": c.change.value,
                    "kind": c.kind.value,
                    "id": c.id,
                    "target": c.target,
                    "detail": c.detail,
                }
                for c in self.changes
            ],
        }


def _nodes(taxonomy: Taxonomy, kind: NodeKind) -> dict[str, Node]:
    nodes = taxonomy.topics if kind is NodeKind.topic else taxonomy.touchpoints
    return {n.id: n for n in nodes}


def _names(node: Node) -> str:
    return f"{node.name.zh} / {node.name.en}"


def _text_changes(old: Node, new: Node, field: str) -> str:
    parts = []
    for lang in LANGS:
        before, after = getattr(old, field).get(lang), getattr(new, field).get(lang)
        if before != after:
            parts.append(f"{lang} {before!r} -> {after!r}" if field == "name" else lang)
    return "; ".join(parts)


def _seed_changes(old: Node, new: Node) -> str:
    parts = []
    for lang in LANGS:
        before, after = set(old.seeds.get(lang)), set(new.seeds.get(lang))
        if before != after:
            parts.append(f"{lang} +{len(after - before)} -{len(before - after)}")
    return "; ".join(parts)


def _attribute_changes(old: Node, new: Node) -> str:
    fields = ["touchpoints", "severity", "route", "replaced_by"]
    changed = [f for f in fields if getattr(old, f, None) != getattr(new, f, None)]
    return "; ".join(f"{f} {getattr(old, f, None)!r} -> {getattr(new, f, None)!r}" for f in changed)


def _diff_kind(old: Taxonomy, new: Taxonomy, kind: NodeKind) -> list[NodeChange]:
    before, after = _nodes(old, kind), _nodes(new, kind)
    retiring = {i: n for i, n in after.items() if not n.active and i in before and before[i].active}
    targets = Counter(n.replaced_by for n in retiring.values() if n.replaced_by)
    moved_to = {
        n.replaced_by
        for n in retiring.values()
        if n.replaced_by and n.replaced_by not in before and targets[n.replaced_by] == 1
    }
    changes: list[NodeChange] = []
    order = list(before) + [i for i in after if i not in before]
    for node_id in order:
        o, n = before.get(node_id), after.get(node_id)
        if o is None:
            if node_id not in moved_to:
                changes.append(
                    NodeChange(change=ChangeKind.added, kind=kind, id=node_id, detail=_names(n))
                )
            continue
        if n is None:
            changes.append(
                NodeChange(
                    change=ChangeKind.removed,
                    kind=kind,
                    id=node_id,
                    detail="deleted from the file; its labels map to nothing",
                )
            )
            continue
        if node_id in retiring:
            target = n.replaced_by
            if target is None:
                changes.append(NodeChange(change=ChangeKind.retired, kind=kind, id=node_id))
            elif target in moved_to:
                detail = ""
                if kind is NodeKind.topic and target.split(".")[0] != node_id.split(".")[0]:
                    detail = f"parent {o.parent or '-'} -> {after[target].parent or '-'}"
                changes.append(
                    NodeChange(
                        change=ChangeKind.moved, kind=kind, id=node_id, target=target, detail=detail
                    )
                )
            else:
                changes.append(
                    NodeChange(change=ChangeKind.merged, kind=kind, id=node_id, target=target)
                )
        elif not o.active and n.active:
            changes.append(NodeChange(change=ChangeKind.restored, kind=kind, id=node_id))
        for field, change in (
            ("name", ChangeKind.renamed),
            ("description", ChangeKind.description_changed),
        ):
            if getattr(o, field) != getattr(n, field):
                changes.append(
                    NodeChange(
                        change=change, kind=kind, id=node_id, detail=_text_changes(o, n, field)
                    )
                )
        if o.seeds != n.seeds:
            changes.append(
                NodeChange(
                    change=ChangeKind.seeds_changed,
                    kind=kind,
                    id=node_id,
                    detail=_seed_changes(o, n),
                )
            )
        attrs = _attribute_changes(o, n) if node_id not in retiring else ""
        if attrs:
            changes.append(
                NodeChange(
                    change=ChangeKind.attributes_changed, kind=kind, id=node_id, detail=attrs
                )
            )
    return changes


def diff_taxonomies(old: Taxonomy, new: Taxonomy) -> TaxonomyDiff:
    """Added, removed, retired, restored, merged, moved, renamed nodes and changed
    descriptions, seeds and triage/hint attributes, from ``old`` to ``new``."""
    changes = _diff_kind(old, new, NodeKind.touchpoint) + _diff_kind(old, new, NodeKind.topic)
    return TaxonomyDiff(
        old_id=old.id,
        old_version=old.version,
        new_id=new.id,
        new_version=new.version,
        changes=tuple(changes),
    )


def label_mapping(
    old: Taxonomy, new: Taxonomy, kind: NodeKind | str = NodeKind.topic
) -> dict[str, str | None]:
    """Where each ``old`` id's labels go in ``new``: the id itself while active, the end of
    its ``replaced_by`` chain when merged or moved, None when retired without replacement or
    deleted. Covers every old id of ``kind``, retired ones included."""
    kind = NodeKind(kind)
    before, after = _nodes(old, kind), _nodes(new, kind)
    mapping: dict[str, str | None] = {}
    for node_id in before:
        current: str | None = node_id
        seen: set[str] = set()
        while current is not None and current not in after and current not in seen:
            seen.add(current)
            node = before.get(current)
            current = node.replaced_by if node is not None else None
        mapping[node_id] = new.resolve(current, kind) if current in after else None
    return mapping
