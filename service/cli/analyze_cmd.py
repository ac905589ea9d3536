"""``verbatim analyze INPUT --score nps --out report.html --json analysis.json``."""

from __future__ import annotations

import json
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from service.cli.common import PrecisionChoice, err_console, exit_on_error
from service.settings import Settings

STAGES = ("read", "classify", "cluster", "drivers", "report")


class Score(StrEnum):
    """The outcome fields an analysis can explain (``models.analytics.outcomes.Outcome``)."""

    nps = "nps"
    csat = "csat"
    ces = "ces"
    rating = "rating"
    recommend = "recommend"


def analyze(
    input: Path = typer.Argument(..., help="Records as JSON Lines, CSV or XLSX (id, text, the score field, optional lang, ts, metadata)."),
    score: Score = typer.Option(Score.nps, "--score", help="Outcome field the drivers explain."),
    out: Path = typer.Option(None, "--out", help="Where to write the HTML report (opens offline)."),
    json_out: Path = typer.Option(None, "--json", help="Where to write the analysis as JSON."),
    cases: Path = typer.Option(None, "--cases", help="Support cases (JSON array or JSON Lines: topic, priority, status, resolution_code, opened_at/created_at, resolved_at) to report resolution per topic."),
    model: Path = typer.Option(None, help="Model directory (default: VERBATIM_MODEL or the shipped default model)."),
    batch_size: int = typer.Option(256, min=1, max=4096, help="Records classified per progress step."),
    precision: PrecisionChoice = typer.Option(
        None, case_sensitive=False, show_default=False,
        help="How the encoder computes: auto (default, VERBATIM_PRECISION), fp32, bf16 or int8 (see `verbatim classify --help`).",
    ),
    quantize: bool = typer.Option(False, "--quantize", help="Same as --precision int8 (per-token activations, batch-invariant); topic sets differ from fp32 on about 8% of texts."),
) -> None:
    """Analyse feedback against a score: headline, drivers with confidence intervals, issue
    clusters, root causes of the top negative drivers (keyphrases, sub-issues, verbatims in both
    languages, segments where they over-index, trends) and support-case resolution.

    Rejected records are listed with their line and reason; the command still succeeds.
    """
    from models.analytics.pipeline import AnalysisSettings
    from models.analytics.pipeline import analyze as run_analysis
    from models.analytics.report import render_report
    from models.taxonomy import load_taxonomy
    from nlp.errors import InvalidInputError
    from nlp.records import read_records
    from service.models import resolve_model_dir

    if out is None and json_out is None:
        err_console.print("[bold red]error:[/] nothing to write: give --out report.html and/or --json analysis.json",
                          highlight=False)
        raise typer.Exit(2)
    with exit_on_error(), _StageProgress() as progress:
        started, cpu_started = time.perf_counter(), time.process_time()
        progress("read", 0, 1)
        read = read_records(input)
        case_list = _read_cases(cases) if cases is not None else None
        progress("read", 1, 1)
        if not read.records:
            raise InvalidInputError(f"{input} has no valid record ({len(read.rejected)} rejected)",
                                    details=[f"line {r.line}: {r.reason}" for r in read.rejected[:50]])
        settings = Settings()
        taxonomy = load_taxonomy(resolve_model_dir(settings, model) / "taxonomy.yaml")
        classifier: list[Any] = []  # loaded on the first batch, after the input has been checked

        def classify_fn(items: list[dict[str, Any]]):
            if not classifier:
                classifier.append(_load(settings, model, "int8" if quantize else (precision and precision.value)))
            return classifier[0].classify_with_embeddings(items)

        analysis = run_analysis(
            read.records, classify_fn, outcome=score.value, taxonomy=taxonomy, progress=progress,
            cases=case_list, rejected=read.rejected, settings=AnalysisSettings(chunk_size=batch_size),
        )
        progress("report", 0, 1)
        analysis["meta"]["input"] = str(input)
        analysis["meta"]["quantized"] = bool(classifier) and classifier[0].precision.value == "int8"
        analysis["meta"]["precision"] = classifier[0].precision.value if classifier else None
        analysis["meta"]["seconds"]["total"] = round(time.perf_counter() - started, 2)
        analysis["meta"]["cpu_seconds"]["total"] = round(time.process_time() - cpu_started, 2)
        if json_out is not None:
            _write(json_out, json.dumps(analysis, ensure_ascii=False, indent=1))
        if out is not None:
            _write(out, render_report(analysis))
        progress("report", 1, 1)
    _summary(analysis, time.perf_counter() - started, out, json_out)


