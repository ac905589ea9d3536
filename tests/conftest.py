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


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny models: tiny matrices gain nothing from threads,
    oversubscribed cores make them crawl, and a fixed thread count keeps float sums in one order.
    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
