"""Analyses: explain a data set's score (drivers, issue clusters, outcome figures) as a job, read
the analysis JSON, open its HTML report, list a data set's analyses, delete one.

Every route needs the ``analyze`` scope; another tenant's data set or analysis is a 404.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from nlp.errors import ConflictError, NotFoundError
from service.analyses import create_analysis
from service.deps import AnalyzePrincipal, SessionDep, owned_dataset
from service.routes.analyses_schemas import (
    ANALYSIS_JOB,
    EN_ANALYSIS,
    QUEUED,
    ZH_ANALYSIS,
    AnalysisCreate,
    AnalysisCreated,
    AnalysisOut,
)
from service.routes.datasets_schemas import JobOut, Page, examples
from service.routes.paging import Limit, Offset, page
from service.storage.base import utcnow
from service.storage.keys import Principal
from service.storage.models import Analysis, AnalysisStatus, Job, JobState
from service.storage.tenancy import get_owned

router = APIRouter(prefix="/v1", tags=["analyses"])

_NO_DATASET = {404: {"description": "No such data set for this API key's tenant"}}
_NO_ANALYSIS = {404: {"description": "No such analysis for this API key's tenant"}}


def _valid_id(value: str, what: str) -> None:
    if not (0 < len(value) <= 40 and value.isprintable()):  # no object has such an id
        raise NotFoundError(f"No {what} with id {value[:40]!r} for this API key's tenant.")


def _analysis(session: Session, analysis_id: str, principal: Principal) -> Analysis:
    _valid_id(analysis_id, "analysis")
    return get_owned(session, Analysis, analysis_id, principal, what="analysis")


@router.post(
    "/datasets/{dataset_id}/analyses",
    status_code=202,
    response_model=AnalysisCreated,
    summary="Analyse a data set against a score (NPS, CSAT…); runs as a job",
    responses={
        **examples(
            202,
            zh=("Explain the NPS of Chinese app reviews", {"analysis": QUEUED, "job": ANALYSIS_JOB}),
            en=("Explain the CSAT of an English survey", {"analysis": {**QUEUED, "score": "csat"}, "job": ANALYSIS_JOB}),
        ),
        **_NO_DATASET,
        409: {"description": "The data set is not ready (still importing, or its import failed)"},
        422: {"description": "An unknown score name, or no record of the data set has that score"},
    },
)  # fmt: skip
def start_analysis(
    request: Request,
    response: Response,
    dataset_id: str,
    body: AnalysisCreate,
    principal: AnalyzePrincipal,
    session: SessionDep,
) -> dict[str, Any]:
    """The job classifies the data set's records with the served model (sentiment, topics,
    touchpoints and embeddings), ranks the drivers of the score with bootstrap intervals, clusters
    the issues, and adds resolved share and time to resolve per topic from the support cases.
    `Location` points at the job; `GET /v1/analyses/{id}` has the JSON once it succeeded.

    `curl -H 'Authorization: Bearer vb_…' -H 'Content-Type: application/json' -d '{"score": "nps"}' …/v1/datasets/ds_…/analyses`
    """
    dataset = owned_dataset(session, dataset_id, principal)
    analysis, job = create_analysis(session, principal, dataset, outcome=body.score)
    session.commit()
    runner = getattr(request.app.state, "job_runner", None)
    if runner is not None:
        runner.notify()
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return {"analysis": AnalysisOut.of(analysis), "job": JobOut.of(job)}


@router.get(
    "/datasets/{dataset_id}/analyses",
    response_model=Page[AnalysisOut],
    summary="A data set's analyses, newest first (without their JSON)",
    responses={
        **examples(
            zh=("Chinese app reviews", {"items": [{**ZH_ANALYSIS, "result": None}], "total": 1, "limit": 50, "offset": 0, "next_offset": None}),
            en=("English survey", {"items": [{**EN_ANALYSIS, "result": None}], "total": 2, "limit": 1, "offset": 0, "next_offset": 1}),
        ),
        **_NO_DATASET,
    },
)  # fmt: skip
def list_analyses(
    dataset_id: str,
    principal: AnalyzePrincipal,
    session: SessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    dataset = owned_dataset(session, dataset_id, principal)
    query = select(Analysis).where(
        Analysis.dataset_id == dataset.id, Analysis.tenant_id == principal.tenant_id
    )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Analysis.created_at.desc(), Analysis.id.desc()).limit(limit).offset(offset)
    ).all()
    return page([AnalysisOut.of(a, with_result=False) for a in rows], total, limit, offset)


@router.get(
    "/analyses/{analysis_id}",
    response_model=AnalysisOut,
    summary="An analysis: its state and, once it succeeded, the analysis JSON",
    responses={
        **examples(zh=("NPS of Chinese app reviews", ZH_ANALYSIS), en=("CSAT of an English survey", EN_ANALYSIS)),
        **_NO_ANALYSIS,
    },
)  # fmt: skip
def get_analysis(analysis_id: str, principal: AnalyzePrincipal, session: SessionDep) -> AnalysisOut:
    """`result` is null until `status` is `succeeded`; follow the job for progress."""
    return AnalysisOut.of(_analysis(session, analysis_id, principal))


@router.get(
    "/analyses/{analysis_id}/report",
    response_class=HTMLResponse,
    summary="The analysis as a self-contained HTML report (opens offline)",
    responses={
        200: {"content": {"text/html": {}}, "description": "The report page"},
        **_NO_ANALYSIS,
        409: {"description": "The analysis has not succeeded (yet)"},
    },
)
def get_report(analysis_id: str, principal: AnalyzePrincipal, session: SessionDep) -> HTMLResponse:
    """Bilingual labels, charts with their scripts inlined: save it and open it anywhere."""
    analysis = _analysis(session, analysis_id, principal)
    if analysis.status != AnalysisStatus.succeeded or analysis.result is None:
        reason = (
            f"it {analysis.status}: {analysis.error}"
            if analysis.error
            else f"it is {analysis.status}; follow GET /v1/jobs/{analysis.job_id}"
        )
        raise ConflictError(
            f"Analysis {analysis.id} has no report because {reason}.",
            details={"id": analysis.id, "status": analysis.status},
        )
    from models.analytics.report import render_report

    return HTMLResponse(render_report(analysis.result))


@router.delete(
    "/analyses/{analysis_id}",
    status_code=204,
    response_class=Response,
    summary="Delete an analysis (a running one is cancelled)",
    responses=_NO_ANALYSIS,
)
def delete_analysis(analysis_id: str, principal: AnalyzePrincipal, session: SessionDep) -> Response:
    analysis = _analysis(session, analysis_id, principal)
    if analysis.job_id is not None:
        session.execute(
            update(Job)
            .where(Job.id == analysis.job_id, Job.state.in_([JobState.queued, JobState.running]))
            .values(
                state=JobState.cancelled.value,
                finished_at=utcnow(),
                error="The analysis was deleted.",
            )
        )
    session.delete(analysis)
    session.commit()
    return Response(status_code=204)
