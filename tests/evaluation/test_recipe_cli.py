"""``verbatim eval --recipe NAME``: our recipe's result is added beside the last full run's peers.

The full run is the committed ``evaluation/results.json`` with MAMS ACSA (ours) reset to "not
run"; our predictions are a stored run or a stand-in for training, made from the gold labels of
the real MAMS test split (gold categories, one fixed polarity), so the expected scores are the
split's own class shares.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
OTHER_SECTIONS = ("sentiment", "topics", "touchpoints", "evidence", "meta")


def _dump(results: dict) -> str:
    return json.dumps(results, ensure_ascii=False, indent=1) + "\n"


def _section_text(text: str, key: str) -> str:
    """The raw text of a top-level section of results.json as written (indent 1)."""
    start = text.index(f'\n "{key}": ')
    end = text.find('\n "', start + 1)
    return text[start:end]


@pytest.fixture
def full_run(tmp_path):
    """A full run's results.json and REPORT.md where our MAMS recipe was not run."""
    from evaluation.study_report import rerender

    out = tmp_path / "evaluation"
    out.mkdir()
    results = json.loads((REPO / "evaluation/results.json").read_text(encoding="utf-8"))
    mams = results["recipe"]["mams_acsa"]
    for key in ("ours_added", "peers_from"):
        mams.pop(key, None)
    mams["predictors"]["verbatim"] = {"not_run": "no stored run"}
    (out / "results.json").write_text(_dump(results), encoding="utf-8")
    rerender(out)
    return out


@pytest.fixture
def cli(tmp_path, monkeypatch, shared_data):
    """Run ``verbatim eval`` in-process, stored runs under tmp, no base encoder built."""
    import evaluation.ours
    import models.encoder
    from service.cli import app

    runs = tmp_path / "recipe_runs"
    monkeypatch.setattr(evaluation.ours, "RECIPE_RUNS", runs)
    monkeypatch.setattr(models.encoder, "ensure_base_encoder", lambda home: tmp_path / "base")
    monkeypatch.setenv("VERBATIM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VERBATIM_DATA", str(shared_data))

    def invoke(*args: str):
        return CliRunner().invoke(app, ["eval", *args])

    invoke.runs = runs
    return invoke


def _mams_test(shared_data):
    from evaluation.recipe import RECIPE_NAMES, prepare_tasks
    from evaluation.suite import Context

    tasks = prepare_tasks(Context(data_dir=shared_data))
    assert tuple(t.name for t in tasks) == RECIPE_NAMES  # the names `--recipe` accepts
    return tasks[RECIPE_NAMES.index("mams_acsa")]


class _GoldCategories:
    """Finds every gold category of a MAMS test text and gives each one polarity."""

    def __init__(self, task, polarity: str) -> None:
        self.gold = {e.text: e.aspects for e in task.test}
        self.polarity = polarity

    def predict(self, texts):
        return [{"topics": [{"id": c, "polarity": self.polarity, "confidence": 0.9} for c in self.gold[t]]}
                for t in texts]

    def predict_polarity(self, texts, categories):
        return [self.polarity] * len(texts)


def _rows(report: str, prefix: str) -> list[str]:
    return [line for line in report.splitlines() if line.startswith(prefix)]


