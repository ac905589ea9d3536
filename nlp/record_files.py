"""Reading users' record files into rows: format detection, decoding, CSV/JSONL/XLSX parsing.

Internal to :mod:`nlp.records`, which validates the rows. A row is ``(line, fields)`` or, when the
line itself cannot be read, ``(line, reason)``; whole-file problems raise
:class:`InvalidFileError`.
"""

from __future__ import annotations

import csv
import io
import json
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

from .errors import InvalidFileError

CONTRACT_FIELDS = ("id", "text", "nps", "csat", "ces", "rating", "rating_scale", "recommend",
                   "lang", "ts")  # fmt: skip
_SIGNATURES = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"PK\x03\x04", "a zip archive (an XLSX workbook is one)"),
    (b"\xd0\xcf\x11\xe0", "an old Excel 97-2003 .xls (or other OLE2) file"),
)
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv",
               ".tsv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".xlsm": "xlsx"}  # fmt: skip


class Row(NamedTuple):
    """One data row: its ``fields``, or the ``problem`` that makes it unreadable (with the row's
    ``id`` when it could still be read)."""

    line: int
    fields: dict[str, Any] | None
    problem: str | None = None
    id: str | None = None


class RecordFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"
    xlsx = "xlsx"


def read_rows(
    data: bytes, name: str, fmt: str | RecordFormat | None = None
) -> tuple[RecordFormat, list[Row]]:
    """The file's format and its data rows (blank lines and rows skipped)."""
    chosen = _choose_format(data, name, fmt)
    if chosen is RecordFormat.xlsx:
        return chosen, _xlsx_rows(data, name)
    text = _decode(data, name, chosen)
    rows = _jsonl_rows(text, name) if chosen is RecordFormat.jsonl else _csv_rows(text, name)
    return chosen, rows


# --- format and encoding ---------------------------------------------------------------------


def _sniff(data: bytes) -> str | None:
    return next((kind for magic, kind in _SIGNATURES if data.startswith(magic)), None)


def _choose_format(data: bytes, name: str, fmt: str | RecordFormat | None) -> RecordFormat:
    if not data.strip():
        raise InvalidFileError(f"{name} is empty: expected records as JSON Lines, CSV or XLSX")
    kind = _sniff(data)
    suffix = Path(name).suffix.lower()
    if fmt is None and suffix == ".xls":
        raise InvalidFileError(f"{name} is an old Excel 97-2003 .xls file; save it as .xlsx or CSV")
    if fmt is not None:
        try:
            chosen = RecordFormat(str(fmt).lower())
        except ValueError:
            raise InvalidFileError(f"unknown format {fmt!r}: expected jsonl, csv or xlsx") from None
    elif suffix in _EXTENSIONS:
        chosen = RecordFormat(_EXTENSIONS[suffix])
    elif kind and kind.startswith("a zip"):
        chosen = RecordFormat.xlsx
    else:
        chosen = RecordFormat.jsonl if data.lstrip()[:1] == b"{" else RecordFormat.csv
    if chosen is RecordFormat.xlsx and not (kind and kind.startswith("a zip")):
        found = kind or "text"
        raise InvalidFileError(f"{name} is not an XLSX workbook: it looks like {found}")
    if chosen is not RecordFormat.xlsx and kind:
        raise InvalidFileError(
            f"{name} is not a {chosen.value.upper()} file: it looks like {kind}. "
            "Upload records as JSON Lines, CSV or XLSX."
        )
    return chosen


def _decode(data: bytes, name: str, fmt: RecordFormat) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    elif b"\x00" not in data:
        for encoding in ("utf-8-sig", "gb18030"):  # gb18030: Chinese Excel's CSV exports
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                continue
            controls = sum(1 for ch in text if ch < " " and ch not in "\t\r\n")
            if controls <= len(text) // 100:
                return text
    raise InvalidFileError(
        f"{name} is not readable text: expected a UTF-8 (or GBK/GB18030) {fmt.value.upper()} "
        "file, got binary or undecodable bytes. Re-save it as UTF-8."
    )


# --- rows: (line, {field: value}) or (line, reason) -------------------------------------------


def _jsonl_rows(text: str, name: str) -> list[Row]:
    stripped = text.strip()
    if stripped.startswith("["):
        raise InvalidFileError(
            f"{name} holds a JSON array; JSON Lines needs one object per line "
            "(convert with: jq -c '.[]')"
        )
    rows: list[Row] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            rows.append(Row(number, None, f"not valid JSON: {exc.msg} at column {exc.colno}"))
            continue
        if isinstance(value, dict):
            rows.append(Row(number, value))
        else:
            rows.append(
                Row(number, None, f"expected a JSON object per line, got {type(value).__name__}")
            )
    if rows and all(r.fields is None for r in rows) and "\n" in stripped:
        try:
            whole = json.loads(stripped)
        except json.JSONDecodeError:
            whole = None
        if isinstance(whole, dict):
            raise InvalidFileError(
                f"{name} holds one JSON object spread over several lines; JSON Lines needs one "
                "object per line"
            )
    return rows


