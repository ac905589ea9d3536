"""Studies beside the benchmark suites: each one measured by its own module, saved as JSON under
``evaluation/studies/`` and rendered into ``REPORT.md``.

A study is slow or needs hand labels (triage priorities, the Skytrax driver comparison, issue
clustering on Banking77, few-shot nodes), so ``verbatim eval`` re-renders the last saved result
and ``verbatim eval --study NAME`` measures it again.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nlp.errors import InvalidInputError

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Study:
    """Where a study's code lives: ``module.run(...) -> dict`` and ``module.render(dict) -> lines``.

    ``takes`` says how ``run`` is given the model under study: ``classify_fn`` (the classifier's
    ``classify``, positional), ``classifier`` (the loaded classifier, keyword) or ``parent_dir``
    (the model directory, keyword: the study loads and fine-tunes its own copies).
    """

    name: str
    module: str
    run: str
    render: str
    takes: Literal["classify_fn", "classifier", "parent_dir"] = "classify_fn"

    @property
    def needs_classifier(self) -> bool:
        return self.takes in ("classify_fn", "classifier")

    def function(self, attr: str) -> Callable[..., Any]:
        return getattr(importlib.import_module(self.module), attr)


STUDIES: dict[str, Study] = {
    s.name: s
    for s in (
        Study(name="triage", module="evaluation.triage", run="run_triage", render="render_triage"),
        Study(name="skytrax", module="evaluation.skytrax", run="run_skytrax", render="render_skytrax"),
        Study(name="clustering", module="evaluation.clustering", run="run_clustering", render="render_clustering",
              takes="classifier"),
        Study(name="fewshot", module="evaluation.fewshot", run="run_fewshot", render="render_fewshot",
              takes="parent_dir"),
    )
}


def study_path(folder: Path, name: str) -> Path:
    return Path(folder) / "studies" / f"{name}.json"


def load_studies(folder: Path | str) -> dict[str, dict[str, Any]]:
    """The saved result of every known study under ``folder/studies`` (missing ones are left out)."""
    found = {}
    for name in STUDIES:
        path = study_path(Path(folder), name)
        if path.is_file():
            found[name] = json.loads(path.read_text(encoding="utf-8"))
    return found


def render_studies(studies: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Markdown lines for the saved studies, in a fixed order, and a line for each one never run."""
    lines: list[str] = []
    missing = [name for name in STUDIES if name not in studies]
    for name, study in STUDIES.items():
        if name in studies:
            lines += study.function(study.render)(studies[name])
            lines.append("")
    if missing:
        lines += ["## Studies not run yet", "",
                  *(f"- `{name}`: `verbatim eval --study {name}`" for name in missing), ""]
    return lines


def check_study_names(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in STUDIES]
    if unknown:
        raise InvalidInputError(f"unknown study {', '.join(map(repr, unknown))}; studies are {', '.join(STUDIES)}")


def run_study(name: str, folder: Path | str, *, classifier: Any = None, model_dir: Path | None = None) -> dict[str, Any]:
    """Measure one study now and save its JSON under ``folder/studies``.

    The model under study is ``classifier`` (a loaded :class:`~models.classifier.predict.Classifier`)
    for studies that classify, and ``model_dir`` for those that load their own copies; without
    them a study uses the shipped default model.
    """
    from evaluation.run import _clean

    check_study_names([name])
    study = STUDIES[name]
    run = study.function(study.run)
    if study.takes == "classify_fn":
        result = run(classifier.classify) if classifier is not None else run()
    elif study.takes == "classifier":
        result = run(classifier=classifier)
    else:
        result = run(parent_dir=model_dir)
    path = study_path(Path(folder), name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(result), ensure_ascii=False, indent=1), encoding="utf-8")
    log.info("study %s saved to %s", name, path)
    return result


def rerender(folder: Path | str) -> Path:
    """Write ``REPORT.md`` again from the saved ``results.json`` and studies (no suite re-run)."""
    from evaluation.report import render

    folder = Path(folder)
    results_file = folder / "results.json"
    if not results_file.is_file():
        raise InvalidInputError(f"{results_file} does not exist: run `verbatim eval` once first.")
    results = json.loads(results_file.read_text(encoding="utf-8"))
    results["studies"] = load_studies(folder)
    out = folder / "REPORT.md"
    out.write_text(render(results), encoding="utf-8")
    return out
