"""The tenant's model registry: versions, promotion behind the regression guard, roll-back.

``analyze`` reads; ``train`` (or ``admin``) promotes and rolls back. A promotion loads the new
model first and then switches the tenant's traffic to it atomically (:mod:`service.tenant_models`):
no request fails, requests in flight finish on the old model, and each result's ``model`` names
the version that made it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from nlp.errors import UnavailableError
from service import registry
from service.deps import AnalyzePrincipal, SessionDep, TrainPrincipal
from service.storage.models import ModelEvent, ModelVersion
from service.tenant_models import TenantModels, get_tenant_models

router = APIRouter(prefix="/v1", tags=["models"])


class PromoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    force: bool = Field(
        False, description="Promote even though the regression guard refuses; needs `reason`."
    )
    reason: str | None = Field(
        None, max_length=2000, description="Why (recorded in the audit trail)."
    )


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=2000)


class ModelOut(BaseModel):
    version: str
    model: str = Field(description="`verbatim-cem@<version>`, as in classification results.")
    status: str = Field(description="`candidate`, `promoted` or `retired` (was promoted).")
    promoted: bool
    taxonomy: dict[str, Any]
    lineage: dict[str, Any] = Field(
        description="`parent` (a version, or null: the default model), `base`, `training_run_id`."
    )
    data: dict[str, Any] = Field(description="Labels used: total, train, held out; steps; seconds.")
    metrics: dict[str, Any] = Field(
        description="Held-out scores of this version (`candidate`) and of the model it was compared with (`promoted`)."
    )
    guard: dict[str, Any] = Field(
        description="The regression guard's verdict: `allowed`, `reasons`, `notes` (what it "
        "could not check, e.g. no existing node with enough held-out labels), `against` (the "
        "version compared with; null: the default model) and `against_model` (the model scored: "
        "the one the tenant is served for this taxonomy, `…+tax.<hash8>` when derived for it)."
    )
    created_by: str | None
    created_at: datetime
    promoted_at: datetime | None

    @classmethod
    def of(cls, row: ModelVersion, *, promoted: str | None, full: bool) -> ModelOut:
        data = dict(row.data or {})
        metrics = dict(row.metrics or {})
        if not full:
            data.pop("heldout_ids", None)
            metrics = {
                k: {m: (v or {}).get(m) for m in ("model", "macro_f1", "micro_f1", "n_examples")}
                if isinstance(v, dict) else v
                for k, v in metrics.items()
            }  # fmt: skip
        return cls(
            version=row.version, model=registry.model_id(row.version, ""), status=row.status,
            promoted=row.version == promoted,
            taxonomy={"id": row.taxonomy_id, "key": row.taxonomy_key, "version": row.taxonomy_version},
            lineage={"parent": row.parent_version, "base": f"{registry.MODEL_NAME}@{row.base_version}",
                     "training_run_id": row.training_run_id},
            data=data, metrics=metrics, guard=dict(row.guard or {}), created_by=row.created_by,
            created_at=row.created_at, promoted_at=row.promoted_at,
        )  # fmt: skip


class ModelList(BaseModel):
    default_model: str | None = Field(
        description="The shipped model, used while nothing is promoted."
    )
    promoted: str | None = Field(description="The promoted version; null: the default model.")
    serving: str | None = Field(
        description="The model new classification requests of this tenant use: the promoted "
        "version or the default model, or one derived from it for the tenant's current taxonomy "
        "(`verbatim-cem@<version>+tax.<hash8>`) when that taxonomy has other nodes."
    )
    serving_base: str | None = Field(
        None,
        description="The registry's model that `serving` is (or is derived from): the promoted "
        "version, or the default model.",
    )
    precision: str | None = Field(
        None,
        description="How this server's encoder computes for `serving`: fp32, bf16 or int8 (the "
        "VERBATIM_PRECISION setting; `auto` is bf16 on a CPU with native bf16, else fp32).",
    )
    rollback_to: str | None = Field(
        description="Where POST /v1/models/rollback goes (null: the default model)."
    )
    can_roll_back: bool
    items: list[ModelOut]


class EventOut(BaseModel):
    at: datetime
    action: str
    version: str | None
    previous_version: str | None
    forced: bool
    reason: str | None
    actor: dict[str, str]
    guard: dict[str, Any] | None

    @classmethod
    def of(cls, e: ModelEvent) -> EventOut:
        return cls(at=e.at, action=e.action, version=e.version, previous_version=e.previous_version,
                   forced=e.forced, reason=e.reason, actor={"id": e.actor_id, "name": e.actor_name},
                   guard=e.guard)  # fmt: skip


class SwitchOut(BaseModel):
    action: str
    version: str | None
    previous_version: str | None
    model: str | None = Field(description="What the tenant's new requests use now.")
    forced: bool
    reason: str | None
    revision: int


def _default_model(models: TenantModels) -> str | None:
    try:
        return models.default().model_id
    except UnavailableError:
        return None


def _served(models: TenantModels, tenant_id: str) -> tuple[str | None, str | None]:
    """What classifies the tenant's new requests and at which precision (None while no model is loaded)."""
    try:
        classifier = models.classifier(tenant_id)
    except UnavailableError:
        return None, None
    precision = getattr(classifier, "precision", None)  # a stand-in classifier may have none
    return classifier.model_id, getattr(precision, "value", None)


