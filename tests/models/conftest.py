"""Shared fixtures for model tests: the real base encoder, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def base_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built multilingual-e5-small directory.

    Reuses ``$VERBATIM_HOME/base/multilingual-e5-small`` when ``VERBATIM_HOME`` is set (built
    there if missing), otherwise builds into a session temp dir (about 10 s, 470 MB).
    """
    from models.encoder import build_base_encoder, ensure_base_encoder

    home = os.environ.get("VERBATIM_HOME")
    if home:
        return ensure_base_encoder(Path(home))
    return build_base_encoder(tmp_path_factory.mktemp("verbatim-home") / "multilingual-e5-small")


@pytest.fixture(scope="session")
def encoder(base_encoder_dir: Path):
    """The loaded ``Encoder`` over the built directory."""
    from models.encoder import Encoder

    return Encoder.from_pretrained(base_encoder_dir).load()
