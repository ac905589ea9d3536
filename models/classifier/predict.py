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


@dataclass(frozen=True, slots=True)
class _Encoding:
    """One window of a text: its token ids, special-token mask and character offsets, how many
    windows its text has and which of them this is (0: the one the text starts with)."""

    ids: list[int]
    special: list[int]
    offsets: list[tuple[int, int]]
    windows: int
    index: int = 0


@dataclass(frozen=True, slots=True)
class _Window:
    """What the model said about one window: its heads' logits, calibrated topic probabilities and
    the topics found (most confident first), evidence spans by node, embedding."""

    arrays: dict[str, np.ndarray]
    topic_p: np.ndarray
    found: list[int]
    spans: dict[int, dict[str, Any] | None]
    pooled: np.ndarray
    index: int


#: how much consecutive windows of a long text share, as a share of a window's content tokens: a
#: clause cut by one window's edge is whole in the next
WINDOW_OVERLAP = 0.25


def _content_start(offsets: list, prefix_chars: int) -> int:
    """Index of a tokenised prefix + text's first token past the prefix's characters."""
    return next((t for t in range(1, len(offsets)) if offsets[t][1] > prefix_chars), len(offsets) - 1)


def _windows(ids: list[int], special: list[int], offsets: list, *, head: int, max_length: int) -> list[_Encoding]:
    """A tokenised text (``head`` leading tokens: the start token and the model's prefix; one end
    token) as windows of at most ``max_length`` tokens: the text itself when it fits, else
    overlapping slices of its content, each with the head and end tokens, the last one ending
    where the text ends."""
    if len(ids) <= max_length:
        return [_Encoding(list(ids), list(special), list(offsets), 1)]
    content = len(ids) - head - 1
    size = max_length - head - 1
    step = max(1, int(size * (1 - WINDOW_OVERLAP)))
    starts = list(range(0, content - size, step)) + [content - size]
    tail = len(ids) - 1
    return [
        _Encoding(ids[:head] + ids[head + a : head + a + size] + ids[tail:],
                  special[:head] + special[head + a : head + a + size] + special[tail:],
                  list(offsets[:head]) + list(offsets[head + a : head + a + size]) + list(offsets[tail:]),
                  len(starts), k)
        for k, a in enumerate(starts)
    ]


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
    def classify(self, items: Sequence[ClassifyItem | dict], *,
                 on_batch: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
        return self.classify_with_embeddings(items, on_batch=on_batch)[0]

    def classify_with_embeddings(self, items: Sequence[ClassifyItem | dict], *, on_batch: Callable[[int], None] | None = None,
                                 ) -> tuple[list[dict[str, Any]], np.ndarray]:
        """Classify, and also return each text's L2-normalised embedding from the model's own encoder.

        The embeddings (one row per item, in input order; a row of NaN for an item that failed) are
        what issue clustering uses, so analysis loads one model, not two. ``on_batch(n)`` is called
        as each batch of ``n`` texts is done (progress bars); rejected items are counted first.
        Texts are length-sorted across all of ``items``: the more items a call gets, the less padding.
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
        if on_batch is not None and len(prepared) < len(items):
            on_batch(len(items) - len(prepared))
        windows: dict[int, list] = {}  # a long text's windows, until all of them have run
        for chunk in self._batches(prepared):
            done = 0
            for (i, prep, enc), row in zip(chunk, self._run_batch([p for _, p, _ in chunk], [e for _, _, e in chunk]),
                                           strict=True):
                windows.setdefault(i, []).append(row)
                if len(windows[i]) < enc.windows:
                    continue
                res, embeddings[i] = self._finish(prep, windows.pop(i))
                res = {"id": items[i].id, **res}
                if self.triage is not None:
                    res["triage"] = self.triage(res, prep)
                res["model"] = self.model_id
                results[i] = res
                done += 1
            if on_batch is not None and done:
                on_batch(done)
        return results, embeddings  # type: ignore[return-value]

    def _batches(self, prepared: list) -> list[list]:
        """``(index, prepared, window)`` in length-sorted batches; a batch holds only windows of the
        same padded length. Each text is tokenised once, here; :meth:`_run_batch` only pads.

        A text longer than the model's ``max_length`` is read whole, as overlapping windows of it
        (:func:`_windows`), each batched like a text of its own; :meth:`_finish` joins their
        outputs. A text that fits is one window, exactly the tokens it always had."""
        if not prepared:
            return []
        cfg = self.config
        enc = self.model.tokenizer(
            [cfg.text_prefix + p.text for _, p in prepared], return_special_tokens_mask=True, return_offsets_mapping=True,
            verbose=False,  # a text longer than the encoder reads is expected: it is windowed below
        )
        encoded = [(i, p, w) for (i, p), ids, sp, off in
                   zip(prepared, enc["input_ids"], enc["special_tokens_mask"], enc["offset_mapping"], strict=True)
                   for w in _windows(ids, sp, off, head=_content_start(off, len(cfg.text_prefix)), max_length=cfg.max_length)]
        order = sorted(range(len(encoded)), key=lambda k: len(encoded[k][2].ids))
        batches: list[list] = []
        for _, same in itertools.groupby(order, key=lambda k: -(-len(encoded[k][2].ids) // PAD_TO_MULTIPLE)):
            group = [encoded[k] for k in same]
            batches += [group[i : i + self.batch_size] for i in range(0, len(group), self.batch_size)]
        return batches

    def _pad(self, encodings: list) -> dict[str, torch.Tensor]:
        """One batch's token ids, attention mask, special-token mask (the prefix counts as
        special: it is not content) and character offsets, padded to a multiple of 8."""
        width = -(-max(len(w.ids) for w in encodings) // PAD_TO_MULTIPLE) * PAD_TO_MULTIPLE
        n = len(encodings)
        input_ids = np.full((n, width), self.model.tokenizer.pad_token_id, dtype=np.int64)
        attention = np.zeros((n, width), dtype=np.int64)
        special = np.ones((n, width), dtype=np.int64)
        offsets = np.zeros((n, width, 2), dtype=np.int64)
        for b, w in enumerate(encodings):
            input_ids[b, : len(w.ids)] = w.ids
            attention[b, : len(w.ids)] = 1
            special[b, : len(w.ids)] = w.special
            offsets[b, : len(w.ids)] = w.offsets
        special = self.config.content_special(special, offsets, self._prefix_tokens)
        return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention),
                "special": torch.from_numpy(special), "offsets": offsets - len(self.config.text_prefix)}

    @torch.inference_mode()
    def _run_batch(self, preps, encodings) -> list[_Window]:
        """The model's outputs for each window of a batch, with evidence for the topics it finds."""
        tok = self._pad(encodings)
        special = tok["special"]
        with self._lock:  # torch modules are not re-entrant across threads
            out = self.model(tok["input_ids"], tok["attention_mask"], special)
        offsets = tok["offsets"]
        arrays = {k: out[k].float().numpy() for k in ("sentiment", "topics", "polarity", "touchpoints")}  # what _postprocess reads
        pooled = torch.nn.functional.normalize(out["pooled"].float(), dim=-1).numpy()
        topic_p, found = self._found_topics(arrays["topics"])
        spans = _Evidence(self, preps, found, out["hidden"].float(), offsets, special.numpy()).spans()
        return [_Window({k: v[b] for k, v in arrays.items()}, topic_p[b], found[b], spans[b], pooled[b], enc.index)
                for b, enc in enumerate(encodings)]

    def _finish(self, prep, windows: list[_Window]) -> tuple[dict[str, Any], np.ndarray]:
        """One text's result and embedding from the outputs of its windows (one, unless the text
        is longer than ``max_length``). Joined windows: document sentiment is the first window's,
        as the model learnt it from texts' beginnings (on online_shopping_10_cats' test reviews
        over 120 tokens, 0.3.0 is right on 90.1% from the first window, 89.3% from the mean of all
        windows' logits and 84.0% from the last); a topic or touchpoint is as detectable as in its
        most detectable window, and a topic takes its polarity and evidence from that window; the
        embedding is the windows' mean, normalised."""
        windows = sorted(windows, key=lambda w: w.index)
        if len(windows) == 1:  # the text fit: its window's result as it is
            w = windows[0]
            return self._postprocess(prep, w.arrays, w.topic_p, w.found, w.spans), w.pooled
        stack = {k: np.stack([w.arrays[k] for w in windows]) for k in windows[0].arrays}
        best = stack["topics"].argmax(axis=0)  # per node: the window where it is most detectable
        arrays = {
            "sentiment": stack["sentiment"][0],
            "topics": stack["topics"].max(axis=0),
            "polarity": stack["polarity"][best, np.arange(len(best))],
            "touchpoints": stack["touchpoints"].max(axis=0),
        }
        spans = {n: windows[w].spans[n] for n, w in enumerate(best.tolist()) if n in windows[w].spans}
        pooled = np.mean([w.pooled for w in windows], axis=0)
        pooled = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
        topic_p, found = self._found_topics(arrays["topics"][None])
        return self._postprocess(prep, arrays, topic_p[0], found[0], spans), pooled

    def _found_topics(self, topic_logits: np.ndarray) -> tuple[np.ndarray, list[list[int]]]:
        """Calibrated topic probabilities, and each text's topics at or over the threshold, most
        confident first."""
        p = self.config.node_probabilities("topics", topic_logits)
        threshold = self.config.thresholds.get("topics", 0.5)
        return p, [[int(n) for n in np.argsort(-row) if row[n] >= threshold] for row in p]

    # postprocess ----------------------------------------------------------------------------
    def _postprocess(self, prep, a: dict[str, np.ndarray], topic_p: np.ndarray, found: list[int],
                     spans: dict[int, dict[str, Any] | None]) -> dict[str, Any]:
        """One text's result from its heads' logits ``a`` (one row each)."""
        cfg, temps, th = self.config, self.config.temperatures, self.config.thresholds
        p = _softmax(a["sentiment"] / temps.get("sentiment", 1.0))
        label = SENTIMENT_LABELS[int(p.argmax())]
        sentiment = {
            "label": label,
            "score": round(float(p[2] - p[0]), 4),
            "confidence": round(float(p.max()), 4),
            "uncertain": bool(p.max() < th.get("uncertain", 0.6)),
        }
        topics = []
        for n in found:
            pol = _softmax(a["polarity"][n] / temps.get("polarity", 1.0))
            topic_id = cfg.topic_ids[n]
            entry = {
                "id": topic_id,
                "polarity": POLARITY_LABELS[int(pol.argmax())],
                "confidence": round(float(topic_p[n]), 4),
                "polarity_confidence": round(float(pol.max()), 4),
                "uncertain": bool(min(topic_p[n], pol.max()) < th.get("uncertain", 0.6)),
                "evidence": spans.get(n),
            }
            if topic_id not in cfg.trained_topic_ids:
                entry["zero_shot"] = True
            topics.append(entry)
        tp_p = cfg.node_probabilities("touchpoints", a["touchpoints"])
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
    """Evidence for the topics of a batch's texts: for each node, the clause of its text where it
    is most detectable.

    The node's head runs once per clause with its attention confined to that clause
    (:meth:`PrototypeHead.clause_logits`, all texts of the batch at once), and the clause with the
    highest detection logit is the evidence, as a span of the original text. (Picking the clause
    with the most attention mass chose a wrong clause about half the time on zhijiang's gold spans.)
    """

    def __init__(self, clf: Classifier, preps, found: list[list[int]], hidden: torch.Tensor,
                 offsets: np.ndarray, special: np.ndarray) -> None:
        self.clf, self.preps, self.found, self.hidden = clf, preps, found, hidden
        self.clauses: list[list] = []
        self.masks: list[list[np.ndarray]] = []
        for b, prep in enumerate(preps):
            starts = offsets[b][:, 0]
            kept, masks = [], []
            for clause in _clauses(prep.text) if found[b] else ():  # no topic, no evidence to find
                inside = (starts >= clause.start) & (starts < clause.end) & (special[b] == 0)
                if inside.any():  # a clause cut off by truncation has no tokens: never evidence
                    kept.append(clause)
                    masks.append(inside)
            self.clauses.append(kept)
            self.masks.append(masks)

    def spans(self) -> list[dict[int, dict[str, Any] | None]]:
        """For each text, {node: span or None} over its found nodes."""
        found = self.found
        best = [[0] * len(nodes) for nodes in found]
        asked = [(b, k, n) for b, nodes in enumerate(found) if len(self.clauses[b]) > 1 for k, n in enumerate(nodes)]
        if asked:
            width = max(len(self.clauses[b]) for b, _, _ in asked)
            masks = np.zeros((len(self.preps), width, self.hidden.shape[1]), dtype=bool)
            for b in {b for b, _, _ in asked}:
                masks[b, : len(self.masks[b])] = np.stack(self.masks[b])
            model = self.clf.model
            nodes = torch.tensor([n for _, _, n in asked])
            with self.clf._lock, torch.inference_mode():
                logits = model.heads.topics.clause_logits(
                    self.hidden, torch.from_numpy(masks), torch.tensor([b for b, _, _ in asked]),
                    model.topic_protos[nodes], model.heads.topic_offset[nodes], model.heads.topic_bias[nodes])
            for (b, k, _), c in zip(asked, logits.argmax(dim=1).tolist(), strict=True):
                best[b][k] = c
        return [
            {n: self._span(b, self.clauses[b][c]) if self.clauses[b] else None for n, c in zip(nodes, best[b], strict=True)}
            for b, nodes in enumerate(found)
        ]

    def _span(self, b: int, clause) -> dict[str, Any]:
        prep = self.preps[b]
        start, end = prep.to_original(clause.start, clause.end)
        return {"start": int(start), "end": int(end), "text": prep.original[start:end]}
