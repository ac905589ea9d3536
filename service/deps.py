"""Typed dependency aliases shared by the routers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from sqlalchemy.orm import Session

from service.auth import get_principal, require_scope
from service.observability import Metrics
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
