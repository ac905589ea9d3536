"""Support cases: open them from urgent records, move them through their states, keep the audit.

- :func:`open_cases_for_records` runs inside each committed batch of a data set import: a record
  at or above ``CaseSettings.min_priority`` opens a case routed by the policy's ``routing:``
  rules, or joins the customer's active case about the same primary topic (repeat contact).
- :func:`update_case` applies a PATCH with optimistic locking (``UPDATE ... WHERE version = ?``;
  a stale version is a 409) and writes one audit row per changed field.
- The SLA breach flag is computed at read time from ``due_at``; :func:`team_counts` feeds the
  ``verbatim_cases_open`` / ``verbatim_cases_sla_breached`` gauges.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy import case as sql_case
from sqlalchemy.orm import Session, sessionmaker

from models.triage import Priority, Router, TriagePolicy, primary_topic
from nlp.errors import ConflictError, InvalidInputError
from service.storage.base import utcnow
from service.storage.models import ApiKey, Case, CaseAudit, CaseRecord, CaseStatus

SYSTEM_ACTOR = "system"

ACTIVE = (CaseStatus.open, CaseStatus.in_progress, CaseStatus.reopened)
"""Statuses of a case someone still has to work on (a repeat contact joins such a case)."""

TRANSITIONS: dict[CaseStatus, tuple[CaseStatus, ...]] = {
    CaseStatus.open: (CaseStatus.in_progress, CaseStatus.resolved),
    CaseStatus.in_progress: (CaseStatus.resolved, CaseStatus.open),
    CaseStatus.resolved: (CaseStatus.closed, CaseStatus.reopened),
    CaseStatus.closed: (CaseStatus.reopened,),
    CaseStatus.reopened: (CaseStatus.in_progress, CaseStatus.resolved),
}
"""Allowed status changes. Resolving needs a resolution code; reopening clears it."""


@dataclass(frozen=True, kw_only=True)
class CaseSettings:
    """When records become cases and how they are routed and timed."""

    min_priority: Priority = Priority.P2
    """Records at this priority or more urgent open (or join) a case."""
    customer_fields: tuple[str, ...] = ("customer_id", "customer", "user_id")
    """Metadata fields tried in order for the customer id."""
    policy: TriagePolicy | None = None
    """SLA hours and routing rules; ``None`` is the default triage policy."""

    @cached_property
    def resolved_policy(self) -> TriagePolicy:
        from models.triage import default_policy

        return self.policy if self.policy is not None else default_policy()

    @cached_property
    def router(self) -> Router:
        return Router(self.resolved_policy.routing)

    def customer_of(self, metadata: Mapping[str, Any] | None) -> str | None:
        for name in self.customer_fields:
            value = (metadata or {}).get(name)
            if value not in (None, "") and not isinstance(value, dict | list):
                return str(value)[:256]
        return None


@dataclass(frozen=True, kw_only=True)
class Actor:
    """Who changes a case: an API key (id and name) or the system."""

    id: str
    name: str = ""


def _rank(priority: str | None) -> int:
    try:
        return Priority(priority or "").rank
    except ValueError:
        return 99


def _audit(session: Session, case: Case, actor: Actor, at: datetime, changes: Iterable[tuple[str, Any, Any]], *, version: int) -> None:
    for name, old, new in changes:
        session.add(CaseAudit(case_id=case.id, at=at, actor_id=actor.id, actor_name=actor.name,
                              field=name, old=old, new=new, version=version))


# ----- opening cases ---------------------------------------------------------------------------
def open_cases_for_records(
    session: Session,
    tenant_id: str,
    rows: Iterable[Mapping[str, Any]],
    settings: CaseSettings | None = None,
    *,
    now: datetime | None = None,
) -> list[str]:
    """Open or join cases for urgent rows (the import's row dicts: ``dataset_id``, ``record_id``,
    ``labels`` with ``triage``, ``meta``, ``lang``); returns the ids of the cases touched.
    Idempotent: a record already in a case is skipped. Runs in the caller's transaction."""
    settings = settings or CaseSettings()
    if settings.policy is None:  # the tenant's own triage policy (SLA, routing) when it has one
        from service.triage_policies import tenant_policy

        settings = replace(settings, policy=tenant_policy(session, tenant_id))
    now = now or utcnow()
    urgent = [
        r for r in rows
        if _rank(((r.get("labels") or {}).get("triage") or {}).get("priority")) <= settings.min_priority.rank
    ]  # fmt: skip
    if not urgent:
        return []
    pairs = {(r["dataset_id"], r["record_id"]) for r in urgent}
    taken = {tuple(row) for row in session.execute(
        select(CaseRecord.dataset_id, CaseRecord.record_id).where(
            CaseRecord.dataset_id.in_({d for d, _ in pairs}),
            CaseRecord.record_id.in_({i for _, i in pairs}),
        )
    )}  # fmt: skip
    touched: list[str] = []
    system = Actor(id=SYSTEM_ACTOR, name="data set import")
    for row in urgent:
        if (row["dataset_id"], row["record_id"]) in taken:
            continue
        taken.add((row["dataset_id"], row["record_id"]))
        case = _open_or_join(session, tenant_id, row, settings, now, system)
        if case.id not in touched:
            touched.append(case.id)
    return touched


