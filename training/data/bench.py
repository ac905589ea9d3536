"""The fixed 2,000-record mixed benchmark of ``spec/benchmarks.md`` and a contract-format writer.

``evaluation/bench/mixed2000.ids`` holds ``dataset<TAB>id`` lines (no texts): 1,000 Chinese
records from the test splits of online_shopping_10_cats (600) and waimai_10k (400), and 1,000
English ones from twitter_us_airline (600), semeval2014_restaurants (200) and mams_acsa (200),
sampled once with :data:`MIXED2000_SEED` and shuffled so that languages interleave.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable
from pathlib import Path

from nlp.errors import DataUnavailableError, InvalidFileError

from .files import REPO_ROOT
from .registry import load_dataset
from .schema import Example

MIXED2000_PATH = REPO_ROOT / "evaluation" / "bench" / "mixed2000.ids"
MIXED2000_SEED = 20_000
MIXED2000_PLAN: tuple[tuple[str, int], ...] = (
    ("online_shopping_10_cats", 600),
    ("waimai_10k", 400),
    ("twitter_us_airline", 600),
    ("semeval2014_restaurants", 200),
    ("mams_acsa", 200),
)
#: Score fields of the "Records in" contract; other scores are written as metadata fields.
CONTRACT_SCORES = ("nps", "csat", "ces", "rating", "rating_scale", "recommend")
PathLike = str | os.PathLike[str]


def sample_mixed2000(
    *, seed: int = MIXED2000_SEED, data_dir: PathLike | None = None
) -> list[tuple[str, str]]:
    """Draw the benchmark's ``(dataset, id)`` pairs from the test splits (deterministic)."""
    rng = random.Random(seed)
    chosen: list[tuple[str, str]] = []
    for name, n in MIXED2000_PLAN:
        pool = load_dataset(name, "test", data_dir=data_dir)
        chosen.extend((name, e.id) for e in rng.sample(pool, n))
    rng.shuffle(chosen)
    return chosen


def format_ids(pairs: Iterable[tuple[str, str]], *, seed: int = MIXED2000_SEED) -> str:
    """The ids file's text: a comment header, then one ``dataset<TAB>id`` line per record."""
    plan = ", ".join(f"{name} {n}" for name, n in MIXED2000_PLAN)
    header = (
        "# Verbatim mixed 2,000-record benchmark (spec/benchmarks.md): test-split record ids, "
        "no texts.\n"
        f"# Drawn by training.data.bench.sample_mixed2000(seed={seed}): {plan}; shuffled.\n"
        "# Load with training.data.load_mixed2000(); format: dataset<TAB>id\n"
    )
    return header + "".join(f"{name}\t{id_}\n" for name, id_ in pairs)


def read_ids(path: PathLike = MIXED2000_PATH) -> list[tuple[str, str]]:
    """``(dataset, id)`` pairs of an ids file, in file order."""
    pairs = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise InvalidFileError(
                f"{path}, line {number}: expected 'dataset<TAB>id', got {line!r}",
                details={"path": str(path), "line": number},
            )
        pairs.append((parts[0], parts[1]))
    return pairs


def load_mixed2000(
    data_dir: PathLike | None = None, *, path: PathLike = MIXED2000_PATH
) -> list[Example]:
    """The benchmark's examples, in the ids file's order."""
    pairs = read_ids(path)
    index: dict[str, dict[str, Example]] = {}
    out = []
    for name, id_ in pairs:
        if name not in index:
            index[name] = {e.id: e for e in load_dataset(name, data_dir=data_dir)}
        example = index[name].get(id_)
        if example is None:
            raise DataUnavailableError(
                f"benchmark record {name}:{id_} (from {path}) is not in the data set; the shared "
                "data differs from the copy the benchmark was drawn from",
                details={"dataset": name, "id": id_},
            )
        out.append(example)
    return out


def example_record(example: Example, *, qualify_id: bool) -> dict[str, object]:
    """One example as a "Records in" contract record: id, text, lang, scores, metadata."""
    record: dict[str, object] = {
        "id": example.key if qualify_id else example.id,
        "text": example.text,
        "lang": example.lang,
    }
    for name, value in example.scores.items():
        if name == "recommend":
            record[name] = int(value)
        elif name in CONTRACT_SCORES:
            record[name] = value
        else:
            record[f"score_{name}"] = value
    record["dataset"] = example.dataset
    record["split"] = example.split
    return record


def write_records_jsonl(
    examples: Iterable[Example], path: PathLike, *, qualify_ids: bool | None = None
) -> int:
    """Write examples as contract-format JSON Lines (for ``verbatim classify``); returns the count.

    Ids are ``dataset:id`` when ``qualify_ids`` is true, or when it is None and the examples come
    from more than one data set (their own ids may collide across data sets).
    """
    items = list(examples)
    if qualify_ids is None:
        qualify_ids = len({e.dataset for e in items}) > 1
    lines = [
        json.dumps(example_record(e, qualify_id=qualify_ids), ensure_ascii=False) + "\n"
        for e in items
    ]
    Path(path).write_text("".join(lines), encoding="utf-8")
    return len(lines)
