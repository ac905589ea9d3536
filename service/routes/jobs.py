"""Jobs: the state, progress and counts of long work such as a data set import.

Any valid key of the tenant may read its jobs (a job is created by routes that check their own
scope); another tenant's job is a 404.
"""

from __future__ import annotations

from fastapi import APIRouter

from nlp.errors import NotFoundError
from service.deps import PrincipalDep, SessionDep
from service.routes.datasets_schemas import JOB_EXAMPLE, JobOut, examples
from service.storage.models import Job
from service.storage.tenancy import get_owned

router = APIRouter(prefix="/v1", tags=["jobs"])

_ZH_DONE = {
    **JOB_EXAMPLE, "state": "succeeded", "progress": 1.0, "finished_at": "2024-05-02T08:03:10Z",
    "counts": {"total": 1200, "accepted": 1188, "rejected": 12, "classified": 1188},
}  # fmt: skip
_EN_FAILED = {
    **JOB_EXAMPLE, "id": "job_9q8w7e6r5t4y3u2i1o0p", "state": "failed", "progress": 0.2,
    "attempts": 3, "finished_at": "2024-05-02T08:10:00Z",
    "error": "The server stopped or crashed while this job ran, 3 times; it was not retried again. "
    "Start the work anew (for a data set: delete it and upload the file again).",
}  # fmt: skip


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    summary="A job's state, progress and counts",
    responses={
        **examples(
            zh=("Chinese app reviews (2024年5月 App 评价) imported", _ZH_DONE),
            en=("Importing an English survey: failed after restarts", _EN_FAILED),
        ),
        404: {"description": "No such job for this API key's tenant"},
    },
)
def get_job(job_id: str, principal: PrincipalDep, session: SessionDep) -> JobOut:
    """States: `queued`, `running`, `succeeded`, `failed` (with `error`), `cancelled`. A job
    interrupted by a server restart resumes where it stopped (`attempts` counts such starts)."""
    if not (0 < len(job_id) <= 40 and job_id.isprintable()):  # no job has such an id
        raise NotFoundError(f"No job with id {job_id[:40]!r} for this API key's tenant.")
    return JobOut.of(get_owned(session, Job, job_id, principal, what="job"))
