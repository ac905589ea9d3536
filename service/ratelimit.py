"""Per-key rate limits: a token bucket per API key id.

Each key has a bucket holding ``capacity`` tokens that refills at ``per_minute / 60`` tokens a
second. A request costs tokens (``POST /v1/classify`` costs one per item, other limited routes one
per request); when the bucket holds too few, the request is refused with the seconds until it would
be allowed, which the route sends as ``Retry-After`` with a 429.

The capacity is one minute's worth of tokens, and never less than ``max_cost`` so that the largest
allowed request can always go through once the bucket is full.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException


@dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    """The outcome of one :meth:`TokenBucketLimiter.acquire`."""

    allowed: bool
    retry_after: float  # seconds until the same request would be allowed (0 when allowed)
    remaining: float  # tokens left in the bucket after the decision


class TokenBucketLimiter:
    """Token buckets keyed by API key id; thread-safe; ``per_minute=0`` turns limiting off."""

    _PRUNE_AT = 10_000  # buckets kept before full (idle) ones are dropped

    def __init__(
        self,
        *,
        per_minute: float,
        max_cost: float = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.capacity = max(float(per_minute), float(max_cost))
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def acquire(self, key: str, cost: float = 1) -> Decision:
        """Take ``cost`` tokens from ``key``'s bucket if it holds them; never blocks."""
        if not self.enabled:
            return Decision(allowed=True, retry_after=0.0, remaining=math.inf)
        cost = min(float(cost), self.capacity)
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.rate)
            if tokens >= cost:
                tokens -= cost
                self._buckets[key] = (tokens, now)
                allowed, wait = True, 0.0
            else:
                self._buckets[key] = (tokens, now)
                allowed, wait = False, (cost - tokens) / self.rate
            if len(self._buckets) > self._PRUNE_AT:
                self._prune(now)
        return Decision(allowed=allowed, retry_after=wait, remaining=tokens)

    def charge(self, key: str, cost: float = 1, *, unit: str = "request") -> None:
        """:meth:`acquire`, raising a 429 with ``Retry-After`` when refused."""
        decision = self.acquire(key, cost)
        if decision.allowed:
            return
        seconds = max(1, math.ceil(decision.retry_after))
        raise HTTPException(
            status_code=429,
            detail=(
                f"Rate limit exceeded for this API key: {self.per_minute:g} {unit}s per minute "
                f"(bursts up to {self.capacity:g}). This request needs {cost:g} {unit}(s) and "
                f"{decision.remaining:.0f} are available now; retry after {seconds} s, or send "
                "smaller requests."
            ),
            headers={"Retry-After": str(seconds)},
        )

    def _prune(self, now: float) -> None:
        full = [k for k, (t, at) in self._buckets.items() if t + (now - at) * self.rate >= self.capacity]
        for k in full:
            del self._buckets[k]
