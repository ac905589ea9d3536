"""Reading analysts' label files (CSV, XLSX, JSON Lines) into labels, one per row.

Columns (a header row; names are case-insensitive; other columns are ignored and reported):

- ``dataset_id`` + ``record_id`` for a stored record, or ``text`` (with optional ``lang`` and ``id``)
  for an example in no data set;
- ``sentiment``: ``negative``/``neutral``/``positive`` (also 负面/中性/正面);
- ``topics``: ``delivery.timeliness:negative; product.quality:positive`` (separated by ``;``, ``,``,
  ``；`` or new lines); ``touchpoints``: ``fulfil;purchase``. An empty cell means "not labelled";
  ``-`` or ``none`` (无) means "labelled: none applies";
- ``taxonomy``, ``taxonomy_version`` (default: as in the request), ``note``.

JSON Lines take the same fields, with ``topics`` as an object (or the cell syntax) and
``touchpoints`` as a list; an ``id`` of the form ``<dataset_id>/<record_id>`` names that record, so
an export (``GET /v1/labels/export``) imports back. Each row is
numbered as a spreadsheet shows it (the header is row 1); an unreadable row becomes a rejection
with its line, and whole-file problems raise :class:`InvalidFileError`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlp.errors import InvalidFileError, InvalidInputError
from service.labels import LabelInput, Rejected

COLUMNS = ("dataset_id", "record_id", "id", "text", "lang", "sentiment", "topics", "touchpoints",
           "taxonomy", "taxonomy_version", "note")  # fmt: skip
_POLARITY_WORDS = {"负面": "negative", "中性": "neutral", "正面": "positive",
                   "neg": "negative", "neu": "neutral", "pos": "positive"}  # fmt: skip
_NONE = {"-", "none", "无", "[]", "{}"}
_SPLIT = re.compile(r"[;,；，\n]+")


@dataclass(frozen=True, kw_only=True)
class LabelFile:
    """A parsed label file: the labels to check, the rows already rejected, ignored columns."""

    format: str
    items: list[LabelInput]
    rejected: list[Rejected]
    ignored_columns: list[str]


def _word(value: str) -> str:
    value = value.strip().lower()
    return _POLARITY_WORDS.get(value, value)


def parse_topics(value: Any) -> dict[str, str] | None:
    """A topics cell (or a JSON object / contract list) as ``{leaf id: polarity}``."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {str(k).strip(): _word(str(v)) for k, v in value.items()}
    if isinstance(value, list):
        out = {}
        for item in value:
            if not isinstance(item, Mapping) or "id" not in item:
                raise InvalidInputError(f'each topic must be {{"id", "polarity"}}; got {item!r}.')
            out[str(item["id"]).strip()] = _word(str(item.get("polarity", "")))
        return out
    text = str(value).strip()
    if not text:
        return None
    if text.lower() in _NONE:
        return {}
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in _SPLIT.split(text))):
        topic, sep, polarity = part.replace("：", ":").rpartition(":")
        if not sep or not topic.strip() or not polarity.strip():
            raise InvalidInputError(
                f"topic {part!r} lacks its polarity: write it as id:polarity, e.g. "
                "delivery.timeliness:negative."
            )
        if topic.strip() in out:
            raise InvalidInputError(f"topic {topic.strip()!r} is given twice.")
        out[topic.strip()] = _word(polarity)
    return out


def parse_touchpoints(value: Any) -> list[str] | None:
    """A touchpoints cell (or JSON list) as a list of ids."""
    if value is None:
        return None
    if isinstance(value, list):
        parts = [str(v.get("id") if isinstance(v, Mapping) else v) for v in value]
    else:
        text = str(value).strip()
        if not text:
            return None
        if text.lower() in _NONE:
            return []
        parts = _SPLIT.split(text)
    return list(dict.fromkeys(p.strip() for p in parts if p and p.strip()))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # spreadsheets store 17 as 17.0
    text = str(value).strip()
    return text or None


def _version(value: Any) -> int | None:
    text = _text(value)
    if text is None:
        return None
    if text.lower().startswith("v"):
        text = text[1:]
    if not text.isdigit():
        raise InvalidInputError(f"taxonomy_version must be a whole number such as 2; got {text!r}.")
    return int(text)


def row_to_input(fields: Mapping[str, Any], *, line: int, defaults: Mapping[str, Any]) -> LabelInput:
    """One row's fields as a :class:`LabelInput` (defaults fill taxonomy and version)."""
    sentiment = _text(fields.get("sentiment"))
    lang = _text(fields.get("lang"))
    dataset_id, record_id, example = (
        _text(fields.get(k)) for k in ("dataset_id", "record_id", "id")
    )
    if example and "/" in example and record_id is None and dataset_id is None:
        dataset_id, record_id = example.split("/", 1)  # an export's id: <dataset_id>/<record_id>
        example = None
    return LabelInput(
        dataset_id=dataset_id,
        record_id=record_id,
        id=example,
        text=_text(fields.get("text")),
        lang=lang.lower() if lang else None,
        sentiment=_word(sentiment) if sentiment else None,
        topics=parse_topics(fields.get("topics")),
        touchpoints=parse_touchpoints(fields.get("touchpoints")),
        taxonomy=_text(fields.get("taxonomy")) or defaults.get("taxonomy"),
        taxonomy_version=_version(fields.get("taxonomy_version")) or defaults.get("taxonomy_version"),
        note=_text(fields.get("note")),
        line=line,
    )


