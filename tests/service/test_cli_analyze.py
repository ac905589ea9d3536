"""``verbatim analyze`` end to end: a real process, the shipped default model, the real base encoder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

VERBATIM = str(Path(sys.executable).with_name("verbatim"))
LATE = ["配送太慢了，等了一个星期才到", "Delivery took two weeks, far too slow.", "快递太慢，催了好几次都没用",
        "The package arrived ten days late."]
GOOD = ["质量很好，做工精细，很满意", "Great quality, works perfectly.", "东西质量不错，用着很舒服",
        "Excellent build quality, I love it."]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    from models.encoder import ensure_base_encoder

    home = Path(os.environ.get("VERBATIM_HOME") or tmp_path_factory.mktemp("home"))
    ensure_base_encoder(home)
    return home


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "VERBATIM_MODEL"}
    env["VERBATIM_HOME"] = str(home)
    return subprocess.run([VERBATIM, *args], capture_output=True, text=True, env=env, timeout=900, check=False)


def survey(path: Path) -> Path:
    lines = []
    for i in range(48):
        late = i % 2 == 0
        text = (LATE if late else GOOD)[(i // 2) % 4]
        lines.append(json.dumps({"id": f"r{i}", "text": text, "nps": (i % 5) if late else 9 + i % 2,
                                 "ts": f"2024-03-{1 + i % 28:02d}", "store": "A" if late and i % 3 else "BC"[i % 2]},
                                ensure_ascii=False))
    lines.insert(5, "not json at all")
    lines.insert(9, json.dumps({"id": "bad", "text": "ok", "nps": 11}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_analyze_writes_the_json_and_an_offline_report_and_lists_rejections(home, tmp_path):
    source = survey(tmp_path / "survey.jsonl")
    cases = tmp_path / "cases.jsonl"
    cases.write_text(json.dumps({"topic": "delivery.timeliness", "priority": "P2", "status": "resolved",
                                 "resolution_code": "refund", "created_at": "2024-03-02T08:00:00",
                                 "resolved_at": "2024-03-02T20:00:00"}) + "\n", encoding="utf-8")
    report, analysis = tmp_path / "out" / "report.html", tmp_path / "out" / "analysis.json"
    done = cli(home, "analyze", str(source), "--score", "nps", "--out", str(report), "--json", str(analysis),
               "--cases", str(cases))
    assert done.returncode == 0, done.stderr
    a = json.loads(analysis.read_text(encoding="utf-8"))
    assert a["outcome"] == "nps" and a["records"] == 48 and isinstance(a["overall"]["nps"], float)
    assert a["drivers"] and {"driver", "kind", "support", "impact", "importance", "ci", "rank", "examples"} <= set(a["drivers"][0])
    assert isinstance(a["clusters"], list)
    assert [r["line"] for r in a["rejected"]] == [6, 10]
    assert "out of range" in a["rejected"][1]["reason"] or "11" in a["rejected"][1]["reason"]
    assert a["cases"]["by_topic"][0]["median_hours_to_resolve"] == 12.0
    html = report.read_text(encoding="utf-8")
    assert 'id="headline-number"' in html and not re.search(r"<script[^>]+src=", html)
    err = done.stderr
    for stage in ("read", "classify", "cluster", "drivers", "report"):
        assert f"[{stage}] done" in err, err
    assert "line 6:" in err and "line 10:" in err
    assert re.search(r"records: 50\b", err) and re.search(r"analysed: 48\b", err) and re.search(r"rejected: 2\b", err)
    assert "top negative driver:" in err and f"report written to {report}" in err


def test_without_an_output_or_without_the_score_it_fails_with_the_reason(home, tmp_path):
    source = survey(tmp_path / "survey.jsonl")
    done = cli(home, "analyze", str(source), "--score", "nps")
    assert done.returncode == 2 and "--out" in done.stderr
    done = cli(home, "analyze", str(source), "--score", "csat", "--json", str(tmp_path / "a.json"))
    assert done.returncode == 1 and "no record has a csat score" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "a.json").exists()
