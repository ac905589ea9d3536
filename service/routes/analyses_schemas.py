"""Request and response schemas (with bilingual examples) of the analysis routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from service.routes.datasets_schemas import JOB_EXAMPLE, JobOut
from service.storage.models import Analysis

AnalysisStatusName = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class AnalysisCreate(BaseModel):
    """What to explain: the score field (``nps``, ``csat``, ``ces``, ``rating``, ``recommend``)."""

    model_config = ConfigDict(extra="forbid")

    score: str = Field(
        validation_alias=AliasChoices("score", "outcome"),
        max_length=64,
        description="The outcome field to explain: `nps`, `csat`, `ces`, `rating` or `recommend` "
        "(`outcome` is accepted as another name for this field).",
        examples=["nps", "csat"],
    )


class AnalysisOut(BaseModel):
    """An analysis of a data set: its state and, once it succeeded, the analysis JSON."""

    id: str
    dataset_id: str
    score: str = Field(description="The outcome field explained, e.g. `nps`.")
    status: AnalysisStatusName
    job_id: str | None = Field(description="The job computing it (`GET /v1/jobs/{id}`).")
    records: int | None = Field(None, description="Records analysed (once it succeeded).")
    model: str | None = Field(None, description="The model version that classified the records.")
    error: str | None = Field(None, description="Why it failed or was cancelled.")
    created_at: datetime
    finished_at: datetime | None = None
    report_url: str | None = Field(
        None, description="The HTML report (self-contained, opens offline), once it succeeded."
    )
    result: dict[str, Any] | None = Field(
        None,
        description="The analysis JSON: `outcome`, `records`, `overall`, `drivers` (each with "
        "`impact`, `importance`, `ci`, `rank`, `examples`), `clusters`, topics, touchpoints, "
        "segments, trends, root causes, support cases per topic and `meta`. Omitted in lists.",
    )

    @classmethod
    def of(cls, analysis: Analysis, *, with_result: bool = True) -> AnalysisOut:
        done = analysis.status == "succeeded"
        return cls(
            id=analysis.id,
            dataset_id=analysis.dataset_id,
            score=analysis.outcome,
            status=analysis.status,  # type: ignore[arg-type]
            job_id=analysis.job_id,
            records=analysis.records,
            model=analysis.model,
            error=analysis.error,
            created_at=analysis.created_at,
            finished_at=analysis.finished_at,
            report_url=f"/v1/analyses/{analysis.id}/report" if done else None,
            result=analysis.result if with_result and done else None,
        )


class AnalysisCreated(BaseModel):
    """The queued analysis and the job computing it (poll ``GET /v1/jobs/{id}``)."""

    analysis: AnalysisOut
    job: JobOut


# ---- examples --------------------------------------------------------------------------------

_T = "2024-05-02T08:00:00Z"
_AN = "an_5t8w2q9r4y7u1i3o6p0a"
_DS = "ds_7f3k9q2m4x8c1v6b5n0z"
ZH_RESULT: dict[str, Any] = {
    "outcome": "nps", "records": 1188, "overall": {"nps": -12.5},
    "drivers": [{"driver": "delivery.timeliness:negative", "kind": "topic", "support": 210,
                 "impact": -8.4, "importance": 0.21, "ci": [0.15, 0.27], "rank": 1,
                 "examples": ["评论-17", "评论-204"]}],
    "clusters": [{"id": "c3", "label": "快递慢 / late delivery", "size": 57,
                  "keywords": ["快递", "太慢", "late"], "examples": ["评论-9"]}],
}  # fmt: skip
EN_RESULT: dict[str, Any] = {
    "outcome": "csat", "records": 497, "overall": {"csat": 4.1},
    "drivers": [{"driver": "service.attitude:positive", "kind": "topic", "support": 88,
                 "impact": 0.12, "importance": 0.18, "ci": [0.09, 0.26], "rank": 3,
                 "examples": ["r2"]}],
    "clusters": [{"id": "c1", "label": "结账快 / quick checkout", "size": 41,
                  "keywords": ["checkout", "quick"], "examples": ["r2"]}],
}  # fmt: skip


def _analysis_example(score: str, result: dict[str, Any] | None, **over: Any) -> dict[str, Any]:
    done = result is not None
    return {
        "id": _AN, "dataset_id": _DS, "score": score,
        "status": "succeeded" if done else "queued", "job_id": "job_8k2j4h6g1f3d5s7a9z0x",
        "records": result["records"] if done else None,
        "model": "verbatim-cem@1.0.0" if done else None, "error": None, "created_at": _T,
        "finished_at": "2024-05-02T08:02:30Z" if done else None,
        "report_url": f"/v1/analyses/{_AN}/report" if done else None, "result": result, **over,
    }  # fmt: skip


ZH_ANALYSIS = _analysis_example("nps", ZH_RESULT)
EN_ANALYSIS = _analysis_example("csat", EN_RESULT)
QUEUED = _analysis_example("nps", None)
ANALYSIS_JOB = {
    **JOB_EXAMPLE, "id": "job_8k2j4h6g1f3d5s7a9z0x", "kind": "analysis", "state": "queued",
    "progress": 0, "counts": {"records": 1188, "classified": 0}, "started_at": None,
    "heartbeat_at": None,
}  # fmt: skip
