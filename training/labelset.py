"""Label sets: analysts' labels for fine-tuning and evaluation, as JSON Lines.

One JSON object per line::

    {"id": "r17", "text": "吃了以后拉肚子", "lang": "zh", "sentiment": "negative",
     "topics": {"product.quality": "negative"}, "touchpoints": ["product"]}

* ``id`` (string, or an integer read as its decimal string) and ``text`` are required; ids are
  unique within a file.
* ``topics`` maps taxonomy *leaf* ids to a polarity (``negative``/``neutral``/``positive``); a list
  of ``{"id", "polarity"}`` objects (the classification contract's shape) is read the same way.
  Absent or ``null`` means "not labelled for topics"; ``{}`` or ``[]`` means "labelled: no topic".
* ``touchpoints`` is a list of touchpoint ids; absent or ``null`` means not labelled.
* ``sentiment`` is ``negative``/``neutral``/``positive`` or absent; ``lang`` is ``zh``/``en``
  (regional tags like ``zh-CN`` accepted) or absent.

:func:`read_label_set` checks every line and raises one :class:`InvalidFileError` whose ``details``
list every bad line (``{"line", "id", "reason"}``), so a file is fixed in one pass. With a
``taxonomy`` it also checks that every id names an active leaf or touchpoint of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlp.errors import InvalidFileError, InvalidInputError

__all__ = [
    "LabelExample",
    "LabelProblem",
    "example_from_dict",
    "labels_from_dataset",
    "parse_label_rows",
    "read_label_set",
    "write_label_set",
]

POLARITIES = ("negative", "neutral", "positive")
MAX_TEXT_CHARS = 10_000
_FIELDS = {"id", "text", "lang", "sentiment", "topics", "touchpoints"}


@dataclass(frozen=True, kw_only=True, slots=True)
class LabelExample:
    """One labelled verbatim. ``None`` for a field means "not labelled for it"."""

    id: str
    text: str
    lang: str | None = None
    sentiment: str | None = None
    topics: dict[str, str] | None = None
    touchpoints: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON Lines object for this example (absent fields left out)."""
        out: dict[str, Any] = {"id": self.id, "text": self.text}
        if self.lang is not None:
            out["lang"] = self.lang
        if self.sentiment is not None:
            out["sentiment"] = self.sentiment
        if self.topics is not None:
            out["topics"] = dict(sorted(self.topics.items()))
        if self.touchpoints is not None:
            out["touchpoints"] = list(self.touchpoints)
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class LabelProblem:
    line: int
    id: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "id": self.id, "reason": self.reason}


