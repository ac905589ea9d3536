"""The throughput benchmark's peers: the child entry point on a tiny mixed file (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.bench_classify import markdown
from evaluation.bench_peers import (
    EMBED,
    SNOWNLP,
    TFIDF,
    VADER,
    PeerTraining,
    fit_peers,
    one_peer_run,
    run_peer,
    summarize,
)

ZH = [
    ("质量非常好，物流也很快，很满意，推荐购买", "positive"),
    ("太差了，完全不能用，客服态度恶劣，退货", "negative"),
    ("味道很棒，送餐也快，下次还点这家", "positive"),
    ("送来的饭都凉了，等了两个小时，再也不点了", "negative"),
    ("衣服做工精致，穿着很舒服，好评", "positive"),
    ("手机用了三天就坏了，垃圾产品", "negative"),
    ("包装完好，东西不错，性价比高", "positive"),
    ("菜太咸了，分量还少，非常失望", "negative"),
    ("卖家服务热情，发货速度快，满意", "positive"),
    ("电池不耐用，充电还发烫，很差劲", "negative"),
]
EN = [
    ("Thank you so much, the crew was wonderful and the flight was great!", "positive"),
    ("Worst airline ever. Lost my bag and the agent was rude. Terrible.", "negative"),
    ("Great service today, friendly staff and an easy check-in.", "positive"),
    ("Delayed three hours with no explanation, awful experience.", "negative"),
    ("Loved the new seats, very comfortable flight, thanks!", "positive"),
    ("Cancelled my flight and hung up on me. Horrible customer service.", "negative"),
    ("The pilot was excellent and we landed early, happy customer.", "positive"),
    ("Still waiting for my refund, this is ridiculous and unacceptable.", "negative"),
    ("Amazing upgrade and a great meal, best flight in years.", "positive"),
    ("Dirty cabin and broken entertainment, very disappointed.", "negative"),
]


@pytest.fixture
def records(tmp_path: Path) -> Path:
    """20 records, zh and en interleaved; half carry ``lang``, the rest are detected."""
    rows = []
    for i, ((zh, _), (en, _)) in enumerate(zip(ZH, EN, strict=True)):
        rows.append({"id": f"zh{i}", "text": zh} | ({"lang": "zh"} if i % 2 else {}))
        rows.append({"id": f"en{i}", "text": en} | ({"lang": "en"} if i % 2 else {}))
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _tiny_data() -> dict[str, tuple[list[str], list[str]]]:
    texts = [t for t, _ in ZH + EN]
    labels = [lab for _, lab in ZH + EN]
    return {"train": (texts, labels), "dev": ([], [])}


def _written(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(("peer", "lang", "gold"), [(SNOWNLP, "zh", ZH), (VADER, "en", EN)])
def test_zero_shot_peer_handles_only_its_language(peer, lang, gold, records, tmp_path):
    out = tmp_path / "out.jsonl"
    summary = run_peer(peer, records, out=out)
    other = "en" if lang == "zh" else "zh"
    assert summary["records_in"] == 20
    assert summary["records_handled"] == 10
    assert summary["handled_by_lang"] == {lang: 10}
    assert summary["skipped_by_lang"] == {other: 10}
    written = _written(out)
    assert [r["id"] for r in written] == [f"{lang}{i}" for i in range(10)]
    assert set(written[0]) == {"id", "lang", "sentiment"}  # a sentiment label, nothing else
    right = sum(r["sentiment"]["label"] == g for r, (_, g) in zip(written, gold, strict=True))
    assert right >= 8, f"{peer} got only {right}/10 clear {lang} reviews right"


def test_tfidf_peer_fitted_untimed_then_run_as_a_child_process(records, tmp_path):
    info = fit_peers([TFIDF, SNOWNLP], tmp_path, training=PeerTraining(), data=_tiny_data())
    assert list(info) == [TFIDF]  # SnowNLP needs no fitting
    assert info[TFIDF]["n_train"] == 20 and info[TFIDF]["classes"] == ["negative", "positive"]
    run = one_peer_run(TFIDF, records, models=tmp_path)
    assert run["records"] == 20
    assert run["handled_by_lang"] == {"zh": 10, "en": 10}
    assert run["peak_rss_mb"] > 20  # a Python process with scikit-learn and jieba loaded
    assert run["load_seconds"] >= 0 and run["predict_seconds"] >= 0
    summary = summarize([run], TFIDF)
    assert summary["handles"] == "every record, zh and en"
    assert "sentiment label" in summary["outputs"] and "only" in summary["outputs"]


def test_child_failure_is_reported_with_its_error(records, tmp_path):
    with pytest.raises(RuntimeError, match="tfidf_lr.pkl"):
        one_peer_run(TFIDF, records, models=tmp_path)  # nothing fitted there


def test_markdown_shows_what_each_predictor_outputs():
    peer_run = {"seconds": 2.0, "records": 1000, "peak_rss_mb": 150, "load_seconds": 1.0,
                "predict_seconds": 0.8, "handled_by_lang": {"zh": 1000}}
    report = {"throughput": {
        "fp32": {"records": 2000, "records_per_s": 50.0, "peak_rss_mb": 1200,
                 "outputs": "document sentiment + topics with polarity and evidence spans + touchpoints + triage"},
        "other_models": [{"model": "verbatim-cem-fast@0.1.0", "precision": "bf16", "records": 2000,
                          "records_per_s": 160.0, "peak_rss_mb": 1100, "outputs": "document sentiment + topics"}],
        "peers": {SNOWNLP: summarize([peer_run, peer_run | {"seconds": 4.0}], SNOWNLP)},
        "peer_training": {"sets": ["waimai_10k"], "train_per_set": 2000, "dev_per_set": 300, "seed": 0},
        "loadavg_before": [0.1, 0.1, 0.1], "loadavg_after": [1.0, 0.5, 0.2],
    }}
    table = markdown(report)
    assert "| Verbatim fp32 | 2000 | 50.0 | 1200 | document sentiment + topics" in table
    assert "| verbatim-cem-fast@0.1.0 bf16 | 2000 | 160.0 | 1100 |" in table  # another model, same run
    snow = next(line for line in table.splitlines() if line.startswith("| SnowNLP"))
    assert "1000 (zh records only) | 333.3 | 150 |" in snow  # median of 2 s and 4 s: 3 s
    assert "zh records only" in snow and "sentiment label" in snow


@pytest.mark.slow
def test_embedding_peer_loads_the_frozen_encoder_in_the_child(records, tmp_path):
    from evaluation.bench_peers import base_encoder_dir

    base = base_encoder_dir()
    fit_peers([EMBED], tmp_path, training=PeerTraining(), base_dir=base, data=_tiny_data())
    out = tmp_path / "out.jsonl"
    summary = run_peer(EMBED, records, models=tmp_path, base_dir=base, out=out)
    assert summary["records_handled"] == 20 and summary["handled_by_lang"] == {"zh": 10, "en": 10}
    written = _written(out)
    # trained on these very lines: a frozen-embedding LR that cannot separate them is broken
    gold = {f"{lang}{i}": g for lang, rows in (("zh", ZH), ("en", EN)) for i, (_, g) in enumerate(rows)}
    assert sum(r["sentiment"]["label"] == gold[r["id"]] for r in written) >= 16


def test_peak_memory_is_the_child_s_own_not_the_benchmark_s(tmp_path):
    import subprocess
    import sys

    from evaluation.bench_peers import measure_child

    ballast = bytearray(400 * 1024 * 1024)  # the benchmark after fitting the embedding peer holds far more
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    small = measure_child([sys.executable, "-c", "pass"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    big = measure_child([sys.executable, "-c", "b = bytearray(200 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    del ballast
    assert small["exit"] == 0 and small["peak_rss_mb"] < 100  # a bare Python, not this 400 MB process
    assert 200 <= big["peak_rss_mb"] < 350
    failed = measure_child([sys.executable, "-c", "raise SystemExit(3)"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    assert failed["exit"] == 3
