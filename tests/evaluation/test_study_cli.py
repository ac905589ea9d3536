"""``verbatim eval --study NAME --model DIR`` measures the model it is given, not the shipped one.

The few-shot study fine-tunes copies of its parent model (minutes), so here its run function is
replaced by one that records the model directory it was handed and returns a result in the
study's own format; the report is then re-rendered from it for real.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]


def _stand_in(seen: list):
    saved = json.loads((REPO / "evaluation/studies/fewshot.json").read_text(encoding="utf-8"))

    def run_fewshot(*, parent_dir=None, **_):
        seen.append(parent_dir)
        return {**saved, "parent": str(parent_dir)}

    return run_fewshot


def test_the_fewshot_study_fine_tunes_the_model_given_by_model(last_run_copy, monkeypatch):
    import evaluation.fewshot
    from service.cli import app

    seen: list = []
    monkeypatch.setattr(evaluation.fewshot, "run_fewshot", _stand_in(seen))
    fast = REPO / "models/fast"
    res = CliRunner().invoke(app, ["eval", "--study", "fewshot", "--model", str(fast), "--out", str(last_run_copy)])
    assert res.exit_code == 0, res.output
    assert seen == [fast]
    saved = json.loads((last_run_copy / "studies/fewshot.json").read_text(encoding="utf-8"))
    assert saved["parent"] == str(fast)
    assert "Few-shot: a new node `safety.food`" in (last_run_copy / "REPORT.md").read_text(encoding="utf-8")


def test_without_model_the_study_uses_the_shipped_default(last_run_copy, monkeypatch):
    import evaluation.fewshot
    from models.classifier import default_model_dir
    from service.cli import app

    seen: list = []
    monkeypatch.setattr(evaluation.fewshot, "run_fewshot", _stand_in(seen))
    monkeypatch.delenv("VERBATIM_MODEL", raising=False)
    res = CliRunner().invoke(app, ["eval", "--study", "fewshot", "--out", str(last_run_copy)])
    assert res.exit_code == 0, res.output
    assert [Path(p).resolve() for p in seen] == [Path(default_model_dir()).resolve()]


def test_an_unknown_study_is_named_before_any_model_loads(last_run_copy, tmp_path):
    from service.cli import app

    res = CliRunner().invoke(app, ["eval", "--study", "fewshots", "--model", str(tmp_path / "nowhere"),
                                   "--out", str(last_run_copy)])
    assert res.exit_code != 0
    assert "unknown study 'fewshots'" in res.output and "fewshot" in res.output
    assert not (last_run_copy / "studies").exists()
