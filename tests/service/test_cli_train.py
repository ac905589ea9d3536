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