def _format(data: bytes, name: str) -> str:
    suffix = Path(name).suffix.lower()
    if data.startswith(b"PK\x03\x04") or suffix in (".xlsx", ".xlsm"):
        if not data.startswith(b"PK\x03\x04"):
            raise InvalidFileError(f"{name} is not an XLSX workbook; save it as .xlsx or CSV.")
        return "xlsx"
    if suffix in (".jsonl", ".ndjson", ".json") or data.lstrip()[:1] == b"{":
        return "jsonl"
    return "csv"


def _decode(data: bytes, name: str) -> str:
    for encoding in ("utf-8-sig", "gb18030"):  # gb18030: Chinese Excel's CSV exports
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidFileError(f"{name} is not UTF-8 (or GB18030) text; re-save it as UTF-8.")


def _header(cells: list[Any], name: str) -> tuple[list[str], list[str]]:
    names = [str(c).strip().lower() if c is not None else "" for c in cells]
    known = [n for n in names if n in COLUMNS]
    if not ({"record_id", "text"} & set(known)):
        raise InvalidFileError(
            f"{name} needs a header row with record_id (and dataset_id) or text, plus sentiment, "
            f"topics and/or touchpoints; found: {', '.join(n for n in names if n) or 'nothing'}.",
            details={"expected": list(COLUMNS), "found": names},
        )
    duplicates = sorted({n for n in known if known.count(n) > 1})
    if duplicates:
        raise InvalidFileError(f"{name}: the header repeats the column(s) {', '.join(duplicates)}.")
    return names, [n for n in names if n and n not in COLUMNS]


def _table_rows(table: list[list[Any]], name: str) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    if not table:
        raise InvalidFileError(f"{name} is empty: expected a header row and one label per row.")
    names, ignored = _header(table[0], name)
    rows = []
    for number, cells in enumerate(table[1:], 2):
        if all(c is None or (isinstance(c, str) and not c.strip()) for c in cells):
            continue
        fields = {n: v for n, v in zip(names, cells, strict=False) if n in COLUMNS}
        rows.append((number, {k: (None if isinstance(v, str) and not v.strip() else v)
                              for k, v in fields.items()}))  # fmt: skip
    return rows, ignored


def _xlsx_table(data: bytes, name: str) -> list[list[Any]]:
    import openpyxl  # lazy: only XLSX needs it

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many types for corrupt files
        raise InvalidFileError(f"{name} is not a readable XLSX workbook: {exc}") from exc
    try:
        if not workbook.worksheets:
            raise InvalidFileError(f"{name} has no worksheet: put the labels on the first sheet.")
        sheet = workbook.worksheets[0]
        sheet.reset_dimensions()
        return [list(row) for row in sheet.iter_rows(values_only=True)]
    finally:
        workbook.close()


def read_label_file(data: bytes, name: str, *, defaults: Mapping[str, Any] | None = None) -> LabelFile:
    """Parse a label file: every row becomes a :class:`LabelInput` or a :class:`Rejected`."""
    defaults = defaults or {}
    if not data.strip():
        raise InvalidFileError(f"{name} is empty: expected labels as CSV, XLSX or JSON Lines.")
    fmt = _format(data, name)
    ignored: list[str] = []
    rows: list[tuple[int, Any]] = []
    rejected: list[Rejected] = []
    if fmt == "jsonl":
        for number, line in enumerate(_decode(data, name).splitlines(), 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                rejected.append(Rejected(line=number, reason=f"not valid JSON: {exc.msg}"))
                continue
            if not isinstance(value, dict):
                rejected.append(Rejected(line=number, reason="expected one JSON object per line"))
                continue
            ignored += [k for k in value if k not in COLUMNS and k not in ignored]
            rows.append((number, value))
    else:
        if fmt == "xlsx":
            table = _xlsx_table(data, name)
        else:
            text = _decode(data, name)
            first = text.split("\n", 1)[0]
            delimiter = max((",", "\t", ";"), key=first.count)
            try:
                table = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
            except csv.Error as exc:
                raise InvalidFileError(f"{name} is not valid CSV: {exc}") from exc
        rows, ignored = _table_rows(table, name)
    items = []
    for number, fields in rows:
        try:
            items.append(row_to_input(fields, line=number, defaults=defaults))
        except InvalidInputError as exc:
            ref = _text(fields.get("record_id")) or _text(fields.get("id"))
            rejected.append(Rejected(line=number, ref=ref, reason=exc.message))
    if not items and not rejected:
        raise InvalidFileError(f"{name} holds no labels: expected a header row and one label per row.")
    return LabelFile(format=fmt, items=items, rejected=rejected, ignored_columns=ignored)
