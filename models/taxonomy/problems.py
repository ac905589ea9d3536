"""A problem found in a taxonomy (or a triage policy), and the error raised for them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from nlp.errors import InvalidInputError, TaxonomyError


class ProblemLevel(StrEnum):
    error = "error"
    warning = "warning"


@dataclass(frozen=True, kw_only=True)
class Problem:
    """One finding: ``path`` like ``topics[3].seeds.zh`` ('' for the whole document),
    ``line`` 1-based where the source was YAML text."""

    path: str
    message: str
    level: ProblemLevel = ProblemLevel.error
    line: int | None = None

    def __str__(self) -> str:
        where = self.path or "<document>"
        if self.line is not None:
            where = f"line {self.line}, {where}"
        tag = "" if self.level is ProblemLevel.error else "warning: "
        return f"{where}: {tag}{self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "level": self.level.value,
            "message": self.message,
        }


def raise_for_problems(
    problems: Sequence[Problem],
    *,
    origin: str = "taxonomy",
    error: type[InvalidInputError] = TaxonomyError,
) -> None:
    """Raise ``error`` (:class:`TaxonomyError` by default) when ``problems`` hold an error
    (warnings alone pass)."""
    errors = [p for p in problems if p.level is ProblemLevel.error]
    if not errors:
        return
    shown = "; ".join(str(p) for p in errors[:3])
    more = f"; and {len(errors) - 3} more" if len(errors) > 3 else ""
    noun = "problem" if len(errors) == 1 else "problems"
    raise error(
        f"{origin} is invalid, {len(errors)} {noun}: {shown}{more}",
        details=[p.as_dict() for p in problems],
    )


def attach_lines(problems: list[Problem], lines: dict[str, int]) -> list[Problem]:
    """``problems`` with the line of their path (or of its nearest indexed parent) filled in."""
    out = []
    for p in problems:
        if p.line is None and lines:
            path = p.path
            while path not in lines and path:
                cut = max(path.rfind("."), path.rfind("["))
                path = path[:cut] if cut > 0 else ""
            p = Problem(path=p.path, message=p.message, level=p.level, line=lines.get(path))
        out.append(p)
    return out


def join_path(prefix: str, loc: Sequence[Any]) -> str:
    """A pydantic error location under ``prefix`` as a file path like ``topics[3].seeds.zh``."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def short_repr(value: Any) -> str:
    """``repr(value)`` cut to 60 characters, for messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
