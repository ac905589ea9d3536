"""``verbatim train --config FILE --out DIR``."""

from __future__ import annotations

from pathlib import Path

import typer

from service.cli.common import err_console, exit_on_error
from service.settings import Settings


def train(
    config: Path = typer.Option(..., "--config", help="Training config YAML (see training/configs/default.yaml)."),
    out: Path = typer.Option(..., "--out", help="Output model directory; rerunning resumes from its checkpoint."),
) -> None:
    """Train (or resume training) a model: masked multi-task loss over the configured data."""
    import logging

    from models.encoder import ensure_base_encoder
    from training import train as run_training
    from training.config import TrainConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings()
    with exit_on_error():
        cfg = TrainConfig.from_yaml(config)
        base = ensure_base_encoder(settings.home)
        path = run_training(cfg, out, base_dir=base)
        err_console.print(f"model written to {path}")
