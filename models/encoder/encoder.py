"""The sentence encoder: a local XLM-R-family model directory, mean-pooled and L2-normalised.

``Encoder.from_pretrained(dir)`` checks the directory cheaply and loads the weights on first use.
It accepts the directory built by :func:`models.encoder.build.build_base_encoder` and any
standard local XLM-R-family directory (``intfloat/multilingual-e5-small``, ``xlm-roberta-base``)
with ``model.safetensors`` weights.

Batching sorts texts by token length, pads each batch to its own longest text, and restores
the input order. ``torch``'s thread count is left to the caller.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nlp.errors import InvalidInputError, ModelError

if TYPE_CHECKING:
    import torch

DEFAULT_PREFIX = "query: "
SUPPORTED_MODEL_TYPES = ("xlm-roberta", "bert", "roberta", "camembert")
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
_TOKENIZER_FILES = ("tokenizer.json", "sentencepiece.bpe.model")


@dataclass(frozen=True, kw_only=True)
class TokenBatch:
    """A padded batch of tokenised texts.

    ``offsets[b, t]`` is the ``[start, end)`` character span of token ``t`` in the *original*
    text ``b`` (prefix removed, leading whitespace trimmed; may be empty for a bare ``▁``);
    ``-1`` marks special, prefix and padding tokens.
    """

    input_ids: torch.Tensor  # [B, T] int64
    attention_mask: torch.Tensor  # [B, T] int64
    offsets: np.ndarray  # [B, T, 2] int32

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


@dataclass(frozen=True, kw_only=True)
class TokenStates:
    """One text's token-level output (padding removed): hidden states and character spans."""

    hidden: torch.Tensor  # [T, H] float32
    offsets: np.ndarray  # [T, 2] int32, -1 for special/prefix tokens
    input_ids: np.ndarray  # [T] int64


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token states the mask keeps (specials included, as e5 was trained)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


