"""One segmenter for every consumer: jieba for Chinese runs, a regex word tokenizer for the rest.

``Segmenter`` owns a private ``jieba.Tokenizer`` (never jieba's global one) loaded with the CEM user
dictionary in ``nlp/resources/cem_userdict.txt``, plus Chinese and English stop-word lists from the
same folder. Negations (不, 没, not, never, didn't...) are not stop words: in customer feedback they
carry the meaning.

The segmenter is picklable (the jieba state is rebuilt on first use after unpickling), and calling
it is ``tokenize`` with the defaults, so it can be handed to scikit-learn or BERTopic as
``CountVectorizer(tokenizer=segmenter, token_pattern=None, lowercase=False)``. BERTopic drops custom
tokenizers when it saves a model; re-attach ``get_default_segmenter()`` after loading.
"""

from __future__ import annotations

import functools
import re
import threading
from importlib import resources
from pathlib import Path
from typing import Any

from nlp.errors import InvalidInputError
from nlp.lang import Lang

__all__ = ["PLACEHOLDER", "Segmenter", "get_default_segmenter", "load_word_list"]

_RESOURCES = "nlp.resources"
USER_DICT = "cem_userdict.txt"
STOPWORDS_ZH = "stopwords_zh.txt"
STOPWORDS_EN = "stopwords_en.txt"

#: Placeholders written by normalisation and PII masking; never tokens.
PLACEHOLDER = re.compile(r"\[(?:URL|EMAIL|PHONE|ID|CARD|ORDER)\]")
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A Chinese chunk: Han characters with the digits attached to them ("7天无理由", "30分钟").
_ZH_CHUNK = re.compile(f"[0-9]*[{_HAN}](?:[{_HAN}0-9]*[{_HAN}])?(?:[0-9]+(?=[{_HAN}]))?")
_EN_TOKEN = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
_HAS_HAN = re.compile(f"[{_HAN}]")
_WORDLIKE = re.compile(rf"[\w{_HAN}]")


def load_word_list(name_or_path: str | Path) -> frozenset[str]:
    """Read a word list (one entry per line, ``#`` comments) from ``nlp/resources`` or a path."""
    path = Path(name_or_path)
    if path.is_file():
        text = path.read_text(encoding="utf-8")
    else:
        text = resources.files(_RESOURCES).joinpath(str(name_or_path)).read_text(encoding="utf-8")
    words = (line.strip().lower() for line in text.splitlines())
    return frozenset(w for w in words if w and not w.startswith("#"))


class Segmenter:
    """Tokenizes Chinese, English and mixed text into analysis tokens.

    ``user_dict`` and the stop-word lists are names in ``nlp/resources`` or file paths. The jieba
    tokenizer is built lazily on first use (about a second) and is shared by ``keywords``.
    """

    def __init__(
        self,
        *,
        user_dict: str | Path | None = USER_DICT,
        stopwords_zh: str | Path | None = STOPWORDS_ZH,
        stopwords_en: str | Path | None = STOPWORDS_EN,
        hmm: bool = True,
    ) -> None:
        self.user_dict = user_dict
        self.stopwords_zh = stopwords_zh
        self.stopwords_en = stopwords_en
        self.hmm = hmm
        self._jieba: Any = None
        self._stopwords: frozenset[str] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Segmenter(user_dict={self.user_dict!r}, hmm={self.hmm!r})"

    # Pickling keeps only the settings; jieba's tokenizer (with its lock) is rebuilt on use.
    def __getstate__(self) -> dict[str, Any]:
        return {
            "user_dict": self.user_dict,
            "stopwords_zh": self.stopwords_zh,
            "stopwords_en": self.stopwords_en,
            "hmm": self.hmm,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    @property
    def stopwords(self) -> frozenset[str]:
        """Chinese and English stop words together (English in lower case)."""
        if self._stopwords is None:
            zh = load_word_list(self.stopwords_zh) if self.stopwords_zh else frozenset()
            en = load_word_list(self.stopwords_en) if self.stopwords_en else frozenset()
            self._stopwords = zh | en
        return self._stopwords

    @property
    def jieba_tokenizer(self) -> Any:
        """The private ``jieba.Tokenizer``, initialised with the user dictionary on first access."""
        if self._jieba is None:
            with self._lock:
                if self._jieba is None:
                    import jieba

                    tokenizer = jieba.Tokenizer()
                    tokenizer.initialize()
                    if self.user_dict:
                        path = Path(self.user_dict)
                        if not path.is_file():
                            ref = resources.files(_RESOURCES).joinpath(str(self.user_dict))
                            path = Path(str(ref))
                        tokenizer.load_userdict(str(path))
                    self._jieba = tokenizer
        return self._jieba

    def is_stopword(self, token: str) -> bool:
        return token.lower() in self.stopwords

    def tokenize(
        self, text: str, lang: Lang | str | None = None, *, drop_stopwords: bool = True
    ) -> list[str]:
        """Tokens of ``text`` in order: jieba words for Chinese runs, lower-cased words elsewhere.

        Placeholders (``[PHONE]``...), punctuation, whitespace and emoji never become tokens.
        ``lang`` is a hint: the tokenizer is chosen per script run, so the hint only lets English
        text skip the search for Chinese runs; tokens are the same with or without it.
        """
        if not isinstance(text, str):
            raise InvalidInputError(f"tokenize() expects a str, got {type(text).__name__}")
        if lang is not None:
            lang = Lang.parse(lang)
        text = PLACEHOLDER.sub(" ", text)
        if lang is Lang.en and not _HAS_HAN.search(text):
            tokens = self._english(text)
        else:
            tokens = []
            pos = 0
            for match in _ZH_CHUNK.finditer(text):
                if match.start() > pos:
                    tokens.extend(self._english(text[pos : match.start()]))
                tokens.extend(self._chinese(match.group()))
                pos = match.end()
            if pos < len(text):
                tokens.extend(self._english(text[pos:]))
        if drop_stopwords:
            stop = self.stopwords
            tokens = [t for t in tokens if t not in stop]
        return tokens

    def __call__(self, text: str) -> list[str]:
        return self.tokenize(text)

    def _chinese(self, chunk: str) -> list[str]:
        words = self.jieba_tokenizer.cut(chunk, HMM=self.hmm)
        return [w for w in words if _WORDLIKE.search(w)]

    @staticmethod
    def _english(text: str) -> list[str]:
        return _EN_TOKEN.findall(text.lower().replace("’", "'"))


@functools.lru_cache(maxsize=1)
def get_default_segmenter() -> Segmenter:
    """The process-wide segmenter with the default resources (built lazily, thread-safe)."""
    return Segmenter()
