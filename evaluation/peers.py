"""Peers measured beside our model in the same run, on the same splits.

Supervised peers (TF-IDF + logistic regression, logistic regression on frozen base-encoder
embeddings) are trained per data set on its own train split, with ``C`` chosen on its dev split
from a small grid. Zero-shot peers (SnowNLP for Chinese, VADER for English) need no fitting.
All follow scikit-learn's manners: ``__init__`` stores arguments, ``fit`` returns ``self``, learned
state ends in ``_``, ``predict`` takes a batch and returns one item per text.

Each peer also turns its output into the contract's prediction dicts (``predict_records``), so
:mod:`evaluation.scoring` scores peers and our model with the same code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol

import numpy as np

from evaluation.metrics import accuracy, topic_scores

log = logging.getLogger(__name__)

DEFAULT_C_GRID = (0.5, 2.0, 8.0)


class Featurizer(Protocol):
    """Turns texts into a feature matrix (sparse or dense)."""

    def fit(self, texts: Sequence[str]) -> Featurizer: ...
    def transform(self, texts: Sequence[str]) -> Any: ...


# --------------------------------------------------------------------------- featurizers


def _default_tokenizer() -> tuple[Callable[[str], list[str]], str]:
    """The project's one segmenter (jieba for Chinese runs), keeping stop words: negations such
    as 不/没 and "not" carry sentiment."""
    from nlp.segment import Segmenter

    seg = Segmenter()
    return partial(seg.tokenize, drop_stopwords=False), "nlp.segment.Segmenter"


class TfidfFeaturizer:
    """Word n-grams (1-2, from the project's segmenter) plus ``char_wb`` 1-4 grams, TF-IDF."""

    def __init__(self, *, max_features: int = 200_000, min_df: int = 2,
                 tokenizer: Callable[[str], list[str]] | None = None) -> None:
        self.max_features = max_features
        self.min_df = min_df
        self.tokenizer = tokenizer

    def fit(self, texts: Sequence[str]) -> TfidfFeaturizer:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import FeatureUnion

        tok, self.tokenizer_name_ = (self.tokenizer, "given") if self.tokenizer else _default_tokenizer()
        min_df = self.min_df if len(texts) >= 200 else 1
        word = TfidfVectorizer(
            tokenizer=tok, token_pattern=None, lowercase=True,
            ngram_range=(1, 2), min_df=min_df, max_features=self.max_features // 2, sublinear_tf=True,
        )
        char = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(1, 4), lowercase=True, min_df=min_df,
            max_features=self.max_features // 2, sublinear_tf=True,
        )
        self.union_ = FeatureUnion([("word", word), ("char", char)]).fit(list(texts))
        return self

    def transform(self, texts: Sequence[str]) -> Any:
        return self.union_.transform(list(texts))


