"""The per-tenant model registry: versions, promotion behind the regression guard, roll-back, audit.

A tenant's promoted version lives in ``tenant_models`` with the stack of versions it replaced
(``None`` there is the default model), so a roll-back returns to the version promoted before.
Every change bumps ``revision`` with a compare-and-set update: two concurrent promotions cannot
both win (the loser gets a 409), and serving servers can tell which pointer is newer.

Promotion needs the candidate's evaluation to be against the version promoted *now* (the run
compared both on the same held-out labels) and the regression guard to have passed; otherwise it
is refused with the guard's reasons, unless forced with a reason, which is recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from nlp.errors import ConflictError, InvalidInputError, NotFoundError
from service.cases import Actor, actor_for  # noqa: F401 - the audit's actor, as for cases
from service.storage.base import utcnow
from service.storage.models import ModelEvent, ModelVersion, TenantModel
from service.storage.models.registry import ModelStatus

MODEL_NAME = "verbatim-cem"


class PromotionRefusedError(ConflictError):
    """The regression guard (or a stale evaluation) refuses a promotion; ``details`` say why."""

    code = "promotion_refused"


@dataclass(frozen=True, kw_only=True, slots=True)
class Change:
    """A planned switch of the promoted version, ready to :func:`apply_change` once the new model
    is loaded."""

    tenant_id: str
    action: str  # promote | rollback
    version: str | None  # None: the default model
    model_dir: str | None
    previous: str | None
    history: tuple[str | None, ...]
    revision: int  # the pointer's revision this plan read
    forced: bool = False
    reason: str | None = None
    guard: dict[str, Any] | None = None


def model_id(version: str | None, default_model: str) -> str:
    """``verbatim-cem@<version>``, or the default model's id for ``None``."""
    return default_model if version is None else f"{MODEL_NAME}@{version}"


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as ``None`` (JSON, and PostgreSQL's JSONB, have no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


# ---- versions -----------------------------------------------------------------------------------


def next_number(session: Session, tenant_id: str) -> int:
    """The number of the tenant's next training run (1, 2, 3…)."""
    from service.storage.models import TrainingRun

    count = session.scalar(select(func.count()).where(TrainingRun.tenant_id == tenant_id)) or 0
    return int(count) + 1


def version_name(base_version: str, number: int) -> str:
    """``<default model version>+ft.<n>``: the default it was tuned from and the run number."""
    return f"{base_version.split('+', 1)[0]}+ft.{number}"


def list_versions(session: Session, tenant_id: str) -> list[ModelVersion]:
    """The tenant's versions, newest first."""
    return list(
        session.scalars(
            select(ModelVersion)
            .where(ModelVersion.tenant_id == tenant_id)
            .order_by(ModelVersion.number.desc())
        ).all()
    )


def get_version(session: Session, tenant_id: str, version: str) -> ModelVersion:
    """One version of the tenant's; :class:`NotFoundError` for another tenant's or none."""
    row = session.scalars(
        select(ModelVersion).where(
            ModelVersion.tenant_id == tenant_id, ModelVersion.version == version
        )
    ).one_or_none()
    if row is None:
        raise NotFoundError(
            f"No model version {version[:80]!r} for this API key's tenant; GET /v1/models lists them.",
            details={"version": version[:80]},
        )
    return row


def pointer(session: Session, tenant_id: str) -> TenantModel:
    """The tenant's promoted-version row, created (on the default model) when missing."""
    row = session.get(TenantModel, tenant_id, populate_existing=True)
    if row is not None:
        return row
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    values = {"tenant_id": tenant_id, "history": [], "revision": 0, "updated_at": utcnow()}
    # a concurrent request may create it first: keep theirs
    session.execute(insert(TenantModel).values(**values).on_conflict_do_nothing())
    row = session.get(TenantModel, tenant_id, populate_existing=True)
    assert row is not None
    return row


def promoted_version(session: Session, tenant_id: str) -> str | None:
    return session.scalar(
        select(TenantModel.promoted_version).where(TenantModel.tenant_id == tenant_id)
    )


# ---- planning ---------------------------------------------------------------------------------


def plan_promotion(
    session: Session,
    tenant_id: str,
    version: str,
    *,
    force: bool = False,
    reason: str | None = None,
) -> Change:
    """Check that ``version`` may be promoted now; raise :class:`PromotionRefusedError` if not."""
    reason = (reason or "").strip() or None
    if force and reason is None:
        raise InvalidInputError(
            "A forced promotion needs a reason (it is recorded in the audit trail): send "
            '{"force": true, "reason": "why the regression is acceptable"}.',
            details={"field": "reason"},
        )
    row = get_version(session, tenant_id, version)
    current = pointer(session, tenant_id)
    if current.promoted_version == version:
        raise ConflictError(
            f"Version {version!r} is already the promoted one.", details={"version": version}
        )
    guard = dict(row.guard or {})
    reasons = [str(r) for r in guard.get("reasons") or []]
    against = guard.get("against")
    if guard.get("allowed") is None:
        reasons = reasons or ["this version has no evaluation against a promoted model"]
    elif against != current.promoted_version:
        reasons = [
            f"this version was evaluated against {against or 'the default model'}, but "
            f"{current.promoted_version or 'the default model'} is promoted now; start a new "
            "training run to compare against it, or force the promotion with a reason"
        ]
    if reasons and not force:
        raise PromotionRefusedError(
            f"Promotion of {version!r} refused by the regression guard: {reasons[0]}"
            + (f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else "")
            + '. To promote anyway send {"force": true, "reason": "…"}.',
            details={"version": version, "reasons": reasons, "guard": guard},
        )
    history = (*current.history, current.promoted_version)
    return Change(
        tenant_id=tenant_id, action="promote", version=version, model_dir=row.model_dir,
        previous=current.promoted_version, history=history, revision=current.revision,
        forced=bool(reasons) and force, reason=reason,
        guard={**guard, "reasons_overridden": reasons} if reasons else guard,
    )  # fmt: skip


def plan_rollback(session: Session, tenant_id: str, *, reason: str | None = None) -> Change:
    """Back to the version promoted before the current one (possibly the default model)."""
    current = pointer(session, tenant_id)
    if current.promoted_version is None and not current.history:
        raise ConflictError(
            "Nothing to roll back: this tenant is on the default model and has never promoted a "
            "version.",
        )
    history = list(current.history)
    target = history.pop() if history else None
    model_dir = None
    if target is not None:
        model_dir = get_version(session, tenant_id, target).model_dir
    return Change(
        tenant_id=tenant_id, action="rollback", version=target, model_dir=model_dir,
        previous=current.promoted_version, history=tuple(history), revision=current.revision,
        reason=(reason or "").strip() or None,
    )  # fmt: skip


# ---- applying ---------------------------------------------------------------------------------


def apply_change(session: Session, change: Change, actor: Actor) -> int:
    """Write ``change`` (pointer, statuses, audit event) if nobody changed the pointer since it was
    planned; the new revision. The caller commits."""
    now = utcnow()
    new_revision = change.revision + 1
    done = session.execute(
        update(TenantModel)
        .where(TenantModel.tenant_id == change.tenant_id, TenantModel.revision == change.revision)
        .values(
            promoted_version=change.version, history=list(change.history), revision=new_revision,
            updated_at=now,
        )
    ).rowcount  # fmt: skip
    if not done:
        session.rollback()
        raise ConflictError(
            "The promoted model was changed by another request at the same time; GET /v1/models "
            "and try again.",
        )
    if change.previous is not None:
        session.execute(
            update(ModelVersion)
            .where(
                ModelVersion.tenant_id == change.tenant_id, ModelVersion.version == change.previous
            )
            .values(status=ModelStatus.retired.value)
        )
    if change.version is not None:
        session.execute(
            update(ModelVersion)
            .where(
                ModelVersion.tenant_id == change.tenant_id, ModelVersion.version == change.version
            )
            .values(status=ModelStatus.promoted.value, promoted_at=now)
        )
    session.add(
        ModelEvent(
            tenant_id=change.tenant_id, at=now, action=change.action, version=change.version,
            previous_version=change.previous, forced=change.forced, reason=change.reason,
            guard=json_safe(change.guard) if change.guard is not None else None,
            actor_id=actor.id, actor_name=actor.name,
        )
    )  # fmt: skip
    session.flush()
    return new_revision


def list_events(session: Session, tenant_id: str, *, limit: int = 100) -> list[ModelEvent]:
    """The tenant's promotions and roll-backs, newest first."""
    return list(
        session.scalars(
            select(ModelEvent)
            .where(ModelEvent.tenant_id == tenant_id)
            .order_by(ModelEvent.at.desc(), ModelEvent.pk.desc())
            .limit(limit)
        ).all()
    )
