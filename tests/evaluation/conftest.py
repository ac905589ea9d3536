"""Fixtures shared by the evaluation tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def last_run_copy(tmp_path) -> Path:
    """A report folder holding a copy of the committed last full run (``evaluation/results.json``)."""
    out = tmp_path / "evaluation"
    out.mkdir()
    shutil.copy(REPO / "evaluation/results.json", out / "results.json")
    return out