class EmbeddingFeaturizer:
    """Frozen base-encoder embeddings (``"query: "`` prefix), cached per text for the whole run."""

    def __init__(self, encoder: Any, *, prefix: str = "query: ", batch_size: int = 64,
                 cache: dict[str, np.ndarray] | None = None) -> None:
        self.encoder = encoder
        self.prefix = prefix
        self.batch_size = batch_size
        self.cache = cache if cache is not None else {}

    def fit(self, texts: Sequence[str]) -> EmbeddingFeaturizer:
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if missing:
            log.info("encoding %d texts with the frozen encoder", len(missing))
            vecs = np.asarray(self.encoder.encode(missing, prefix=self.prefix), dtype=np.float32)
            self.cache.update(zip(missing, vecs, strict=True))
        return np.stack([self.cache[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)


# --------------------------------------------------------------------------- supervised peers


def _logreg(C: float, n_classes: int = 3) -> Any:
    """Logistic regression; liblinear for binary problems (an order of magnitude faster than
    lbfgs on sparse TF-IDF here), lbfgs (multinomial) otherwise."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=2000, solver="liblinear" if n_classes <= 2 else "lbfgs")


class LogRegClassifier:
    """Single-label logistic regression over a featurizer; ``C`` picked on dev by accuracy."""

    def __init__(self, featurizer: Featurizer, *, c_grid: Sequence[float] = DEFAULT_C_GRID) -> None:
        self.featurizer = featurizer
        self.c_grid = c_grid

    def fit(self, texts: Sequence[str], labels: Sequence[str], *,
            dev_texts: Sequence[str] | None = None, dev_labels: Sequence[str] | None = None) -> LogRegClassifier:
        self.featurizer_ = self.featurizer.fit(texts)
        x = self.featurizer_.transform(texts)
        y = np.asarray(labels)
        grid = list(self.c_grid) if dev_texts else [sorted(self.c_grid)[len(self.c_grid) // 2]]
        xd = self.featurizer_.transform(dev_texts) if dev_texts else None
        best = None
        for c in grid:
            model = _logreg(c, len(set(labels))).fit(x, y)
            score = accuracy(list(dev_labels), list(model.predict(xd))) if xd is not None else 0.0
            log.debug("C=%s dev accuracy=%.4f", c, score)
            if best is None or score > best[0]:
                best = (score, c, model)
        self.dev_score_, self.C_, self.model_ = best
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.model_.predict_proba(self.featurizer_.transform(texts))

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self.classes_[self.predict_proba(texts).argmax(axis=1)]


class OneVsRestClassifier:
    """Multi-label one-vs-rest logistic regression; ``C`` picked on dev by micro-F1."""

    def __init__(self, featurizer: Featurizer, *, c_grid: Sequence[float] = DEFAULT_C_GRID,
                 threshold: float = 0.5) -> None:
        self.featurizer = featurizer
        self.c_grid = c_grid
        self.threshold = threshold

    def fit(self, texts: Sequence[str], label_sets: Sequence[Sequence[str]], *,
            dev_texts: Sequence[str] | None = None,
            dev_label_sets: Sequence[Sequence[str]] | None = None) -> OneVsRestClassifier:
        from sklearn.multiclass import OneVsRestClassifier as OvR
        from sklearn.preprocessing import MultiLabelBinarizer

        self.binarizer_ = MultiLabelBinarizer().fit(label_sets)
        self.classes_ = self.binarizer_.classes_
        self.featurizer_ = self.featurizer.fit(texts)
        x, y = self.featurizer_.transform(texts), self.binarizer_.transform(label_sets)
        grid = list(self.c_grid) if dev_texts else [sorted(self.c_grid)[len(self.c_grid) // 2]]
        xd = self.featurizer_.transform(dev_texts) if dev_texts else None
        best = None
        for c in grid:
            model = OvR(_logreg(c, 2)).fit(x, y)
            score = 0.0
            if xd is not None:
                pred = self._decode(model.predict_proba(xd))
                gold = [{g: None for g in gs} for gs in dev_label_sets]
                score = topic_scores(gold, [{p: (None, 1.0) for p in ps} for ps in pred],
                                     self.classes_).micro_f1
            if best is None or score > best[0]:
                best = (score, c, model)
        self.dev_score_, self.C_, self.model_ = best
        return self

    def _decode(self, proba: np.ndarray) -> list[list[str]]:
        return [[str(self.classes_[j]) for j in np.flatnonzero(row >= self.threshold)] for row in proba]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return np.atleast_2d(self.model_.predict_proba(self.featurizer_.transform(texts)))

    def predict(self, texts: Sequence[str]) -> list[list[str]]:
        return self._decode(self.predict_proba(texts))


class CategoryPolarity:
    """Polarity of a text towards a given category: one 3-way logistic regression per category.

    Categories with fewer than ``min_examples`` labelled texts or a single polarity fall back to
    one regression trained on all (text, category) pairs. The featurizer is shared and must
    already be fitted (pass the detector's fitted featurizer).
    """

    def __init__(self, featurizer: Featurizer, *, C: float = 2.0, min_examples: int = 20) -> None:
        self.featurizer = featurizer
        self.C = C
        self.min_examples = min_examples

    def fit(self, texts: Sequence[str], polarities: Sequence[Mapping[str, str | None]]) -> CategoryPolarity:
        rows: dict[str, tuple[list[int], list[str]]] = {}
        for i, pols in enumerate(polarities):
            for cat, pol in pols.items():
                if pol in ("negative", "neutral", "positive"):
                    rows.setdefault(cat, ([], []))
                    rows[cat][0].append(i)
                    rows[cat][1].append(pol)
        x = self.featurizer.transform(texts)
        all_idx = [i for idx, _ in rows.values() for i in idx]
        all_pol = [p for _, pols in rows.values() for p in pols]
        if not all_idx:
            raise ValueError("no category carries a negative/neutral/positive polarity to learn from")
        self.fallback_ = (_logreg(self.C, len(set(all_pol))).fit(x[all_idx], all_pol)
                          if len(set(all_pol)) > 1
                          else _Constant(all_pol[0]))
        self.models_ = {}
        for cat, (idx, pols) in rows.items():
            if len(idx) >= self.min_examples and len(set(pols)) > 1:
                self.models_[cat] = _logreg(self.C, len(set(pols))).fit(x[idx], pols)
        return self

    def predict(self, texts: Sequence[str], categories: Sequence[str]) -> list[str]:
        """The polarity of ``texts[i]`` towards ``categories[i]``."""
        if not texts:
            return []
        x = self.featurizer.transform(texts)
        out: list[str] = [""] * len(texts)
        for cat in set(categories):
            idx = [i for i, c in enumerate(categories) if c == cat]
            model = self.models_.get(cat, self.fallback_)
            for i, p in zip(idx, model.predict(x[idx]), strict=True):
                out[i] = str(p)
        return out


class _Constant:
    def __init__(self, label: str) -> None:
        self.label = label

    def predict(self, x: Any) -> np.ndarray:
        return np.asarray([self.label] * x.shape[0])


# --------------------------------------------------------------------------- zero-shot peers


class SnowNLPSentiment:
    """SnowNLP's Naive Bayes sentiment (trained on product reviews): positive when p > 0.5."""

    labels = ("negative", "positive")

    def fit(self, texts: Sequence[str] = (), labels: Sequence[str] = ()) -> SnowNLPSentiment:
        return self

    def predict_proba_positive(self, texts: Sequence[str]) -> np.ndarray:
        from snownlp import SnowNLP

        return np.asarray([SnowNLP(t).sentiments if t.strip() else 0.5 for t in texts], dtype=float)

    def predict(self, texts: Sequence[str]) -> list[str]:
        return ["positive" if p > 0.5 else "negative" for p in self.predict_proba_positive(texts)]

    def predict_records(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        out = []
        for p in self.predict_proba_positive(texts):
            label = "positive" if p > 0.5 else "negative"
            out.append({"sentiment": {"label": label, "score": float(2 * p - 1),
                                      "confidence": float(max(p, 1 - p))}})
        return out


class VaderSentiment:
    """VADER's rule-based compound score: >= 0.05 positive, <= -0.05 negative, else neutral."""

    def fit(self, texts: Sequence[str] = (), labels: Sequence[str] = ()) -> VaderSentiment:
        return self

    def compound(self, texts: Sequence[str]) -> np.ndarray:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        if not hasattr(self, "analyzer_"):
            self.analyzer_ = SentimentIntensityAnalyzer()
        return np.asarray([self.analyzer_.polarity_scores(t)["compound"] for t in texts], dtype=float)

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [_vader_label(c) for c in self.compound(texts)]

    def predict_records(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        # VADER's compound is not a probability: no confidence, so it is left out of calibration.
        return [{"sentiment": {"label": _vader_label(c), "score": float(c), "confidence": None}}
                for c in self.compound(texts)]


def _vader_label(c: float) -> str:
    return "positive" if c >= 0.05 else "negative" if c <= -0.05 else "neutral"


# --------------------------------------------------------------------------- records


def sentiment_records(clf: LogRegClassifier, texts: Sequence[str]) -> list[dict[str, Any]]:
    """A fitted sentiment classifier's output as contract dicts (label, score, confidence)."""
    proba = clf.predict_proba(texts)
    classes = [str(c) for c in clf.classes_]
    pos = classes.index("positive") if "positive" in classes else None
    neg = classes.index("negative") if "negative" in classes else None
    out = []
    for row in proba:
        j = int(row.argmax())
        score = (row[pos] if pos is not None else 0.0) - (row[neg] if neg is not None else 0.0)
        out.append({"sentiment": {"label": classes[j], "score": float(score), "confidence": float(row[j])}})
    return out


def topic_records(detector: OneVsRestClassifier, texts: Sequence[str], *,
                  polarity: CategoryPolarity | None = None, field: str = "topics") -> list[dict[str, Any]]:
    """A fitted multi-label detector's output as contract dicts (``topics`` or ``touchpoints``).

    Items are sorted by confidence; for touchpoints the most confident is ``primary_touchpoint``
    (``None`` when nothing passes the threshold, as the contract says for undeterminable stages).
    """
    proba = detector.predict_proba(texts)
    found = [sorted(((str(detector.classes_[j]), float(row[j]))
                     for j in np.flatnonzero(row >= detector.threshold)), key=lambda t: -t[1])
             for row in proba]
    pairs = [(i, c) for i, f in enumerate(found) for c, _ in f]
    pols: dict[tuple[int, str], str] = {}
    if polarity is not None and pairs:
        predicted = polarity.predict([texts[i] for i, _ in pairs], [c for _, c in pairs])
        pols = dict(zip(pairs, predicted, strict=True))
    out: list[dict[str, Any]] = []
    for i, f in enumerate(found):
        if field == "topics":
            out.append({"topics": [{"id": c, "polarity": pols.get((i, c)), "confidence": conf}
                                   for c, conf in f]})
        else:
            out.append({field: [{"id": c, "confidence": conf} for c, conf in f],
                        "primary_touchpoint": f[0][0] if f else None})
    return out


__all__ = [
    "CategoryPolarity", "EmbeddingFeaturizer", "LogRegClassifier", "OneVsRestClassifier",
    "SnowNLPSentiment", "TfidfFeaturizer", "VaderSentiment", "sentiment_records", "topic_records",
]
