"""Checks that need several nodes: duplicates, hierarchy, hints, replacements and seeds."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from models.taxonomy.problems import Problem, ProblemLevel
from models.taxonomy.schema import LANGS, NodeStatus, TopicNode, TouchpointNode

MIN_SEEDS = 1
"""Seed phrases a leaf or touchpoint needs per language (fewer is an error)."""
RECOMMENDED_SEEDS = 5
"""Fewer seed phrases than this per language is a warning: zero-shot quality suffers."""


def cross_node_problems(
    topics: Sequence[tuple[int, TopicNode]],
    touchpoints: Sequence[tuple[int, TouchpointNode]],
    *,
    extra_topic_ids: set[str] | frozenset[str] = frozenset(),
    extra_touchpoint_ids: set[str] | frozenset[str] = frozenset(),
    skip_seeds: set[tuple[str, int]] | frozenset[tuple[str, int]] = frozenset(),
) -> list[Problem]:
    """Checks that need several nodes: duplicates, hierarchy, hints, replacements, seeds.

    ``topics``/``touchpoints`` pair each parsed node with its index in the file; the extra ids
    are ids of nodes that failed to parse, so they do not also show up as unknown;
    ``skip_seeds`` holds ``(key, index)`` of nodes whose seeds were already reported invalid."""
    problems: list[Problem] = []
    topic_map = _unique(topics, "topics", "topic", problems)
    point_map = _unique(touchpoints, "touchpoints", "touchpoint", problems)
    for i, node in topics:
        _check_parent(i, node, topic_map, extra_topic_ids, problems)
        _check_hints(i, node, point_map, extra_touchpoint_ids, problems)
    for nodes, known, extra, kind in (
        (topics, topic_map, extra_topic_ids, "topics"),
        (touchpoints, point_map, extra_touchpoint_ids, "touchpoints"),
    ):
        for i, node in nodes:
            _check_replacement(i, node, known, extra, kind, problems)
    parents = {n.parent for _, n in topics if n.active and n.parent}
    leaves = [(i, n) for i, n in topics if n.active and n.id not in parents]
    _check_seeds(
        [(i, n) for i, n in leaves if ("topics", i) not in skip_seeds],
        "topics",
        "leaf topic",
        problems,
    )
    _check_seeds(
        [(i, n) for i, n in touchpoints if n.active and ("touchpoints", i) not in skip_seeds],
        "touchpoints",
        "touchpoint",
        problems,
    )
    if topics and not leaves:
        problems.append(Problem(path="topics", message="the taxonomy has no active topic"))
    return problems


def _unique(
    nodes: Sequence[tuple[int, Any]], key: str, what: str, out: list[Problem]
) -> dict[str, Any]:
    first: dict[str, int] = {}
    for i, node in nodes:
        if node.id in first:
            out.append(
                Problem(
                    path=f"{key}[{i}].id",
                    message=(
                        f"duplicate {what} id {node.id!r} (first declared at {key}[{first[node.id]}])"
                    ),
                )
            )
        else:
            first[node.id] = i
    return {node.id: node for i, node in nodes if first[node.id] == i}


def _check_parent(
    i: int, node: TopicNode, known: dict[str, TopicNode], extra: Any, out: list[Problem]
) -> None:
    path = f"topics[{i}]"
    if node.level == 1:
        if node.parent is not None:
            out.append(
                Problem(
                    path=f"{path}.parent",
                    message=(
                        f"level-1 topic {node.id!r} cannot have a parent (got {node.parent!r}); topics "
                        "have two levels and the parent is the id part before the dot"
                    ),
                )
            )
        return
    if node.parent != node.level1_id:
        out.append(
            Problem(
                path=f"{path}.parent",
                message=(
                    f"parent {node.parent!r} does not match the id prefix {node.level1_id!r} of "
                    f"{node.id!r}; a topic's parent is the part of its id before the dot"
                ),
            )
        )
    parent = known.get(node.level1_id)
    if parent is None and node.level1_id not in extra:
        out.append(
            Problem(
                path=f"{path}.id",
                message=(
                    f"unknown parent {node.level1_id!r}: no level-1 topic {node.level1_id!r} is "
                    f"declared; add it (with names and a description) to topics, or fix the id"
                ),
            )
        )
    elif parent is not None and node.active and not parent.active:
        out.append(
            Problem(
                path=f"{path}.status",
                message=(
                    f"active topic {node.id!r} sits under retired {parent.id!r}; retire it too "
                    "(with replaced_by) or make its parent active again"
                ),
            )
        )


def _check_hints(
    i: int, node: TopicNode, known: dict[str, TouchpointNode], extra: Any, out: list[Problem]
) -> None:
    for k, hint in enumerate(node.touchpoints):
        path = f"topics[{i}].touchpoints[{k}]"
        point = known.get(hint)
        if point is None and hint not in extra:
            out.append(
                Problem(
                    path=path,
                    message=(
                        f"unknown touchpoint {hint!r}; known touchpoints: {', '.join(known) or 'none'}"
                    ),
                )
            )
        elif point is not None and not point.active:
            out.append(
                Problem(
                    path=path,
                    message=(
                        f"touchpoint {hint!r} is retired"
                        + (f"; use {point.replaced_by!r}" if point.replaced_by else "")
                    ),
                )
            )
        if node.touchpoints.index(hint) != k:
            out.append(
                Problem(
                    path=path,
                    level=ProblemLevel.warning,
                    message=f"touchpoint {hint!r} is listed twice",
                )
            )


def _check_replacement(
    i: int, node: Any, known: dict[str, Any], extra: Any, key: str, out: list[Problem]
) -> None:
    path, what = f"{key}[{i}].replaced_by", key[:-1]
    target = node.replaced_by
    if target is None:
        return
    if node.status is NodeStatus.active:
        out.append(
            Problem(
                path=path,
                message=(
                    f"{node.id!r} is active but has replaced_by {target!r}; only retired nodes are "
                    "replaced: set status: retired or remove replaced_by"
                ),
            )
        )
    elif target == node.id:
        out.append(Problem(path=path, message=f"{node.id!r} cannot be replaced by itself"))
    elif target not in known and target not in extra:
        out.append(
            Problem(
                path=path,
                message=(
                    f"retired {what} {node.id!r} is replaced_by unknown {what} {target!r}; point it at "
                    f"an existing {what} id, or drop replaced_by to retire without replacement"
                ),
            )
        )
    else:
        seen, current = {node.id}, known.get(target)
        while current is not None and not current.active and current.replaced_by:
            if current.id in seen:
                out.append(
                    Problem(
                        path=path,
                        message=(
                            f"replaced_by chain from {node.id!r} loops back to {current.id!r}"
                        ),
                    )
                )
                return
            seen.add(current.id)
            current = known.get(current.replaced_by)


def _check_seeds(nodes: Sequence[tuple[int, Any]], key: str, what: str, out: list[Problem]) -> None:
    owners: dict[tuple[str, str], list[str]] = defaultdict(list)
    for i, node in nodes:
        for lang in LANGS:
            seeds = node.seeds.get(lang)
            path = f"{key}[{i}].seeds.{lang}"
            if len(seeds) < MIN_SEEDS:
                out.append(
                    Problem(
                        path=path,
                        message=(
                            f"{what} {node.id!r} has no {lang} seed phrases: give at least {MIN_SEEDS} "
                            f"(8 or more recommended), in real customer wording"
                        ),
                    )
                )
            elif len(seeds) < RECOMMENDED_SEEDS:
                out.append(
                    Problem(
                        path=path,
                        level=ProblemLevel.warning,
                        message=(
                            f"{what} {node.id!r} has only {len(seeds)} {lang} seed phrase(s); "
                            f"{RECOMMENDED_SEEDS} or more make zero-shot labelling more reliable"
                        ),
                    )
                )
            for seed, count in Counter(seeds).items():
                if count > 1:
                    out.append(
                        Problem(
                            path=path,
                            level=ProblemLevel.warning,
                            message=f"seed phrase {seed!r} is listed {count} times",
                        )
                    )
            for seed in set(seeds):
                owners[(lang, seed.casefold())].append(node.id)
    for (lang, seed), ids in owners.items():
        if len(ids) > 1:
            out.append(
                Problem(
                    path=key,
                    level=ProblemLevel.warning,
                    message=(
                        f"{lang} seed phrase {seed!r} is shared by {', '.join(ids)}; a seed should "
                        "evidence one node"
                    ),
                )
            )
