"""Analysts' labels and the review queue.

Scopes: `analyze` to read (labels, their export, the review queue); `train` (or `admin`) to add
labels. Another tenant's label or data set is a 404. Rules for labels: :mod:`service.labels`;
the file format of imports: :mod:`service.label_import`; the queue: :mod:`service.review_queue`.
"""

from __future__ import annotations

import json
import threading
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse

from nlp.errors import InvalidInputError, ModelError, UnavailableError
from service.cases import actor_for
from service.deps import AnalyzePrincipal, SessionDep, SettingsDep, TrainPrincipal
from service.label_import import read_label_file
from service.labels import (
    LabelBatch,
    Rejected,
    add_labels,
    current_labels,
    label_examples,
    label_history,
)
from service.review_queue import PriorFn, review_queue
from service.routes.datasets import _read_upload
from service.routes.datasets_schemas import Page, examples
from service.routes.labels_schemas import (
    REVIEW_EXAMPLE,
    SUMMARY_EXAMPLE,
    LabelHistory,
    LabelOut,
    LabelsCreate,
    LabelSummary,
    ReviewQueue,
)
from service.routes.paging import Limit, Offset, page
from service.settings import Settings
from service.storage.models import LabelSource
from service.tenant_models import get_tenant_models

router = APIRouter(prefix="/v1", tags=["labels"])

_SUMMARY = {
    **examples(200, zh_en=("Every label stored", {**SUMMARY_EXAMPLE, "rejected": []})),
    207: {
        "description": "Some labels stored, some rejected (each with its line or index and why)",
        "content": {"application/json": {"example": SUMMARY_EXAMPLE}},
    },
    422: {"description": "No label stored: `details` is the summary with every rejection"},
}


def _summary(batch: LabelBatch, rejected: list[Rejected], ignored: list[str]) -> JSONResponse:
    accepted = []
    for item, label, supersedes in batch.accepted:
        where = {"line": item.line} if item.line is not None else {"index": item.index}
        accepted.append({**where, "id": label.id, "ref": item.ref, "revision": label.revision,
                         "supersedes": supersedes})  # fmt: skip
    bad = sorted(rejected + batch.rejected, key=lambda r: (r.line or 0, r.index or 0))
    body = LabelSummary.model_validate({
        "accepted": accepted, "rejected": [r.to_dict() for r in bad],
        "counts": {"accepted": len(accepted), "rejected": len(bad)}, "ignored_columns": ignored,
    }).model_dump(mode="json")  # fmt: skip
    if not accepted:
        shown = "; ".join(
            f"{'line ' + str(r.line) if r.line is not None else 'item ' + str(r.index)}: {r.reason}"
            for r in bad[:3]
        )
        raise InvalidInputError(f"No label was stored ({len(bad)} rejected): {shown}", details=body)
    return JSONResponse(body, status_code=207 if bad else 200)


@router.post(
    "/labels",
    response_model=LabelSummary,
    summary="Add labels or corrections (sentiment, topics with polarity, touchpoints)",
    responses=_SUMMARY,
)
def create_labels(body: LabelsCreate, principal: TrainPrincipal, session: SessionDep) -> Any:
    """Each item is checked on its own: good ones are stored, bad ones listed with their index and
    the reason (unknown record or id, wrong taxonomy version, bad polarity…): 200 when all were
    stored, 207 when some were, 422 when none. A label of a record that already has one is a
    correction: it becomes the current label, the old one stays in the history."""
    items = [item.to_input(i, body) for i, item in enumerate(body.items)]
    batch = add_labels(session, principal.tenant_id, actor_for(session, principal.key_id), items,
                       source=LabelSource.api, map_forward=body.map_forward)  # fmt: skip
    response = _summary(batch, [], [])
    session.commit()
    return response


@router.post(
    "/labels/import",
    response_model=LabelSummary,
    summary="Import labels from a CSV, XLSX or JSON Lines file",
    responses=_SUMMARY,
)
def import_labels(
    principal: TrainPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    file: Annotated[
        UploadFile,
        File(description="Columns `dataset_id`, `record_id` (or `text`, `lang`, `id`), "
             "`sentiment`, `topics` as `delivery.timeliness:negative; product.quality:positive`, "
             "`touchpoints` as `fulfil;purchase`, optional `taxonomy`, `taxonomy_version`, `note`."),
    ],
    taxonomy: Annotated[str | None, Form(max_length=64)] = None,
    taxonomy_version: Annotated[int | None, Form(ge=1)] = None,
    map_forward: Annotated[bool, Form()] = False,
) -> Any:
    """Every bad row is reported with its line (the header is line 1) and the reason; the good
    rows are stored. Unknown columns are ignored and listed in `ignored_columns`."""
    data = _read_upload(file, settings.max_body_bytes)
    parsed = read_label_file(data, file.filename or "upload",
                             defaults={"taxonomy": taxonomy, "taxonomy_version": taxonomy_version})
    batch = add_labels(session, principal.tenant_id, actor_for(session, principal.key_id),
                       parsed.items, source=LabelSource.import_, map_forward=map_forward)
    response = _summary(batch, parsed.rejected, parsed.ignored_columns)
    session.commit()
    return response  # fmt: skip


