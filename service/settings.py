"""Service settings, read from ``VERBATIM_*`` environment variables.

The settings object is built once by the app factory or the command line and handed to routes
through a dependency; nothing reads a module-level settings global.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path(user_data_dir("verbatim", appauthor=False))


class Settings(BaseSettings):
    """Where Verbatim keeps its things and how the service behaves."""

    model_config = SettingsConfigDict(env_prefix="VERBATIM_", frozen=True, extra="ignore")

    home: Path = Field(default_factory=_default_home, description="Built encoder, database, models, jobs, reports.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in home.")
    data: Path | None = Field(default=None, description="The public data sets (default ../shared/data).")
    model: Path | None = Field(default=None, description="Model directory to serve; default: the shipped default model.")
    precision: Literal["auto", "fp32", "bf16", "int8"] = Field(
        default="auto",
        description="How the encoder computes: auto (bf16 on a CPU with native bf16, else fp32), fp32, bf16 or int8 "
        "(see models/classifier/quantize.py and the README's speed table).",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 20 * 1024 * 1024
    max_items: int = 256
    max_text_chars: int = 10_000
    # classification serving (service/batching.py, service/ratelimit.py)
    rate_limit_per_minute: int = Field(
        default=6000, ge=0,
        description="Per API key: items classified (or requests, on other limited routes) per minute; "
        "a token bucket holding one minute's worth. 0 turns the limit off.",
    )
    classify_max_batch: int = Field(default=256, ge=1, description="Most items in one model call (large batches let the model sort concurrent requests by length).")
    classify_max_wait_ms: float = Field(
        default=5.0, ge=0, description="Longest wait for more items to fill a batch."
    )
    classify_max_queue: int = Field(
        default=4096, ge=1, description="Items waiting for the model before new requests get 503."
    )
    log_level: str = "INFO"

    @cached_property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'verbatim.db'}"

    @property
    def base_encoder_dir(self) -> Path:
        return self.home / "base" / "multilingual-e5-small"
