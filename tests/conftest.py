"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The public data directory (``$VERBATIM_DATA``, default ``../shared/data`` beside the repo).

    When it is absent the test is skipped with the reason, except under ``CI=true``, where data
    tests must run and absence fails."""
    from nlp.errors import DataUnavailableError
    from training.data import data_dir

    try:
        return data_dir()
    except DataUnavailableError as exc:
        reason = f"public data sets not available: {exc.message}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: data tests must run)", pytrace=False)
        pytest.skip(reason)
