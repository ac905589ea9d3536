"""Triage policies per tenant: create, add versions, read, diff, and apply them to results.

Rules (documented in the API):

- A tenant has at most one triage policy; without one, the default policy
  (``models/triage/default_policy.yaml``) triages its records.
- Every change adds a version numbered 1, 2, 3…; stored versions are never changed. The server
  sets the YAML's ``version`` field to that number, so a triage result's ``policy`` (``acme@3``)
  names exactly the rules that made it. An upload equal to the current version adds nothing.
- Uploads are validated in full (:func:`models.triage.validate_policy`) against the tenant's current
  taxonomy (:mod:`service.taxonomy_current`), or the default one for a tenant without its own, so
  a policy may name the tenant's new nodes: every problem comes back with its path and line.
  Versions are stored as normalised YAML.
- A new version must keep the policy's key (its ``id`` field). Two saves from the same version: the
  first wins, the second is a :class:`ConflictError` (optimistic locking), never a duplicate.

Functions flush but never commit: the caller owns the transaction. The store itself is
:mod:`service.documents`, shared with the taxonomies.
"""

from __future__ import annotations

import difflib
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.taxonomy import Problem, ProblemLevel, Taxonomy, default_taxonomy
from models.taxonomy.problems import attach_lines
from models.taxonomy.validate import read_source
from models.triage import Triage, TriagePolicy, default_policy, dump_policy, load_policy
from models.triage.io import policy_to_dict
from models.triage.validate import raise_for_problems, validate_policy
from nlp.errors import InvalidInputError, PolicyError
from service import documents
from service.storage.models import TenantTriagePolicy, TriagePolicyVersion
from service.taxonomy_current import current_taxonomy, load_current

MAX_POLICY_BYTES = 1024 * 1024
"""The largest policy YAML accepted (the default one is about 9 kB)."""


@dataclass(frozen=True, kw_only=True)
class Saved(documents.Saved):
    """A create or update: the policy row, its (new or current) version, the upload's warnings, and
    whether a version was added."""

    row: TenantTriagePolicy
    version: TriagePolicyVersion

    @property
    def policy(self) -> TenantTriagePolicy:
        return self.row


# ----- parsing uploads ---------------------------------------------------------------------------
def parse_upload(
    text: str, *, version: int, key: str | None = None, taxonomy: Taxonomy | None = None
) -> tuple[TriagePolicy, list[Problem]]:
    """Validate uploaded YAML ``text`` as version ``version`` of the policy ``key``.

    Returns the policy (``version`` set by the server) and its warnings; raises
    :class:`PolicyError` listing every problem with its path and line. Topic ids must exist in
    ``taxonomy`` (default: the default taxonomy)."""
    if "\n" not in text:
        text += "\n"  # never read as a file path: uploads are YAML text
    taxonomy = taxonomy or default_taxonomy()
    data, lines, _ = read_source(text, what="policy")
    problems = [p for p in validate_policy(text, taxonomy=taxonomy) if p.path != "version"]
    if isinstance(data, Mapping) and any(p.level is ProblemLevel.error for p in problems):
        seen = {p.path for p in problems}  # a policy that did not parse skipped the topic checks
        problems += [p for p in attach_lines(_topic_problems(data, taxonomy), lines) if p.path not in seen]
    if isinstance(data, Mapping) and key is not None and data.get("id") != key:
        problems.insert(0, Problem(
            path="id", line=lines.get("id"),
            message=f"this policy's id is {key!r}, the upload says {data.get('id')!r}; keep "
            f"id: {key} to add a version",
        ))  # fmt: skip
    raise_for_problems(problems, origin="triage policy")
    assert isinstance(data, Mapping)  # no error means it parsed to a mapping
    policy = load_policy({**data, "version": version}, taxonomy=taxonomy)
    return policy, [p for p in problems if p.level is ProblemLevel.warning]


def policy_taxonomy(session: Session, tenant_id: str) -> Taxonomy:
    """The taxonomy a tenant's policy is checked against: the tenant's current one (what its
    classification follows), else the default taxonomy."""
    current = current_taxonomy(session, tenant_id)
    return load_current(session, current) if current is not None else default_taxonomy()