def _header(cells: list[Any], name: str) -> list[str]:
    names = []
    for i, cell in enumerate(cells, 1):
        label = "" if cell is None else str(cell).strip()
        names.append(label.lower() if label.lower() in CONTRACT_FIELDS else label or f"column_{i}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidFileError(f"{name}: the header repeats the column(s) {', '.join(duplicates)}")
    missing = [c for c in ("id", "text") if c not in names]
    if missing:
        found = ", ".join(n for n in names) or "nothing"
        raise InvalidFileError(
            f"{name} needs the columns id and text in its first row; missing {' and '.join(missing)}"
            f" (found: {found})",
            details={"missing": missing, "found": names},
        )
    return names


def _csv_rows(text: str, name: str) -> list[Row]:
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    delimiter = ","
    for candidate in (",", "\t", ";"):
        try:
            cells = next(csv.reader([first], delimiter=candidate), [])
        except csv.Error as exc:
            raise InvalidFileError(f"{name} is not valid CSV: {exc}") from exc
        if {"id", "text"} <= {c.strip().lower() for c in cells}:
            delimiter = candidate
            break
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        table = list(reader)
    except csv.Error as exc:
        raise InvalidFileError(f"{name} is not valid CSV: {exc}") from exc
    if not table:
        raise InvalidFileError(f"{name} is empty: expected a header row with id and text")
    columns = _header(table[0], name)
    rows: list[Row] = []
    for number, cells in enumerate(table[1:], 2):
        if not any(c.strip() for c in cells):
            continue
        if any(c.strip() for c in cells[len(columns) :]):
            problem = f"row has {len(cells)} cells but the header has {len(columns)}"
            rows.append(Row(number, None, problem, cells[columns.index("id")].strip() or None))
            continue
        fields = {c: (v if v.strip() else None) for c, v in zip(columns, cells, strict=False)}
        rows.append(Row(number, fields))
    return rows


def _xlsx_rows(data: bytes, name: str) -> list[Row]:
    import openpyxl  # lazy: only XLSX needs it

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises many types for corrupt files
        raise InvalidFileError(f"{name} is not a readable XLSX workbook: {exc}") from exc
    try:
        if not workbook.worksheets:
            raise InvalidFileError(f"{name} has no worksheet: put the records on the first sheet")
        sheet = workbook.worksheets[0]
        sheet.reset_dimensions()  # files not written by Excel may carry wrong dimensions
        rows: list[Row] = []
        columns: list[str] | None = None
        for number, cells in enumerate(sheet.iter_rows(), 1):
            values = [getattr(c, "value", None) for c in cells]
            if columns is None:
                if _formulas(cells, []):
                    raise InvalidFileError(f"{name}: the header row holds formulas")
                columns = _header(values, name)
                continue
            if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
                continue
            problems = _formulas(cells, columns)
            if len(values) > len(columns) and any(v is not None for v in values[len(columns) :]):
                problems.append(f"row has values beyond the header's {len(columns)} columns")
            if problems:
                rows.append(Row(number, None, "; ".join(problems), _id_hint(cells, columns)))
                continue
            rows.append(Row(number, {c: _cell(v) for c, v in zip(columns, values, strict=False)}))
    finally:
        workbook.close()
    if columns is None:
        raise InvalidFileError(f"{name} is empty: its first sheet has no header row")
    return rows


def _formulas(cells: tuple[Any, ...], columns: list[str]) -> list[str]:
    problems = []
    for i, cell in enumerate(cells):
        kind = getattr(cell, "data_type", None)
        column = f" ({columns[i]})" if i < len(columns) else ""
        if kind == "f":
            problems.append(
                f"cell {cell.coordinate}{column} holds a formula ({cell.value}); "
                "paste values instead of formulas"
            )
        elif kind == "e":
            problems.append(f"cell {cell.coordinate}{column} holds the error {cell.value}")
    return problems


def _id_hint(cells: tuple[Any, ...], columns: list[str]) -> str | None:
    """The row's id for a rejection message, when its cell holds a plain value."""
    i = columns.index("id")
    cell = cells[i] if i < len(cells) else None
    if cell is None or getattr(cell, "data_type", None) in ("f", "e"):
        return None
    value = _cell(getattr(cell, "value", None))
    return None if value is None else str(value).strip()


def _cell(value: Any) -> Any:
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
