"""Classification as a product: preprocess -> forward -> postprocess, batch in, list out.

``Classifier.classify(items)`` returns one dict per input item, in input order, shaped as the
contract's classification output. An item that cannot be classified (empty text, too long,
unknown ``lang``) yields ``{"id": ..., "error": {"code", "message"}}`` in its place and the rest
of the batch goes through.
"""

from __future__ import annotations

import itertools
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
from models.classifier.quantize import (
    AUTO,
    PRECISION_CHOICES,
    BF16Linear,
    Int8Linear,
    Precision,
    convert_linears,
    resolve_precision,
)
from models.taxonomy import Taxonomy
from nlp.errors import InvalidInputError, ModelError, VerbatimError

log = logging.getLogger(__name__)
ALLOWED_LANGS = ("zh", "en")
#: Every text is padded to a multiple of this many tokens and batched only with texts padded to the
#: same length, so the shapes its numbers go through depend on the text alone (batch invariance).
PAD_TO_MULTIPLE = 8


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

    def __init__(
        self, model: CemClassifier, *, batch_size: int = 32, triage: Callable[[dict, Any], dict] | None = None,
        lock: threading.Lock | None = None,
    ) -> None:
        self.model = model.eval()
        self.config = model.config
        self.batch_size = batch_size
        self.triage = triage
        self._lock = lock or threading.Lock()  # one per encoder: classifiers that share one share it
        self._prefix_tokens = len(model.tokenizer(model.config.text_prefix, add_special_tokens=False)["input_ids"])

    @classmethod
    def load(
        cls, model_dir: Path | str, *, base_dir: Path | str, precision: Precision | str = AUTO,
        quantize: bool | None = None, **kwargs: Any,
    ) -> Classifier:
        """Load a model directory and merge its adapters into the encoder.

        ``precision`` is how the encoder's linear layers compute (see
        :mod:`models.classifier.quantize`): ``auto`` (the default) is ``bf16`` on a CPU with native
        bf16 and ``fp32`` elsewhere; ``bf16`` is about twice as fast as fp32 there and gives the
        same sentiment label and topic set for over 99% of texts; ``int8`` (int8 weights per
        channel, activations per token) is a little faster again on two cores but about 8% of
        texts get a different topic set than fp32 gives them. All are batch-invariant: a text's
        result does not depend on the other texts classified with it. ``quantize`` is the older
        spelling: ``True`` means int8, ``False`` fp32.
        """
        if quantize is not None:
            precision = Precision.int8 if quantize else Precision.fp32
        try:
            precision = resolve_precision(precision)
        except ValueError:
            raise ModelError(f"precision must be one of {', '.join(PRECISION_CHOICES)}; got {precision!r}.") from None
        model = CemClassifier.from_pretrained(model_dir, base_dir=base_dir, merged=True)
        if "triage" not in kwargs:
            from models.triage import Triage

            kwargs["triage"] = Triage(taxonomy=model.taxonomy)
        convert_linears(model.encoder, precision)
        return cls(model, **kwargs)

    def derive(self, taxonomy: Taxonomy, *, base_dir: Path | str, version: str) -> Classifier:
        """This classifier for another version of its taxonomy, at once and without training.

        The new classifier shares this one's encoder (and the lock that serialises its use), so it
        costs only its heads and prototypes. Nodes new to ``taxonomy`` work zero-shot from their
        text and are marked ``zero_shot`` in results; retired nodes are gone (see
        :meth:`CemClassifier.derive`). ``version`` names it in results (``model``). Triage keeps
        this classifier's policy over ``taxonomy``'s severities.
        """
        model = CemClassifier.derive(self.model, taxonomy, base_dir=base_dir, version=version)
        triage = self.triage
        from models.triage import Triage

        if isinstance(triage, Triage):
            triage = _triage_over(triage, taxonomy)
        return Classifier(model, batch_size=self.batch_size, triage=triage, lock=self._lock)

    @property
    def model_id(self) -> str:
        return self.config.model_id

    @property
    def precision(self) -> Precision:
        """How the encoder's linear layers compute (``fp32``, ``bf16`` or ``int8``)."""
        kinds = {type(m) for m in self.model.encoder.modules()}
        return Precision.int8 if Int8Linear in kinds else Precision.bf16 if BF16Linear in kinds else Precision.fp32

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
        for chunk in self._batches(prepared):
            batch_results, batch_emb = self._run_batch([p for _, p in chunk])
            for row, ((i, prep), res) in enumerate(zip(chunk, batch_results, strict=True)):
                embeddings[i] = batch_emb[row]
                res = {"id": items[i].id, **res}
                if self.triage is not None:
                    res["triage"] = self.triage(res, prep)
                res["model"] = self.model_id
                results[i] = res
        return results, embeddings  # type: ignore[return-value]

    def _batches(self, prepared: list) -> list[list]:
        """Length-sorted batches; a batch holds only texts of the same padded length."""
        if not prepared:
            return []
        cfg = self.config
        ids = self.model.tokenizer([cfg.text_prefix + p.text for _, p in prepared], truncation=True,
                                   max_length=cfg.max_length)["input_ids"]
        lengths = [len(x) for x in ids]
        order = sorted(range(len(prepared)), key=lambda k: lengths[k])
        batches: list[list] = []
        for _, same in itertools.groupby(order, key=lambda k: -(-lengths[k] // PAD_TO_MULTIPLE)):
            group = [prepared[k] for k in same]
            batches += [group[i : i + self.batch_size] for i in range(0, len(group), self.batch_size)]
        return batches

    @torch.inference_mode()
    def _run_batch(self, preps) -> tuple[list[dict[str, Any]], np.ndarray]:
        cfg = self.config
        tok = self.model.tokenizer(
            [cfg.text_prefix + p.text for p in preps], padding=True, truncation=True, max_length=cfg.max_length,
            pad_to_multiple_of=PAD_TO_MULTIPLE, return_special_tokens_mask=True, return_offsets_mapping=True, return_tensors="pt",
        )
        special = tok["special_tokens_mask"].clone()
        special[:, 1 : 1 + self._prefix_tokens] = 1
        with self._lock:  # torch modules are not re-entrant across threads
            out = self.model(tok["input_ids"], tok["attention_mask"], special)
        offsets = tok["offset_mapping"].numpy() - len(cfg.text_prefix)
        arrays = {k: out[k].float().numpy() for k in ("sentiment", "topics", "polarity", "touchpoints")}  # what _postprocess reads
        pooled = torch.nn.functional.normalize(out["pooled"].float(), dim=-1).numpy()
        results = []
        for b, prep in enumerate(preps):
            evidence = _Evidence(self, prep, out["hidden"][b].float(), out["pooled"][b].float(), offsets[b], special[b].numpy())
            results.append(self._postprocess(b, prep, arrays, evidence))
        return results, pooled

    # postprocess ----------------------------------------------------------------------------
    def _postprocess(self, b: int, prep, a: dict[str, np.ndarray], evidence: _Evidence) -> dict[str, Any]:
        cfg, temps, th = self.config, self.config.temperatures, self.config.thresholds
        p = _softmax(a["sentiment"][b] / temps.get("sentiment", 1.0))
        label = SENTIMENT_LABELS[int(p.argmax())]
        sentiment = {
            "label": label,
            "score": round(float(p[2] - p[0]), 4),
            "confidence": round(float(p.max()), 4),
            "uncertain": bool(p.max() < th.get("uncertain", 0.6)),
        }
        topic_p = _sigmoid(a["topics"][b] / temps.get("topics", 1.0))
        found = [int(n) for n in np.argsort(-topic_p) if topic_p[n] >= th.get("topics", 0.5)]
        spans = evidence.of(found)
        topics = []
        for n in found:
            pol = _softmax(a["polarity"][b][n] / temps.get("polarity", 1.0))
            topic_id = cfg.topic_ids[n]
            entry = {
                "id": topic_id,
                "polarity": POLARITY_LABELS[int(pol.argmax())],
                "confidence": round(float(topic_p[n]), 4),
                "polarity_confidence": round(float(pol.max()), 4),
                "uncertain": bool(min(topic_p[n], pol.max()) < th.get("uncertain", 0.6)),
                "evidence": spans[n],
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


def _triage_over(triage: Any, taxonomy: Taxonomy) -> Any:
    """``triage``'s policy over ``taxonomy`` (a policy naming topics the taxonomy dropped keeps
    working: those topics simply never match)."""
    from models.triage import Triage
    from nlp.errors import PolicyError

    try:
        return Triage(triage.policy, taxonomy)
    except PolicyError:
        found = Triage(triage.policy)
        found.taxonomy = taxonomy
        return found


def _clauses(text: str):
    from nlp.clauses import split_clauses

    return split_clauses(text) or []


class _Evidence:
    """Evidence for a text's topics: for each node, the clause where it is most detectable.

    The node's head runs once per clause with its attention confined to that clause
    (:meth:`PrototypeHead.clause_logits`), and the clause with the highest detection logit is the
    evidence, as a span of the original text. (Picking the clause with the most attention mass
    chose a wrong clause about half the time on zhijiang's gold spans.)
    """

    def __init__(self, clf: Classifier, prep, hidden: torch.Tensor, pooled: torch.Tensor, offsets: np.ndarray,
                 special: np.ndarray) -> None:
        self.clf, self.prep, self.hidden, self.pooled = clf, prep, hidden, pooled
        starts = offsets[:, 0]
        self.clauses, masks = [], []
        for clause in _clauses(prep.text):
            inside = (starts >= clause.start) & (starts < clause.end) & (special == 0)
            if inside.any():  # a clause cut off by truncation has no tokens: never evidence
                self.clauses.append(clause)
                masks.append(inside)
        self.masks = torch.from_numpy(np.stack(masks)) if masks else None

    def of(self, nodes: list[int]) -> dict[int, dict[str, Any] | None]:
        if not nodes or self.masks is None:
            return dict.fromkeys(nodes)
        best = [0] * len(nodes)
        if len(self.clauses) > 1:
            model, index = self.clf.model, torch.tensor(nodes)
            with self.clf._lock, torch.inference_mode():
                logits = model.heads.topics.clause_logits(
                    self.hidden, self.pooled, self.masks, model.topic_protos[index],
                    model.heads.topic_offset[index], model.heads.topic_bias[index])
            best = logits.argmax(dim=1).tolist()
        return {n: self._span(self.clauses[c]) for n, c in zip(nodes, best, strict=True)}

    def _span(self, clause) -> dict[str, Any]:
        start, end = self.prep.to_original(clause.start, clause.end)
        return {"start": int(start), "end": int(end), "text": self.prep.original[start:end]}
