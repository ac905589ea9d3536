"""Tenant scoping: every read of a tenant's rows goes through these, so no tenant sees another's.

An object of another tenant and an object that does not exist give the same
:class:`~nlp.errors.NotFoundError`, so ids cannot be probed across tenants.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from nlp.errors import NotFoundError

T = TypeVar("T")


class HasTenant(Protocol):
    """Anything that names a tenant, such as :class:`service.storage.keys.Principal`."""

    @property
    def tenant_id(self) -> str: ...


def owned(model: type[T], principal: HasTenant) -> Select[tuple[T]]:
    """``SELECT model WHERE tenant_id = <the caller's tenant>``, to refine with filters and paging."""
    column: Any = model.tenant_id  # type: ignore[attr-defined]
    return select(model).where(column == principal.tenant_id)


def get_owned(
    session: Session,
    model: type[T],
    object_id: Any,
    principal: HasTenant,
    *,
    what: str | None = None,
) -> T:
    """The ``model`` row with primary key ``object_id`` if it belongs to the caller's tenant.

    Raises :class:`NotFoundError` otherwise, with the same message whether the row is missing or
    belongs to someone else. ``what`` names the resource in the message (default: the class name).
    """
    id_column: Any = model.id  # type: ignore[attr-defined]
    obj = session.scalars(owned(model, principal).where(id_column == object_id)).one_or_none()
    if obj is None:
        label = what or model.__name__.lower()
        raise NotFoundError(
            f"No {label} with id {str(object_id)!r} for this API key's tenant. List them to see the "
            "ids you can use.",
            details={"id": str(object_id)},
        )
    return obj
