"""Training runs: fine-tune a tenant's model from its labels, evaluate it, register the version.

``POST /v1/training-runs`` records a :class:`TrainingRun` and queues a ``training_run`` job. The job
(:class:`TrainingRunHandler`):

1. reads the tenant's current labels for the run's taxonomy version (:func:`service.labels.label_examples`);
2. fine-tunes the parent (the default model, or a version of the tenant's) on them, holding out a
   stable share (:func:`training.finetune.finetune`), reporting progress on the job;
3. scores what the tenant is served now for the run's taxonomy on the same held-out labels (the
   promoted version or the default model, or the classifier derived from it for that taxonomy when
   the model was trained with another: :func:`served_for`) and runs the regression guard
   (:mod:`evaluation.compare`);
4. registers the new :class:`ModelVersion` with its data, metrics, guard and lineage; with
   ``promote`` it is also promoted when the guard allows it.

An interrupted run (server stopped) starts again from the beginning on the next server.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nlp.errors import ConflictError, InvalidInputError
from service import registry
from service.derived_models import derived_version
from service.jobs import JobContext
from service.model_sources import ModelSources
from service.storage.base import utcnow
from service.storage.keys import Principal
from service.storage.models import Job, ModelVersion, TrainingRun
from service.storage.models.registry import TrainingRunStatus
from service.tenant_models import get_model_sources, get_tenant_models, model_version_of

log = logging.getLogger("verbatim.training")

KIND = "training_run"
MIN_LABELS = 20  # fewer leave too few held out to evaluate anything


@dataclass(frozen=True, kw_only=True)
class TrainingBackend:
    """The learning parts a run uses (tests pass small fakes).

    ``finetune(examples, *, parent_dir, base_dir, taxonomy, out_dir, version, steps, seed, holdout,
    progress)`` -> a result with ``model_dir``, ``train_ids``, ``heldout_ids``, ``report``
    (held-out scores or ``None``), ``seconds``; ``evaluate(model, examples, *, base_dir)`` -> a
    report, ``model`` a model directory or, when the tenant is served one derived for the run's
    taxonomy, that classifier; ``guard(candidate, promoted, *, holdout)`` -> a result with
    ``allowed``, ``reasons``, ``to_dict()``.
    """

    finetune: Callable[..., Any]
    evaluate: Callable[..., Any]
    guard: Callable[..., Any]


def default_backend() -> TrainingBackend:
    from evaluation.compare import evaluate_on_labels, regression_guard
    from training.finetune import finetune

    return TrainingBackend(finetune=finetune, evaluate=evaluate_on_labels, guard=regression_guard)


def get_backend(state: Any) -> TrainingBackend:
    backend = getattr(state, "training_backend", None)
    if backend is None:
        backend = default_backend()
        state.training_backend = backend
    return backend


@dataclass(frozen=True, kw_only=True)
class RunRequest:
    """What a caller asks of a run (validated by the route's schema)."""

    taxonomy: str | None = None
    parent: str | None = None
    steps: int | None = None
    seed: int = 13
    holdout: float = 0.2
    promote: bool = False


def start_run(
    session: Session, principal: Principal, request: RunRequest, *, state: Any
) -> TrainingRun:
    """Record a run and queue its job (the caller commits and notifies the job runner)."""
    from service.label_taxonomy import TaxonomyBook
    from service.labels import label_examples
    from service.taxonomies import find_by_key

    tenant_id = principal.tenant_id
    book = TaxonomyBook(session, tenant_id)
    key, tax_version = book.current_version(request.taxonomy)
    examples = label_examples(session, tenant_id, taxonomy=key, taxonomy_version=tax_version)
    if len(examples) < MIN_LABELS:
        raise InvalidInputError(
            f"Taxonomy {key!r} (version {tax_version}) has {len(examples)} current label(s) for this "
            f"tenant; a training run needs at least {MIN_LABELS} (some are held out to evaluate it). "
            "Add labels with POST /v1/labels.",
            details={"labels": len(examples), "min_labels": MIN_LABELS, "taxonomy": key},
        )
    if request.parent is not None:
        registry.get_version(session, tenant_id, request.parent)  # 404 for an unknown one
    sources = get_model_sources(state)
    base_version = model_version_of(sources.default_dir())
    number = registry.next_number(session, tenant_id)
    row = find_by_key(session, tenant_id, key)
    run = TrainingRun(
        tenant_id=tenant_id, version=registry.version_name(base_version, number),
        parent_version=request.parent, taxonomy_id=row.id if row is not None else None,
        taxonomy_version=tax_version, created_by=principal.key_id,
        params={
            "taxonomy_key": key, "steps": request.steps, "seed": request.seed,
            "holdout": request.holdout, "promote": request.promote, "labels_at_start": len(examples),
            "base_version": base_version, "number": number,
        },
    )  # fmt: skip
    session.add(run)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise ConflictError(
            "Another training run was started for this tenant at the same moment; try again."
        ) from None
    job = Job(tenant_id=tenant_id, kind=KIND, payload={"run_id": run.id})
    session.add(job)
    session.flush()
    run.job_id = job.id
    return run


class TrainingRunHandler:
    """Runs ``training_run`` jobs; see the module docstring."""

    kind = KIND

    def __init__(self, state: Any, *, report_every_s: float = 1.0) -> None:
        self.state = state
        self.report_every_s = report_every_s

    def ready(self) -> bool:
        return True

    def on_end(self, session: Session, job: Job) -> None:
        run = session.scalars(select(TrainingRun).where(TrainingRun.job_id == job.id)).one_or_none()
        if run is not None:
            run.status = job.state
            run.error = job.error
            run.finished_at = job.finished_at or utcnow()

    def run(self, ctx: JobContext) -> None:
        from service.label_taxonomy import TaxonomyBook
        from service.labels import label_examples

        sources = get_model_sources(self.state)
        backend = get_backend(self.state)
        factory = ctx.session_factory
        with factory.begin() as session:
            run = session.get(TrainingRun, ctx.payload["run_id"])
            if run is None:
                raise InvalidInputError(f"training run {ctx.payload.get('run_id')!r} is gone")
            run.status = TrainingRunStatus.running.value
            params = dict(run.params)
            key = params["taxonomy_key"]
            book = TaxonomyBook(session, ctx.tenant_id)
            taxonomy = book.get(key, run.taxonomy_version or book.current_version(key)[1])
            examples = label_examples(
                session, ctx.tenant_id, taxonomy=key, taxonomy_version=run.taxonomy_version
            )
            parent_dir = (
                registry.get_version(session, ctx.tenant_id, run.parent_version).model_dir
                if run.parent_version
                else str(sources.default_dir())
            )
            current = registry.promoted_version(session, ctx.tenant_id)
            against_dir = (
                registry.get_version(session, ctx.tenant_id, current).model_dir
                if current
                else str(sources.default_dir())
            )
            run_id, version, created_by = run.id, run.version, run.created_by
            run.result = {"stage": "reading labels"}
            ctx.report(session, progress=0.01, counts={"labels": len(examples)})
        if len(examples) < MIN_LABELS:
            raise InvalidInputError(
                f"Only {len(examples)} label(s) remain for taxonomy {key!r}; a run needs {MIN_LABELS}."
            )
        out_dir = sources.model_dir(ctx.tenant_id, version)
        if out_dir.exists():  # left by an interrupted attempt
            shutil.rmtree(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        base_dir = sources.base_dir()
        counts: dict[str, Any] = {"labels": len(examples)}
        last = [0.0]

        def progress(fraction: float, message: str) -> None:
            now = time.monotonic()
            if now - last[0] < self.report_every_s and fraction < 1.0:
                return
            last[0] = now
            with factory.begin() as s:
                ctx.checkpoint(s)  # stops a cancelled run, or hands it back on shutdown
                ctx.report(s, progress=0.02 + 0.83 * fraction, counts=counts)
                _stage(s, run_id, message)

        result = backend.finetune(
            examples, parent_dir=parent_dir, base_dir=base_dir, taxonomy=taxonomy, out_dir=out_dir,
            version=version, steps=params.get("steps"), seed=params.get("seed", 13),
            holdout=params.get("holdout", 0.2), progress=progress,
        )  # fmt: skip
        counts.update(train=len(result.train_ids), heldout=len(result.heldout_ids))
        guard, metrics = self._evaluate(
            backend, result, examples, served_against=lambda: served_for(sources, against_dir, taxonomy),
            base_dir=base_dir, current=current, holdout=params.get("holdout", 0.2), counts=counts, ctx=ctx,
        )  # fmt: skip
        with factory.begin() as session:
            ctx.checkpoint(session)
            run = session.get(TrainingRun, run_id)
            assert run is not None
            model = ModelVersion(
                tenant_id=ctx.tenant_id, version=version, number=int(params["number"]),
                parent_version=run.parent_version, base_version=params["base_version"],
                taxonomy_id=run.taxonomy_id, taxonomy_key=key, taxonomy_version=run.taxonomy_version,
                training_run_id=run_id, model_dir=str(result.model_dir), created_by=created_by,
                data={
                    "labels": len(examples), "train": len(result.train_ids),
                    "heldout": len(result.heldout_ids), "heldout_ids": list(result.heldout_ids),
                    "steps": getattr(result, "steps", params.get("steps")),
                    "replay": getattr(result, "replay", None), "seconds": round(result.seconds, 1),
                },
                metrics=metrics, guard=guard,
            )  # fmt: skip
            session.add(model)
            run.result = registry.json_safe(
                {"model_version": version, **{k: v for k, v in model.data.items() if k != "heldout_ids"},
                 "guard": {k: guard.get(k) for k in ("allowed", "reasons", "notes", "against", "against_model")},
                 "macro_f1": {"candidate": _macro(metrics, "candidate"), "promoted": _macro(metrics, "promoted")},
                 "promoted": False}
            )  # fmt: skip
            ctx.report(session, progress=0.97, counts=counts)
        if params.get("promote") and guard.get("allowed"):
            self._promote(ctx.tenant_id, run_id, version, created_by)

    def _evaluate(
        self, backend, result, examples, *, served_against, base_dir, current, holdout, counts, ctx
    ):
        heldout = set(result.heldout_ids)
        held = [e for e in examples if e.id in heldout]
        candidate = result.report
        if candidate is None or not held:
            guard = {"allowed": None, "reasons": ["no labels were held out, so nothing was compared"],
                     "against": current}  # fmt: skip
            return guard, {}
        with ctx.session_factory.begin() as s:
            ctx.checkpoint(s)
            ctx.report(s, progress=0.88, counts=counts)
            _stage(s, ctx.payload["run_id"], "evaluating the promoted model on the held-out labels")
        promoted = backend.evaluate(served_against(), held, base_dir=base_dir)
        verdict = backend.guard(candidate, promoted, holdout=holdout)
        guard = registry.json_safe(
            {**verdict.to_dict(), "against": current, "against_model": promoted.model}
        )
        metrics = registry.json_safe(
            {"heldout": len(held), "candidate": candidate.to_dict(), "promoted": promoted.to_dict()}
        )
        return guard, metrics

    def _promote(self, tenant_id: str, run_id: str, version: str, actor_id: str | None) -> None:
        """Promote the run's version (the guard allowed it) and switch serving to it."""
        tenant_models = get_tenant_models(self.state)
        with self.state.session_factory() as session:
            try:
                change = registry.plan_promotion(session, tenant_id, version)
            except ConflictError as exc:  # promoted meanwhile by someone: keep theirs
                log.info("run %s: version %s not promoted: %s", run_id, version, exc.message)
                return
            actor = (
                registry.actor_for(session, actor_id) if actor_id else registry.Actor(id="system")
            )
            tenant_models.preload(tenant_id, change.version, change.model_dir)
            change = replace(change, reason=f"training run {run_id} (guard passed)")
            revision = registry.apply_change(session, change, actor)
            run = session.get(TrainingRun, run_id)
            if run is not None:
                run.result = {**run.result, "promoted": True}
            session.commit()
        tenant_models.switch(tenant_id, change.version, change.model_dir, revision)


def _stage(session: Session, run_id: str, message: str) -> None:
    """What the run is doing now, shown by GET /v1/training-runs/{id} while it runs."""
    session.execute(
        update(TrainingRun).where(TrainingRun.id == run_id).values(result={"stage": message})
    )


def _macro(metrics: dict[str, Any], which: str) -> float | None:
    report = metrics.get(which) or {}
    return report.get("macro_f1")


def served_for(sources: ModelSources, model_dir: str | Path, taxonomy: Any) -> Any:
    """What a tenant served by the model at ``model_dir`` gets for ``taxonomy``: ``model_dir`` itself
    when the model was trained with that taxonomy (or the sources derive nothing), else the
    classifier derived from it for ``taxonomy``, built and named as serving builds it
    (:mod:`service.tenant_models`: ``<version>+tax.<hash8>``, new nodes zero-shot). Built here,
    outside the server's cache of served models: a run may use a taxonomy version that is not
    the tenant's current one. A build that fails leaves the loaded model as it is, as in serving."""
    content_hash = taxonomy.content_hash()
    if sources.derive is None or _taxonomy_hash(model_dir) in (None, content_hash):
        return model_dir
    base = sources.load(Path(model_dir))
    version = derived_version(str(base.config.version), content_hash)
    try:
        return sources.derive(base, taxonomy, version)
    except Exception:  # noqa: BLE001 - logged; serving falls back to the model as it is too
        log.exception(
            "%s could not be derived for taxonomy %s; compared as it is", version, taxonomy.id
        )
        return base


def _taxonomy_hash(model_dir: str | Path) -> str | None:
    """The ``taxonomy_hash`` in a model directory's ``config.json`` (``None``: it names none)."""
    try:
        found = json.loads((Path(model_dir) / "config.json").read_text("utf-8")).get(
            "taxonomy_hash"
        )
    except (OSError, ValueError):
        return None
    return found if isinstance(found, str) else None