def _lang(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        base = value.strip().lower().replace("_", "-").split("-")[0]
        if base in ("zh", "en"):
            return base
    raise InvalidInputError(f"lang must be zh or en (or absent), got {value!r}")


def _polarity(value: Any, what: str) -> str:
    if isinstance(value, str) and value.strip().lower() in POLARITIES:
        return value.strip().lower()
    raise InvalidInputError(f"{what} must be one of {', '.join(POLARITIES)}, got {value!r}")


def _topics(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, list):
        items = []
        for item in value:
            if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
                raise InvalidInputError(f'each topic in a list must be an object {{"id", "polarity"}}, got {item!r}')
            items.append((item["id"], item.get("polarity")))
    else:
        raise InvalidInputError(f"topics must be an object {{leaf id: polarity}} or a list, got {type(value).__name__}")
    out: dict[str, str] = {}
    for key, pol in items:
        if not isinstance(key, str) or not key.strip():
            raise InvalidInputError(f"a topic id must be a non-empty string, got {key!r}")
        if key in out:
            raise InvalidInputError(f"topic {key!r} is given twice")
        out[key.strip()] = _polarity(pol, f"the polarity of topic {key!r}")
    return out


def _touchpoints(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, list):
        raise InvalidInputError(f"touchpoints must be a list of touchpoint ids, got {value!r}")
    out: list[str] = []
    for item in value:
        tp = item.get("id") if isinstance(item, Mapping) else item
        if not isinstance(tp, str) or not tp.strip():
            raise InvalidInputError(f"a touchpoint must be an id string, got {item!r}")
        if tp.strip() not in out:
            out.append(tp.strip())
    return tuple(out)


def example_from_dict(obj: Any, *, taxonomy=None) -> LabelExample:
    """One label object -> :class:`LabelExample`; raises :class:`InvalidInputError` saying why not."""
    if not isinstance(obj, Mapping):
        raise InvalidInputError(f"a label must be a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - _FIELDS)
    if unknown:
        raise InvalidInputError(f"unknown field(s) {', '.join(unknown)}; a label has {', '.join(sorted(_FIELDS))}")
    raw_id = obj.get("id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or not str(raw_id).strip():
        raise InvalidInputError(f"id is required (a string or an integer), got {raw_id!r}")
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError("text is required and must be a non-empty string")
    if len(text.strip()) > MAX_TEXT_CHARS:
        raise InvalidInputError(f"text has {len(text.strip())} characters; at most {MAX_TEXT_CHARS} are allowed")
    sentiment = obj.get("sentiment")
    example = LabelExample(
        id=str(raw_id).strip(),
        text=text,
        lang=_lang(obj.get("lang")),
        sentiment=None if sentiment is None else _polarity(sentiment, "sentiment"),
        topics=_topics(obj.get("topics")),
        touchpoints=_touchpoints(obj.get("touchpoints")),
    )
    if taxonomy is not None:
        _check_ids(example, taxonomy)
    return example


def _check_ids(example: LabelExample, taxonomy) -> None:
    leaves, tps = set(taxonomy.leaf_ids), set(taxonomy.touchpoint_ids)
    for tid in example.topics or {}:
        if tid not in leaves:
            hint = " (a level-1 node: label one of its leaves)" if tid in set(taxonomy.level1_ids) else ""
            raise InvalidInputError(f"topic {tid!r} is not an active leaf of taxonomy {taxonomy.id}{hint}")
    for tp in example.touchpoints or ():
        if tp not in tps:
            raise InvalidInputError(f"touchpoint {tp!r} is not an active touchpoint of taxonomy {taxonomy.id}")


def parse_label_rows(rows: Iterable[tuple[int, Any]], *, taxonomy=None) -> tuple[list[LabelExample], list[LabelProblem]]:
    """``(line, object)`` pairs -> the valid examples and a problem per bad row (duplicate ids too)."""
    examples: list[LabelExample] = []
    problems: list[LabelProblem] = []
    seen: dict[str, int] = {}
    for line, obj in rows:
        raw_id = obj.get("id") if isinstance(obj, Mapping) else None
        rid = None if raw_id is None else str(raw_id)
        try:
            ex = example_from_dict(obj, taxonomy=taxonomy)
        except InvalidInputError as exc:
            problems.append(LabelProblem(line=line, id=rid, reason=exc.message))
            continue
        if ex.id in seen:
            problems.append(LabelProblem(line=line, id=ex.id, reason=f"id {ex.id!r} was already used on line {seen[ex.id]}"))
            continue
        seen[ex.id] = line
        examples.append(ex)
    return examples, problems


def _json_rows(path: Path) -> Iterable[tuple[int, Any]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidFileError(f"No label set at {path}: give the path of a JSON Lines file (verbatim labels export).") from None
    except UnicodeDecodeError as exc:
        raise InvalidFileError(f"{path} is not UTF-8 text ({exc}); label sets are UTF-8 JSON Lines.") from exc
    except OSError as exc:
        raise InvalidFileError(f"Cannot read {path}: {exc}") from exc
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as exc:
            yield n, _BadJson(str(exc))


class _BadJson(dict):
    """Stands in for a line that is not JSON, so its problem is reported with the others."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


def read_label_set(path: Path | str, *, taxonomy=None) -> list[LabelExample]:
    """Read a JSON Lines label set; every bad line is listed in one :class:`InvalidFileError`."""
    path = Path(path)
    rows, problems = [], []
    for line, obj in _json_rows(path):
        if isinstance(obj, _BadJson):
            problems.append(LabelProblem(line=line, id=None, reason=f"not valid JSON: {obj.reason}"))
        else:
            rows.append((line, obj))
    examples, bad = parse_label_rows(rows, taxonomy=taxonomy)
    problems = sorted(problems + bad, key=lambda p: p.line)
    if problems:
        shown = "; ".join(f"line {p.line}: {p.reason}" for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise InvalidFileError(
            f"{path} has {len(problems)} bad label line(s): {shown}{more}. Fix them and retry.",
            details=[p.to_dict() for p in problems],
        )
    if not examples:
        raise InvalidFileError(f"{path} holds no labels: expected one JSON object per line with id and text.")
    return examples


def write_label_set(path: Path | str, examples: Iterable[LabelExample]) -> Path:
    """Write examples as JSON Lines (UTF-8, one object per line); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(ex.to_dict(), ensure_ascii=False) for ex in examples]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def labels_from_dataset(name: str, split: str, n: int, *, taxonomy, seed: int = 0) -> list[LabelExample]:
    """Up to ``n`` labels drawn (seeded) from a public labelled split, in the analysts' format.

    For measuring and testing fine-tuning at scale, not for shipping: only examples whose topics
    are all leaves of ``taxonomy`` are taken, and their topic labels are treated as exhaustive
    (as an analyst's are), which is only approximately true of a public data set. Topic polarity
    ``conflict`` or none becomes ``neutral``. Raises :class:`DataUnavailableError` without the data.
    """
    import random

    from training.data import load_dataset

    leaves, tps = set(taxonomy.leaf_ids), set(taxonomy.touchpoint_ids)
    pool = [ex for ex in load_dataset(name, split) if ex.text.strip() and set(ex.topic_ids) <= leaves]
    random.Random(seed).shuffle(pool)
    out = []
    for ex in pool[:n]:
        topics = {t: p if p in POLARITIES else "neutral" for t, p in ex.topic_polarities().items()}
        out.append(LabelExample(
            id=f"{name}:{split}:{ex.id}", text=ex.text.strip()[:MAX_TEXT_CHARS], lang=ex.lang if ex.lang in ("zh", "en") else None,
            sentiment=ex.sentiment if ex.sentiment in POLARITIES else None, topics=topics,
            touchpoints=tuple(t for t in ex.touchpoints if t in tps) or None,
        ))
    return out