@pytest.mark.data
def test_a_stored_run_replaces_not_run_and_keeps_the_full_runs_peers(full_run, cli, shared_data):
    task = _mams_test(shared_data)
    before_text = (full_run / "results.json").read_text(encoding="utf-8")
    before = json.loads(before_text)
    before_report = (full_run / "REPORT.md").read_text(encoding="utf-8")
    assert "| mams_acsa | Verbatim (ours) | 3149/400 | not run: no stored run |" in before_report
    stand_in = _GoldCategories(task, "neutral")
    pairs = [(e.text, c) for e in task.test for c in e.aspects]
    cli.runs.mkdir()
    (cli.runs / "mams_acsa.json").write_text(json.dumps({
        "task": "mams_acsa", "predict": stand_in.predict([e.text for e in task.test]),
        "pair_categories": [c for _, c in pairs], "polarity": ["neutral"] * len(pairs)}), encoding="utf-8")

    done = cli("--out", str(full_run), "--recipe", "mams_acsa")

    assert done.exit_code == 0, done.output
    report = (full_run / "REPORT.md").read_text(encoding="utf-8")
    # every gold category found; MAMS test has 393 neutral of 901 category opinions: 43.6%
    assert "| mams_acsa | Verbatim (ours) | 3149/400 | detection F1 100.0; polarity 3-way 43.6 |" in report
    assert "mams_acsa: detection F1 100.0, polarity 3-way 43.6 (stored run" in done.stderr
    for prefix in ("| mams_acsa | TF-IDF", "| mams_acsa | LR on frozen", "| semeval2014_categories |",
                   "| banking77_full |", "| banking77_10shot |", "| waimai_10k |"):
        assert _rows(report, prefix) == _rows(before_report, prefix), prefix
    generated = before["meta"]["generated"]
    assert ("- mams_acsa: ours added on " in report
            and f"replayed from the stored run `evaluation/recipe_runs/mams_acsa.json`; its peers are from "
                f"the full run of {generated}, on the same split." in report)

    after_text = (full_run / "results.json").read_text(encoding="utf-8")
    after = json.loads(after_text)
    for key in OTHER_SECTIONS:
        assert _section_text(after_text, key) == _section_text(before_text, key), key
    for name in ("semeval2014_categories", "banking77_full", "banking77_10shot"):
        assert after["recipe"][name] == before["recipe"][name]
    mams_before, mams_after = before["recipe"]["mams_acsa"], after["recipe"]["mams_acsa"]
    assert {k: v for k, v in mams_after["predictors"].items() if k != "verbatim"} == \
        {k: v for k, v in mams_before["predictors"].items() if k != "verbatim"}
    ours = mams_after["predictors"]["verbatim"]
    assert ours["detection_f1"] == pytest.approx(1.0) and ours["polarity_n_3way"] == 901
    assert ours["measured"] == mams_after["ours_added"] and mams_after["peers_from"] == generated


@pytest.mark.data
def test_training_stores_predictions_without_texts_and_the_next_run_replays_them(full_run, cli, shared_data,
                                                                                   monkeypatch):
    import training.recipe

    task = _mams_test(shared_data)
    trained = []

    def train_task(task, out_dir, **_):
        trained.append(Path(out_dir))
        return _GoldCategories(task, "positive")

    monkeypatch.setattr(training.recipe, "train_task", train_task)
    done = cli("--out", str(full_run), "--recipe", "mams_acsa")
    assert done.exit_code == 0, done.output
    assert trained == [Path(cli.runs).parent / "home" / "recipes" / "mams_acsa"]
    # 245 positive of 901 category opinions in MAMS test
    line = "| mams_acsa | Verbatim (ours) | 3149/400 | detection F1 100.0; polarity 3-way 27.2 |"
    report = (full_run / "REPORT.md").read_text(encoding="utf-8")
    assert line in report and _added(report, "mams_acsa").startswith("trained on this machine in")
    stored_text = (cli.runs / "mams_acsa.json").read_text(encoding="utf-8")
    stored = json.loads(stored_text)
    assert len(stored["predict"]) == 400 and set(stored["polarity"]) == {"positive"}
    assert not any(e.text in stored_text for e in task.test)  # the texts stay out of the repository

    monkeypatch.setattr(training.recipe, "train_task", lambda *a, **k: pytest.fail("trained again"))
    again = cli("--out", str(full_run), "--recipe", "mams_acsa")
    assert again.exit_code == 0, again.output
    report = (full_run / "REPORT.md").read_text(encoding="utf-8")
    assert line in report and _added(report, "mams_acsa").startswith("replayed from the stored run")


def _added(report: str, name: str) -> str:
    """How the report says ``name``'s late-added result was made (the part after the date)."""
    [row] = [x for x in report.splitlines() if x.startswith(f"- {name}: ours added on ")]
    return row.split(" UTC, ", 1)[1]


def test_an_unknown_benchmark_is_refused_naming_the_valid_ones(tmp_path, monkeypatch):
    from service.cli import app

    out = tmp_path / "evaluation"
    out.mkdir()
    shutil.copy(REPO / "evaluation/results.json", out / "results.json")
    monkeypatch.setenv("VERBATIM_HOME", str(tmp_path / "home"))
    done = CliRunner().invoke(app, ["eval", "--out", str(out), "--recipe", "mams_acsa", "--recipe", "mams"])
    assert done.exit_code == 1
    assert "unknown recipe benchmark(s): mams; valid names are semeval2014_categories, mams_acsa, " \
           "banking77_full, banking77_10shot" in done.stderr
    assert not (out / "REPORT.md").exists() and not (tmp_path / "home").exists()
    assert (out / "results.json").read_bytes() == (REPO / "evaluation/results.json").read_bytes()
