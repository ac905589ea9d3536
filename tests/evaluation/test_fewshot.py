"""The few-shot study's table, and that ``verbatim eval --study fewshot`` can call it."""

from __future__ import annotations

import inspect

from evaluation.fewshot import render_fewshot, run_fewshot

RUN = {"node": {"precision": 0.5, "recall": 0.6, "f1": 0.545, "predicted": 12}, "other_macro_f1": 0.678}
RESULT = {
    "node": "safety.food", "heldout": {"n": 289, "positives": 110, "sources": "hand-labelled"},
    "other_sets": {"acos": 100, "mams_acsa": 100},
    "runs": [{"shots": 0, "model": "zero-shot", **RUN},
             {"shots": 10, "model": "fine-tuned on 10 positive + 10 negative labels", "steps": 200, "stopped_at": 75,
              "threshold": 0.31, "finetune_seconds": 95.2, "finetune_cpu_seconds": 90.1, **RUN}],
}


def test_the_table_shows_where_each_run_stopped_its_threshold_and_the_timed_run():
    timing = {"labels": 500, "train": 400, "heldout": 100, "replay": "default-data", "steps": 200, "stopped_at": 150,
              "seconds": 312.0, "cpu_seconds": 290.0, "threads": 1, "cpus": 2,
              "load_average": {"before": [3.2, 3.0, 2.9], "after": [3.5, 3.1, 3.0]}}
    lines = render_fewshot({**RESULT, "method": "rows anchored", "timing": timing})
    row = next(line for line in lines if line.startswith("| fine-tuned on 10"))
    assert "| 75 / 200 | 0.310 | 95 / 90 |" in row
    assert any("500 labels" in line and "5.2 min wall" in line and "load average 3.2" in line for line in lines)
    assert "Fine-tuning: rows anchored." in lines


def test_a_result_saved_before_these_columns_still_renders():
    old = {**RESULT, "runs": [{**r} for r in RESULT["runs"]]}
    for r in old["runs"]:
        r.pop("stopped_at", None)
        r.pop("threshold", None)
    lines = render_fewshot(old)
    assert any(line.startswith("| fine-tuned on 10") and line.endswith("|  |  | 95 / 90 |") for line in lines)


def test_the_study_runs_with_no_arguments_as_verbatim_eval_calls_it():
    required = [p for p in inspect.signature(run_fewshot).parameters.values() if p.default is inspect.Parameter.empty]
    assert required == []
