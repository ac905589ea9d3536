"""``verbatim train`` refuses a config it cannot train with before touching any data or model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

VERBATIM = str(Path(sys.executable).with_name("verbatim"))


def test_a_config_with_a_typo_exits_1_naming_the_setting(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text("stpes: 100\nmixture:\n  waimai_10k: 1.0\n", encoding="utf-8")
    env = {**os.environ, "VERBATIM_HOME": str(tmp_path / "home")}
    done = subprocess.run([VERBATIM, "train", "--config", str(config), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 1
    assert "stpes" in done.stderr and "Known settings" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "home").exists()  # nothing built or written


def test_the_verdict_of_a_label_fine_tune_says_when_the_guard_could_check_nothing(tmp_path, monkeypatch):
    """``verbatim train --labels``: with 4 held-out labels per node the guard allows the model but
    the verdict line says that no regression could be checked; with 10 per node it says nothing more.
    (The fine-tune and the promoted model's evaluation are stand-ins that predict every label.)"""
    from types import SimpleNamespace

    from registry_support import TOPICS, labelled_verbatims
    from typer.testing import CliRunner

    import evaluation.compare
    import models.encoder
    import training.finetune
    from evaluation.compare import score_labels
    from models.classifier.config import ClassifierConfig
    from models.taxonomy import default_taxonomy
    from models.taxonomy.io import dump_taxonomy
    from service.cli import app
    from training.labelset import LabelExample, write_label_set

    def perfect(examples, model):
        results = [{"id": ex.id, "topics": [{"id": t, "polarity": p} for t, p in ex.topics.items()],
                    "touchpoints": [], "sentiment": {"label": ex.sentiment}} for ex in examples]  # fmt: skip
        return score_labels(examples, results, model=model, topic_ids=TOPICS)

    def finetune(examples, *, out_dir, version, holdout, **_):
        train, held = training.finetune.split_holdout(examples, holdout)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        ClassifierConfig(version=version).save(Path(out_dir))
        return SimpleNamespace(model_dir=Path(out_dir), train_ids=[e.id for e in train],
                               heldout_ids=[e.id for e in held], report=perfect(held, f"verbatim-cem@{version}"),
                               seconds=1.0, cpu_seconds=1.0, steps=10, replay="labels-only")  # fmt: skip

    monkeypatch.setattr(training.finetune, "finetune", finetune)
    monkeypatch.setattr(evaluation.compare, "evaluate_on_labels", lambda d, ex, **_: perfect(ex, "verbatim-cem@0.2.0"))
    monkeypatch.setattr(models.encoder, "ensure_base_encoder", lambda home: tmp_path / "base")
    monkeypatch.setenv("VERBATIM_HOME", str(tmp_path / "home"))
    parent = tmp_path / "parent"
    parent.mkdir()
    (parent / "taxonomy.yaml").write_text(dump_taxonomy(default_taxonomy()), encoding="utf-8")
    items = labelled_verbatims()  # 20 per topic

    def verdict(chosen, name):
        examples = [LabelExample(id=f"l{i}", text=x.text, lang=x.lang, sentiment=x.sentiment, topics=x.topics)
                    for i, x in enumerate(chosen)]  # fmt: skip
        labels = write_label_set(tmp_path / f"{name}.jsonl", examples)
        done = CliRunner().invoke(app, ["train", "--labels", str(labels), "--from", str(parent),
                                        "--out", str(tmp_path / name), "--holdout", "0.5", "--no-replay"])  # fmt: skip
        assert done.exit_code == 0, done.output
        return [line for line in done.stderr.splitlines() if f"verbatim-cem@{name} " in line][0]

    few = verdict(items[:8] + items[20:28] + items[40:48], "few")
    assert few == ("verbatim-cem@few may be promoted (no existing node has >= 10 held-out labels (3 have fewer), so "
                   "no regression could be checked: label about 20 records per node at holdout 0.5 for the guard "
                   "to decide)")  # fmt: skip
    assert verdict(items, "enough") == "verbatim-cem@enough may be promoted"
