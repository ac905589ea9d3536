"""Severity cues in normalised text, with negation handled clause by clause.

The text is split with :func:`nlp.clauses.split_clauses`, so a negation never reaches past a
clause boundary ("我并没有受伤，但是外卖里吃出虫子了": the 虫子 clause counts). Within a clause:

* **Chinese** cues match as substrings of the normalised text (Traditional already converted to
  Simplified by ``nlp.prepare``). A cue is negated when a negator (没有, 不会, 并没有...) ends at
  most ``window`` characters before it with no breaker (就, 结果, 而是, 要...) in between, or when
  a trailing negator closes the clause ("过敏倒是没有"). Look-alike phrases listed as exceptions
  (不小心, 不舒服, 没想到, 无良...) are blanked out before the search.
* **English** cues match whole words, case-insensitively, with regular inflections of the last
  word (injure -> injured). A cue is negated when a negator word (no, not, never, nobody, any
  word ending in n't...) stands at most ``window`` words before it with no breaker word (and,
  because, I, we...) and no comma, semicolon or colon in between; exceptions ("can't believe", "not only") are blanked out first.

"不是A，而是B" negates A only: the comma ends the clause, and without a comma 而是 is a breaker.
Known limits: double negatives ("不是没有过敏") read as negated, and negation after an English
cue ("allergic reaction? no") is not seen.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from models.triage.policy import CueCategory, Negation, NegationRules
from nlp.clauses import split_clauses

__all__ = ["CueHit", "CueMatcher"]

_ASCII_WORD = re.compile(r"[0-9A-Za-z]")
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_EN_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_EN_PAUSE = re.compile(r"[,;:]")
_ZH_GAP = ".{0,6}?"
_EN_GAP = r"(?:\s+[\w'-]+){0,4}\s+"
_MIN_INFLECT = 5
# Prefilter (see ``_Prefilter``): a literal of ASCII and Han characters only is compared exactly
# against a clause with ASCII letters lowered; a clause holding a non-ASCII character that
# IGNORECASE matches an ASCII letter (the Kelvin sign, long s, dotted/dotless i) is searched in full.
_PLAIN_LITERAL = re.compile("[\x01-\x7f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_ASCII_FOLD_RISK = re.compile(r"(?![\x00-\x7f])[a-z]", re.IGNORECASE)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True, slots=True, kw_only=True)
class CueHit:
    """One cue found: its ``category``, the policy ``cue`` that matched, the matched ``text`` and
    its ``[start, end)`` in the text searched; ``negator`` is set when ``negated``."""

    category: str
    cue: str
    text: str
    start: int
    end: int
    lang: str
    negated: bool = False
    negator: str | None = None


def _forms(word: str) -> set[str]:
    """``word`` and its regular inflections (s, es, ed, ing; e-drop; y -> ies/ied)."""
    forms = {word, word + "s", word + "es", word + "ed", word + "ing"}
    if word.endswith("e"):
        forms |= {word + "d", word[:-1] + "ing"}
    if word.endswith("y"):
        forms |= {word[:-1] + "ies", word[:-1] + "ied"}
    return forms


def _inflections(word: str) -> str:
    """A regex for ``word`` and its regular inflections."""
    return "(?:" + "|".join(re.escape(f) for f in sorted(_forms(word), key=len, reverse=True)) + ")"


def _en_words(cue: str, *, inflect: bool = True) -> list[tuple[str, bool]]:
    """The words of an English cue, each with whether it is matched inflected."""
    words = cue.lower().replace("’", "'").split()
    last = len(words) - 1
    return [
        (w, inflect and i == last and w.isalpha() and len(w) >= _MIN_INFLECT) for i, w in enumerate(words)
    ]


def en_cue_pattern(cue: str, *, inflect: bool = True) -> str:
    """Regex for an English cue: whole words, ``*`` a gap of up to four words, the last word of
    five letters or more inflected (with ``inflect``), and spaces or hyphens between words."""
    words = _en_words(cue, inflect=inflect)
    parts: list[str] = []
    for i, (word, inflected) in enumerate(words):
        if word == "*":
            parts.append(_EN_GAP)
            continue
        parts.append(_inflections(word) if inflected else re.escape(word))
        if i < len(words) - 1 and words[i + 1][0] != "*":
            parts.append(r"[\s-]+")
    return r"(?<![\w'])" + "".join(parts) + r"(?![\w])"


def _required_literal(cue: str, lang: str) -> str | None:
    """The longest piece of text every match of ``cue`` contains, ASCII letters lowered; None when
    the cue has no such piece of ASCII and Han characters only (its regex then always runs)."""
    if lang == "zh":
        pieces = [part.strip() for part in cue.split("*")]
    else:
        pieces = [
            os.path.commonprefix(sorted(_forms(w))) if inflected else w
            for w, inflected in _en_words(cue) if w != "*"
        ]
    pieces = [p.translate(_ASCII_LOWER) for p in pieces if p and _PLAIN_LITERAL.fullmatch(p)]
    return max(pieces, key=len) if pieces else None


def zh_cue_pattern(cue: str) -> str:
    """Regex for a Chinese cue: a substring, ``*`` a gap of up to six characters; a cue that
    starts or ends with a Latin letter or digit ("12315") does not match inside a longer one."""
    body = _ZH_GAP.join(re.escape(part.strip()) for part in cue.split("*"))
    head = r"(?<![0-9A-Za-z])" if _ASCII_WORD.match(cue[0]) else ""
    tail = r"(?![0-9A-Za-z])" if _ASCII_WORD.match(cue[-1]) else ""
    return head + body + tail


def _alternation(patterns: Sequence[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"({p})" for p in patterns), re.IGNORECASE)


def _phrases(phrases: Sequence[str], *, words: bool) -> re.Pattern[str] | None:
    """Longest-first alternation of literal phrases (whole words for English)."""
    if not phrases:
        return None
    items = sorted({p.lower() for p in phrases}, key=len, reverse=True)
    body = "|".join(re.escape(p) for p in items)
    return re.compile(rf"(?<![\w'])(?:{body})(?![\w])" if words else f"(?:{body})")


def _blank(text: str, pattern: re.Pattern[str] | None, fill: str) -> str:
    """``text`` with every match of ``pattern`` overwritten by ``fill`` (offsets unchanged)."""
    if pattern is None:
        return text
    return pattern.sub(lambda m: fill * len(m.group()), text)


class _Category:
    """The compiled cue lists of one category: one alternation per language, longest first."""

    def __init__(self, name: str, category: CueCategory) -> None:
        self.name = name
        self.zh_cues = sorted(set(category.zh), key=len, reverse=True)
        self.en_cues = sorted(set(category.en), key=len, reverse=True)
        self.zh = _alternation([zh_cue_pattern(c) for c in self.zh_cues])
        self.en = _alternation([en_cue_pattern(c) for c in self.en_cues])
        self.exclude = _alternation(
            [
                zh_cue_pattern(p) if _HAN.search(p) else en_cue_pattern(p, inflect=False)
                for p in sorted(set(category.exclude), key=len, reverse=True)
            ]
        )


class _Prefilter:
    """Which of the categories' alternations (``(index, lang)``) can match in a clause at all.

    Every match of a cue contains a literal piece of it (``_required_literal``). One regex of all
    those literals, with no groups or flags, lets ``re`` skip from one possible first character to
    the next, so a clause is scanned once rather than once per alternation; an alternation runs
    only when one of its literals is in the clause (always, when a cue of it has no such piece).
    Skipped alternations could not have matched, so the hits are the same as searching them all.
    """

    def __init__(self, categories: Sequence[_Category]) -> None:
        owners: dict[str, set[tuple[int, str]]] = {}
        always: set[tuple[int, str]] = set()
        every: set[tuple[int, str]] = set()
        for i, cat in enumerate(categories):
            for lang, pattern, cues in (("zh", cat.zh, cat.zh_cues), ("en", cat.en, cat.en_cues)):
                if pattern is None:
                    continue
                every.add((i, lang))
                literals = [_required_literal(c, lang) for c in cues]
                if None in literals:
                    always.add((i, lang))
                    continue
                for literal in literals:
                    owners.setdefault(literal, set()).add((i, lang))
        self.always, self.every = frozenset(always), frozenset(every)
        # where literal L is the longest to start, every literal that is a prefix of L starts too
        self.owners = {
            lit: frozenset().union(*(owners.get(lit[:k], ()) for k in range(1, len(lit) + 1)))
            for lit in owners
        }
        body = "|".join(re.escape(lit) for lit in sorted(owners, key=len, reverse=True))
        self.pattern = re.compile(body) if owners else None

    def candidates(self, clause: str) -> frozenset[tuple[int, str]]:
        if self.pattern is None:
            return self.always
        if _ASCII_FOLD_RISK.search(clause):
            return self.every
        probe = clause.translate(_ASCII_LOWER)
        found = self.always
        m = self.pattern.search(probe)
        while m is not None:
            found = found | self.owners[m.group()]
            m = self.pattern.search(probe, m.start() + 1)
        return found


class CueMatcher:
    """Finds the cues of a policy's categories in normalised text, marking negated ones."""

    def __init__(self, cues: Mapping[str, CueCategory], negation: Negation) -> None:
        self._categories = [_Category(name, cat) for name, cat in cues.items()]
        self._prefilter = _Prefilter(self._categories)
        self._zh = _NegationZh(negation.zh)
        self._en = _NegationEn(negation.en)

    def find(self, text: str, *, include_negated: bool = False) -> list[CueHit]:
        """Cue hits in ``text`` in order of position; negated ones only with ``include_negated``.

        Within a category, overlapping matches keep the longest ("caught fire" over "fire")."""
        if not isinstance(text, str):
            raise TypeError(f"find() expects a str, got {type(text).__name__}")
        text = text.replace("’", "'")
        hits: list[CueHit] = []
        for clause in split_clauses(text):
            todo = self._prefilter.candidates(clause.text)
            if not todo:
                continue
            masked: dict[str, str] = {}
            for i, cat in enumerate(self._categories):
                if (i, "zh") not in todo and (i, "en") not in todo:
                    continue
                searched = _blank(clause.text, cat.exclude, "\x00")
                for lang, pattern, cues in (
                    ("zh", cat.zh, cat.zh_cues),
                    ("en", cat.en, cat.en_cues),
                ):
                    if pattern is None or (i, lang) not in todo:
                        continue
                    for m in pattern.finditer(searched):
                        if not masked:
                            masked = self._masks(clause.text)
                        s, e = m.span()
                        if lang == "zh":
                            negator = self._zh.negator(masked["zh"], s, e)
                        else:
                            negator = self._en.negator(masked["en"], s)
                        hits.append(
                            CueHit(
                                category=cat.name,
                                cue=cues[m.lastindex - 1],
                                text=m.group(),
                                start=clause.start + s,
                                end=clause.start + e,
                                lang=lang,
                                negated=negator is not None,
                                negator=negator,
                            )
                        )
        hits = _drop_overlaps(hits)
        return hits if include_negated else [h for h in hits if not h.negated]

    def _masks(self, clause: str) -> dict[str, str]:
        """The clause lowered, with each language's negation exceptions blanked out."""
        lower = clause.lower()
        if len(lower) != len(clause):  # a few letters change length when lowered
            lower = clause
        return {"zh": self._zh.mask(lower), "en": self._en.mask(lower)}


