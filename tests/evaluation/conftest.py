from __future__ import annotations

import os

import pytest

from nlp.errors import DataUnavailableError


@pytest.fixture(scope="session")
def shared_data():
    """The public data directory, or a skip (a failure when CI=true)."""
    from training.data import data_dir

    try:
        return data_dir()
    except DataUnavailableError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"public data sets not available: {exc.message}")
