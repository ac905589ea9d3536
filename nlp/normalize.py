"""Text normalisation for analysis, with an exact map back to the original string.

``normalize(text)`` applies, in order:

1. **Surrogates**: a valid surrogate pair left in a ``str`` (text decoded with the wrong codec or
   from broken JSON) is joined into its character; lone surrogates such as ``"\\ud800"`` are removed.
2. **Mojibake**: runs of Latin-1/cp1252 characters that are UTF-8 read with the wrong codec
   (``"cafÃ©"``, ``"é”€å”®"``) are repaired with ``ftfy.fix_encoding``, run by run, so the offsets
   stay exact. Genuine accented text is left alone.
3. **Control characters** (Unicode ``Cc`` except ``\\n`` and ``\\t``) and invisible format marks
   (zero-width space, BOM, bidi marks; the zero-width joiner of emoji is kept) are removed.
   ``\\r\\n`` and ``\\r`` become ``\\n``.
4. **HTML remnants**: tags are removed (block tags such as ``<br>``, ``</p>``, ``<li>`` become a
   line break), comments are removed, and entities (``&amp;``, ``&nbsp;``, ``&#39;``) are decoded.
5. **URLs** (``http(s)://…``, ``www.…``) become the placeholder ``[URL]``: the fact that a
   customer sent a link can matter, its characters never do, and the placeholder maps back to the
   whole original URL.
6. **Full-width to half-width**: full-width Latin letters, digits and symbols (``ＡＢＣ１２３＃％``)
   and the ideographic space become ASCII. Chinese sentence punctuation is deliberately kept
   full-width (``，。！？；：（）、“”``): it is the standard form in Chinese text, the form the
   Chinese data sets and models see, and clause splitting treats both widths alike.
7. **Traditional to Simplified Chinese** with OpenCC ``t2s``, per run of Han characters. When a
   phrase conversion changes a run's length, that run is converted character by character so that
   every character keeps its own offset.
8. **Repeated punctuation**: a run of the same punctuation mark (``!!!!!``, ``。。。。``, ``~~~``)
   becomes one mark, and a mixed run of ``!``/``?`` (full or half width) becomes its first mark.
9. **Whitespace**: runs of spaces and tabs become one space, runs containing a line break become
   one ``\\n``; leading and trailing whitespace is removed.

The original string is kept untouched in ``Normalized.original`` for display and evidence offsets.
All steps are linear regular-expression passes, so megabytes of text are handled without blow-up.
"""

from __future__ import annotations

import functools
import html
import re
import threading
from dataclasses import dataclass
from typing import Any

from nlp._offsets import Tracked, map_span
from nlp.errors import InvalidInputError

__all__ = ["Normalized", "Normalizer", "decode_text", "normalize"]


