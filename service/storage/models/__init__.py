"""Every table, one module per resource. Importing this package registers them on ``Base.metadata``.

A new resource adds its module here and an Alembic migration under ``storage/migrations/versions``.
"""

from __future__ import annotations

from service.storage.models.api_keys import ApiKey
from service.storage.models.tenants import Tenant

__all__ = ["ApiKey", "Tenant"]
