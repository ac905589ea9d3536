"""A wrong VERBATIM_* setting stops every command with the variable named, before any work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

VERBATIM = str(Path(sys.executable).with_name("verbatim"))


@pytest.mark.parametrize(("variable", "value", "command", "says"), [
    ("VERBATIM_PRECISION", "int4", ["classify", "in.jsonl", "-o", "out.jsonl"], "'auto', 'fp32', 'bf16' or 'int8'"),
    ("VERBATIM_PORT", "eighty", ["serve"], "valid integer"),
])
def test_a_wrong_setting_is_named_with_what_it_should_be(tmp_path, variable, value, command, says):
    (tmp_path / "in.jsonl").write_text('{"id": "a", "text": "快递太慢了"}\n', encoding="utf-8")
    env = {**os.environ, variable: value, "VERBATIM_HOME": str(tmp_path / "home")}
    done = subprocess.run([VERBATIM, *command], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False)
    assert done.returncode == 1
    assert f"{variable}='{value}'" in done.stderr and says in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "home").exists()
