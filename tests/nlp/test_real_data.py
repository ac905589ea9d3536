"""The text pipeline on the public test splits: language accuracy and no failures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nlp.clauses import split_clauses
from nlp.errors import InvalidInputError
from nlp.lang import Lang, detect_language
from nlp.prepare import prepare

pytestmark = pytest.mark.data


def _test_rows(data: Path, relative: str, column: str, limit: int) -> list[str]:
    import pandas as pd

    path = data / relative
    if not path.is_file():
        reason = f"{relative} is missing from {path.parent}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    frame = pd.read_csv(path)
    texts = frame.loc[frame["split"] == "test", column].dropna().astype(str)
    return texts.head(limit).tolist()


@pytest.mark.parametrize(
    ("relative", "column", "expected"),
    [
        ("zh/waimai_10k.csv.gz", "review", Lang.zh),
        ("en/twitter_us_airline.csv.gz", "text", Lang.en),
    ],
)
def test_language_accuracy_on_test_splits(
    shared_data: Path, relative: str, column: str, expected: Lang
) -> None:
    texts = _test_rows(shared_data, relative, column, limit=600)
    hits = sum(detect_language(t) is expected for t in texts)
    assert hits / len(texts) >= 0.98, f"{hits}/{len(texts)} detected as {expected}"


def test_prepare_and_clauses_never_crash_on_real_verbatims(shared_data: Path) -> None:
    texts = _test_rows(shared_data, "zh/waimai_10k.csv.gz", "review", 300)
    texts += _test_rows(shared_data, "en/twitter_us_airline.csv.gz", "text", 300)
    for text in texts:
        try:
            p = prepare(text)
        except InvalidInputError:
            assert not text.strip()
            continue
        clauses = split_clauses(p.text)
        assert clauses, text
        for c in clauses:
            a, b = p.to_original(c.start, c.end)
            assert 0 <= a < b <= len(text)
