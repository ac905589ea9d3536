"""Load benchmark of ``POST /v1/classify`` on loopback: latency percentiles, throughput, errors.

Usage::

    python -m evaluation.bench_service                       # starts `verbatim serve` with the default model
    python -m evaluation.bench_service --url http://127.0.0.1:8000 --key vb_...   # a running server
    python -m evaluation.bench_service --requests 100 --json-out bench.json

Four scenarios by default: single-item and 64-item requests, each at concurrency 1 and 8 (change
with ``--scenario ITEMS:CONCURRENCY``, repeatable). Each sends ``--requests`` requests (64-item
scenarios send a quarter as many, at least 8) after a short untimed warm-up, and stops early once
``--max-seconds`` have passed, so a run always ends by itself. A request that does not answer 200
with one result per item counts as an error. Texts: the 2,000-record mixed benchmark when the
public data are available, else a built-in bilingual set, or ``--texts FILE`` (JSONL ``text`` field).

When it starts its own server it also measures the model's batch throughput in-process (as
``verbatim classify`` runs it: chunks of 256 records, model load not timed) once the server has
stopped, and reports what share of it 64-item requests at concurrency 8 sustain.

Results: a markdown table on standard output and, with ``--json-out``, the same as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

BUILTIN_TEXTS = (
    "快递太慢了，等了一个星期才到，客服也不回复。",
    "质量很好，物流也快，会回购的。",
    "酒店房间很干净，前台服务态度特别好，就是隔音差了点。",
    "价格有点贵，但是味道确实不错。",
    "退款申请提交了十天还没处理，打了三次电话都说在审核。",
    "App总是闪退，下单的时候付款失败了好几次。",
    "衣服尺码偏小，和描述的不一样，申请换货很麻烦。",
    "骑手态度恶劣，外卖送到的时候汤都洒了。",
    "The delivery was two days late and the box was crushed.",
    "Great staff, quick checkout, I'll definitely come back.",
    "I was charged twice for the same order and nobody answers the support line.",
    "The room was spotless and the location is perfect for the museums.",
    "Flight delayed three hours with no explanation, then they lost my bag.",
    "Battery life is amazing but the screen scratches far too easily.",
    "The app keeps logging me out and I can't redeem my loyalty points.",
    "Food was cold when it arrived and the driver was rude about it.",
)


@dataclass(frozen=True, kw_only=True)
class Scenario:
    items: int
    concurrency: int

    @property
    def name(self) -> str:
        return f"{self.items}-item c={self.concurrency}"


@dataclass(kw_only=True)
class Outcome:
    scenario: str
    items_per_request: int
    concurrency: int
    requests: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    seconds: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    requests_per_s: float = 0.0
    records_per_s: float = 0.0


def load_texts(path: Path | None) -> list[str]:
    """``--texts`` (JSONL with ``text``, or one text a line), else mixed2000, else the built-ins."""
    if path is not None:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [str(json.loads(line)["text"]) if path.suffix in {".jsonl", ".ndjson"} else line for line in lines]
    try:
        from training.data import load_mixed2000

        return [r.text for r in load_mixed2000()]
    except Exception:  # noqa: BLE001 - no public data here: the built-in set serves
        return list(BUILTIN_TEXTS)


async def run_scenario(client: httpx.AsyncClient, key: str, texts: Sequence[str], scenario: Scenario,
                       *, requests: int, max_seconds: float, warmup: int = 2) -> Outcome:
    """Send ``requests`` requests of ``scenario.items`` items from ``scenario.concurrency`` workers."""
    headers = {"Authorization": f"Bearer {key}"}
    counter = iter(range(10**9))
    outcome = Outcome(scenario=scenario.name, items_per_request=scenario.items, concurrency=scenario.concurrency)
    latencies: list[float] = []

    def body(n: int) -> dict[str, Any]:
        start = n * scenario.items
        return {"items": [{"id": f"b{n}-{k}", "text": texts[(start + k) % len(texts)]} for k in range(scenario.items)]}

    async def one(n: int) -> tuple[float, str | None]:
        started = time.perf_counter()
        try:
            response = await client.post("/v1/classify", json=body(n), headers=headers)
        except httpx.HTTPError as exc:
            return time.perf_counter() - started, f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            return elapsed, f"HTTP {response.status_code}: {response.text[:200]}"
        results = response.json().get("results", [])
        if len(results) != scenario.items:
            return elapsed, f"{len(results)} results for {scenario.items} items"
        return elapsed, None

    for n in range(warmup):  # untimed: connections, lazy resources
        await one(-1 - n)
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            n = next(counter)
            if n >= requests:
                return
            elapsed, error = await one(n)
            outcome.requests += 1
            if error is None:
                latencies.append(elapsed)
            else:
                outcome.errors += 1
                if len(outcome.error_samples) < 5:
                    outcome.error_samples.append(error)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(scenario.concurrency)))
    outcome.seconds = round(time.perf_counter() - began, 3)
    if latencies:
        p50, p95, p99 = np.percentile(np.array(latencies) * 1000, [50, 95, 99])
        outcome.p50_ms, outcome.p95_ms, outcome.p99_ms = round(float(p50), 1), round(float(p95), 1), round(float(p99), 1)
    ok = outcome.requests - outcome.errors
    outcome.requests_per_s = round(ok / outcome.seconds, 2) if outcome.seconds else 0.0
    outcome.records_per_s = round(ok * scenario.items / outcome.seconds, 1) if outcome.seconds else 0.0
    return outcome


async def run_all(url: str, key: str, texts: Sequence[str], scenarios: Sequence[Scenario], *,
                  requests: int, max_seconds: float) -> tuple[list[Outcome], str | None]:
    """Every scenario in turn; also the model id the server reports."""
    limits = httpx.Limits(max_connections=max(s.concurrency for s in scenarios) + 2)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        probe = await client.post("/v1/classify", json={"items": [{"id": "probe", "text": texts[0]}]},
                                  headers={"Authorization": f"Bearer {key}"})
        model_id = probe.json().get("model") if probe.status_code == 200 else None
        outcomes = []
        for scenario in scenarios:
            n = requests if scenario.items == 1 else max(8, requests // 4)
            outcomes.append(await run_scenario(client, key, texts, scenario, requests=n, max_seconds=max_seconds))
        return outcomes, model_id


# ---- a server of our own ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnServer:
    """``verbatim serve --demo`` in a subprocess, on a free port, a throwaway database, no rate limit."""

    def __init__(self, *, model: Path | None, ready_timeout: float) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.model = model
        self.ready_timeout = ready_timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="verbatim-bench-")
        self.proc: subprocess.Popen[str] | None = None
        self.key = ""

    def __enter__(self) -> OwnServer:
        env = {**os.environ, "VERBATIM_DATABASE_URL": f"sqlite:///{self._tmp.name}/bench.db",
               "VERBATIM_RATE_LIMIT_PER_MINUTE": "0", "VERBATIM_LOG_LEVEL": "WARNING"}
        if self.model is not None:
            env["VERBATIM_MODEL"] = str(self.model)
        verbatim = str(Path(sys.executable).with_name("verbatim"))
        self.proc = subprocess.Popen([verbatim, "serve", "--demo", "--port", str(self.port)], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.match(r"API key: (\S+)", line)
        if not match:
            self.__exit__()
            raise RuntimeError(f"`verbatim serve --demo` did not print a key (got {line!r})")
        self.key = match.group(1)
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with status {self.proc.returncode} before it was ready")
            try:
                ready = httpx.get(self.url + "/readyz", timeout=5)
                if ready.status_code == 200:
                    return self
                if "failed" in json.dumps(ready.json()):
                    self.__exit__()
                    raise RuntimeError(f"the model failed to load: {ready.text}")
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"the server was not ready within {self.ready_timeout:.0f} s")
            time.sleep(0.5)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # graceful: in-flight requests finish
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._tmp.cleanup()


def offline_throughput(texts: Sequence[str], *, records: int, model: Path | None) -> dict[str, Any]:
    """Records/s of the classifier in-process, chunks of 256 as ``verbatim classify`` runs it."""
    from platformdirs import user_data_dir

    from models.classifier import default_model_dir
    from models.classifier.predict import Classifier
    from models.encoder import ensure_base_encoder

    home = Path(os.environ.get("VERBATIM_HOME") or user_data_dir("verbatim", appauthor=False))
    classifier = Classifier.load(model or os.environ.get("VERBATIM_MODEL") or default_model_dir(),
                                 base_dir=ensure_base_encoder(home))
    items = [{"id": str(i), "text": texts[i % len(texts)]} for i in range(records)]
    classifier.classify(items[:32])  # warm-up, untimed
    started = time.perf_counter()
    for start in range(0, len(items), 256):
        classifier.classify(items[start : start + 256])
    seconds = time.perf_counter() - started
    return {"records": records, "seconds": round(seconds, 3), "records_per_s": round(records / seconds, 1),
            "model": classifier.model_id}


# ---- report -------------------------------------------------------------------------------------


def markdown(outcomes: Sequence[Outcome], baseline: dict[str, Any] | None) -> str:
    rows = ["| scenario | requests | errors | p50 ms | p95 ms | p99 ms | requests/s | records/s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for o in outcomes:
        rows.append(f"| {o.scenario} | {o.requests} | {o.errors} | {o.p50_ms} | {o.p95_ms} | {o.p99_ms} "
                    f"| {o.requests_per_s} | {o.records_per_s} |")
    if baseline is not None:
        rows.append("")
        rows.append(f"In-process batch throughput (as `verbatim classify`): {baseline['records_per_s']} records/s "
                    f"over {baseline['records']} records.")
        if "share_at_64x8" in baseline:
            rows.append(f"64-item requests at concurrency 8 sustain {baseline['share_at_64x8']:.0%} of it.")
    return "\n".join(rows)


def parse_scenario(value: str) -> Scenario:
    try:
        items, concurrency = (int(part) for part in value.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ITEMS:CONCURRENCY such as 64:8, got {value!r}") from None
    if not (1 <= items <= 256 and 1 <= concurrency <= 256):
        raise argparse.ArgumentTypeError("items must be 1..256 and concurrency 1..256")
    return Scenario(items=items, concurrency=concurrency)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (default: start `verbatim serve` here)")
    parser.add_argument("--key", default=os.environ.get("VERBATIM_API_KEY"), help="API key for --url (or VERBATIM_API_KEY)")
    parser.add_argument("--model", type=Path, help="model directory for the server it starts")
    parser.add_argument("--scenario", dest="scenarios", action="append", type=parse_scenario,
                        help="ITEMS:CONCURRENCY, repeatable (default 1:1 1:8 64:1 64:8)")
    parser.add_argument("--requests", type=int, default=200, help="requests per single-item scenario (64-item: a quarter)")
    parser.add_argument("--max-seconds", type=float, default=60, help="time limit per scenario")
    parser.add_argument("--texts", type=Path, help="JSONL (text field) or text file, one verbatim a line")
    parser.add_argument("--no-baseline", action="store_true", help="skip the in-process throughput baseline")
    parser.add_argument("--ready-timeout", type=float, default=900, help="seconds to wait for the model to load")
    parser.add_argument("--json-out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.url and not args.key:
        parser.error("--url needs --key (or VERBATIM_API_KEY)")
    scenarios = args.scenarios or [parse_scenario(s) for s in ("1:1", "1:8", "64:1", "64:8")]
    texts = load_texts(args.texts)
    print(f"{len(texts)} texts; scenarios: {', '.join(s.name for s in scenarios)}", file=sys.stderr)
    run_args = {"requests": args.requests, "max_seconds": args.max_seconds}
    baseline = None
    if args.url:
        url = args.url.rstrip("/")
        outcomes, model_id = asyncio.run(run_all(url, args.key, texts, scenarios, **run_args))
    else:
        with OwnServer(model=args.model, ready_timeout=args.ready_timeout) as server:
            url = server.url
            outcomes, model_id = asyncio.run(run_all(url, server.key, texts, scenarios, **run_args))
        if not args.no_baseline:  # after the server stopped, so the two do not share the CPUs
            sent = max((o.requests * o.items_per_request for o in outcomes), default=0)
            baseline = offline_throughput(texts, records=min(max(sent, 512), 4096), model=args.model)
            at_64x8 = next((o for o in outcomes if o.items_per_request == 64 and o.concurrency == 8), None)
            if at_64x8 is not None and baseline["records_per_s"]:
                baseline["share_at_64x8"] = round(at_64x8.records_per_s / baseline["records_per_s"], 3)
    print(markdown(outcomes, baseline))
    if args.json_out:
        report = {"url": url, "model": model_id, "texts": len(texts), "cpus": os.cpu_count(),
                  "machine": platform.platform(), "python": platform.python_version(),
                  "scenarios": [asdict(o) for o in outcomes], "baseline": baseline}
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 1 if any(o.errors for o in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
