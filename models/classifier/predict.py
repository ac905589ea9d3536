"""Classification as a product: preprocess -> forward -> postprocess, batch in, list out.

``Classifier.classify(items)`` returns one dict per input item, in input order, shaped as the
contract's classification output. An item that cannot be classified (empty text, too long,
unknown ``lang``) yields ``{"id": ..., "error": {"code", "message"}}`` in its place and the rest
of the batch goes through.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.classifier.config import POLARITY_LABELS, SENTIMENT_LABELS
from models.classifier.model import CemClassifier
from nlp.errors import InvalidInputError, VerbatimError

log = logging.getLogger(__name__)
ALLOWED_LANGS = ("zh", "en")


@dataclass(frozen=True, kw_only=True, slots=True)
class ClassifyItem:
    id: str
    text: str
    lang: str | None = None


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class Classifier:
    """The default model (or a tenant's) ready to classify verbatims."""

    def __init__(self, model: CemClassifier, *, batch_size: int = 32, triage: Callable[[dict, Any], dict] | None = None) -> None:
        self.model = model.eval()
        self.config = model.config
        self.batch_size = batch_size
        self.triage = triage
        self._lock = threading.Lock()
        self._prefix_tokens = len(model.tokenizer(model.config.text_prefix, add_special_tokens=False)["input_ids"])

    @classmethod
    def load(cls, model_dir: Path | str, *, base_dir: Path | str, quantize: bool = False, **kwargs: Any) -> Classifier:
        """Load a model directory and merge its adapters into the encoder.

        ``quantize`` swaps the linear layers for int8 dynamic-quantisation kernels: about twice the
        speed, but the activation scale is computed over the whole batch, so a text's scores then
        depend on which other texts share its batch. The service and the command line keep fp32.
        """
        model = CemClassifier.from_pretrained(model_dir, base_dir=base_dir)
        if "triage" not in kwargs:
            from models.triage import Triage

            kwargs["triage"] = Triage(taxonomy=model.taxonomy)
        if hasattr(model.encoder, "merge_and_unload"):
            model.encoder = model.encoder.merge_and_unload()
        if quantize:
            model.encoder = torch.ao.quantization.quantize_dynamic(model.encoder, {torch.nn.Linear}, dtype=torch.qint8)
        return cls(model, **kwargs)

    @property
    def model_id(self) -> str:
        return self.config.model_id

    # preprocess -----------------------------------------------------------------------------
    def _prepare(self, item: ClassifyItem):
        from nlp.prepare import prepare

        if item.lang is not None and item.lang not in ALLOWED_LANGS:
            raise InvalidInputError(f"lang must be one of {', '.join(ALLOWED_LANGS)} (or absent to detect it); got {item.lang!r}.")
        return prepare(item.text, lang=item.lang)

    # the whole pipeline ---------------------------------------------------------------------
    def classify(self, items: Sequence[ClassifyItem | dict]) -> list[dict[str, Any]]:
        return self.classify_with_embeddings(items)[0]

    def classify_with_embeddings(self, items: Sequence[ClassifyItem | dict]) -> tuple[list[dict[str, Any]], np.ndarray]:
        """Classify, and also return each text's L2-normalised embedding from the model's own encoder.

        The embeddings (one row per item, in input order; a row of NaN for an item that failed) are
        what issue clustering uses, so analysis loads one model, not two.
        """
        items = [it if isinstance(it, ClassifyItem) else ClassifyItem(**it) for it in items]
        results: list[dict[str, Any] | None] = [None] * len(items)
        embeddings = np.full((len(items), self.config.hidden_size), np.nan, dtype=np.float32)
        prepared = []
        for i, item in enumerate(items):
            try:
                prepared.append((i, self._prepare(item)))
            except VerbatimError as exc:
                results[i] = {"id": item.id, "error": {"code": exc.code, "message": exc.message}}
        order = sorted(prepared, key=lambda p: len(p[1].text))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            batch_results, batch_emb = self._run_batch([p for _, p in chunk])
            for row, ((i, prep), res) in enumerate(zip(chunk, batch_results, strict=True)):
                embeddings[i] = batch_emb[row]
                res = {"id": items[i].id, **res}
                if self.triage is not None:
                    res["triage"] = self.triage(res, prep)
                res["model"] = self.model_id
                results[i] = res
        return results, embeddings  # type: ignore[return-value]

    @torch.inference_mode()
    def _run_batch(self, preps) -> tuple[list[dict[str, Any]], np.ndarray]:
        cfg = self.config
        tok = self.model.tokenizer(
            [cfg.text_prefix + p.text for p in preps], padding=True, truncation=True, max_length=cfg.max_length,
            return_special_tokens_mask=True, return_offsets_mapping=True, return_tensors="pt",
        )
        special = tok["special_tokens_mask"].clone()
        special[:, 1 : 1 + self._prefix_tokens] = 1
        with self._lock:  # torch modules are not re-entrant across threads
            out = self.model(tok["input_ids"], tok["attention_mask"], special)
        offsets = tok["offset_mapping"].numpy() - len(cfg.text_prefix)
        arrays = {k: v.float().numpy() for k, v in out.items() if k != "pooled"}
        pooled = torch.nn.functional.normalize(out["pooled"].float(), dim=-1).numpy()
        return [self._postprocess(b, prep, arrays, offsets[b], special[b].numpy()) for b, prep in enumerate(preps)], pooled

    # postprocess ----------------------------------------------------------------------------
    def _postprocess(self, b: int, prep, a: dict[str, np.ndarray], offsets: np.ndarray, special: np.ndarray) -> dict[str, Any]:
        cfg, temps, th = self.config, self.config.temperatures, self.config.thresholds
        p = _softmax(a["sentiment"][b] / temps.get("sentiment", 1.0))
        label = SENTIMENT_LABELS[int(p.argmax())]
        sentiment = {
            "label": label,
            "score": round(float(p[2] - p[0]), 4),
            "confidence": round(float(p.max()), 4),
            "uncertain": bool(p.max() < th.get("uncertain", 0.6)),
        }
        clauses = _clauses(prep.text)
        topic_p = _sigmoid(a["topics"][b] / temps.get("topics", 1.0))
        topics = []
        for n in np.argsort(-topic_p):
            if topic_p[n] < th.get("topics", 0.5):
                break
            pol = _softmax(a["polarity"][b][n] / temps.get("polarity", 1.0))
            topic_id = cfg.topic_ids[n]
            entry = {
                "id": topic_id,
                "polarity": POLARITY_LABELS[int(pol.argmax())],
                "confidence": round(float(topic_p[n]), 4),
                "polarity_confidence": round(float(pol.max()), 4),
                "uncertain": bool(min(topic_p[n], pol.max()) < th.get("uncertain", 0.6)),
                "evidence": _evidence(prep, clauses, a["topic_attention"][b][n], offsets, special),
            }
            if topic_id not in cfg.trained_topic_ids:
                entry["zero_shot"] = True
            topics.append(entry)
        tp_p = _sigmoid(a["touchpoints"][b] / temps.get("touchpoints", 1.0))
        touchpoints = [
            {"id": cfg.touchpoint_ids[n], "confidence": round(float(tp_p[n]), 4)}
            for n in np.argsort(-tp_p) if tp_p[n] >= th.get("touchpoints", 0.5)
        ]
        return {
            "lang": str(prep.lang.value if hasattr(prep.lang, "value") else prep.lang),
            "sentiment": sentiment,
            "topics": topics,
            "touchpoints": touchpoints,
            "primary_touchpoint": touchpoints[0]["id"] if touchpoints else None,
        }


def _clauses(text: str):
    from nlp.clauses import split_clauses

    return split_clauses(text) or []


def _evidence(prep, clauses, attention: np.ndarray, offsets: np.ndarray, special: np.ndarray) -> dict[str, Any] | None:
    """The clause that the node's attention weighs most, as a span of the original text."""
    if not clauses:
        return None
    starts = offsets[:, 0]
    mass = np.zeros(len(clauses))
    for c, clause in enumerate(clauses):
        inside = (starts >= clause.start) & (starts < clause.end) & (special == 0)
        mass[c] = attention[inside].sum()
    best = clauses[int(mass.argmax())]
    start, end = prep.to_original(best.start, best.end)
    return {"start": int(start), "end": int(end), "text": prep.original[start:end]}
