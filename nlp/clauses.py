"""Split a verbatim into clauses, the unit that usually carries one aspect and one opinion.

Boundaries (the boundary punctuation belongs to no clause):

* sentence punctuation in both widths: ``。！？!?；;``, the ellipsis ``…``, line breaks, and ``.``
  when followed by whitespace, a Chinese character or the end (so "4.5" and "U.S." hold);
* the Chinese comma ``，`` and the enumeration comma ``、``, and ``,`` next to a Chinese character:
  Chinese reviews list aspects comma by comma ("味道不错，送餐很快，包装也好");
* the English ``,`` only before a contrast marker or ``and``/``so`` ("great food, but slow",
  "clean room, and the staff were friendly"): English commas also separate list items and
  subordinate phrases, where a split would cut one opinion in two;
* contrast markers, kept at the start of the second clause: 但是, 但 (not in 不但 or 但愿), 不过,
  可是, 然而, 只是, 只不过, 虽然, 虽说, 尽管 and, in English, but, however, although, though,
  even though, yet (not after "not"), whereas;
* 却 follows the subject of its clause ("菜很好吃配送却很慢"), so the split goes two characters
  before it, the usual length of the subject noun (配送, 服务, 质量), when at least two characters
  remain in front.

Clauses are stripped of surrounding whitespace, and stretches holding only punctuation are
dropped, so there are no empty clauses. Offsets index the string given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nlp.errors import InvalidInputError

__all__ = ["Clause", "split_clauses"]


@dataclass(frozen=True, slots=True)
class Clause:
    """A clause and its ``[start, end)`` offsets in the text it came from."""

    text: str
    start: int
    end: int


_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_EN_MARKERS = r"but|however|although|even though|though|yet|whereas"
# Each alternative matches the boundary itself (removed) or an empty position before a marker.
_BOUNDARY = re.compile(
    "|".join(
        [
            r"[。！？!?；;…\n\r\uff0c\u3001\uff61]+",
            rf"\.(?=\s|$|[{_HAN}])",
            rf"(?<=[{_HAN}]),|,(?=\s*[{_HAN}])",
            rf",(?=\s*(?:{_EN_MARKERS}|and|so)\b)",
        ]
    ),
    re.IGNORECASE,
)
_ZH_MARKER = re.compile(
    r"只不过|但是|(?<![不非])但(?![愿凡])|不过(?!来|去)|可是|然而|只是|虽然|虽说|尽管"
)
_EN_MARKER = re.compile(rf"(?<![\w'’-])(?<!not )(?:{_EN_MARKERS})\b(?=\s*\w)", re.IGNORECASE)
_COMMA = re.compile(r",")
_CONCESSIVE_START = re.compile(r"(?:although|even though|though|whereas|while)\b", re.IGNORECASE)
_QUE = re.compile(f"(?<=[{_HAN}])却")
_CONTENT = re.compile(r"[^\W_]|[^\w\s\u2000-\u206f\u3000-\u303f\uff00-\uff65!-/:-@\[-`{-~]")


def _cut_points(text: str) -> list[tuple[int, int, bool]]:
    """``(start, end, conditional)`` of each boundary: a removed stretch or an empty cut before a
    marker. Conditional cuts are the other English commas, which split only a clause opened by a
    concessive marker ("Although the food was good, the service was terrible")."""
    cuts = [(*m.span(), False) for m in _BOUNDARY.finditer(text)]
    cuts += [(m.start(), m.start(), False) for m in _ZH_MARKER.finditer(text)]
    cuts += [(m.start(), m.start(), False) for m in _EN_MARKER.finditer(text)]
    cuts += [(*m.span(), True) for m in _COMMA.finditer(text)]
    for m in _QUE.finditer(text):
        cut = m.start() - 2
        if cut >= 2 and re.fullmatch(f"[{_HAN}]{{4}}", text[cut - 2 : m.start()]):
            cuts.append((cut, cut, False))
    return sorted(cuts)


def split_clauses(text: str) -> list[Clause]:
    """Clauses of ``text`` in order, with offsets into ``text``."""
    if not isinstance(text, str):
        raise InvalidInputError(f"split_clauses() expects a str, got {type(text).__name__}")
    clauses: list[Clause] = []
    pos = 0
    for start, end, conditional in [*_cut_points(text), (len(text), len(text), False)]:
        if start < pos:  # a marker inside a removed stretch, or overlapping cuts
            pos = max(pos, end)
            continue
        if conditional and not _CONCESSIVE_START.match(text[pos:start].lstrip()):
            continue
        _append(clauses, text, pos, start)
        pos = end
    return clauses


def _append(clauses: list[Clause], text: str, start: int, end: int) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start and _CONTENT.search(text, start, end):
        clauses.append(Clause(text[start:end], start, end))
