"""Cases: the support queue. List with filters and sorting, read one with its records and audit,
change it (assign, status, note, resolution code) with optimistic locking. Nothing is deleted.

Every route needs the ``triage`` scope; another tenant's case is a 404.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.triage import Priority
from nlp.errors import NotFoundError
from service.cases import CaseChange, actor_for, breached_clause, update_case
from service.deps import SessionDep, TriagePrincipal
from service.routes.cases_schemas import (
    EN_CASE,
    EN_PATCH,
    ZH_CASE,
    ZH_PATCH,
    AuditOut,
    CaseDetail,
    CaseOut,
    CasePatch,
    CaseRecordOut,
    RecordRef,
)
from service.routes.datasets_schemas import Page, examples
from service.storage.base import utcnow
from service.storage.keys import Principal
from service.storage.models import Case, CaseAudit, CaseRecord, CaseStatus, DatasetRecord
from service.storage.tenancy import get_owned, owned

router = APIRouter(prefix="/v1", tags=["cases"])

_NOT_FOUND = {404: {"description": "No such case for this API key's tenant"}}
Sort = Literal["priority", "created_at", "-created_at", "due_at", "-due_at", "updated_at", "-updated_at"]


def _owned_case(session: Session, case_id: str, principal: Principal) -> Case:
    if not (0 < len(case_id) <= 40 and case_id.isprintable()):
        raise NotFoundError(f"No case with id {case_id[:40]!r} for this API key's tenant.")
    return get_owned(session, Case, case_id, principal, what="case")


def _refs(session: Session, case_ids: list[str]) -> dict[str, list[RecordRef]]:
    out: dict[str, list[RecordRef]] = {i: [] for i in case_ids}
    if case_ids:
        rows = session.execute(
            select(CaseRecord.case_id, CaseRecord.dataset_id, CaseRecord.record_id)
            .where(CaseRecord.case_id.in_(case_ids))
            .order_by(CaseRecord.pk)
        )
        for case_id, dataset_id, record_id in rows:
            out[case_id].append(RecordRef(dataset_id=dataset_id, record_id=record_id))
    return out


@router.get(
    "/cases",
    response_model=Page[CaseOut],
    summary="The case queue, most urgent first",
    responses=examples(
        zh=("一个物流 P1 投诉案例 (a Chinese P1 logistics case)", {
            "items": [ZH_CASE], "total": 1, "limit": 50, "offset": 0, "next_offset": None}),
        en=("An English billing case, resolved after its due time", {
            "items": [EN_CASE], "total": 1, "limit": 50, "offset": 0, "next_offset": None}),
    ),  # fmt: skip
)
def list_cases(
    principal: TriagePrincipal,
    session: SessionDep,
    team: Annotated[list[str] | None, Query(description="Team queue(s).")] = None,
    priority: Annotated[list[Priority] | None, Query(description="P1..P4, repeatable.")] = None,
    status: Annotated[list[CaseStatus] | None, Query(description="Repeatable.")] = None,
    topic: Annotated[str | None, Query(max_length=100, description="A topic id; a level-1 id matches its leaves.")] = None,
    min_age_hours: Annotated[float | None, Query(ge=0, le=1e6, description="Opened at least this long ago.")] = None,
    sla_breached: Annotated[bool | None, Query(description="Only cases past (true) or within (false) their due time.")] = None,
    assignee: Annotated[str | None, Query(max_length=200)] = None,
    sort: Annotated[Sort, Query(description="Default: priority, then due_at.")] = "priority",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> dict:
    """Filters combine with AND; repeat a parameter for several values (`status=open&status=reopened`)."""
    now = utcnow()
    query = owned(Case, principal)
    if team:
        query = query.where(Case.team.in_(team))
    if priority:
        query = query.where(Case.priority.in_([p.value for p in priority]))
    if status:
        query = query.where(Case.status.in_([s.value for s in status]))
    if topic:
        query = query.where((Case.topic == topic) | Case.topic.startswith(topic + ".", autoescape=True))
    if min_age_hours is not None:
        query = query.where(Case.created_at <= now - timedelta(hours=min_age_hours))
    if sla_breached is not None:
        clause = breached_clause(now)
        query = query.where(clause if sla_breached else ~clause)
    if assignee:
        query = query.where(Case.assignee == assignee)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    key = sort.lstrip("-")
    if key == "priority":
        order = [Case.priority, Case.due_at, Case.id]
    else:
        column = getattr(Case, key)
        order = [column.desc() if sort.startswith("-") else column, Case.id]
    cases = list(session.scalars(query.order_by(*order).limit(limit).offset(offset)))
    refs = _refs(session, [c.id for c in cases])
    following = offset + len(cases)
    return {
        "items": [CaseOut.of(c, refs[c.id], now) for c in cases],
        "total": total, "limit": limit, "offset": offset,
        "next_offset": following if following < total else None,
    }  # fmt: skip


def _detail(session: Session, case: Case) -> CaseDetail:
    now = utcnow()
    rows = session.execute(
        select(CaseRecord, DatasetRecord.masked_text, DatasetRecord.lang)
        .outerjoin(
            DatasetRecord,
            (DatasetRecord.dataset_id == CaseRecord.dataset_id)
            & (DatasetRecord.record_id == CaseRecord.record_id)
            & (DatasetRecord.tenant_id == case.tenant_id),
        )
        .where(CaseRecord.case_id == case.id)
        .order_by(CaseRecord.pk)
    ).all()
    records = [
        CaseRecordOut(dataset_id=r.dataset_id, record_id=r.record_id, priority=r.priority,
                      reasons=r.reasons, masked_text=text, lang=lang, added_at=r.added_at)
        for r, text, lang in rows
    ]  # fmt: skip
    audit = _audit_rows(session, case.id)
    base = CaseOut.of(case, [RecordRef(dataset_id=r.dataset_id, record_id=r.record_id) for r in records], now)
    return CaseDetail(**base.model_dump(), case_records=records, audit=audit)


def _audit_rows(session: Session, case_id: str) -> list[AuditOut]:
    rows = session.scalars(
        select(CaseAudit).where(CaseAudit.case_id == case_id).order_by(CaseAudit.pk)
    )
    return [AuditOut.of(r) for r in rows]


@router.get(
    "/cases/{case_id}",
    response_model=CaseDetail,
    summary="A case with its records' (masked) texts, reasons and audit log",
    responses=_NOT_FOUND,
)
def get_case(case_id: str, principal: TriagePrincipal, session: SessionDep) -> CaseDetail:
    return _detail(session, _owned_case(session, case_id, principal))


@router.patch(
    "/cases/{case_id}",
    response_model=CaseDetail,
    summary="Assign, change status, add a note or a resolution code",
    responses={
        **_NOT_FOUND,
        409: {"description": "The case changed since the `version` you sent; read it again"},
        422: {"description": "An illegal status change (the message lists the allowed ones), "
                             "or resolving without a resolution_code"},
    },  # fmt: skip
    openapi_extra={"requestBody": {"content": {"application/json": {"examples": {
        "zh": {"summary": "认领并开始处理 (take the case)", "value": ZH_PATCH},
        "en": {"summary": "Resolve with a resolution code", "value": EN_PATCH},
    }}}}},  # fmt: skip
)
def patch_case(
    case_id: str, body: CasePatch, principal: TriagePrincipal, session: SessionDep
) -> CaseDetail:
    """Status changes: open → in_progress or resolved; in_progress → resolved or open;
    resolved → closed or reopened; closed → reopened; reopened → in_progress or resolved.
    Resolving needs a `resolution_code`; reopening clears it. Each changed field is audited with
    the API key and the time."""
    case = _owned_case(session, case_id, principal)
    change = CaseChange(
        version=body.version, assignee=body.assignee, status=body.status, note=body.note,
        resolution_code=body.resolution_code, unassign=body.unassign,
    )  # fmt: skip
    case = update_case(session, case, change, actor_for(session, principal.key_id))
    return _detail(session, case)


@router.get(
    "/cases/{case_id}/audit",
    response_model=list[AuditOut],
    summary="Every change to a case: who, when, field, old and new",
    responses=_NOT_FOUND,
)
def case_audit(case_id: str, principal: TriagePrincipal, session: SessionDep) -> list[AuditOut]:
    case = _owned_case(session, case_id, principal)
    return _audit_rows(session, case.id)