def _open_or_join(
    session: Session, tenant_id: str, row: Mapping[str, Any], settings: CaseSettings,
    now: datetime, actor: Actor,
) -> Case:
    labels = row.get("labels") or {}
    triage = labels.get("triage") or {}
    priority = Priority(triage["priority"])
    reasons = [str(r) for r in triage.get("reasons") or []]
    topic = primary_topic(labels.get("topics"))
    customer = settings.customer_of(row.get("meta"))
    sla = timedelta(hours=settings.resolved_policy.sla_hours.for_priority(priority))
    case = None
    if customer is not None:
        case = session.scalars(
            select(Case).where(
                Case.tenant_id == tenant_id, Case.customer_id == customer,
                Case.topic.is_(None) if topic is None else Case.topic == topic,
                Case.status.in_([s.value for s in ACTIVE]),
            ).order_by(Case.created_at).limit(1)
        ).first()  # fmt: skip
    if case is None:
        route = settings.router.route_record(labels, row.get("meta"), row.get("lang"))
        case = Case(
            tenant_id=tenant_id, team=route.team, priority=priority.value,
            status=CaseStatus.open.value, topic=topic,
            touchpoint=labels.get("primary_touchpoint"), lang=row.get("lang") or labels.get("lang"),
            reasons=[*reasons, route.reason], customer_id=customer, notes=[], repeat_count=1,
            policy=settings.resolved_policy.ref, due_at=now + sla, created_at=now, updated_at=now,
            version=1,
        )  # fmt: skip
        session.add(case)
        session.flush()
        _audit(session, case, actor, now, [("created", None, {
            "team": case.team, "priority": case.priority, "status": case.status,
            "record": f"{row['dataset_id']}/{row['record_id']}"})], version=1)  # fmt: skip
    else:
        changes: list[tuple[str, Any, Any]] = [
            ("repeat_count", case.repeat_count, case.repeat_count + 1)
        ]
        case.repeat_count += 1
        if priority.rank < _rank(case.priority):  # a more urgent repeat escalates the case
            changes.append(("priority", case.priority, priority.value))
            case.priority = priority.value
            due = min(case.due_at, case.created_at + sla)
            changes.append(("due_at", case.due_at.isoformat(), due.isoformat()))
            case.due_at = due
        case.reasons = [*case.reasons, f"repeat contact ({case.repeat_count} records)"][-20:]
        case.version += 1
        case.updated_at = now
        _audit(session, case, actor, now, changes, version=case.version)
    session.add(CaseRecord(case_id=case.id, dataset_id=row["dataset_id"],
                           record_id=row["record_id"], priority=priority.value, reasons=reasons,
                           added_at=now))  # fmt: skip
    return case


# ----- changing a case -------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class CaseChange:
    """A PATCH: the version the caller read and the fields to change (``None``: unchanged)."""

    version: int
    assignee: str | None = None
    status: CaseStatus | None = None
    note: str | None = None
    resolution_code: str | None = None
    unassign: bool = field(default=False)


def actor_for(session: Session, key_id: str) -> Actor:
    """The audit name of an API key: its id and its name."""
    name = session.scalar(select(ApiKey.name).where(ApiKey.id == key_id))
    return Actor(id=key_id, name=name or "")


def _transition_error(current: CaseStatus, wanted: CaseStatus) -> InvalidInputError:
    allowed = TRANSITIONS[current]
    return InvalidInputError(
        f"A case cannot go from {current.value!r} to {wanted.value!r}; from {current.value!r} "
        f"it may go to: {', '.join(repr(s.value) for s in allowed)}.",
        details={"status": current.value, "requested": wanted.value,
                 "allowed": [s.value for s in allowed]},
    )  # fmt: skip