class Encoder:
    """Multilingual sentence and token encoder over a local model directory."""

    def __init__(self, path: Path, *, device: str = "cpu") -> None:
        self.path = Path(path)
        self.device = device
        self._model: Any = None
        self._tokenizer: Any = None

    # -- loading -----------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path, *, device: str = "cpu") -> Encoder:
        """Check ``path`` is a usable model directory; the weights load on first use."""
        path = Path(path).expanduser()
        config = _read_config(path)
        model_type = config.get("model_type")
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ModelError(
                f"{path}/config.json has model_type {model_type!r}; expected an XLM-R-family "
                f"encoder ({', '.join(SUPPORTED_MODEL_TYPES)}). Fix: point to a directory such "
                "as a local intfloat/multilingual-e5-small or xlm-roberta-base, or run "
                "`verbatim setup` to build the default one."
            )
        if not any((path / f).is_file() for f in _WEIGHT_FILES):
            raise ModelError(
                f"{path} has no model.safetensors weights (pickled .bin weights are not loaded). "
                "Fix: save the model with safe_serialization=True, or run `verbatim setup`."
            )
        if not any((path / f).is_file() for f in _TOKENIZER_FILES):
            raise ModelError(
                f"{path} has no tokenizer (tokenizer.json or sentencepiece.bpe.model). "
                "Fix: copy the tokenizer files that came with the model into this directory."
            )
        return cls(path, device=device)

    def load(self) -> Encoder:
        """Load tokenizer and weights now (otherwise done on first use); returns ``self``."""
        if self._model is not None:
            return self
        from transformers import AutoModel, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(self.path)
            model = AutoModel.from_pretrained(self.path, add_pooling_layer=False)
        except Exception as exc:  # tokenizers/safetensors raise bare Exception subclasses
            raise ModelError(
                f"Could not load the encoder in {self.path}: {exc}. Fix: delete the directory "
                "and run `verbatim setup` again, or re-copy the model directory.",
                details={"path": str(self.path)},
            ) from exc
        model.to(self.device).eval()
        self._tokenizer, self._model = tokenizer, model
        return self

    @property
    def model(self) -> Any:
        """The ``transformers`` encoder module (loaded on first access)."""
        return self.load()._model

    @property
    def tokenizer(self) -> Any:
        """The fast tokenizer (loaded on first access)."""
        return self.load()._tokenizer

    @cached_property
    def dim(self) -> int:
        """Width of the embeddings and token states (384 for multilingual-e5-small)."""
        return int(_read_config(self.path)["hidden_size"])

    # -- token level -------------------------------------------------------------------
    def tokenize_batch(
        self, texts: Sequence[str], *, prefix: str = DEFAULT_PREFIX, max_length: int = 256
    ) -> TokenBatch:
        """Tokenise ``prefix + text`` for each text, padded to the batch's longest."""
        texts = _check_texts(texts)
        enc = self._tokenize(texts, prefix, max_length)
        return self._collate(enc, list(range(len(texts))), texts, len(prefix))

    def forward_hidden(self, batch: TokenBatch) -> torch.Tensor:
        """Final-layer token states ``[B, T, H]``; runs in the caller's grad mode (trainable)."""
        out = self.model(
            input_ids=batch.input_ids.to(self.device),
            attention_mask=batch.attention_mask.to(self.device),
        )
        return out.last_hidden_state

    def encode_tokens(
        self,
        texts: Sequence[str],
        *,
        prefix: str = DEFAULT_PREFIX,
        batch_size: int = 64,
        max_length: int = 256,
    ) -> list[TokenStates]:
        """Token states and character spans per text, in input order (inference only)."""
        import torch

        texts = _check_texts(texts)
        out: list[TokenStates | None] = [None] * len(texts)
        with torch.inference_mode():
            for idx, batch in self._sorted_batches(texts, prefix, batch_size, max_length):
                hidden = self.forward_hidden(batch).float().cpu()
                lengths = batch.attention_mask.sum(dim=1).tolist()
                for row, (i, n) in enumerate(zip(idx, lengths, strict=True)):
                    out[i] = TokenStates(
                        hidden=hidden[row, :n].clone(),
                        offsets=batch.offsets[row, :n].copy(),
                        input_ids=batch.input_ids[row, :n].numpy().copy(),
                    )
        return [s for s in out if s is not None]

    # -- sentence level ----------------------------------------------------------------
    def encode(
        self,
        texts: Sequence[str],
        *,
        prefix: str = DEFAULT_PREFIX,
        batch_size: int = 64,
        max_length: int = 256,
        normalize: bool = True,
    ) -> np.ndarray:
        """Mean-pooled embeddings ``(len(texts), dim)`` float32, L2-normalised by default.

        e5 expects ``"query: "`` for queries and short texts to classify, ``"passage: "`` for
        documents to retrieve.
        """
        import torch

        texts = _check_texts(texts)
        result = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for idx, batch in self._sorted_batches(texts, prefix, batch_size, max_length):
                pooled = mean_pool(self.forward_hidden(batch), batch.attention_mask.to(self.device))
                if normalize:
                    pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
                result[idx] = pooled.float().cpu().numpy()
        return result

    # -- internals ---------------------------------------------------------------------
    def _tokenize(self, texts: list[str], prefix: str, max_length: int) -> Any:
        if max_length < 3:
            raise InvalidInputError(f"max_length must be at least 3 tokens, got {max_length}.")
        return self.tokenizer(
            [prefix + t for t in texts],
            truncation=True,
            max_length=max_length,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )

    def _sorted_batches(
        self, texts: list[str], prefix: str, batch_size: int, max_length: int
    ) -> Iterator[tuple[list[int], TokenBatch]]:
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be at least 1, got {batch_size}.")
        if not texts:
            return
        enc = self._tokenize(texts, prefix, max_length)
        order = sorted(range(len(texts)), key=lambda i: len(enc["input_ids"][i]), reverse=True)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            yield idx, self._collate(enc, idx, texts, len(prefix))

    def _collate(self, enc: Any, idx: list[int], texts: list[str], plen: int) -> TokenBatch:
        import torch

        width = max((len(enc["input_ids"][i]) for i in idx), default=0)
        pad_id = self.tokenizer.pad_token_id
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        offsets = np.full((len(idx), width, 2), -1, dtype=np.int32)
        for row, i in enumerate(idx):
            n = len(enc["input_ids"][i])
            ids[row, :n] = torch.tensor(enc["input_ids"][i], dtype=torch.long)
            mask[row, :n] = 1
            offsets[row, :n] = _text_offsets(
                texts[i], enc["offset_mapping"][i], enc["special_tokens_mask"][i], plen
            )
        return TokenBatch(input_ids=ids, attention_mask=mask, offsets=offsets)


def _text_offsets(
    text: str, spans: Sequence[tuple[int, int]], special: Sequence[int], plen: int
) -> np.ndarray:
    """Map spans in ``prefix + text`` to ``text``; -1 for specials and prefix-only tokens."""
    out = np.full((len(spans), 2), -1, dtype=np.int32)
    for t, ((start, end), is_special) in enumerate(zip(spans, special, strict=True)):
        if is_special or end <= plen:
            continue
        s, e = max(start - plen, 0), end - plen
        while s < e and text[s].isspace():
            s += 1
        out[t] = (s, e)
    return out


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise InvalidInputError(
            "texts must be a sequence of strings, got one string. Fix: pass [text]."
        )
    out = list(texts)
    bad = [i for i, t in enumerate(out) if not isinstance(t, str)]
    if bad:
        raise InvalidInputError(
            f"texts must all be strings; items {bad[:5]} are not.", details={"indices": bad}
        )
    return out


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_dir():
        raise ModelError(
            f"Model directory {path} does not exist. Fix: run `verbatim setup` to build the "
            "default encoder, or pass the path of a local XLM-R-family model directory.",
            details={"path": str(path)},
        )
    config_path = path / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(
            f"{path} has no config.json, so it is not a model directory. Fix: delete it and "
            "run `verbatim setup`, or point to a complete model directory.",
            details={"path": str(path)},
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(
            f"{config_path} is not valid JSON ({exc}); the directory is corrupt. Fix: delete "
            "the directory and run `verbatim setup`, or re-copy the model directory.",
            details={"path": str(path)},
        ) from exc
    if not isinstance(config, dict) or "hidden_size" not in config:
        raise ModelError(
            f"{config_path} has no hidden_size; the directory is corrupt. Fix: delete the "
            "directory and run `verbatim setup`, or re-copy the model directory.",
            details={"path": str(path)},
        )
    return config
