"""Taxonomy schema: pydantic v2 models for a taxonomy and its topic and touchpoint nodes.

Format decisions (documented in ``models/taxonomy/README.md``):

- ``version`` is a positive integer; every change to a taxonomy makes the next integer.
- A topic's parent is derived from its id (``delivery.timeliness`` -> ``delivery``). An explicit
  ``parent`` key is allowed for readability but must agree with the id prefix.
- ``severity`` is a :class:`Severity` enum (low/medium/high/critical), a per-topic default weight
  for triage; ``route`` is a team queue name. Leaves inherit both from their level-1 parent.
- ``status: retired`` keeps a node's id in the file so that history stays readable;
  ``replaced_by`` says where its labels go (a merge, a move or an id change).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    field_validator,
    model_validator,
)

from nlp.errors import InvalidInputError, NotFoundError

LANGS: tuple[str, ...] = ("zh", "en")
"""The languages every node must be described in."""

SEGMENT = r"[a-z][a-z0-9_]*"
TOPIC_ID_RE = re.compile(rf"^{SEGMENT}(\.{SEGMENT})?$")
TOUCHPOINT_ID_RE = re.compile(rf"^{SEGMENT}$")
TAXONOMY_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ROUTE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def _check_taxonomy_id(value: str) -> str:
    if not TAXONOMY_ID_RE.match(value):
        raise ValueError(
            f"taxonomy id {value!r} is not valid: use lowercase ascii, digits, '-' or '_' "
            "(at most 64 characters), e.g. 'cem-default'"
        )
    return value


TaxonomyId = Annotated[str, AfterValidator(_check_taxonomy_id)]
Version = Annotated[int, Field(strict=True, ge=1)]
"""A taxonomy version: a positive integer, 1 for the default taxonomy."""


class NodeKind(StrEnum):
    """The two node namespaces. Ids are unique within a kind (``account`` is both a touchpoint
    and a level-1 topic in the default taxonomy)."""

    topic = "topic"
    touchpoint = "touchpoint"


class NodeStatus(StrEnum):
    active = "active"
    retired = "retired"


class Severity(StrEnum):
    """Default triage weight of a topic; :attr:`weight` gives it as a number in (0, 1]."""

    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"

    @property
    def weight(self) -> float:
        return {"low": 0.25, "medium": 0.5, "high": 0.75, "critical": 1.0}[self.value]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LocalizedText(_Frozen):
    """One text in both languages."""

    zh: Text
    en: Text

    def get(self, lang: str) -> str:
        return getattr(self, check_lang(lang))


class Seeds(_Frozen):
    """Seed phrases per language: real customer wording that evidences the node."""

    zh: tuple[Text, ...] = ()
    en: tuple[Text, ...] = ()

    @field_validator("zh", "en", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return () if value is None else value

    def get(self, lang: str) -> tuple[str, ...]:
        return getattr(self, check_lang(lang))


class _Node(_Frozen):
    id: str
    name: LocalizedText
    description: LocalizedText
    seeds: Seeds = Field(default_factory=Seeds)
    status: NodeStatus = NodeStatus.active
    replaced_by: str | None = None

    @property
    def active(self) -> bool:
        return self.status is NodeStatus.active


class TouchpointNode(_Node):
    """A stage of the customer journey (``discover``, ``purchase``, ...)."""

    kind: ClassVar[NodeKind] = NodeKind.touchpoint

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not TOUCHPOINT_ID_RE.match(value):
            raise ValueError(
                f"touchpoint id {value!r} is not valid: use one lowercase ascii segment "
                "matching [a-z][a-z0-9_]* (no dots), e.g. 'fulfil'"
            )
        return value


class TopicNode(_Node):
    """A topic, level 1 (``delivery``) or level 2 (``delivery.timeliness``)."""

    kind: ClassVar[NodeKind] = NodeKind.topic
    parent: str | None = None
    touchpoints: tuple[str, ...] = ()
    severity: Severity | None = None
    route: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _derive_parent(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("parent") is None:
            node_id = data.get("id")
            if isinstance(node_id, str) and "." in node_id:
                data = {**data, "parent": node_id.split(".", 1)[0]}
        return data

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if TOPIC_ID_RE.match(value):
            return value
        if value.count(".") > 1:
            raise ValueError(
                f"topic id {value!r} has {value.count('.') + 1} levels; topics have at most two "
                "(level1.level2, e.g. 'delivery.timeliness')"
            )
        raise ValueError(
            f"topic id {value!r} is not valid: use lowercase ascii segments matching "
            "[a-z][a-z0-9_]*, joined by one dot, e.g. 'delivery.timeliness'"
        )

    @field_validator("touchpoints", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return () if value is None else value

    @field_validator("route")
    @classmethod
    def _check_route(cls, value: str | None) -> str | None:
        if value is not None and not ROUTE_RE.match(value):
            raise ValueError(
                f"route {value!r} is not a queue name: use lowercase ascii, digits, '-' or '_', "
                "e.g. 'customer-care'"
            )
        return value

    @property
    def level(self) -> int:
        return 2 if "." in self.id else 1

    @property
    def level1_id(self) -> str:
        return self.id.split(".", 1)[0]


Node = TopicNode | TouchpointNode


def check_lang(lang: str) -> str:
    """Return ``lang`` as ``'zh'`` or ``'en'`` (accepts a str enum), or raise."""
    value = getattr(lang, "value", lang)
    if value not in LANGS:
        raise InvalidInputError(
            f"taxonomy texts exist in {', '.join(LANGS)}; got language {lang!r}. "
            "Pick one of them (a mixed verbatim usually uses both)."
        )
    return value


class Taxonomy(_Frozen):
    """A whole taxonomy. Immutable; build a changed copy with ``Taxonomy.model_validate``.

    Construction runs every cross-node check and raises :class:`nlp.errors.TaxonomyError`
    listing all problems (see :func:`models.taxonomy.validate_taxonomy`).
    """

    id: TaxonomyId
    version: Version
    name: LocalizedText
    description: LocalizedText | None = None
    touchpoints: tuple[TouchpointNode, ...] = ()
    topics: tuple[TopicNode, ...]

    _topics: dict[str, TopicNode] = PrivateAttr(default_factory=dict)
    _touchpoints: dict[str, TouchpointNode] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check_nodes(self) -> Taxonomy:
        from models.taxonomy.checks import cross_node_problems
        from models.taxonomy.problems import raise_for_problems

        raise_for_problems(
            cross_node_problems(list(enumerate(self.topics)), list(enumerate(self.touchpoints)))
        )
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._topics = {node.id: node for node in self.topics}
        self._touchpoints = {node.id: node for node in self.touchpoints}

    # ----- lookups -------------------------------------------------------------------------
    def topic(self, node_id: str) -> TopicNode:
        """The topic node ``node_id`` (active or retired), or :class:`NotFoundError`."""
        try:
            return self._topics[node_id]
        except KeyError:
            raise _not_found(node_id, NodeKind.topic, self._topics) from None

    def touchpoint(self, node_id: str) -> TouchpointNode:
        """The touchpoint node ``node_id`` (active or retired), or :class:`NotFoundError`."""
        try:
            return self._touchpoints[node_id]
        except KeyError:
            raise _not_found(node_id, NodeKind.touchpoint, self._touchpoints) from None

    def get(self, node_id: str, kind: NodeKind | str | None = None) -> Node:
        """A node by id. Without ``kind`` topics are searched first, then touchpoints, so pass
        ``kind='touchpoint'`` for ids that exist in both namespaces (``account``)."""
        if kind is not None:
            kind = NodeKind(kind)
            return self.topic(node_id) if kind is NodeKind.topic else self.touchpoint(node_id)
        if node_id in self._topics:
            return self._topics[node_id]
        if node_id in self._touchpoints:
            return self._touchpoints[node_id]
        raise _not_found(node_id, None, {**self._topics, **self._touchpoints})

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._topics or node_id in self._touchpoints

    # ----- active node sets (file order) ---------------------------------------------------
    @property
    def topic_leaves(self) -> tuple[TopicNode, ...]:
        """Active topics without active children: the topic labels models predict."""
        parents = {n.parent for n in self.topics if n.active and n.parent}
        return tuple(n for n in self.topics if n.active and n.id not in parents)

    @property
    def leaf_ids(self) -> tuple[str, ...]:
        """Ids of :attr:`topic_leaves` (the label set of the topic classifier)."""
        return tuple(n.id for n in self.topic_leaves)

    @property
    def topic_ids(self) -> tuple[str, ...]:
        """Every active topic id, level 1 and level 2."""
        return tuple(n.id for n in self.topics if n.active)

    @property
    def level1_ids(self) -> tuple[str, ...]:
        return tuple(n.id for n in self.topics if n.active and n.level == 1)

    @property
    def touchpoint_ids(self) -> tuple[str, ...]:
        return tuple(n.id for n in self.touchpoints if n.active)

    def retired_ids(self, kind: NodeKind | str = NodeKind.topic) -> tuple[str, ...]:
        nodes = self.topics if NodeKind(kind) is NodeKind.topic else self.touchpoints
        return tuple(n.id for n in nodes if not n.active)

    def iter_nodes(self) -> Iterator[Node]:
        yield from self.touchpoints
        yield from self.topics

    # ----- hierarchy -----------------------------------------------------------------------
    def children(self, level1_id: str) -> tuple[TopicNode, ...]:
        """Active level-2 topics under ``level1_id``."""
        self.topic(level1_id)
        return tuple(n for n in self.topics if n.active and n.parent == level1_id)

    def leaves_under(self, node_id: str) -> tuple[str, ...]:
        """Leaf ids a label expands to: a leaf gives itself, a level-1 id its active leaves
        (evaluation maps a public ``service`` label this way); a retired node gives ()."""
        node = self.topic(node_id)
        if not node.active:
            return ()
        leaves = self.leaf_ids
        if node.id in leaves:
            return (node.id,)
        return tuple(i for i in leaves if i.split(".", 1)[0] == node.id)

    def resolve(self, node_id: str, kind: NodeKind | str = NodeKind.topic) -> str | None:
        """Follow ``replaced_by`` from ``node_id`` to an active node; None when the chain ends
        at a retired node without replacement. Raises NotFoundError for an unknown id."""
        kind = NodeKind(kind)
        lookup = self.topic if kind is NodeKind.topic else self.touchpoint
        node, seen = lookup(node_id), set()
        while not node.active:
            if node.replaced_by is None or node.id in seen:
                return None
            seen.add(node.id)
            node = lookup(node.replaced_by)
        return node.id

    # ----- triage defaults -----------------------------------------------------------------
    def effective_severity(self, topic_id: str) -> Severity | None:
        """The topic's severity, else its level-1 parent's."""
        node = self.topic(topic_id)
        if node.severity is None and node.parent:
            return self.topic(node.parent).severity
        return node.severity

    def effective_route(self, topic_id: str) -> str | None:
        """The topic's route, else its level-1 parent's."""
        node = self.topic(topic_id)
        if node.route is None and node.parent:
            return self.topic(node.parent).route
        return node.route

    # ----- texts and identity --------------------------------------------------------------
    def node_text(self, node_id: str, lang: str, kind: NodeKind | str | None = None) -> str:
        """Name, description and seed phrases of a node in one language, as one text: what a
        zero-shot classifier embeds to build the node's label prototype."""
        lang = check_lang(lang)
        node = self.get(node_id, kind)
        sep, colon = ("；", "：") if lang == "zh" else ("; ", ": ")
        text = f"{node.name.get(lang)}{colon}{node.description.get(lang)}"
        seeds = node.seeds.get(lang)
        return f"{text}\n{sep.join(seeds)}" if seeds else text

    def content_hash(self) -> str:
        """SHA-256 (hex) of the nodes: ids, texts, seeds, hierarchy, status and triage fields,
        in file order. The taxonomy's own name, description and version number are left out, so
        a model can check that it was trained on the same node content."""
        payload = self.model_dump(mode="json", include={"topics", "touchpoints"})
        raw = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _not_found(node_id: str, kind: NodeKind | None, known: dict[str, Any]) -> NotFoundError:
    import difflib

    what = f"{kind.value} " if kind else "node "
    close = difflib.get_close_matches(str(node_id), list(known), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    return NotFoundError(
        f"unknown {what}id {node_id!r} in this taxonomy{hint}",
        details={"id": node_id, "kind": kind.value if kind else None, "suggestions": close},
    )
