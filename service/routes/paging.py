"""Pagination shared by the list routes: the ``limit``/``offset`` parameters and the page body.

Both parameters are bounded, so an offset no database can take (``offset=24146332826971127808``)
is a 422 naming the limit, never a 500.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

MAX_LIMIT = 500
MAX_OFFSET = 1_000_000_000

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page (1 to {MAX_LIMIT}).")]
Offset = Annotated[
    int, Query(ge=0, le=MAX_OFFSET, description=f"Items to skip (0 to {MAX_OFFSET:,}).")
]


def page(items: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    """A page body: ``items``, ``total``, ``limit``, ``offset`` and ``next_offset`` (null on the
    last page), the shape of :class:`service.routes.datasets_schemas.Page`."""
    following = offset + len(items)
    return {
        "items": items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": following if following < total else None,
    }
