"""A problem found in a taxonomy, and the error raised for them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from nlp.errors import TaxonomyError


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


def raise_for_problems(problems: Sequence[Problem], *, origin: str = "taxonomy") -> None:
    """Raise :class:`TaxonomyError` when ``problems`` hold an error (warnings alone pass)."""
    errors = [p for p in problems if p.level is ProblemLevel.error]
    if not errors:
        return
    shown = "; ".join(str(p) for p in errors[:3])
    more = f"; and {len(errors) - 3} more" if len(errors) > 3 else ""
    noun = "problem" if len(errors) == 1 else "problems"
    raise TaxonomyError(
        f"{origin} is invalid, {len(errors)} {noun}: {shown}{more}",
        details=[p.as_dict() for p in problems],
    )