@router.get(
    "/models", response_model=ModelList, summary="The tenant's model versions and the promoted one"
)
def list_models(principal: AnalyzePrincipal, session: SessionDep, request: Request) -> ModelList:
    models = get_tenant_models(request.app.state)
    default = _default_model(models)
    row = session.get(registry.TenantModel, principal.tenant_id)
    promoted = row.promoted_version if row is not None else None
    history = list(row.history) if row is not None else []
    base = registry.model_id(promoted, default) if promoted or default else None
    serving, precision = _served(models, principal.tenant_id)
    return ModelList(
        default_model=default, promoted=promoted,
        serving=serving or base, serving_base=base, precision=precision,
        rollback_to=history[-1] if history else None, can_roll_back=promoted is not None or bool(history),
        items=[ModelOut.of(r, promoted=promoted, full=False) for r in registry.list_versions(session, principal.tenant_id)],
    )  # fmt: skip


@router.get(
    "/models/events",
    response_model=list[EventOut],
    summary="Promotions and roll-backs, newest first",
)
def list_model_events(
    principal: AnalyzePrincipal, session: SessionDep, limit: int = Query(100, ge=1, le=500)
) -> list[EventOut]:
    return [EventOut.of(e) for e in registry.list_events(session, principal.tenant_id, limit=limit)]


@router.get(
    "/models/{version}",
    response_model=ModelOut,
    summary="One model version: data, metrics per node, guard, lineage",
    responses={404: {"description": "No such version for this API key's tenant"}},
)
def get_model(version: str, principal: AnalyzePrincipal, session: SessionDep) -> ModelOut:
    row = registry.get_version(session, principal.tenant_id, version)
    return ModelOut.of(
        row, promoted=registry.promoted_version(session, principal.tenant_id), full=True
    )


def _switch(change: registry.Change, principal, session, request: Request) -> SwitchOut:
    """Load the new model, then commit the change (compare-and-set) and swap it in."""
    models = get_tenant_models(request.app.state)
    session.commit()  # the plan may have created the tenant's pointer row; hold no lock while loading
    classifier = models.preload(principal.tenant_id, change.version, change.model_dir)
    revision = registry.apply_change(session, change, registry.actor_for(session, principal.key_id))
    session.commit()
    models.switch(principal.tenant_id, change.version, change.model_dir, revision)
    return SwitchOut(action=change.action, version=change.version, previous_version=change.previous,
                     model=classifier.model_id, forced=change.forced, reason=change.reason, revision=revision)  # fmt: skip


@router.post(
    "/models/{version}/promote",
    response_model=SwitchOut,
    summary="Promote a version: the tenant's requests switch to it",
    responses={
        409: {
            "description": "Refused by the regression guard (`details.reasons`), already promoted, or a concurrent change"
        },
        422: {"description": "`force` without a `reason`"},
        404: {"description": "No such version for this API key's tenant"},
    },
)
def promote_model(
    version: str,
    principal: TrainPrincipal,
    session: SessionDep,
    request: Request,
    body: Annotated[PromoteIn | None, Body()] = None,
) -> SwitchOut:
    """Refused (409, code `promotion_refused`, the guard's reasons in `details.reasons`) when the
    version lost more than 3 F1 points on a node with enough held-out support, or macro-F1, against
    the promoted model, or was compared with a model that is no longer the promoted one; send
    `{"force": true, "reason": "…"}` to promote anyway (recorded with who and why)."""
    body = body or PromoteIn()
    change = registry.plan_promotion(
        session, principal.tenant_id, version, force=body.force, reason=body.reason
    )
    return _switch(change, principal, session, request)


@router.post(
    "/models/rollback",
    response_model=SwitchOut,
    summary="Go back to the version promoted before the current one",
    responses={409: {"description": "Nothing to roll back to, or a concurrent change"}},
)
def rollback_model(
    principal: TrainPrincipal,
    session: SessionDep,
    request: Request,
    body: Annotated[RollbackIn | None, Body()] = None,
) -> SwitchOut:
    """Back to the previously promoted version (the default model if there was none)."""
    change = registry.plan_rollback(
        session, principal.tenant_id, reason=(body or RollbackIn()).reason
    )
    return _switch(change, principal, session, request)