def update_case(
    session: Session, case: Case, change: CaseChange, actor: Actor, *, now: datetime | None = None
) -> Case:
    """Apply ``change`` to ``case`` (read by the caller, tenant-checked) and commit.

    Raises 409 :class:`ConflictError` when the case changed since ``change.version`` was read,
    422 :class:`InvalidInputError` for an illegal transition or a missing resolution code."""
    now = now or utcnow()
    if change.version != case.version:
        raise _stale(case.id, change.version, case.version)
    current = CaseStatus(case.status)
    values: dict[str, Any] = {}
    changes: list[tuple[str, Any, Any]] = []

    def put(name: str, new: Any, shown: Any = None) -> None:
        old = getattr(case, name)
        if old != new:
            values[name] = new
            changes.append((name, _shown(old), _shown(new) if shown is None else shown))

    status = change.status
    if status is not None and status != current:
        if status not in TRANSITIONS[current]:
            raise _transition_error(current, status)
        put("status", status.value)
        if status is CaseStatus.resolved:
            put("resolved_at", now)
        elif status is CaseStatus.reopened:
            put("resolved_at", None)
            put("resolution_code", None)
    final = status or current
    if change.resolution_code is not None:
        if final not in (CaseStatus.resolved, CaseStatus.closed):
            raise InvalidInputError(
                f"A resolution code is set when resolving a case (status 'resolved'); this case "
                f"is {final.value!r}. Send status 'resolved' with the resolution_code.",
                details={"status": final.value},
            )
        put("resolution_code", change.resolution_code)
    code = values["resolution_code"] if "resolution_code" in values else case.resolution_code
    if status is CaseStatus.resolved and current is not CaseStatus.resolved and not code:
        raise InvalidInputError(
            "Resolving a case needs a resolution_code (for example 'refunded', 'replaced', "
            "'explained', 'no_fault_found'); send it with status 'resolved'.",
            details={"status": final.value, "missing": "resolution_code"},
        )
    if change.unassign:
        put("assignee", None)
    elif change.assignee is not None:
        put("assignee", change.assignee)
    if change.note is not None:
        note = {"at": now.isoformat(), "by": actor.name or actor.id, "text": change.note}
        values["notes"] = [*case.notes, note]
        changes.append(("note", None, change.note))
    if not changes:
        return case  # nothing to change: no new version, no audit row
    values.update(version=case.version + 1, updated_at=now)
    done = session.execute(
        update(Case)
        .where(Case.id == case.id, Case.tenant_id == case.tenant_id, Case.version == change.version)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:
        session.rollback()
        raise _stale(case.id, change.version, None)
    _audit(session, case, actor, now, changes, version=change.version + 1)
    session.commit()
    session.refresh(case)
    return case


def _shown(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _stale(case_id: str, sent: int, current: int | None) -> ConflictError:
    now = f" (it is now at version {current})" if current is not None else ""
    return ConflictError(
        f"Case {case_id} was changed by someone else since you read version {sent}{now}. Read it "
        "again (GET /v1/cases/{id}) and repeat your change with the new version.",
        details={"id": case_id, "version": sent, "current_version": current},
    )


# ----- reading ---------------------------------------------------------------------------------
def is_breached(case: Case, now: datetime) -> bool:
    """Past due: still active after ``due_at``, or resolved after it."""
    return (case.resolved_at or now) > case.due_at


def breached_clause(now: datetime) -> Any:
    """SQL form of :func:`is_breached`."""
    return or_(
        and_(Case.resolved_at.is_(None), Case.due_at < now),
        Case.resolved_at > Case.due_at,
    )


def team_counts(session_factory: sessionmaker[Session], now: datetime | None = None) -> list[tuple[str, int, int]]:
    """``(team, active cases, active cases past due)`` over all tenants, one cheap GROUP BY."""
    now = now or utcnow()
    with session_factory() as session:
        rows = session.execute(
            select(Case.team, func.count(), func.sum(sql_case((Case.due_at < now, 1), else_=0)))
            .where(Case.status.in_([s.value for s in ACTIVE]))
            .group_by(Case.team)
        ).all()  # fmt: skip
    return [(team, int(n), int(b or 0)) for team, n, b in rows]


GaugeSource = Callable[[], list[tuple[str, int, int]]]
