"""``verbatim train --config FILE --out DIR`` and ``verbatim train --labels FILE --from DIR --out DIR``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from service.cli.common import err_console, exit_on_error
from service.settings import Settings


def train(
    out: Path = typer.Option(..., "--out", help="Output model directory; with --config, rerunning resumes from its checkpoint."),
    config: Path | None = typer.Option(None, "--config", help="Training config YAML (see training/configs/default.yaml)."),
    labels: Path | None = typer.Option(None, "--labels", help="Label set (JSON Lines, e.g. an export of analysts' labels): fine-tune on it."),
    parent: Path | None = typer.Option(None, "--from", help="Parent model directory to fine-tune (default: the shipped default model)."),
    taxonomy: Path | None = typer.Option(None, "--taxonomy", help="Taxonomy YAML to train for (default: the parent's); new nodes start zero-shot."),
    against: Path | None = typer.Option(None, "--against", help="Promoted model to compare with on the held-out labels (default: the parent)."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Fine-tuning steps of 16 (default: about four passes over the labels)."),
    version: str | None = typer.Option(None, "--version", help="Version of the new model (default: the output directory's name)."),
    holdout: float = typer.Option(0.2, "--holdout", min=0.0, max=0.9, help="Share of the labels held out for evaluation."),
    replay: bool = typer.Option(True, "--replay/--no-replay", help="Mix in a sample of the default training data when VERBATIM_DATA is there."),
) -> None:
    """Train a model from a config, or fine-tune one on a label set and evaluate it against the promoted one."""
    import logging

    from models.encoder import ensure_base_encoder

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings()
    if (config is None) == (labels is None):
        err_console.print("[bold red]error:[/] give either --config (train from data) or --labels (fine-tune on a label set)")
        raise typer.Exit(2)
    with exit_on_error():
        if config is not None:
            from training import train as run_training
            from training.config import TrainConfig

            cfg = TrainConfig.from_yaml(config)  # a bad config fails before anything is built
            path = run_training(cfg, out, base_dir=ensure_base_encoder(settings.home))
            err_console.print(f"model written to {path}")
            return
        _finetune(labels, out, home=settings.home, parent=parent, taxonomy=taxonomy, against=against, steps=steps,
                  version=version, holdout=holdout, replay=replay)


def _finetune(labels: Path, out: Path, *, home: Path, parent: Path | None, taxonomy: Path | None, against: Path | None,
              steps: int | None, version: str | None, holdout: float, replay: bool) -> None:
    from rich.progress import Progress

    from evaluation.compare import evaluate_on_labels, regression_guard
    from models.classifier import default_model_dir
    from models.classifier.config import ClassifierConfig
    from models.encoder import ensure_base_encoder
    from models.taxonomy import load_taxonomy
    from training.finetune import finetune
    from training.labelset import read_label_set

    parent = parent or default_model_dir()
    tax = load_taxonomy(taxonomy) if taxonomy else load_taxonomy(Path(parent) / "taxonomy.yaml")
    examples = read_label_set(labels, taxonomy=tax)  # bad labels fail before anything is built
    err_console.print(f"{len(examples)} labels read from {labels}")
    base = ensure_base_encoder(home)
    with Progress(console=err_console, transient=True) as bar:
        task = bar.add_task("fine-tuning", total=1.0)
        result = finetune(
            examples, parent_dir=parent, base_dir=base, taxonomy=tax, out_dir=out, version=version or Path(out).name,
            steps=steps, holdout=holdout, replay_data=None if replay else False,
            progress=lambda fraction, message: bar.update(task, completed=fraction, description=message),
        )
    err_console.print(f"model written to {result.model_dir} ({result.steps} steps, {result.replay}, "
                      f"{result.seconds / 60:.1f} min wall, {result.cpu_seconds / 60:.1f} min CPU)")
    if result.report is None:
        err_console.print("nothing was held out: no evaluation (use --holdout > 0)")
        return
    held = {ex.id for ex in examples} & set(result.heldout_ids)
    promoted_dir = against or parent
    promoted = evaluate_on_labels(promoted_dir, [ex for ex in examples if ex.id in held], base_dir=base)
    guard = regression_guard(result.report, promoted, holdout=holdout)
    summary = {
        "model": result.report.model, "against": promoted.model, "heldout": len(held),
        "macro_f1": {"candidate": result.report.macro_f1, "promoted": promoted.macro_f1},
        "per_node": {n: {"f1": s.f1, "precision": s.precision, "recall": s.recall, "support": s.support,
                         "promoted_f1": promoted.per_node[n].f1 if n in promoted.per_node else None}
                     for n, s in result.report.per_node.items() if s.support or s.predicted},
        "guard": guard.to_dict(),
    }
    (Path(out) / "evaluation.json").write_text(json.dumps(
        {"candidate": result.report.to_dict(), "promoted": promoted.to_dict(), "guard": guard.to_dict(),
         "train_ids": result.train_ids, "heldout_ids": result.heldout_ids}, ensure_ascii=False, indent=2), encoding="utf-8")
    typer.echo(json.dumps(summary, ensure_ascii=False, indent=2))
    verdict = "may be promoted" if guard.allowed else "must not be promoted: " + "; ".join(guard.reasons)
    if guard.notes:  # e.g. too few held-out labels for the guard to check anything
        verdict += " (" + "; ".join(guard.notes) + ")"
    err_console.print(f"{ClassifierConfig.load(Path(out)).model_id} {verdict}", highlight=False, soft_wrap=True)
