"""Validation of taxonomy files: every problem, each with its path (and line) in the file."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from models.taxonomy.checks import cross_node_problems
from models.taxonomy.problems import (
    Problem,
    ProblemLevel,
    attach_lines,
    join_path,
    raise_for_problems,
    short_repr,
)
from models.taxonomy.schema import (
    LANGS,
    LocalizedText,
    TaxonomyId,
    TopicNode,
    TouchpointNode,
    Version,
)

__all__ = [
    "Problem",
    "ProblemLevel",
    "Source",
    "check_source",
    "raise_for_problems",
    "read_source",
    "validate_taxonomy",
]

Source = str | os.PathLike[str] | Mapping[str, Any]
"""A taxonomy source: a path, YAML text, or an already parsed mapping."""


class _Header(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: TaxonomyId
    version: Version
    name: LocalizedText
    description: LocalizedText | None = None
    touchpoints: list[Any] | None = None
    topics: list[Any]


# ----- reading ---------------------------------------------------------------------------------
def looks_like_path(text: str) -> bool:
    if "\n" in text or len(text) > 4096:
        return False
    if text.endswith((".yaml", ".yml")):
        return True
    try:
        return Path(text).is_file()
    except OSError:
        return False


def read_source(
    source: Source, *, what: str = "taxonomy"
) -> tuple[Any, dict[str, int], list[Problem]]:
    """Parse a source into (data, line index by path, reading problems); ``what`` names the
    document in messages (``taxonomy``, ``policy``)."""
    if isinstance(source, Mapping):
        return dict(source), {}, []
    if isinstance(source, os.PathLike) or (isinstance(source, str) and looks_like_path(source)):
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None, {}, [Problem(path="", message=f"{what} file not found: {path}")]
        except UnicodeDecodeError as exc:
            return (
                None,
                {},
                [
                    Problem(
                        path="",
                        message=f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                        f"save the {what} as UTF-8 YAML",
                    )
                ],
            )
        except OSError as exc:
            return None, {}, [Problem(path="", message=f"cannot read {path}: {exc.strerror}")]
        return parse_yaml(text)
    if isinstance(source, str):
        return parse_yaml(source)
    return (
        None,
        {},
        [
            Problem(
                path="",
                message=f"expected a path, YAML text or a mapping; got {type(source).__name__}",
            )
        ],
    )


def parse_yaml(text: str) -> tuple[Any, dict[str, int], list[Problem]]:
    """Safe-load YAML, keeping the line of every path and flagging duplicate keys."""
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # reads (and checks) every character: may raise too
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.reader.ReaderError as exc:
        return None, {}, [_unreadable(text, exc)]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        what = " ".join(
            str(p) for p in (getattr(exc, "context", None), getattr(exc, "problem", None)) if p
        ) or str(exc)
        return (
            None,
            {},
            [
                Problem(
                    path="",
                    message=f"invalid YAML syntax: {what}",
                    line=mark.line + 1 if mark else None,
                )
            ],
        )
    finally:
        if loader is not None:
            loader.dispose()
    lines: dict[str, int] = {}
    problems: list[Problem] = []
    if node is not None:
        _index_lines(node, "", lines, problems)
    return data, lines, problems


def _unreadable(text: str, exc: yaml.reader.ReaderError) -> Problem:
    """The problem of a character YAML does not allow (a control character, say), with where it is."""
    code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
    before = text[: exc.position] if isinstance(text, str) else ""
    line = before.count("\n") + 1
    column = exc.position - (before.rfind("\n") + 1) + 1
    return Problem(
        path="",
        line=line,
        message=f"invalid YAML: character U+{code:04X} at line {line}, column {column} is not "
        "allowed in YAML (control characters are not); remove it, or write it as an escape in a "
        f'double-quoted string ("\\u{code:04x}")',
    )


def _index_lines(node: yaml.Node, path: str, lines: dict[str, int], out: list[Problem]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            child = f"{path}.{key}" if path else key
            line = key_node.start_mark.line + 1
            if key in seen:
                out.append(
                    Problem(
                        path=child,
                        line=line,
                        message=f"duplicate key {key!r} (first at line "
                        f"{seen[key]}); YAML would silently keep only the last one",
                    )
                )
                continue
            seen[key] = line
            lines[child] = line
            _index_lines(value_node, child, lines, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, f"{path}[{i}]", lines, out)


# ----- structural checks -----------------------------------------------------------------------
def _fields_at(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        ann = field.annotation if field else None
        candidates = getattr(ann, "__args__", None) or (ann,)
        nested = [a for a in candidates if isinstance(a, type) and issubclass(a, BaseModel)]
        if not nested:
            return []
        model = nested[0]
    return list(model.model_fields)


def pydantic_problems(exc: ValidationError, prefix: str, model: type[BaseModel]) -> list[Problem]:
    """Translate pydantic errors into problems with file paths and plain messages."""
    out = []
    for err in exc.errors():
        loc, kind = err["loc"], err["type"]
        field = loc[-1] if loc else ""
        if kind == "missing":
            if field in LANGS:
                lang = "Chinese" if field == "zh" else "English"
                msg = f"missing {field} ({lang}) text: every name and description needs zh and en"
            else:
                msg = f"missing required field {field!r}"
        elif kind == "extra_forbidden":
            allowed = _fields_at(model, loc[:-1])
            msg = f"unknown field {field!r}" + (
                f"; allowed here: {', '.join(allowed)}" if allowed else ""
            )
        elif kind == "string_too_short":
            msg = "must not be empty"
        elif loc == ("version",):
            got = short_repr(err.get("input"))
            msg = f"version must be a positive integer (1, 2, ...); got {got}"
        elif kind == "value_error":
            msg = err["msg"].removeprefix("Value error, ")
        else:
            msg = f"{err['msg']}; got {short_repr(err.get('input'))}"
        out.append(Problem(path=join_path(prefix, loc), message=msg))
    return out


def _salvage(item: Mapping[str, Any], exc: ValidationError, model: type[BaseModel]) -> Any:
    """The node with its invalid fields dropped (names stubbed), so that cross-node checks
    still run on it; None when its id itself is unusable."""
    bad = {e["loc"][0] for e in exc.errors() if e["loc"]}
    if "id" in bad or not isinstance(item.get("id"), str):
        return None
    patched = {k: v for k, v in item.items() if k not in bad and k in model.model_fields}
    for key in ("name", "description"):
        patched.setdefault(key, {"zh": "?", "en": "?"})
    try:
        return model.model_validate(patched)
    except ValidationError:
        return None


def _node_problems(
    raw: Any, kind: str
) -> tuple[list[tuple[int, Any]], set[str], set[int], list[Problem]]:
    model = TopicNode if kind == "topics" else TouchpointNode
    if raw is None:
        return [], set(), set(), []
    parsed, raw_ids, bad_seeds, problems = [], set(), set(), []
    for i, item in enumerate(raw):
        path = f"{kind}[{i}]"
        if not isinstance(item, Mapping):
            problems.append(
                Problem(
                    path=path,
                    message=(
                        f"each {kind[:-1]} must be a mapping with id, name, description and seeds; "
                        f"got {type(item).__name__} {short_repr(item)}"
                    ),
                )
            )
            continue
        if isinstance(item.get("id"), str):
            raw_ids.add(item["id"])
        try:
            parsed.append((i, model.model_validate(dict(item))))
        except ValidationError as exc:
            problems.extend(pydantic_problems(exc, path, model))
            node = _salvage(item, exc, model)
            if node is not None:
                parsed.append((i, node))
                if any(e["loc"][:1] == ("seeds",) for e in exc.errors()):
                    bad_seeds.add(i)
    return parsed, raw_ids, bad_seeds, problems


def validate_taxonomy(source: Source) -> list[Problem]:
    """Every problem in a taxonomy (errors and warnings), in file order. Empty means valid.

    ``source`` is a path, YAML text or a parsed mapping; line numbers come with YAML text."""
    return check_source(source)[1]


def check_source(source: Source) -> tuple[Any, list[Problem]]:
    """(parsed data, every problem): :func:`validate_taxonomy` keeping the data it read."""
    data, lines, problems = read_source(source)
    if problems and data is None:
        return None, problems
    if data is None:
        return None, [
            Problem(
                path="",
                message="the taxonomy is empty: expected a mapping with "
                "id, version, name, touchpoints and topics",
            )
        ]
    if not isinstance(data, Mapping):
        return None, [
            Problem(
                path="",
                line=1,
                message=(
                    "a taxonomy must be a YAML mapping with keys id, version, name, touchpoints and "
                    f"topics; got a {type(data).__name__}"
                    + (
                        " (if this is a file path: no such file)"
                        if isinstance(data, str) and "\n" not in data
                        else ""
                    )
                ),
            )
        ]
    try:
        _Header.model_validate(dict(data))
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc, "", _Header))
    lists = {
        key: data.get(key) if isinstance(data.get(key), list) else None
        for key in ("topics", "touchpoints")
    }
    topics, topic_ids, topic_skip, topic_problems = _node_problems(lists["topics"], "topics")
    points, point_ids, point_skip, point_problems = _node_problems(
        lists["touchpoints"], "touchpoints"
    )
    problems += point_problems + topic_problems
    if lists["topics"] is not None:
        problems += cross_node_problems(
            topics,
            points,
            extra_topic_ids=topic_ids,
            extra_touchpoint_ids=point_ids,
            skip_seeds={("topics", i) for i in topic_skip}
            | {("touchpoints", i) for i in point_skip},
        )
    problems = attach_lines(problems, lines)
    return data, sorted(problems, key=lambda p: (p.line is None, p.line or 0))
