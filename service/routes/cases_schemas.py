"""Request and response schemas of the cases routes, with a Chinese and an English example."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from service.cases import is_breached
from service.storage.models import Case, CaseAudit, CaseStatus

Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class RecordRef(BaseModel):
    dataset_id: str
    record_id: str


class CaseRecordOut(RecordRef):
    """A record of the case: its PII-masked text and why it was urgent."""

    priority: str
    reasons: list[str]
    masked_text: str | None = Field(description="Null when the data set was deleted since.")
    lang: str | None = None
    added_at: datetime


class Note(BaseModel):
    at: str
    by: str
    text: str


class CaseOut(BaseModel):
    """A case as an agent sees it in the queue."""

    id: str
    team: str
    priority: str
    status: CaseStatus
    topic: str | None
    touchpoint: str | None
    lang: str | None
    reasons: list[str]
    customer_id: str | None
    assignee: str | None
    resolution_code: str | None
    notes: list[Note]
    repeat_count: int = Field(description="Records (contacts) in this case.")
    records: list[RecordRef]
    created_at: datetime
    updated_at: datetime
    due_at: datetime
    resolved_at: datetime | None
    sla_breached: bool = Field(description="Still open past due_at, or resolved after it.")
    age_hours: float
    version: int = Field(description="Send it back with a PATCH (optimistic locking).")
    policy: str | None

    @classmethod
    def of(cls, case: Case, refs: list[RecordRef], now: datetime) -> CaseOut:
        return cls(
            id=case.id, team=case.team, priority=case.priority, status=CaseStatus(case.status),
            topic=case.topic, touchpoint=case.touchpoint, lang=case.lang, reasons=case.reasons,
            customer_id=case.customer_id, assignee=case.assignee,
            resolution_code=case.resolution_code, notes=case.notes,
            repeat_count=case.repeat_count, records=refs, created_at=case.created_at,
            updated_at=case.updated_at, due_at=case.due_at, resolved_at=case.resolved_at,
            sla_breached=is_breached(case, now),
            age_hours=round((now - case.created_at).total_seconds() / 3600, 2),
            version=case.version, policy=case.policy,
        )  # fmt: skip


class AuditOut(BaseModel):
    """One changed field: who (API key id and name, or ``system``), when, old and new."""

    at: datetime
    actor_id: str
    actor_name: str
    field: str
    old: Any
    new: Any
    version: int = Field(description="The case version this change produced.")

    @classmethod
    def of(cls, row: CaseAudit) -> AuditOut:
        return cls(at=row.at, actor_id=row.actor_id, actor_name=row.actor_name, field=row.field,
                   old=row.old, new=row.new, version=row.version)  # fmt: skip


class CaseDetail(CaseOut):
    case_records: list[CaseRecordOut]
    audit: list[AuditOut]


class CasePatch(BaseModel):
    """What to change. ``version`` is the one you read; a stale one is a 409."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    assignee: Short | None = Field(default=None, description="The agent who works the case.")
    status: CaseStatus | None = None
    note: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)] | None = None
    resolution_code: Annotated[
        str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    ] | None = Field(default=None, description="Required when resolving, e.g. refunded, replaced.")
    unassign: bool = Field(default=False, description="Remove the assignee.")


# ---- examples (a Chinese and an English complaint case) --------------------------------------
_ZH_CASE = {
    "id": "case_3k9x2m7p4q8r1t6v5w0y", "team": "logistics", "priority": "P1", "status": "open",
    "topic": "delivery.condition", "touchpoint": "fulfil", "lang": "zh",
    "reasons": ["safety or health risk: 起火", "legal or regulatory threat: 12315",
                "strong negative sentiment (-0.92)", "routed to logistics by rule logistics"],
    "customer_id": "C10086", "assignee": None, "resolution_code": None, "notes": [],
    "repeat_count": 2,
    "records": [{"dataset_id": "ds_2k4m6p8r0t2v4x6z8b0d", "record_id": "fb-2024-0001"},
                {"dataset_id": "ds_2k4m6p8r0t2v4x6z8b0d", "record_id": "fb-2024-0107"}],
    "created_at": "2024-05-02T08:00:00Z", "updated_at": "2024-05-02T09:30:00Z",
    "due_at": "2024-05-02T12:00:00Z", "resolved_at": None, "sla_breached": False,
    "age_hours": 1.5, "version": 2, "policy": "default@2",
}  # fmt: skip
_EN_CASE = {
    **_ZH_CASE, "id": "case_7h5j3k1m9n8p6q4r2s0t", "team": "billing", "priority": "P2",
    "status": "resolved", "topic": "billing.charges", "touchpoint": "account", "lang": "en",
    "reasons": ["churn risk: cancel my account", "strong negative sentiment (-0.81)",
                "routed to billing by rule billing"],
    "customer_id": "u-4411", "assignee": "maria", "resolution_code": "refunded",
    "notes": [{"at": "2024-05-03T10:00:00Z", "by": "support-desk",
               "text": "Double charge confirmed, refund issued."}],
    "repeat_count": 1, "records": [{"dataset_id": "ds_9x8w7v6t5s4r3q2p1n0m", "record_id": "s-88"}],
    "resolved_at": "2024-05-03T10:00:00Z", "due_at": "2024-05-03T08:00:00Z",
    "sla_breached": True, "age_hours": 26.0, "version": 4,
}  # fmt: skip
ZH_CASE, EN_CASE = _ZH_CASE, _EN_CASE
ZH_PATCH = {"version": 2, "assignee": "王芳", "status": "in_progress",
            "note": "已联系客户，安排上门取件并检测。"}  # fmt: skip
EN_PATCH = {"version": 3, "status": "resolved", "resolution_code": "refunded",
            "note": "Double charge confirmed, refund issued."}  # fmt: skip
