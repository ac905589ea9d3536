"""Typed dependency aliases shared by the routers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from sqlalchemy.orm import Session

from service.auth import get_principal, require_scope
from service.batching import MicroBatcher
from service.observability import Metrics
from service.ratelimit import TokenBucketLimiter
from service.settings import Settings
from service.storage.keys import Principal, Scope


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def get_session(request: Request) -> Iterator[Session]:
    """A database session for the request; the route commits what it changes."""
    with request.app.state.session_factory() as session:
        yield session


# -- classification serving (service/batching.py, service/ratelimit.py) --
def get_batcher(request: Request) -> MicroBatcher:
    """The app's micro-batcher: ``await batcher.classify(items)`` (503s while the model loads)."""
    return request.app.state.batcher


def get_rate_limiter(request: Request) -> TokenBucketLimiter:
    """Per-key token buckets: ``limiter.charge(principal.key_id, cost)`` raises a 429."""
    return request.app.state.rate_limiter


BatcherDep = Annotated[MicroBatcher, Depends(get_batcher)]
RateLimiterDep = Annotated[TokenBucketLimiter, Depends(get_rate_limiter)]
# -- end classification serving --

SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
SessionDep = Annotated[Session, Depends(get_session)]

# The caller (tenant + key) of an authenticated route: 401 without a valid key, 403 without the scope.
PrincipalDep = Annotated[Principal, Security(get_principal)]
ClassifyPrincipal = Annotated[Principal, Security(require_scope(Scope.classify))]
AnalyzePrincipal = Annotated[Principal, Security(require_scope(Scope.analyze))]
TrainPrincipal = Annotated[Principal, Security(require_scope(Scope.train))]
TriagePrincipal = Annotated[Principal, Security(require_scope(Scope.triage))]
AdminPrincipal = Annotated[Principal, Security(require_scope(Scope.admin))]
