"""Keyphrases for a set of verbatims (cluster labels, report summaries), Chinese and English.

* Chinese: jieba's TF-IDF (term frequency over the whole set times jieba's general-corpus IDF),
  run with the shared :class:`~nlp.segment.Segmenter`'s private tokenizer (so the CEM user
  dictionary holds: 外卖小哥, 七天无理由) and its stop words. Only words with Han characters count.
* English: TF-IDF over the set with scikit-learn, on the segmenter's tokens, as unigrams and
  bigrams taken inside punctuation-free stretches; no n-gram holds a stop word, a lone negation
  ("not") or a bare number, so phrases like "customer service" or "not helpful" survive; bigram
  scores get a boost (``BIGRAM_BOOST``) as labels read better with them; @mentions are skipped.

Each side's scores are scaled to a maximum of 1 and weighted by the share of verbatims in that
language; ``mixed`` verbatims count on both sides.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Sequence
from typing import Any

from nlp.errors import InvalidInputError
from nlp.lang import Lang, detect_language
from nlp.segment import PLACEHOLDER, Segmenter, get_default_segmenter

__all__ = ["KeyphraseExtractor", "extract_keyphrases"]

_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_HAN_RUNS = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_STRETCH_BREAK = re.compile(r"[^\w\s'’-]+|_+")
_MENTION = re.compile(r"(?<!\w)@\w+")
_NUMBER = re.compile(r"[\d.,-]+")
_NEGATIONS = frozenset("not no never nothing none nobody neither nor cannot without".split())


def _given_terms(terms: list[str]) -> list[str]:
    return terms


#: A two-word phrase occurs less often than its words but reads better as a label ("customer
#: service" over "service"), so bigram scores are multiplied by this factor.
BIGRAM_BOOST = 2.0


class KeyphraseExtractor:
    """Keyphrase extraction bound to one segmenter; jieba's IDF table is loaded on first use."""

    def __init__(self, segmenter: Segmenter | None = None) -> None:
        self.segmenter = segmenter or get_default_segmenter()
        self._tfidf: Any = None
        self._lock = threading.Lock()

    def _jieba_tfidf(self) -> Any:
        if self._tfidf is None:
            with self._lock:
                if self._tfidf is None:
                    import jieba.analyse
                    import jieba.posseg

                    tfidf = jieba.analyse.TFIDF()
                    tfidf.tokenizer = self.segmenter.jieba_tokenizer
                    tfidf.postokenizer = jieba.posseg.POSTokenizer(tfidf.tokenizer)
                    tfidf.stop_words = set(tfidf.stop_words) | set(self.segmenter.stopwords)
                    self._tfidf = tfidf
        return self._tfidf

    def chinese(self, texts: Sequence[str], top_k: int) -> list[tuple[str, float]]:
        """Top Chinese keywords of ``texts`` by jieba TF-IDF."""
        joined = "\n".join(PLACEHOLDER.sub(" ", t) for t in texts)
        if not _HAN.search(joined):
            return []
        tags = self._jieba_tfidf().extract_tags(joined, topK=None, withWeight=True)
        return [(w, float(s)) for w, s in tags if _HAN.search(w)][:top_k]

    def _english_terms(self, text: str) -> list[str]:
        stop = self.segmenter.stopwords
        terms: list[str] = []
        text = _HAN_RUNS.sub(" | ", PLACEHOLDER.sub(" | ", _MENTION.sub(" | ", text)))
        for stretch in _STRETCH_BREAK.split(text):
            tokens = self.segmenter.tokenize(stretch, Lang.en, drop_stopwords=False)
            useful = [t not in stop and not _NUMBER.fullmatch(t) for t in tokens]
            for i, token in enumerate(tokens):
                negation = token in _NEGATIONS or token.endswith("n't")
                if useful[i] and not negation and len(token) > 1:
                    terms.append(token)
                if i + 1 < len(tokens) and (useful[i] or negation) and useful[i + 1]:
                    terms.append(f"{token} {tokens[i + 1]}")
        return terms

    def english(self, texts: Sequence[str], top_k: int) -> list[tuple[str, float]]:
        """Top English unigrams and bigrams of ``texts`` by summed TF-IDF within the set."""
        import numpy as np
        from sklearn.feature_extraction.text import TfidfVectorizer

        docs = [terms for terms in map(self._english_terms, texts) if terms]
        if not docs:
            return []
        vectorizer = TfidfVectorizer(analyzer=_given_terms, sublinear_tf=True)
        matrix = vectorizer.fit_transform(docs)
        vocab = vectorizer.get_feature_names_out()
        scores = matrix.sum(axis=0).A1 / len(docs)
        scores = scores * np.where(np.char.find(vocab.astype(str), " ") >= 0, BIGRAM_BOOST, 1.0)
        order = scores.argsort()[::-1][:top_k]
        return [(str(vocab[i]), float(scores[i])) for i in order if scores[i] > 0]

    def extract(
        self, texts: Sequence[str], top_k: int = 10, lang: Lang | str | None = None
    ) -> list[tuple[str, float]]:
        """The ``top_k`` keyphrases of ``texts`` with scores in (0, 1], best first.

        ``lang`` forces the language of every text (``mixed`` uses both sides); by default each
        text's language is detected.
        """
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise InvalidInputError(
                "extract_keyphrases() expects a sequence of str (a list of verbatims), "
                f"got {type(texts).__name__}"
            )
        if top_k < 1:
            raise InvalidInputError(f"top_k must be at least 1, got {top_k}")
        langs = (
            [Lang.parse(lang)] * len(texts)
            if lang is not None
            else [detect_language(t) for t in texts]
        )
        zh_texts = [t for t, lg in zip(texts, langs, strict=True) if lg in (Lang.zh, Lang.mixed)]
        en_texts = [t for t, lg in zip(texts, langs, strict=True) if lg in (Lang.en, Lang.mixed)]
        merged: dict[str, float] = {}
        for side_texts, extract in ((zh_texts, self.chinese), (en_texts, self.english)):
            if not side_texts:
                continue
            found = extract(side_texts, top_k)
            if not found:
                continue
            top = found[0][1]
            weight = len(side_texts) / len(texts)
            for phrase, score in found:
                merged[phrase] = max(merged.get(phrase, 0.0), weight * score / top)
        ranked = sorted(merged.items(), key=lambda item: (-item[1], item[0]))
        return ranked[:top_k]


@functools.lru_cache(maxsize=4)
def _extractor_for(segmenter: Segmenter) -> KeyphraseExtractor:
    return KeyphraseExtractor(segmenter)


def extract_keyphrases(
    texts: Sequence[str],
    top_k: int = 10,
    lang: Lang | str | None = None,
    *,
    segmenter: Segmenter | None = None,
) -> list[tuple[str, float]]:
    """Keyphrases of a set of verbatims (see :class:`KeyphraseExtractor`)."""
    return _extractor_for(segmenter or get_default_segmenter()).extract(texts, top_k, lang)
