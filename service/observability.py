"""Request ids, Prometheus metrics and structured JSON logs.

Logs carry method, route, status, latency and the request id, never request bodies, so no
verbatim text or personal data reaches them.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("verbatim.access")


@dataclass
class Metrics:
    """The service's metrics, in a registry of their own (one per app, no global state)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "verbatim_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "verbatim_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.records_classified = Counter(
            "verbatim_records_classified_total", "Verbatims classified", ["source"], registry=r
        )
        self.queue_depth = Gauge("verbatim_classify_queue_depth", "Items waiting for the model", registry=r)
        self.model_info = Gauge(
            "verbatim_model_info", "The model version served (value 1)", ["version"], registry=r
        )
        self.jobs = Gauge("verbatim_jobs", "Jobs by state", ["state"], registry=r)
        self._cases: _CaseGauges | None = None

    def track_cases(self, counts: Callable[[], Iterable[tuple[str, int, int]]]) -> None:
        """Publish ``verbatim_cases_open{team}`` and ``verbatim_cases_sla_breached{team}``,
        read from ``counts()`` (team, active cases, past due) each time /metrics is scraped."""
        if self._cases is None:
            self._cases = _CaseGauges()
            self.registry.register(self._cases)
        self._cases.counts = counts


class _CaseGauges(Collector):
    """Case gauges computed at scrape time (one GROUP BY), so SLA breaches need no timer."""

    def __init__(self) -> None:
        self.counts: Callable[[], Iterable[tuple[str, int, int]]] | None = None

    def describe(self) -> list[Metric]:
        return [GaugeMetricFamily("verbatim_cases_open", "Active support cases by team", labels=["team"]),
                GaugeMetricFamily("verbatim_cases_sla_breached", "Active cases past due by team", labels=["team"])]

    def collect(self) -> Iterator[Metric]:
        open_ = GaugeMetricFamily("verbatim_cases_open", "Active support cases by team", labels=["team"])
        late = GaugeMetricFamily(
            "verbatim_cases_sla_breached", "Active cases past due by team", labels=["team"]
        )
        if self.counts is not None:
            try:
                rows = list(self.counts())
            except SQLAlchemyError:  # the database is unreachable: the scrape still answers
                access_log.warning("case gauges skipped: the database cannot be read", exc_info=True)
                rows = []
            for team, active, breached in rows:
                open_.add_metric([team], active)
                late.add_metric([team], breached)
        yield open_
        yield late


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "method", "route", "status", "ms", "tenant"):
            value = getattr(record, key, None)
            if value is not None:
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


def configure_logging(level: str = "INFO") -> None:
    """Called by the command line when it starts a server, never at import."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("verbatim")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


class RequestContextMiddleware:
    """Gives every request an id (honouring a sane incoming ``X-Request-ID``), times it and counts it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.isascii() and incoming.isprintable() else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            method = scope.get("method", "")
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            access_log.info(
                "request",
                extra={"request_id": request_id, "method": method, "route": route, "status": status,
                       "ms": round(elapsed * 1000, 2)},
            )
