"""Users' record files (JSON Lines, CSV, XLSX) per the "Records in" contract.

>>> result = read_records("survey.csv")
>>> result.records[0].text, [(r.line, r.reason) for r in result.rejected]

Every data row ends up either in ``records`` or in ``rejected`` (with its line number and the
reason); a problem with the whole file raises :class:`InvalidFileError`. Line numbers are the
physical line of a JSON Lines file, and the spreadsheet row of a CSV or XLSX file (the header is
row 1). Blank lines and rows are not records and are skipped.

Conversions, chosen so one file means the same in every format: CSV and XLSX cells carry no types,
so ``id`` and ``text`` cells are read as text (an XLSX number 17 is id ``"17"``); in JSON, ``id``
may be a string or an integer (read as its decimal string) and ``text`` must be a string. Scores
may be numbers or numeric strings in every format; empty cells and JSON ``null`` mean absent.
Contract columns of CSV/XLSX headers match case-insensitively (``ID``, ``Text``); JSON keys match
exactly. ``lang`` accepts regional tags (``zh-CN`` -> ``zh``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from .errors import InvalidFileError
from .record_files import CONTRACT_FIELDS, RecordFormat, Row, read_rows

__all__ = ["CONTRACT_FIELDS", "ReadResult", "Record", "RecordFormat", "Rejection", "read_records"]

MAX_TEXT_CHARS = 10_000
MAX_ID_CHARS = 256
_RANGES = {"nps": (0.0, 10.0), "csat": (1.0, 5.0), "ces": (1.0, 7.0)}
_TRUE = {"1", "true", "yes", "y", "是"}
_FALSE = {"0", "false", "no", "n", "否"}


@dataclass(frozen=True, kw_only=True, slots=True)
class Record:
    """One valid verbatim. ``text`` is kept exactly as given (evidence offsets index it)."""

    id: str
    text: str
    line: int
    nps: float | None = None
    csat: float | None = None
    ces: float | None = None
    rating: float | None = None
    rating_scale: float | None = None
    recommend: bool | None = None
    lang: str | None = None
    ts: datetime | date | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def scores(self) -> dict[str, float]:
        """The structured scores present, as numbers (``recommend`` as 1.0 / 0.0)."""
        out = {k: getattr(self, k) for k in ("nps", "csat", "ces", "rating", "rating_scale")}
        if self.recommend is not None:
            out["recommend"] = float(self.recommend)
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True, kw_only=True, slots=True)
class Rejection:
    """A data row that broke the contract: where, which id if readable, and why."""

    line: int
    id: str | None
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ReadResult:
    records: list[Record]
    rejected: list[Rejection]
    format: RecordFormat

    @property
    def total(self) -> int:
        """Data rows read: ``len(records) + len(rejected)``."""
        return len(self.records) + len(self.rejected)


class _Reject(Exception):
    """One field's problem; collected into the row's rejection reason."""


def read_records(
    source: str | Path | bytes,
    *,
    format: str | RecordFormat | None = None,
    filename: str | None = None,
) -> ReadResult:
    """Read and validate a users' record file (a path, or its bytes with an optional ``filename``).

    The format is ``format`` if given, else the file extension, else sniffed from the content.
    Raises :class:`InvalidFileError` for whole-file problems: empty, unreadable, not what its name
    says, or a CSV/XLSX without ``id`` and ``text`` columns.
    """
    if isinstance(source, bytes):
        data, name = source, filename or "the uploaded file"
    else:
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
        name = filename or path.name
    fmt, rows = read_rows(data, name, format)
    return _validate_rows(rows, fmt)


# --- validation -------------------------------------------------------------------------------


def _validate_rows(rows: list[Row], fmt: RecordFormat) -> ReadResult:
    records: list[Record] = []
    rejected: list[Rejection] = []
    first_seen: dict[str, int] = {}
    spreadsheet = fmt is not RecordFormat.jsonl
    for line, row, problem, hint in rows:
        if row is None:
            rejected.append(Rejection(line=line, id=hint, reason=problem or "unreadable row"))
            continue
        problems: list[str] = []
        values: dict[str, Any] = {}
        for name, check in _CHECKS.items():
            raw = row.get(name)
            try:
                values[name] = check(raw, spreadsheet) if not _absent(raw) else None
            except _Reject as exc:
                problems.append(str(exc))
        record_id = values.get("id")
        if _absent(row.get("id")):
            problems.insert(0, "id is required")
        if _absent(row.get("text")):
            problems.append("text is required")
        if values.get("rating") is not None and values.get("rating_scale") is None:
            problems.append("rating needs rating_scale (e.g. 5 or 10): add a rating_scale field")
        elif values.get("rating") is not None and values["rating"] > values["rating_scale"]:
            problems.append(
                f"rating {_num(values['rating'])} is above rating_scale "
                f"{_num(values['rating_scale'])}"
            )
        if record_id is not None:
            if record_id in first_seen:
                problems.append(
                    f"duplicate id {record_id!r}, first seen on line {first_seen[record_id]}"
                )
            else:
                first_seen[record_id] = line
        if problems:
            rejected.append(Rejection(line=line, id=record_id, reason="; ".join(problems)))
            continue
        metadata = {k: _metadata(v) for k, v in row.items() if k not in CONTRACT_FIELDS}
        records.append(Record(line=line, metadata=metadata, **values))
    return ReadResult(records=records, rejected=rejected, format=fmt)


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _metadata(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | time) else value


def _check_id(value: Any, spreadsheet: bool) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) and not spreadsheet:
        raise _Reject(f"id must be a string, got {json.dumps(value, default=str)}")
    text = _metadata(value) if spreadsheet else value
    text = str(text).strip()
    if len(text) > MAX_ID_CHARS:
        raise _Reject(f"id is {len(text)} characters long; the limit is {MAX_ID_CHARS}")
    return text


def _check_text(value: Any, spreadsheet: bool) -> str:
    if spreadsheet and not isinstance(value, str):
        value = str(_metadata(value))
    if not isinstance(value, str):
        raise _Reject(f"text must be a string, got {json.dumps(value, default=str)}")
    length = len(value.strip())
    if length > MAX_TEXT_CHARS:
        raise _Reject(
            f"text is {length:,} characters after trimming; the limit is {MAX_TEXT_CHARS:,}"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Reject("text contains invalid Unicode (a lone surrogate)") from None
    return value


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Reject(f"{name} must be a number, got {json.dumps(value, default=str)}")
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except ValueError:
        raise _Reject(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise _Reject(f"{name} must be a finite number, got {value!r}")
    return number


def _ranged(name: str) -> Any:
    def check(value: Any, spreadsheet: bool) -> float:
        number = _number(name, value)
        low, high = _RANGES[name]
        if not low <= number <= high:
            raise _Reject(f"{name} must be between {low:g} and {high:g}, got {value!r}")
        return number

    return check


def _check_rating(value: Any, spreadsheet: bool) -> float:
    number = _number("rating", value)
    if number < 0:
        raise _Reject(f"rating must be 0 or more, got {value!r}")
    return number


def _check_scale(value: Any, spreadsheet: bool) -> float:
    number = _number("rating_scale", value)
    if number <= 0:
        raise _Reject(f"rating_scale must be a positive number such as 5 or 10, got {value!r}")
    return number


def _check_recommend(value: Any, spreadsheet: bool) -> bool:
    if isinstance(value, bool):
        return value
    token = _num(value) if isinstance(value, int | float) else str(value).strip().lower()
    if token in ("1.0", "0.0"):
        token = token[0]
    if token in _TRUE:
        return True
    if token in _FALSE:
        return False
    raise _Reject(f"recommend must be 0/1, true/false or yes/no, got {value!r}")


def _check_lang(value: Any, spreadsheet: bool) -> str:
    token = str(value).strip().lower().replace("_", "-")
    primary = token.split("-", 1)[0]
    if primary in ("zh", "en"):
        return primary
    raise _Reject(f"lang must be zh or en (or absent to detect), got {value!r}")


def _check_ts(value: Any, spreadsheet: bool) -> datetime | date:
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, str):
        token = value.strip()
        try:
            return date.fromisoformat(token) if len(token) == 10 else datetime.fromisoformat(token)
        except ValueError:
            pass
    hint = " (an Excel date number? format the column as a date)" if spreadsheet else ""
    raise _Reject(
        f"ts must be an ISO 8601 date or date-time such as 2024-05-01 or "
        f"2024-05-01T14:30:00+08:00, got {value!r}{hint}"
    )


_CHECKS = {
    "id": _check_id,
    "text": _check_text,
    "nps": _ranged("nps"),
    "csat": _ranged("csat"),
    "ces": _ranged("ces"),
    "rating": _check_rating,
    "rating_scale": _check_scale,
    "recommend": _check_recommend,
    "lang": _check_lang,
    "ts": _check_ts,
}