@router.get("/labels", response_model=Page[LabelOut], summary="List labels (current ones by default)")
def list_labels(
    principal: AnalyzePrincipal,
    session: SessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
    dataset_id: Annotated[str | None, Query(max_length=40)] = None,
    record_id: Annotated[str | None, Query(max_length=256)] = None,
    history: Annotated[bool, Query(description="Include superseded revisions.")] = False,
) -> Any:
    rows, total = current_labels(session, principal.tenant_id, dataset_id=dataset_id,
                                 record_id=record_id, history=history, limit=limit, offset=offset)
    return page([LabelOut.of(r) for r in rows], total, limit, offset)


@router.get(
    "/labels/export",
    summary="The current labels as a JSON Lines label set for training",
    responses={200: {"content": {"application/x-ndjson": {"example":
        '{"id": "ds_4k2m9x/r17", "text": "快递太慢了", "lang": "zh", "sentiment": "negative", '
        '"topics": {"delivery.timeliness": "negative"}, "touchpoints": ["fulfil"]}\n'}}}},
)  # fmt: skip
def export_labels(
    principal: AnalyzePrincipal,
    session: SessionDep,
    taxonomy: Annotated[str | None, Query(max_length=64)] = None,
    taxonomy_version: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """One line per labelled record or example (`training.labelset` format), ids mapped forward to
    the taxonomy version asked for (default: current); a field whose ids have no counterpart there
    is left out (not labelled)."""
    found = label_examples(session, principal.tenant_id, taxonomy_version=taxonomy_version,
                           taxonomy=taxonomy)  # fmt: skip
    text = "".join(json.dumps(e.to_dict(), ensure_ascii=False) + "\n" for e in found)
    return Response(text, media_type="application/x-ndjson",
                    headers={"Content-Disposition": 'attachment; filename="labels.jsonl"'})


@router.get("/labels/{label_id}", response_model=LabelHistory,
            summary="A label with every revision of its record's label")  # fmt: skip
def get_label(label_id: str, principal: AnalyzePrincipal, session: SessionDep) -> Any:
    return {"items": [LabelOut.of(r) for r in label_history(session, principal.tenant_id, label_id)]}


def _prior(
    request: Request, settings: Settings, tenant_id: str
) -> tuple[PriorFn | None, str | None]:
    """The zero-shot prior of the classifier the tenant is served (its promoted model, or one
    derived for its current taxonomy, whose prototypes include the tenant's new nodes), with the
    base encoder it needs."""
    from models.review import has_base_encoder, topic_prior

    try:
        classifier = get_tenant_models(request.app.state).classifier(tenant_id)
    except UnavailableError:
        return None, "unavailable: the model is still loading"
    try:
        if has_base_encoder(classifier):
            return (lambda texts: topic_prior(classifier, texts)), None
    except ModelError as exc:
        return None, f"unavailable: {exc.message}"
    state = request.app.state
    if getattr(state, "review_encoder_lock", None) is None:
        state.review_encoder_lock = threading.Lock()
    with state.review_encoder_lock:
        encoder = getattr(state, "review_encoder", None)
        if encoder is None:
            from models.encoder import Encoder, ensure_base_encoder

            encoder = Encoder.from_pretrained(ensure_base_encoder(settings.home)).load()
            state.review_encoder = encoder
    config = classifier.model.config
    if encoder.dim != config.hidden_size:
        return None, f"unavailable: the base encoder has {encoder.dim} dimensions, the model {config.hidden_size}"

    def embed(texts):
        with state.review_encoder_lock:
            return encoder.encode(texts, prefix=config.text_prefix, max_length=config.max_length)

    return (lambda texts: topic_prior(classifier, texts, embed=embed)), None


@router.get(
    "/review-queue",
    response_model=ReviewQueue,
    summary="The unlabelled records most worth labelling next, and why",
    responses=examples(200, zh_en=("A zh and an en proposal", REVIEW_EXAMPLE)),
)
def get_review_queue(
    request: Request,
    principal: AnalyzePrincipal,
    session: SessionDep,
    settings: SettingsDep,
    dataset_id: Annotated[str | None, Query(max_length=40, description="Default: every ready data set.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    lang: Annotated[Literal["zh", "en"] | None, Query(description="Only this language (default: zh and en in turns).")] = None,
) -> Any:
    """Records are scored for uncertainty of the model, disagreement with its zero-shot prior,
    membership of an emerging cluster (from the data set's latest analysis) and coverage of nodes
    with few labels; records with a label are left out. Each item lists its reasons."""
    prior, note = _prior(request, settings, principal.tenant_id)
    return review_queue(session, principal.tenant_id, dataset_id=dataset_id, limit=limit,
                        lang=lang, prior=prior, prior_note=note)  # fmt: skip
