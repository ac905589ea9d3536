"""Language of a verbatim: ``zh``, ``en``, ``mixed`` or ``other``.

The decision combines script counting with a statistical detector:

* Han characters and Latin *words* are counted (kana and Hangul flag Japanese and Korean, other
  letters such as Cyrillic, Arabic or Thai flag other languages). Text with no letters at all
  (emoji, punctuation, digits) is ``other``.
* Han only, Traditional or Simplified: ``zh``.
* Latin only: prose where at least a quarter of four or more words are English function words is
  ``en`` at once; otherwise `lingua <https://github.com/pemistahl/lingua-py>`_ picks among a few Latin-script
  languages. Its confidence for English is multiplied by a prior (English and Chinese are what
  this product expects), which keeps one-word replies like "ok" or "terrible" English while
  "très bien" or "gracias" stay ``other``.
* Han and Latin together: Latin words without English function words are brand or product names
  ("iPhone屏幕碎了" is ``zh``). When the Latin part reads as English prose (it holds function
  words such as "the", "was", "so") and each script carries at least ``mixed_share`` of the
  content (a Chinese character weighs 1/1.5 of an English word), the text is ``mixed``.
"""

from __future__ import annotations

import functools
import re
import threading
from enum import StrEnum
from typing import Any

from nlp.errors import InvalidInputError

__all__ = ["Lang", "LanguageDetector", "detect_language"]


class Lang(StrEnum):
    """Language of a verbatim."""

    zh = "zh"
    en = "en"
    mixed = "mixed"
    other = "other"

    @classmethod
    def parse(cls, value: Lang | str) -> Lang:
        """``Lang(value)``, raising ``InvalidInputError`` that lists the choices."""
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(v.value for v in cls)
            raise InvalidInputError(f"lang must be one of {choices}, got {value!r}") from None


_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
_KANA = re.compile("[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9d]")
_HANGUL = re.compile("[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
_LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u024f]+(?:['’][A-Za-z]+)*")
_LETTER = re.compile(r"[^\W\d_]")

# English function words: their presence tells prose ("the delivery was late") from names
# ("iPhone", "Pro Max", "KFC") inside Chinese text.
_FUNCTION_WORDS = frozenset(
    """a an the this that these those is am are was were be been being do does did done have has
    had i me my we our you your he she it its they them their of to in on at for with from by as
    and or but so if not no never very too really just also all what when why how which who
    can can't cannot could would should will won't don't didn't doesn't isn't wasn't aren't
    it's i'm i've you're that's there there's about after before than then because although
    though however yet still again ever only even much many more most some any please thanks
    thank""".split()
)

_LATIN_LANGUAGES = (
    "ENGLISH", "FRENCH", "GERMAN", "SPANISH", "ITALIAN", "PORTUGUESE", "DUTCH", "INDONESIAN",
    "MALAY", "TAGALOG", "VIETNAMESE", "TURKISH", "POLISH", "SWEDISH",
)  # fmt: skip


class LanguageDetector:
    """Detects :class:`Lang`; the lingua detector is built on first use and kept on the instance.

    ``english_prior`` multiplies lingua's English confidence before the comparison with the other
    Latin-script languages; ``mixed_share`` is the smallest share of content each script needs for
    ``mixed``.
    """

    def __init__(self, *, english_prior: float = 5.0, mixed_share: float = 0.2) -> None:
        self.english_prior = english_prior
        self.mixed_share = mixed_share
        self._lingua: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"english_prior": self.english_prior, "mixed_share": self.mixed_share}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def _detector(self) -> Any:
        if self._lingua is None:
            with self._lock:
                if self._lingua is None:
                    from lingua import Language, LanguageDetectorBuilder

                    languages = [getattr(Language, name) for name in _LATIN_LANGUAGES]
                    self._lingua = LanguageDetectorBuilder.from_languages(*languages).build()
        return self._lingua

    def _latin_is_english(self, text: str) -> bool:
        values = self._detector().compute_language_confidence_values(text)
        if not values:
            return False
        english = 0.0
        best_other = 0.0
        for item in values:
            if item.language.name == "ENGLISH":
                english = item.value * self.english_prior
            else:
                best_other = max(best_other, item.value)
        return english >= best_other

    def detect(self, text: str) -> Lang:
        """The language of ``text``; any ``str`` gives a result, anything else is ``other``."""
        if not isinstance(text, str) or not text:
            return Lang.other
        han = len(_HAN.findall(text))
        kana = len(_KANA.findall(text))
        hangul = len(_HANGUL.findall(text))
        latin_words = _LATIN_WORD.findall(text)
        latin_chars = sum(len(w) for w in latin_words)
        letters = len(_LETTER.findall(text))
        other_letters = letters - han - kana - hangul - latin_chars
        if letters == 0:
            return Lang.other
        if kana and kana >= 0.1 * (han + kana):
            return Lang.other  # Japanese
        if hangul + other_letters > han + latin_chars:
            return Lang.other  # Korean, Cyrillic, Arabic, Thai, ...
        if not han:
            if not latin_words:
                return Lang.other
            if _english_function_share(latin_words) >= 0.25 and len(latin_words) >= 4:
                return Lang.en  # plainly English prose; lingua is not needed
            return Lang.en if self._latin_is_english(" ".join(latin_words)) else Lang.other
        if not latin_words:
            return Lang.zh
        function_words = round(_english_function_share(latin_words) * len(latin_words))
        zh_weight = han / 1.5
        en_share = len(latin_words) / (len(latin_words) + zh_weight)
        prose = function_words >= 1 and len(latin_words) >= 2
        if not prose:
            return Lang.zh if en_share < 0.8 or han >= 4 else self._latin_or_other(latin_words)
        if en_share < self.mixed_share:
            return Lang.zh
        if en_share > 1 - self.mixed_share:
            return Lang.en
        return Lang.mixed

    def _latin_or_other(self, latin_words: list[str]) -> Lang:
        return Lang.en if self._latin_is_english(" ".join(latin_words)) else Lang.zh

    __call__ = detect


def _english_function_share(words: list[str]) -> float:
    hits = sum(w.lower().replace("’", "'") in _FUNCTION_WORDS for w in words)
    return hits / len(words) if words else 0.0


@functools.lru_cache(maxsize=1)
def _default_detector() -> LanguageDetector:
    return LanguageDetector()


def detect_language(text: str) -> Lang:
    """The language of ``text`` with the shared default :class:`LanguageDetector`."""
    return _default_detector().detect(text)