@dataclass(frozen=True, slots=True)
class Normalized:
    """Normalised text plus, for each of its characters, the original span it came from.

    ``offsets[i]`` is the index in ``original`` of normalised character ``i``; ``ends[i]`` is the
    end (exclusive) of the original stretch it stands for (wider than one character where several
    original characters collapsed into one, e.g. ``&amp;`` into ``&``).
    """

    text: str
    original: str
    offsets: tuple[int, ...]
    ends: tuple[int, ...]

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map the normalised span ``[start, end)`` to ``(start, end)`` indices of ``original``."""
        return map_span(self.offsets, self.ends, len(self.original), start, end)

    def original_span(self, start: int, end: int) -> str:
        """The original substring behind the normalised span ``[start, end)``."""
        a, b = self.to_original(start, end)
        return self.original[a:b]


_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Characters UTF-8 bytes turn into when read as Latin-1/cp1252: C1 controls, Latin-1 letters and
# symbols, and the cp1252 punctuation in 0x80-0x9F.
_MOJIBAKE_RUN = re.compile(
    "[\u0080-\u00ff\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
    "\u2013\u2014\u2018-\u201a\u201c-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]{2,}"
)
_NEWLINE = re.compile(r"\r\n?")
_CONTROL = re.compile(
    "[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b\u200c\u200e\u200f\u202a-\u202e"
    "\u2060-\u2064\ufeff\ufff9-\ufffb]"
)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_HTML_TAG = re.compile(r"</?([A-Za-z][A-Za-z0-9]{0,15})\b(?:[^<>]{0,500})?/?>")
_BLOCK_TAGS = frozenset(
    "br p div li ul ol tr td th table h1 h2 h3 h4 h5 h6 blockquote section article hr".split()
)
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_URL = re.compile(
    r"(?<![A-Za-z0-9.])(?:(?:https?|ftp)://|www\.)[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*[A-Za-z0-9\-_~/#=%&+@]",
    re.IGNORECASE,
)
_FULLWIDTH = re.compile("[\u3000\uff02-\uff07\uff0a\uff0b\uff0d-\uff19\uff1c-\uff1e\uff20-\uff5e]")
_HAN_RUN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_PUNCT = (
    "!-/:-@\\\\^-`{-~"  # ASCII punctuation and symbols except the square brackets
    "\u2010-\u2027\u2030-\u205e\u3001-\u3003\u3008-\u3011\u3014-\u301f"
    "\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65"
)
# A mixed run of !/? (either width) keeps its first mark; a run of one mark keeps one.
_REPEATED_PUNCT = re.compile(f"([!?\uff01\uff1f])[!?\uff01\uff1f]+|([{_PUNCT}])\\2+")
_WHITESPACE = re.compile(r"\s+")
_EDGE_WHITESPACE = re.compile(r"^\s+|\s+$")


def _join_pair(match: re.Match[str]) -> str:
    return match.group().encode("utf-16", "surrogatepass").decode("utf-16")


def _fix_mojibake(match: re.Match[str]) -> str | None:
    import ftfy

    fixed = ftfy.fix_encoding(match.group())
    return fixed if fixed != match.group() else None


def _html_tag(match: re.Match[str]) -> str:
    return "\n" if match.group(1).lower() in _BLOCK_TAGS else ""


def _entity(match: re.Match[str]) -> str | None:
    decoded = html.unescape(match.group())
    return decoded if decoded != match.group() else None


def _half_width(match: re.Match[str]) -> str:
    ch = match.group()
    return " " if ch == "\u3000" else chr(ord(ch) - 0xFEE0)


def _collapse_punct(match: re.Match[str]) -> str:
    return match.group()[0]


def _collapse_space(match: re.Match[str]) -> str:
    return "\n" if "\n" in match.group() else " "


class Normalizer:
    """Normalises text (see the module docstring); holds the lazily built OpenCC converter.

    ``traditional_to_simplified=False`` skips step 7 (e.g. for a display-only cleanup).
    """

    def __init__(self, *, traditional_to_simplified: bool = True) -> None:
        self.traditional_to_simplified = traditional_to_simplified
        self._converter: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"traditional_to_simplified": self.traditional_to_simplified}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def _opencc(self) -> Any:
        if self._converter is None:
            with self._lock:
                if self._converter is None:
                    import opencc

                    self._converter = opencc.OpenCC("t2s")
        return self._converter

    def _to_simplified(self, tracked: Tracked) -> Tracked:
        converter = self._opencc()
        if not _HAN_RUN.search(tracked.text) or converter.convert(tracked.text) == tracked.text:
            return tracked

        def convert_run(match: re.Match[str]) -> str:
            run = match.group()
            converted = converter.convert(run)
            if len(converted) == len(run):
                return converted
            # A phrase rule changed the length: fall back to per-character conversion, which
            # keeps each character's offset. Characters whose own conversion is longer than one
            # character are kept as they are.
            chars = (converter.convert(ch) for ch in run)
            return "".join(c if len(c) == 1 else ch for c, ch in zip(chars, run, strict=True))

        return tracked.sub(_HAN_RUN, convert_run, aligned=True)

    def __call__(self, text: str) -> Normalized:
        """Normalise ``text`` (a ``str`` of any length); never raises for any ``str``."""
        if not isinstance(text, str):
            raise InvalidInputError(
                f"normalize() expects a str, got {type(text).__name__}; "
                "decode bytes first with nlp.normalize.decode_text()"
            )
        t = Tracked.identity(text)
        t = t.sub(_SURROGATE_PAIR, _join_pair)
        t = t.sub(_LONE_SURROGATE, lambda m: "")
        t = t.sub(_MOJIBAKE_RUN, _fix_mojibake)
        t = t.sub(_NEWLINE, lambda m: "\n")
        t = t.sub(_CONTROL, lambda m: "")
        t = t.sub(_HTML_COMMENT, lambda m: "")
        t = t.sub(_HTML_TAG, _html_tag)
        t = t.sub(_ENTITY, _entity)
        t = t.sub(_CONTROL, lambda m: "")  # entities may decode to control characters
        t = t.sub(_URL, lambda m: "[URL]")
        t = t.sub(_FULLWIDTH, _half_width, aligned=True)
        if self.traditional_to_simplified:
            t = self._to_simplified(t)
        t = t.sub(_REPEATED_PUNCT, _collapse_punct)
        t = t.sub(_WHITESPACE, _collapse_space)
        t = t.sub(_EDGE_WHITESPACE, lambda m: "")
        return Normalized(t.text, text, tuple(t.starts), tuple(t.ends))


@functools.lru_cache(maxsize=1)
def _default_normalizer() -> Normalizer:
    return Normalizer()


def normalize(text: str) -> Normalized:
    """Normalise ``text`` with the shared default :class:`Normalizer`."""
    return _default_normalizer()(text)


def decode_text(data: bytes) -> str:
    """Decode raw bytes: UTF-8 (with or without BOM), else GB18030 (which covers GBK/GB2312).

    Raises ``InvalidInputError`` when neither decodes the bytes.
    """
    if not isinstance(data, bytes | bytearray):
        raise InvalidInputError(f"decode_text() expects bytes, got {type(data).__name__}")
    for codec in ("utf-8-sig", "gb18030"):
        try:
            return bytes(data).decode(codec)
        except UnicodeDecodeError:
            continue
    raise InvalidInputError(
        "the bytes are neither UTF-8 nor GB18030; re-save the text as UTF-8 and try again"
    )
