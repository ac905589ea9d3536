"""Where the public data lives, and cached readers for its gzipped CSV and JSON Lines files."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from nlp.errors import DataUnavailableError

ENV_VAR = "VERBATIM_DATA"
REPO_ROOT = Path(__file__).resolve().parents[2]


def default_data_dir() -> Path:
    """``../shared/data`` beside the repository root."""
    return REPO_ROOT.parent / "shared" / "data"


def data_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The public data directory: ``path`` if given, else ``$VERBATIM_DATA``, else the default.

    Raises :class:`DataUnavailableError` naming the variable when the directory is missing.
    """
    if path is not None:
        chosen, origin = Path(path), "the data_dir argument"
    elif os.environ.get(ENV_VAR):
        chosen, origin = Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    else:
        chosen, origin = default_data_dir(), f"the default (${ENV_VAR} is unset)"
    if not chosen.is_dir():
        raise DataUnavailableError(
            f"public data directory not found: {chosen} (from {origin}). Set {ENV_VAR} to the "
            "folder holding zh/ and en/ (the shared data sets), or place them in ../shared/data "
            "beside the repository root.",
            details={"path": str(chosen), "env": ENV_VAR},
        )
    return chosen


def data_file(directory: Path, relative: str) -> Path:
    """``directory/relative``, or :class:`DataUnavailableError` naming the missing file."""
    path = directory / relative
    if not path.is_file():
        raise DataUnavailableError(
            f"data file missing: {path}. The data directory {directory} exists but lacks "
            f"{relative}; point {ENV_VAR} at a complete copy of the shared data.",
            details={"path": str(path), "env": ENV_VAR},
        )
    return path


def _text(path: Path) -> str:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8-sig")


@lru_cache(maxsize=32)
def read_jsonl(path: Path) -> tuple[dict[str, Any], ...]:
    """Rows of a (gzipped) JSON Lines file, parsed once per process."""
    return tuple(json.loads(line) for line in _text(path).splitlines() if line.strip())


@lru_cache(maxsize=32)
def read_csv(path: Path) -> tuple[dict[str, str], ...]:
    """Rows of a (gzipped) CSV file with a header, as string dicts, parsed once per process."""
    return tuple(csv.DictReader(io.StringIO(_text(path), newline="")))
