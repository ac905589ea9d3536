"""Typed dependency aliases shared by the routers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from sqlalchemy.orm import Session

from nlp.errors import NotFoundError
from service.auth import get_principal, require_scope
from service.batching import MicroBatcher
from service.observability import Metrics
from service.ratelimit import TokenBucketLimiter
from service.settings import Settings
from service.storage.keys import Principal, Scope
from service.storage.models import Dataset
from service.storage.tenancy import get_owned


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


def owned_dataset(session: Session, dataset_id: str, principal: Principal) -> Dataset:
    """The caller's data set, or 404 (also for ids no data set can have, such as ones with NULs).

    Called from the route body, not given as a ``Depends``: a dependency would answer 404 before
    the request's own parameters and body are checked (422), where the routes check them first."""
    if not (0 < len(dataset_id) <= 40 and dataset_id.isprintable()):
        raise NotFoundError(f"No data set with id {dataset_id[:40]!r} for this API key's tenant.")
    return get_owned(session, Dataset, dataset_id, principal, what="data set")