def _topic_problems(data: Mapping[str, Any], taxonomy: Taxonomy) -> list[Problem]:
    """Unknown topic ids in a raw policy document (``topics.severity``, ``related_topics``)."""
    known = set(taxonomy.topic_ids) | {n.id for n in taxonomy.topics}
    refs: list[tuple[str, Any]] = []
    topics = data.get("topics")
    if isinstance(topics, Mapping) and isinstance(topics.get("severity"), Mapping):
        refs += [(f"topics.severity.{k}", k) for k in topics["severity"]]
    cues = data.get("cues")
    for name, cat in (cues.items() if isinstance(cues, Mapping) else ()):
        related = cat.get("related_topics") if isinstance(cat, Mapping) else None
        if isinstance(related, list):
            refs += [(f"cues.{name}.related_topics[{i}]", t) for i, t in enumerate(related)]
    out = []
    for path, topic in refs:
        if isinstance(topic, str) and topic not in known:
            close = difflib.get_close_matches(topic, sorted(known), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            out.append(Problem(path=path, message=f"unknown topic {topic!r} in taxonomy "
                               f"{taxonomy.id!r} v{taxonomy.version}{hint}"))  # fmt: skip
    return out


# ----- stored versions ---------------------------------------------------------------------------
_POLICIES: OrderedDict[tuple[str, int], TriagePolicy] = OrderedDict()
_ENGINES: OrderedDict[tuple[str, str, str], Triage] = OrderedDict()
_LOCK = threading.Lock()
_CACHED = 256


def _remember(cache: OrderedDict, key: Any, value: Any) -> None:
    with _LOCK:
        cache[key] = value
        while len(cache) > _CACHED:
            cache.popitem(last=False)


def version_policy(version: TriagePolicyVersion) -> TriagePolicy:
    """The policy object of a stored version (parsed once, then cached: versions never change)."""
    key = (version.policy_id, version.version)
    found = _POLICIES.get(key)
    if found is None:
        found = load_policy(version.yaml)
        _remember(_POLICIES, key, found)
    return found


def tenant_policy(session: Session, tenant_id: str) -> TriagePolicy | None:
    """The tenant's current triage policy, or None when it uses the default. One small query;
    the parsed policy is cached per (policy, version)."""
    row = session.execute(
        select(TenantTriagePolicy.id, TenantTriagePolicy.current_version).where(
            TenantTriagePolicy.tenant_id == tenant_id
        )
    ).first()
    if row is None:
        return None
    found = _POLICIES.get((row.id, row.current_version))
    if found is not None:
        return found
    version = session.get(TriagePolicyVersion, (row.id, row.current_version))
    return version_policy(version) if version is not None else None


# ----- diffs ---------------------------------------------------------------------------------------
def diff_policies(before: TriagePolicy, after: TriagePolicy) -> dict[str, Any]:
    """``{"from", "to", "same_rules", "changes", "summary"}``: one change per path (``added``,
    ``removed``, ``changed``); cue and field lists report the items added and removed."""
    changes: list[dict[str, Any]] = []
    _diff(policy_to_dict(before), policy_to_dict(after), "", changes)
    changes = [c for c in changes if c["path"] != "version"]
    return {
        "from": before.ref,
        "to": after.ref,
        "same_rules": before.content_hash() == after.content_hash(),
        "changes": changes,
        "summary": [_summary(c) for c in changes],
    }


def _diff(old: Any, new: Any, path: str, out: list[dict[str, Any]]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in new:
                out.append({"path": sub, "change": "removed", "old": old[key], "new": None})
            elif key not in old:
                out.append({"path": sub, "change": "added", "old": None, "new": new[key]})
            else:
                _diff(old[key], new[key], sub, out)
    elif isinstance(old, list) and isinstance(new, list) and not any(
        isinstance(x, dict | list) for x in old + new
    ):
        added = [x for x in new if x not in old]
        removed = [x for x in old if x not in new]
        if added or removed:
            out.append({"path": path, "change": "changed", "old": old, "new": new,
                        "added": added, "removed": removed})  # fmt: skip
    elif old != new:
        out.append({"path": path, "change": "changed", "old": old, "new": new})


def _summary(change: dict[str, Any]) -> str:
    path, kind = change["path"], change["change"]
    if kind == "added":
        return f"{path}: added"
    if kind == "removed":
        return f"{path}: removed"
    if "added" in change:
        parts = [f"+{', '.join(map(str, change['added']))}" if change["added"] else "",
                 f"-{', '.join(map(str, change['removed']))}" if change["removed"] else ""]  # fmt: skip
        return f"{path}: " + " ".join(p for p in parts if p)
    if isinstance(change["old"], dict | list) or isinstance(change["new"], dict | list):
        return f"{path}: changed"
    return f"{path}: {change['old']} -> {change['new']}"


# ----- the store ---------------------------------------------------------------------------------
POLICIES: documents.DocumentStore[TriagePolicy] = documents.DocumentStore(
    table=TenantTriagePolicy,
    version_table=TriagePolicyVersion,
    parent="policy_id",
    parse=parse_upload,
    load=load_policy,
    to_dict=policy_to_dict,
    dump=dump_policy,
    read=version_policy,
    diff=diff_policies,
    names=lambda policy: {"name": policy.name[:200]},
    default=default_policy,
    default_message="copy of the default policy",
    one_per_tenant=True,
    saved=Saved,
    context=lambda session, tenant_id: {"taxonomy": policy_taxonomy(session, tenant_id)},
    messages=documents.Messages(
        exists="This tenant already has a triage policy ({id}, id {key!r}, version "
        "{current_version}). Add a version with PUT /v1/triage-policies/{id}.",
        created_race="A triage policy for this tenant was created at the same time; use PUT.",
        saved_race="Version {version} of this triage policy was saved by another request at the "
        "same time; fetch the current version and apply your change again.",
        stale="The triage policy changed since version {base} (another save got there first); "
        "fetch GET /v1/triage-policies/{id}, apply your change to the current version and retry.",
        not_found="No triage policy {ref!r} for this tenant. GET /v1/triage-policies/current "
        "shows the policy in force (the default until you create one).",
        no_version="Triage policy {key!r} has no version {version}: its versions are 1 to "
        "{current_version}.",
    ),
)
"""The tenants' triage policies (tables ``triage_policies`` and ``triage_policy_versions``)."""


def create_policy(
    session: Session,
    tenant_id: str,
    source: str | TriagePolicy | None = None,
    *,
    key: str | None = None,
    created_by: str | None = None,
    message: str | None = None,
) -> Saved:
    """The tenant's policy at version 1, from YAML text, a policy object, or (``None``) a copy of
    the default under ``key``. :class:`ConflictError` when the tenant already has one."""
    saved = POLICIES.create(
        session, tenant_id, source, key=key, created_by=created_by, message=message
    )
    return cast(Saved, saved)


def add_version(
    session: Session,
    row: TenantTriagePolicy,
    text: str,
    *,
    base_version: int | None = None,
    created_by: str | None = None,
    message: str | None = None,
) -> Saved:
    """Version ``current + 1`` of ``row`` from a full YAML ``text``; nothing is added when the
    upload equals the current version (``Saved.created`` false). ``base_version`` is the version
    the change was made from (default: the current one as read now); :class:`ConflictError` when
    another save got there first."""
    saved = POLICIES.add_version(
        session, row, text, base_version=base_version, created_by=created_by, message=message
    )
    return cast(Saved, saved)


def find_policy(session: Session, tenant_id: str) -> TenantTriagePolicy | None:
    """The tenant's policy row, or None when it uses the default."""
    return POLICIES.find(session, tenant_id)


def get_policy(session: Session, tenant_id: str, id_or_key: str) -> TenantTriagePolicy:
    """The tenant's policy by server id or key; :class:`NotFoundError` for another tenant's."""
    return POLICIES.get(session, tenant_id, id_or_key)


def list_versions(session: Session, row: TenantTriagePolicy) -> list[TriagePolicyVersion]:
    """Every version of ``row``, newest first."""
    return POLICIES.list_versions(session, row)


def get_version(session: Session, row: TenantTriagePolicy, version: int) -> TriagePolicyVersion:
    """Version ``version`` of ``row``; :class:`NotFoundError` naming the versions there are."""
    return POLICIES.get_version(session, row, version)


def diff_versions(session: Session, row: TenantTriagePolicy, old: int, new: int) -> dict[str, Any]:
    """What changed from version ``old`` to ``new`` of ``row`` (see :func:`diff_policies`)."""
    return POLICIES.diff_versions(session, row, old, new)


# ----- applying a policy -------------------------------------------------------------------------
def taxonomy_of(classifier: Any) -> Taxonomy:
    """The taxonomy a classifier predicts (its triage's, its model's), else the default one."""
    for holder in (getattr(classifier, "triage", None), getattr(classifier, "model", None)):
        found = getattr(holder, "taxonomy", None)
        if isinstance(found, Taxonomy):
            return found
    return default_taxonomy()


def engine_for(policy: TriagePolicy, taxonomy: Taxonomy | None = None) -> Triage:
    """A (cached) triage engine for ``policy`` over ``taxonomy``. A policy naming topics this
    taxonomy lacks still runs: those topics simply never match."""
    taxonomy = taxonomy or default_taxonomy()
    key = (policy.ref, policy.content_hash(), f"{taxonomy.id}@{taxonomy.version}:{id(taxonomy)}")
    found = _ENGINES.get(key)
    if found is None:
        try:
            found = Triage(policy, taxonomy)
        except PolicyError:  # e.g. a tenant model's own taxonomy: keep severities, skip the check
            found = Triage(policy)
            found.taxonomy = taxonomy
        _remember(_ENGINES, key, found)
    return found


def retriage(
    results: Sequence[dict[str, Any]],
    prepared_or_text: Sequence[Any],
    policy: TriagePolicy | None,
    *,
    taxonomy: Taxonomy | None = None,
    metadata: Sequence[Mapping[str, Any] | None] | None = None,
) -> list[dict[str, Any]]:
    """``results`` with ``triage`` recomputed under ``policy`` (``None``: returned unchanged, the
    classifier already triaged them with the default policy).

    ``prepared_or_text[i]`` belongs to ``results[i]``: a ``PreparedText`` (anything with ``.text``)
    or the original text, prepared here in the result's language. ``metadata[i]`` feeds the
    policy's customer-value and channel rules. Items with an ``error`` are left as they are."""
    if policy is None:
        return list(results)
    if len(prepared_or_text) != len(results):
        raise InvalidInputError(
            f"retriage needs one text per result; got {len(prepared_or_text)} for {len(results)}"
        )
    from nlp.prepare import prepare

    engine = engine_for(policy, taxonomy)
    out = []
    for i, (res, item) in enumerate(zip(results, prepared_or_text, strict=True)):
        if "error" in res:
            out.append(res)
            continue
        if isinstance(item, str):
            lang = res.get("lang") if res.get("lang") in ("zh", "en") else None
            item = prepare(item, lang=lang)
        meta = metadata[i] if metadata is not None else None
        out.append({**res, "triage": engine(res, item, metadata=meta)})
    return out


def apply_tenant_policy(
    session: Session,
    tenant_id: str,
    results: Sequence[dict[str, Any]],
    texts: Sequence[Any],
    *,
    classifier: Any = None,
    metadata: Sequence[Mapping[str, Any] | None] | None = None,
) -> list[dict[str, Any]]:
    """:func:`retriage` under the tenant's current policy (unchanged when it has none)."""
    policy = tenant_policy(session, tenant_id)
    if policy is None:
        return list(results)
    return retriage(results, texts, policy, taxonomy=taxonomy_of(classifier), metadata=metadata)


async def triage_for_tenant(
    session: Session,
    tenant_id: str,
    results: Sequence[dict[str, Any]],
    texts: Sequence[Any],
    *,
    classifier: Any = None,
) -> list[dict[str, Any]]:
    """:func:`apply_tenant_policy` in a worker thread, for async routes (``POST /v1/classify``)."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(
        apply_tenant_policy, session, tenant_id, results, texts, classifier=classifier
    )
