"""Offset-tracking string rewriting shared by normalisation, PII masking and ``prepare``.

Every rewritten character keeps the half-open span ``[starts[i], ends[i])`` of the source string it
came from. Spans never move backwards, so a span of the rewritten text maps back to one contiguous
span of the source: ``(starts[first], ends[last])``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Replacer = Callable[[re.Match[str]], "str | None"]


@dataclass(slots=True)
class Tracked:
    """A string under rewriting with, per character, the source span it came from."""

    text: str
    starts: list[int]
    ends: list[int]

    @classmethod
    def identity(cls, text: str) -> Tracked:
        n = len(text)
        return cls(text, list(range(n)), list(range(1, n + 1)))

    def sub(self, pattern: re.Pattern[str], repl: Replacer, *, aligned: bool = False) -> Tracked:
        """Replace each match of ``pattern`` by ``repl(match)`` (``None`` keeps the match).

        With ``aligned=True`` a replacement of the same length as its match maps character by
        character (for one-to-one rewrites such as full-width to half-width); otherwise every
        replacement character maps to the whole source span of the match.
        """
        text, starts, ends = self.text, self.starts, self.ends
        pieces: list[str] = []
        new_starts: list[int] = []
        new_ends: list[int] = []
        pos = 0
        changed = False
        for match in pattern.finditer(text):
            a, b = match.span()
            if a == b:
                continue
            new = repl(match)
            if new is None or new == match.group():
                continue
            changed = True
            pieces.append(text[pos:a])
            new_starts.extend(starts[pos:a])
            new_ends.extend(ends[pos:a])
            if aligned and len(new) == b - a:
                new_starts.extend(starts[a:b])
                new_ends.extend(ends[a:b])
            elif new:
                new_starts.extend([starts[a]] * len(new))
                new_ends.extend([ends[b - 1]] * len(new))
            pieces.append(new)
            pos = b
        if not changed:
            return self
        pieces.append(text[pos:])
        new_starts.extend(starts[pos:])
        new_ends.extend(ends[pos:])
        return Tracked("".join(pieces), new_starts, new_ends)


def map_span(
    starts: Sequence[int], ends: Sequence[int], source_len: int, start: int, end: int
) -> tuple[int, int]:
    """Map the half-open span ``[start, end)`` of a rewritten text to its source span.

    An empty span maps to an empty span at the source position of ``start``. Raises
    ``IndexError`` for spans outside ``0 <= start <= end <= len(text)``.
    """
    n = len(starts)
    if not (0 <= start <= end <= n):
        raise IndexError(f"span ({start}, {end}) is outside the text of length {n}")
    if start == end:
        pos = starts[start] if start < n else source_len
        return pos, pos
    return starts[start], ends[end - 1]
