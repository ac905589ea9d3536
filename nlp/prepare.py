"""``prepare``: validation -> normalisation -> PII masking -> language, with offsets to the original.

``PreparedText.text`` is what later stages analyse and may store; ``original`` is the caller's
string, kept for display. ``to_original(start, end)`` maps any span of ``text`` to the original
(Python string indices); a span touching a placeholder such as ``[PHONE]`` maps to the whole
original phone number.

Rules for input (the record contract: text is 1..10,000 characters after trimming):

* ``None``, non-strings, empty and whitespace-only text raise ``InvalidInputError``;
* ``bytes`` raise ``InvalidInputError`` pointing at :func:`nlp.normalize.decode_text` (the
  caller knows the encoding better than a guess does);
* more than ``max_chars`` (10,000) characters after trimming raise ``InvalidInputError``, checked
  before any work so a megabyte costs nothing;
* lone surrogates and control characters are removed, mojibake is repaired (see ``normalize``); a
  text left with nothing after that (e.g. only control characters or only HTML tags) raises
  ``InvalidInputError``.

Callers batching records catch ``InvalidInputError`` per record and report it with the record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nlp.errors import InvalidInputError
from nlp.lang import Lang, detect_language
from nlp.normalize import normalize
from nlp.pii import PiiKind, PiiSpan, mask_pii

__all__ = ["MAX_CHARS", "PreparedText", "prepare", "validate_text"]

MAX_CHARS = 10_000
_PLACEHOLDERS = re.compile(r"\[(?:URL|EMAIL|PHONE|ID|CARD|ORDER)\]")


@dataclass(frozen=True, slots=True)
class PreparedText:
    """A verbatim ready for analysis; ``pii`` spans are in ``original`` coordinates."""

    original: str
    text: str
    lang: Lang
    lang_detected: bool
    pii: tuple[PiiSpan, ...]
    offsets: tuple[int, ...]
    ends: tuple[int, ...]

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map the span ``[start, end)`` of ``text`` to ``(start, end)`` in ``original``."""
        from nlp._offsets import map_span

        return map_span(self.offsets, self.ends, len(self.original), start, end)

    def original_span(self, start: int, end: int) -> str:
        """The original substring behind the span ``[start, end)`` of ``text``."""
        a, b = self.to_original(start, end)
        return self.original[a:b]

    @property
    def pii_kinds(self) -> frozenset[PiiKind]:
        return frozenset(span.kind for span in self.pii)


def validate_text(text: object, *, max_chars: int = MAX_CHARS) -> str:
    """Return ``text`` if it is a usable verbatim, else raise ``InvalidInputError`` saying why."""
    if text is None:
        raise InvalidInputError("text is missing (got None); give the verbatim as a string")
    if isinstance(text, bytes | bytearray):
        raise InvalidInputError(
            "text is bytes, expected str; decode it first, e.g. with "
            "nlp.normalize.decode_text(data) (UTF-8, then GB18030)"
        )
    if not isinstance(text, str):
        raise InvalidInputError(f"text must be a string, got {type(text).__name__}")
    length = len(text.strip())
    if length == 0:
        raise InvalidInputError("text is empty or only whitespace; give at least one character")
    if length > max_chars:
        raise InvalidInputError(
            f"text has {length:,} characters after trimming, more than the limit of "
            f"{max_chars:,}; split it into several records"
        )
    return text


def prepare(
    text: str, *, lang: Lang | str | None = None, max_chars: int = MAX_CHARS
) -> PreparedText:
    """Validate, normalise, mask PII and detect the language of one verbatim.

    ``lang`` (``zh``, ``en``, ``mixed``, ``other``) skips detection, e.g. when a record says it.
    """
    validate_text(text, max_chars=max_chars)
    given = Lang.parse(lang) if lang is not None else None
    normalized = normalize(text)
    if not normalized.text:
        raise InvalidInputError(
            "text has no content left after removing control characters, markup and invalid "
            "characters; give readable text"
        )
    masked = mask_pii(normalized.text)
    offsets = tuple(normalized.offsets[i] for i in masked.offsets)
    ends = tuple(normalized.ends[i - 1] for i in masked.ends)
    pii = tuple(
        PiiSpan(span.kind, *normalized.to_original(span.start, span.end)) for span in masked.spans
    )
    detected = given is None
    language = given if given is not None else detect_language(_PLACEHOLDERS.sub(" ", masked.text))
    return PreparedText(
        original=text,
        text=masked.text,
        lang=language,
        lang_detected=detected,
        pii=pii,
        offsets=offsets,
        ends=ends,
    )