def _load(settings: Settings, model: Path | None, precision: str | None) -> Any:
    from service.models import load_classifier

    return load_classifier(settings, model, precision=precision)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _read_cases(path: Path) -> list[dict[str, Any]]:
    from nlp.errors import InvalidFileError

    try:
        raw = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise InvalidFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(raw) if raw.startswith("[") else [json.loads(line) for line in raw.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise InvalidFileError(f"{path} is not a JSON array or JSON Lines of cases: {exc}") from exc
    return data


class _StageProgress:
    """``progress(stage, done, total)`` as one rich bar per stage on a terminal; elsewhere one line
    per finished stage on standard error. A stage ends when the next one starts (or at the end)."""

    _NAMES = {"rootcause": "drivers"}  # explaining the top drivers is part of the drivers stage

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.live = sys.stderr.isatty()
        self.bar = Progress(TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=err_console, disable=not self.live)
        self.tasks: dict[str, Any] = {}
        self.current: str | None = None
        self.since = 0.0

    def __enter__(self) -> _StageProgress:
        self.bar.__enter__()
        self.tasks = {stage: self.bar.add_task(stage, total=None, start=False) for stage in STAGES}
        return self

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is None:
            self._finish()
        self.bar.__exit__(kind, *rest)

    def __call__(self, stage: str, done: int, total: int) -> None:
        name = self._NAMES.get(stage, stage)
        if name != self.current:
            self._finish()
            self.current, self.since = name, time.perf_counter()
            self.bar.start_task(self.tasks[name])
        self.bar.update(self.tasks[name], completed=done, total=max(total, 1))

    def _finish(self) -> None:
        if self.current is None:
            return
        task = self.tasks[self.current]
        self.bar.update(task, completed=self.bar.tasks[task].total or 1)
        if not self.live:
            err_console.print(f"[{self.current}] done in {time.perf_counter() - self.since:.1f} s",
                              highlight=False, markup=False)
        self.current = None


def _summary(analysis: dict[str, Any], seconds: float, out: Path | None, json_out: Path | None) -> None:
    for rej in analysis["rejected"][:20]:
        err_console.print(f"line {rej['line']}: {rej['reason']}", highlight=False, soft_wrap=True, markup=False)
    if len(analysis["rejected"]) > 20:
        err_console.print(f"... and {len(analysis['rejected']) - 20} more rejected records (listed in the JSON and the report)",
                          highlight=False, markup=False)
    outcome = analysis["outcome"]
    top = next((d for d in analysis["root_causes"]), None)
    meta = analysis["meta"]
    err_console.print(
        f"records: {meta['input_records']}  analysed: {analysis['records']}  rejected: {meta['rejected']}  "
        f"scored: {meta['scored']}  {outcome}: {analysis['overall'].get(outcome)}  drivers: {len(analysis['drivers'])}  "
        f"clusters: {len(analysis['clusters'])}  seconds: {seconds:.1f}  "
        f"records/s: {meta['input_records'] / max(seconds, 1e-9):.1f}",
        highlight=False, soft_wrap=True,
    )
    if top is not None:
        err_console.print(f"top negative driver: {top['label']['en']} / {top['label']['zh']} (impact {top['impact']})",
                          highlight=False, soft_wrap=True, markup=False)
    for path, what in ((out, "report"), (json_out, "analysis")):
        if path is not None:
            err_console.print(f"{what} written to {path}", highlight=False, soft_wrap=True, markup=False)
