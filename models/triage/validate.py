"""Validation of triage policies: every problem, each with its path (and line) in the file.

Problems use the taxonomy's :class:`models.taxonomy.Problem` (path like ``cues.safety.zh[3]``,
1-based line where the source was YAML text, level error or warning).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from models.taxonomy import Problem, ProblemLevel, Taxonomy
from models.taxonomy.problems import attach_lines, join_path, short_repr
from models.taxonomy.problems import raise_for_problems as _raise_for_problems
from models.taxonomy.validate import looks_like_path as looks_like_path  # used by triage.io
from models.taxonomy.validate import read_source
from models.triage.checks import salvage_problems, semantic_problems
from nlp.errors import PolicyError

if TYPE_CHECKING:
    from models.triage.policy import TriagePolicy

__all__ = [
    "PolicySource",
    "raise_for_problems",
    "semantic_problems",
    "taxonomy_problems",
    "validate_policy",
]

PolicySource = str | os.PathLike[str] | Mapping[str, Any]
"""A policy source: a path, YAML text, or an already parsed mapping."""


# ----- reading ---------------------------------------------------------------------------------
def read_policy_source(source: PolicySource) -> tuple[Any, dict[str, int], list[Problem]]:
    """Parse a source into (data, line index by path, reading problems)."""
    return read_source(source, what="policy")


# ----- the entry point -------------------------------------------------------------------------
def validate_policy(source: PolicySource, *, taxonomy: Taxonomy | None = None) -> list[Problem]:
    """Every problem in a policy (errors and warnings), in file order. Empty means valid.

    ``source`` is a path, YAML text or a parsed mapping; line numbers come with YAML text. With a
    ``taxonomy``, topic ids in the policy must exist in it."""
    return check_policy_source(source, taxonomy=taxonomy)[1]


def check_policy_source(
    source: PolicySource, *, taxonomy: Taxonomy | None = None
) -> tuple[TriagePolicy | None, list[Problem]]:
    """(the policy when it has no error, every problem): :func:`validate_policy` keeping the
    parsed policy."""
    from models.triage.policy import TriagePolicy

    data, lines, problems = read_policy_source(source)
    if data is None:
        return None, problems or [
            Problem(
                path="",
                message=(
                    "the policy is empty: expected a mapping with id, version, name, thresholds, "
                    "sla_hours, cues and negation"
                ),
            )
        ]
    if not isinstance(data, Mapping):
        return None, [
            Problem(
                path="",
                line=1,
                message=(
                    "a triage policy must be a YAML mapping with keys id, version, name, thresholds, "
                    f"sla_hours, cues and negation; got a {type(data).__name__}"
                ),
            )
        ]
    policy = None
    try:
        policy = TriagePolicy.model_validate(dict(data), context={"problems": problems})
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc, TriagePolicy))
        problems.extend(salvage_problems(data))  # checks of the sections that did parse
    if policy is not None and taxonomy is not None:
        problems.extend(taxonomy_problems(policy, taxonomy))
    problems = attach_lines(problems, lines)
    if any(p.level is ProblemLevel.error for p in problems):
        policy = None
    return policy, sorted(problems, key=lambda p: (p.line is None, p.line or 0))


def raise_for_problems(problems: Sequence[Problem], *, origin: str = "triage policy") -> None:
    """Raise :class:`PolicyError` when ``problems`` hold an error (warnings alone pass)."""
    _raise_for_problems(problems, origin=origin, error=PolicyError)


# ----- structural problems ---------------------------------------------------------------------
def _fields_at(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            continue  # a dict key (a category name) or a list index: same model below
        args = getattr(field.annotation, "__args__", None) or (field.annotation,)
        nested = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if not nested:
            return []
        model = nested[0]
    return list(model.model_fields)


def pydantic_problems(exc: ValidationError, model: type[BaseModel]) -> list[Problem]:
    """Pydantic errors as problems with file paths and plain messages."""
    out = []
    for err in exc.errors():
        loc, kind = err["loc"], err["type"]
        field = loc[-1] if loc else ""
        if kind == "missing":
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
        else:
            msg = f"{err['msg'].removeprefix('Value error, ')}; got {short_repr(err.get('input'))}"
        out.append(Problem(path=join_path("", loc), message=msg))
    return out


# ----- taxonomy problems ---------------------------------------------------------------------
def taxonomy_problems(policy: TriagePolicy, taxonomy: Taxonomy) -> list[Problem]:
    """Topic ids in the policy that the taxonomy lacks (errors) or has retired (warnings)."""
    out: list[Problem] = []
    refs = [(f"topics.severity.{k}", k) for k in policy.topics.severity]
    refs += [
        (f"cues.{name}.related_topics[{i}]", tid)
        for name, cat in policy.cues.items()
        for i, tid in enumerate(cat.related_topics)
    ]
    known = {n.id: n for n in taxonomy.topics}
    for path, topic_id in refs:
        node = known.get(topic_id)
        if node is None:
            close = difflib.get_close_matches(topic_id, list(known), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            out.append(
                Problem(
                    path=path,
                    message=(
                        f"unknown topic {topic_id!r} in taxonomy {taxonomy.id!r} "
                        f"v{taxonomy.version}{hint}"
                    ),
                )
            )
        elif not node.active:
            out.append(
                Problem(
                    path=path,
                    level=ProblemLevel.warning,
                    message=(
                        f"topic {topic_id!r} is retired in taxonomy {taxonomy.id!r}"
                        + (f"; use {node.replaced_by!r}" if node.replaced_by else "")
                    ),
                )
            )
    from models.triage.routing import routing_problems

    out.extend(routing_problems(policy.routing, taxonomy))
    return out
