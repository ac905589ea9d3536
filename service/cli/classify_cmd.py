"""``verbatim classify INPUT -o OUTPUT.jsonl``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer

from service.cli.common import PrecisionChoice, err_console, exit_on_error
from service.settings import Settings

#: records per classify call: texts are length-sorted within a call, and memory stays bounded
CHUNK = 4096


def classify(
    input: Path = typer.Argument(..., help="Records as JSON Lines, CSV or XLSX (fields: id, text, optional lang, scores, metadata)."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write one JSON object per input record (JSONL)."),
    model: Path = typer.Option(None, help="Model directory (default: VERBATIM_MODEL or the shipped default model)."),
    batch_size: int = typer.Option(64, min=1, max=1024, help="Records per forward pass."),
    precision: PrecisionChoice = typer.Option(
        None, case_sensitive=False, show_default=False,
        help="How the encoder computes: auto (default, VERBATIM_PRECISION: bf16 where the CPU has native bf16, else fp32), "
        "fp32, bf16 (about twice fp32's speed there; same sentiment and topics for over 99% of texts) or int8 "
        "(topic sets differ from fp32 on about 8% of texts).",
    ),
    int8: bool = typer.Option(False, "--int8", help="Same as --precision int8."),
) -> None:
    """Classify every record: sentiment, topics with polarity and evidence, touchpoints, triage.

    Rejected records keep their place in the output as an object with an ``error`` and the
    record's line number, so nothing is lost; the summary goes to standard error.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from nlp.records import read_records
    from service.models import load_classifier

    settings = Settings()
    with exit_on_error():
        started = time.perf_counter()
        read = read_records(input)
        classifier = load_classifier(settings, model, precision="int8" if int8 else (precision and precision.value), batch_size=batch_size)
        rows: list[tuple[int, dict]] = [(r.line, {"id": r.id, "line": r.line, "error": {"code": "invalid_record", "message": r.reason}}) for r in read.rejected]
        classified = 0
        progress = Progress(TextColumn("classifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            console=err_console, disable=not sys.stderr.isatty())
        with progress:
            task = progress.add_task("classify", total=len(read.records))
            # big chunks: texts are length-sorted within a call, so fewer calls pad less
            for start in range(0, len(read.records), CHUNK):
                chunk = read.records[start : start + CHUNK]
                results = classifier.classify([{"id": r.id, "text": r.text, "lang": r.lang} for r in chunk],
                                              on_batch=lambda n: progress.advance(task, n))
                for record, result in zip(chunk, results, strict=True):
                    rows.append((record.line, result))
                    classified += "error" not in result
        rows.sort(key=lambda row: row[0])
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("w", encoding="utf-8") as fh:
            for _, row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        seconds = time.perf_counter() - started
        rejected = len(rows) - classified
        for rej in read.rejected[:20]:
            err_console.print(f"line {rej.line}: {rej.reason}", highlight=False)
        err_console.print(
            f"records: {len(rows)}  classified: {classified}  rejected: {rejected}  "
            f"seconds: {seconds:.1f}  records/s: {len(rows) / max(seconds, 1e-9):.1f}  precision: {classifier.precision.value}",
            highlight=False, soft_wrap=True,
        )
