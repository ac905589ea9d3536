"""Training runs: fine-tune the tenant's model on its labels (``train`` scope to start, ``analyze`` to read).

A run is a job (``GET /v1/jobs/{job_id}`` gives state and progress); when it succeeds the new
version is in the registry (``/v1/models``) with its held-out evaluation against the promoted one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from service.deps import AnalyzePrincipal, SessionDep, TrainPrincipal
from service.routes.paging import Limit, Offset
from service.storage.models import Job, TrainingRun
from service.storage.tenancy import get_owned, owned
from service.training_runs import MIN_LABELS, RunRequest, start_run

router = APIRouter(prefix="/v1", tags=["training runs"])


class TrainingRunIn(BaseModel):
    """What to train. Everything has a default: ``{}`` fine-tunes the default model on the labels
    of the tenant's most recently changed taxonomy."""

    model_config = ConfigDict(extra="forbid")

    taxonomy: str | None = Field(
        None,
        max_length=64,
        description="Taxonomy key or `tax_…` id (default: the most recently changed one).",
    )
    parent: str | None = Field(
        None,
        max_length=64,
        description="A version of this tenant's to start from (default: the default model).",
    )
    steps: int | None = Field(
        None, ge=1, le=5000, description="Training steps (default: about four passes)."
    )
    seed: int = Field(13, ge=0, le=2**31 - 1)
    holdout: float = Field(
        0.2, ge=0.1, le=0.5, description="Share of labels held out for the evaluation."
    )
    promote: bool = Field(
        False, description="Promote the new version when the regression guard allows it."
    )


class TrainingRunOut(BaseModel):
    id: str
    status: str = Field(description="`queued`, `running`, `succeeded`, `failed` or `cancelled`.")
    version: str = Field(description="The model version this run makes (`verbatim-cem@<version>`).")
    parent_version: str | None = Field(
        description="The tenant version it starts from; null: the default model."
    )
    taxonomy: dict[str, Any]
    params: dict[str, Any]
    progress: float = Field(ge=0, le=1)
    job_id: str | None
    job: str | None = Field(description="`/v1/jobs/{job_id}`: state and progress of the work.")
    result: dict[str, Any] = Field(
        description="While running: `stage`; at the end: labels, split, guard, macro-F1."
    )
    error: str | None
    created_by: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, run: TrainingRun, job: Job | None) -> TrainingRunOut:
        params = dict(run.params or {})
        return cls(
            id=run.id, status=run.status, version=run.version, parent_version=run.parent_version,
            taxonomy={"id": run.taxonomy_id, "key": params.pop("taxonomy_key", None), "version": run.taxonomy_version},
            params=params, progress=round(float(job.progress), 4) if job is not None else 0.0,
            job_id=run.job_id, job=f"/v1/jobs/{run.job_id}" if run.job_id else None,
            result=dict(run.result or {}), error=run.error, created_by=run.created_by,
            created_at=run.created_at, finished_at=run.finished_at,
        )  # fmt: skip


class TrainingRunList(BaseModel):
    items: list[TrainingRunOut]
    total: int


@router.post(
    "/training-runs",
    status_code=202,
    response_model=TrainingRunOut,
    summary="Start fine-tuning the tenant's model on its labels",
    responses={
        422: {"description": f"Fewer than {MIN_LABELS} current labels, or a bad parameter"},
        404: {"description": "Unknown taxonomy or parent version"},
    },
)
def create_training_run(
    body: TrainingRunIn,
    principal: TrainPrincipal,
    session: SessionDep,
    request: Request,
    response: Response,
) -> TrainingRunOut:
    """Queues a job that fine-tunes the default model (or `parent`) on the tenant's current labels,
    holds out `holdout` of them, scores the new version and the promoted one on them and applies the
    regression guard. `Location` points at the job."""
    run = start_run(session, principal, RunRequest(**body.model_dump()), state=request.app.state)
    session.commit()
    runner = getattr(request.app.state, "job_runner", None)
    if runner is not None:
        runner.notify()
    response.headers["Location"] = f"/v1/jobs/{run.job_id}"
    return TrainingRunOut.of(run, session.get(Job, run.job_id))


@router.get(
    "/training-runs",
    response_model=TrainingRunList,
    summary="The tenant's training runs, newest first",
)
def list_training_runs(
    principal: AnalyzePrincipal,
    session: SessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
) -> TrainingRunList:
    query = owned(TrainingRun, principal)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    runs = session.scalars(
        query.order_by(TrainingRun.created_at.desc(), TrainingRun.id).limit(limit).offset(offset)
    ).all()
    jobs = {
        j.id: j
        for j in session.scalars(
            select(Job).where(Job.id.in_([r.job_id for r in runs if r.job_id]))
        )
    }
    return TrainingRunList(
        items=[TrainingRunOut.of(r, jobs.get(r.job_id or "")) for r in runs], total=total
    )


@router.get(
    "/training-runs/{run_id}",
    response_model=TrainingRunOut,
    summary="A training run: status, progress and result",
    responses={404: {"description": "No such run for this API key's tenant"}},
)
def get_training_run(
    run_id: str, principal: AnalyzePrincipal, session: SessionDep
) -> TrainingRunOut:
    run = get_owned(session, TrainingRun, run_id[:40], principal, what="training run")
    return TrainingRunOut.of(run, session.get(Job, run.job_id) if run.job_id else None)