def _drop_overlaps(hits: list[CueHit]) -> list[CueHit]:
    """Within a category, keep the longest of overlapping hits (then the earliest)."""
    kept: list[CueHit] = []
    for hit in sorted(hits, key=lambda h: (h.start - h.end, h.start)):
        if not any(
            k.category == hit.category and k.start < hit.end and hit.start < k.end for k in kept
        ):
            kept.append(hit)
    return sorted(kept, key=lambda h: (h.start, h.category))


class _NegationZh:
    def __init__(self, rules: NegationRules) -> None:
        self.window = rules.window
        self.exceptions = _phrases(rules.exceptions, words=False)
        self.negators = _phrases(rules.negators, words=False)
        self.breakers = _phrases(rules.breakers, words=False)
        after = _phrases(rules.after, words=False)
        self.after = (
            None
            if after is None
            else re.compile(rf"^[了倒是就还也都\s]{{0,3}}({after.pattern})[了吧啊呢的\s]*$")
        )

    def mask(self, clause: str) -> str:
        return _blank(clause, self.exceptions, "\x00")

    def negator(self, masked: str, start: int, end: int) -> str | None:
        if self.negators is not None:
            last = None
            for m in self.negators.finditer(masked, 0, start):
                last = m
            if (
                last is not None
                and start - last.end() <= self.window
                and (self.breakers is None or not self.breakers.search(masked, last.end(), start))
            ):
                return last.group()
        if self.after is not None:
            m = self.after.match(masked[end:])
            if m:
                return m.group(1)
        return None


class _NegationEn:
    def __init__(self, rules: NegationRules) -> None:
        self.window = rules.window
        words = {w.lower() for w in rules.negators}
        self.suffixes = tuple(w for w in words if w.startswith(("n't", "'")))
        self.negators = words - set(self.suffixes)
        self.exceptions = _phrases(rules.exceptions, words=True)
        self.breakers = {w.lower() for w in rules.breakers}

    def mask(self, clause: str) -> str:
        return _blank(clause, self.exceptions, " ")

    def negator(self, masked: str, start: int) -> str | None:
        tokens = list(_EN_TOKEN.finditer(masked, 0, start))
        for between, m in enumerate(reversed(tokens)):
            word = m.group()
            if between > self.window or _EN_PAUSE.search(masked, m.end(), start):
                break  # too far, or a comma between: "never again, my lawyer will call"
            if word in self.negators or (self.suffixes and word.endswith(self.suffixes)):
                return word
            if word in self.breakers:
                break
        return None
