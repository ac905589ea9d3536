"""Authentication and authorisation for the HTTP API.

``Authorization: Bearer <key>``: no key, a malformed header, an unknown or revoked key give 401
(with ``WWW-Authenticate: Bearer``); a key without the route's scope gives 403. Routes take the
caller through the aliases in :mod:`service.deps` (``PrincipalDep``, ``ClassifyPrincipal``, ...)
and read tenant rows through :func:`service.storage.tenancy.get_owned`, so another tenant's
object is a 404.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Annotated

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.storage.keys import Principal, Scope, authenticate

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    bearerFormat="vb_…",
    description="An API key from `verbatim keys create --tenant T --scopes classify,…`, sent as "
    "`Authorization: Bearer vb_…`.",
)

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status_code=401, detail=message, headers=_CHALLENGE)


def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> Principal:
    """The caller behind the request's API key; 401 when there is no valid key."""
    if credentials is None:
        header = request.headers.get("authorization")
        if header is None:
            raise _unauthorized(
                "No API key: send it as 'Authorization: Bearer vb_…' "
                "(create one with `verbatim keys create`)."
            )
        raise _unauthorized("Malformed Authorization header: expected 'Bearer vb_…'.")
    token = credentials.credentials.strip()
    session_factory = request.app.state.session_factory
    with session_factory.begin() as session:  # short transaction of its own: records last use
        principal = authenticate(session, token)
    if principal is None:
        raise _unauthorized(
            "Invalid API key: it is unknown or has been revoked. Send a valid key as "
            "'Authorization: Bearer vb_…' (`verbatim keys list` shows which keys are active)."
        )
    request.state.tenant = principal.tenant_id
    return principal


@cache
def require_scope(scope: Scope | str) -> Callable[..., Principal]:
    """A dependency giving the caller if its key carries ``scope`` (or ``admin``), else 403."""
    needed = Scope(scope)

    def dependency(principal: Annotated[Principal, Security(get_principal)]) -> Principal:
        if not principal.has(needed):
            granted = ", ".join(sorted(s.value for s in principal.scopes)) or "none"
            raise HTTPException(
                status_code=403,
                detail=f"This API key lacks the '{needed.value}' scope (it has: {granted}). "
                f"Create a key with --scopes {needed.value}.",
            )
        return principal

    dependency.__name__ = f"require_{needed.value}_scope"
    return dependency
