"""``verbatim classify`` end to end: a real process, the shipped default model, the real base encoder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from models.classifier import default_model_dir
from models.classifier.config import ClassifierConfig

pytestmark = pytest.mark.slow

VERBATIM = str(Path(sys.executable).with_name("verbatim"))
LINES = [
    {"id": "zh-1", "text": "质量太差了，用了两天就坏了，再也不买了", "nps": 1},
    {"id": "bad-1", "nps": 3},  # no text
    {"id": "en-1", "text": "Absolutely love it, great quality and fast shipping!", "lang": "en"},
    "this line is not JSON",
    {"id": 17, "text": "快递很快，包装也很好"},
]


def shipped_model_id() -> str:
    return ClassifierConfig.load(default_model_dir()).model_id


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A VERBATIM_HOME whose base encoder is built (reused from $VERBATIM_HOME when set)."""
    from models.encoder import ensure_base_encoder

    home = Path(os.environ.get("VERBATIM_HOME") or tmp_path_factory.mktemp("home"))
    ensure_base_encoder(home)
    return home


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "VERBATIM_MODEL"}
    env["VERBATIM_HOME"] = str(home)
    return subprocess.run([VERBATIM, *args], capture_output=True, text=True, env=env, timeout=300, check=False)


def test_classify_writes_one_line_per_record_in_order_with_rejections_in_place(home, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in LINES) + "\n",
                      encoding="utf-8")
    out = tmp_path / "out" / "results.jsonl"
    done = cli(home, "classify", str(source), "-o", str(out))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 5
    assert [r.get("id") for r in rows] == ["zh-1", "bad-1", "en-1", None, "17"]
    for line in (2, 4):
        bad = rows[line - 1]
        assert bad["line"] == line and bad["error"]["code"] == "invalid_record" and bad["error"]["message"]
        assert "sentiment" not in bad
    assert "text" in rows[1]["error"]["message"]
    zh, en, short = rows[0], rows[2], rows[4]
    assert zh["sentiment"]["label"] == "negative" and en["sentiment"]["label"] == "positive"
    assert short["lang"] == "zh" and short["sentiment"]["label"] == "positive"
    for res in (zh, en, short):
        assert res["model"] == shipped_model_id() and res["triage"]["priority"] in ("P1", "P2", "P3", "P4")
    summary = done.stderr
    assert re.search(r"records: 5\b", summary) and re.search(r"rejected: 2\b", summary)
    assert re.search(r"classified: 3\b", summary) and re.search(r"records/s: [0-9.]+", summary)
    assert "line 2:" in summary and "line 4:" in summary


def test_a_missing_model_directory_exits_1_with_the_reason(home, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "a", "text": "ok"}) + "\n", encoding="utf-8")
    missing = tmp_path / "no-such-model"
    done = cli(home, "classify", str(source), "-o", str(tmp_path / "out.jsonl"), "--model", str(missing))
    assert done.returncode == 1
    assert "No model at" in done.stderr and "verbatim train" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_precision_bf16_reads_like_fp32_and_a_wrong_precision_is_refused_with_the_choices(home, tmp_path):
    source = tmp_path / "in.jsonl"
    texts = ["质量太差了，用了两天就坏了，再也不买了", "Absolutely love it, great quality and fast shipping!",
             "快递太慢了，等了一个星期才到，客服也不回复。", "Flight delayed three hours and they lost my bag."]
    source.write_text("".join(json.dumps({"id": str(i), "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(texts)),
                      encoding="utf-8")
    read = {}
    for precision in ("fp32", "bf16"):
        done = cli(home, "classify", str(source), "-o", str(tmp_path / f"{precision}.jsonl"), "--precision", precision)
        assert done.returncode == 0, done.stderr
        assert f"precision: {precision}" in done.stderr
        read[precision] = [json.loads(x) for x in (tmp_path / f"{precision}.jsonl").read_text(encoding="utf-8").splitlines()]
    for a, b in zip(read["fp32"], read["bf16"], strict=True):
        assert a["sentiment"]["label"] == b["sentiment"]["label"]
        assert abs(a["sentiment"]["score"] - b["sentiment"]["score"]) < 0.02
    assert [r["sentiment"]["label"] for r in read["bf16"]] == ["negative", "positive", "negative", "negative"]
    wrong = cli(home, "classify", str(source), "-o", str(tmp_path / "x.jsonl"), "--precision", "int4")
    assert wrong.returncode == 2 and "int4" in wrong.stderr and "bf16" in wrong.stderr
    assert not (tmp_path / "x.jsonl").exists()
