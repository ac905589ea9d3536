"""Data sets: upload a file of verbatims, follow its import, read its records with filters, delete it.

Every route needs the ``analyze`` scope: a data set is material for analysis (drill-down, drivers),
while ``classify`` keys only classify text on the fly. Another tenant's data set is a 404.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, Response, UploadFile
from sqlalchemy import func, select

from nlp.errors import UnavailableError
from service.dataset_queries import apply_record_filters, parse_record_filters, query_params
from service.datasets import create_dataset, delete_dataset, remove_upload
from service.deps import AnalyzePrincipal, SessionDep, SettingsDep, owned_dataset
from service.routes.datasets_schemas import (
    EN_DATASET,
    EN_RECORD,
    EN_REJECTION,
    JOB_EXAMPLE,
    ZH_DATASET,
    ZH_RECORD,
    ZH_REJECTION,
    DatasetCreated,
    DatasetOut,
    JobOut,
    Page,
    RecordOut,
    RejectionOut,
    examples,
)
from service.routes.paging import Limit, Offset
from service.routes.paging import page as _page
from service.storage.models import Dataset, DatasetRecord, RecordRejection
from service.storage.tenancy import owned
from service.tenant_models import get_tenant_models

router = APIRouter(prefix="/v1", tags=["datasets"])

Label = Literal["negative", "neutral", "positive"]
_NOT_FOUND = {404: {"description": "No such data set for this API key's tenant"}}
_CHUNK = 1 << 20


def _read_upload(file: UploadFile, limit: int) -> bytes:
    chunks, size = [], 0
    while chunk := file.file.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise HTTPException(
                413,
                f"The file is larger than the limit of {limit:,} bytes (VERBATIM_MAX_BODY_BYTES); "
                "split it into several data sets.",
            )
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/datasets",
    status_code=202,
    response_model=DatasetCreated,
    summary="Upload a file of records (JSON Lines, CSV or XLSX); its import runs as a job",
    responses={
        **examples(
            202,
            zh=(
                "A CSV of Chinese app reviews",
                {
                    "dataset": {**ZH_DATASET, "status": "queued"},
                    "job": {**JOB_EXAMPLE, "state": "queued", "progress": 0},
                },
            ),
            en=(
                "English survey answers as JSON Lines",
                {
                    "dataset": {**EN_DATASET, "status": "queued"},
                    "job": {**JOB_EXAMPLE, "state": "queued", "progress": 0},
                },
            ),
        ),  # fmt: skip
        413: {"description": "The file is over VERBATIM_MAX_BODY_BYTES"},
        422: {
            "description": "The file as a whole cannot be used (not CSV/JSONL/XLSX, no id or text column, formulas, no records); nothing is created"
        },
    },  # fmt: skip
)
def upload_dataset(
    request: Request,
    response: Response,
    principal: AnalyzePrincipal,
    session: SessionDep,
    settings: SettingsDep,
    file: Annotated[
        UploadFile,
        File(
            description="One verbatim per record with `id` and `text`, optional scores (`nps`, "
            "`csat`, `ces`, `rating` + `rating_scale`, `recommend`), `lang`, `ts`; other fields "
            'are metadata. E.g. a JSON line `{"id": "r1", "text": "快递太慢了", "nps": 3, '
            '"channel": "app"}` or a CSV row `r2,"Great staff, quick checkout",9,store`.'
        ),
    ],
    name: Annotated[
        str | None,
        Form(
            max_length=200,
            description="A name for the data set (default: the file name).",
            examples=["2024年5月 App 评价", "May 2024 store survey"],
        ),
    ] = None,  # fmt: skip
) -> dict[str, Any]:
    """The file is checked as a whole now (format by content, the `id` and `text` columns,
    formulas): a problem is a 422 and nothing is created. Then each record is validated, its
    personal data masked, classified and stored by the import job (`Location` points at it); rows
    that break the record rules are listed by `GET /v1/datasets/{id}/rejections` with line and
    reason. Record ids are unique within a data set.

    `curl -H 'Authorization: Bearer vb_…' -F file=@reviews.csv -F name='2024年5月 App 评价' …/v1/datasets`
    """
    data = _read_upload(file, settings.max_body_bytes)
    dataset, job = create_dataset(
        session, principal, data=data, filename=file.filename or "upload", name=name,
        home=settings.home,
    )  # fmt: skip
    try:
        session.commit()
    except BaseException:
        remove_upload(settings.home, principal.tenant_id, dataset.id)
        raise
    runner = getattr(request.app.state, "job_runner", None)
    if runner is not None:
        runner.notify()
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return {"dataset": DatasetOut.of(dataset), "job": JobOut.of(job)}


@router.get(
    "/datasets",
    response_model=Page[DatasetOut],
    summary="List your data sets, newest first",
    responses=examples(
        zh=("Chinese app reviews", _page([ZH_DATASET], 2, 1, 0)),
        en=("English survey", _page([EN_DATASET], 2, 1, 1)),
    ),
)
def list_datasets(
    principal: AnalyzePrincipal, session: SessionDep, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    query = owned(Dataset, principal)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Dataset.created_at.desc(), Dataset.id).limit(limit).offset(offset)
    ).all()
    return _page([DatasetOut.of(d) for d in rows], total, limit, offset)


@router.get(
    "/datasets/{dataset_id}",
    response_model=DatasetOut,
    summary="A data set: status, counts and the model that labelled it",
    responses={**examples(zh=("Chinese app reviews", ZH_DATASET), en=("English survey", EN_DATASET)), **_NOT_FOUND},
)  # fmt: skip
def get_dataset(dataset_id: str, principal: AnalyzePrincipal, session: SessionDep) -> DatasetOut:
    return DatasetOut.of(owned_dataset(session, dataset_id, principal))


@router.get(
    "/datasets/{dataset_id}/rejections",
    response_model=Page[RejectionOut],
    summary="The rows that were not kept, with line and reason",
    responses={**examples(zh=("Chinese file: a duplicate id", _page([ZH_REJECTION], 12, 1, 0)), en=("English file: a row without id and text", _page([EN_REJECTION], 3, 1, 0))), **_NOT_FOUND},
)  # fmt: skip
def list_rejections(
    dataset_id: str,
    principal: AnalyzePrincipal,
    session: SessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    dataset = owned_dataset(session, dataset_id, principal)
    query = select(RecordRejection).where(RecordRejection.dataset_id == dataset.id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(RecordRejection.line, RecordRejection.pk).limit(limit).offset(offset)
    ).all()
    return _page([RejectionOut.of(r) for r in rows], total, limit, offset)


@router.get(
    "/datasets/{dataset_id}/records",
    response_model=Page[RecordOut],
    summary="Records with their labels, filtered and paginated, in file order",
    responses={
        **examples(zh=("A Chinese record", _page([ZH_RECORD], 1, 50, 0)), en=("An English record", _page([EN_RECORD], 1, 50, 0))),
        **_NOT_FOUND,
        422: {"description": "An unknown filter, an unknown topic or touchpoint id, or a bad value"},
    },
)  # fmt: skip
def list_records(
    request: Request,
    dataset_id: str,
    principal: AnalyzePrincipal,
    session: SessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
    topic: Annotated[str | None, Query(description="A topic id; a level-1 id matches its leaves.", examples=["delivery", "service.attitude"])] = None,
    polarity: Annotated[Label | None, Query(description="With `topic`: mentions of it with this polarity; alone: any topic.")] = None,
    touchpoint: Annotated[str | None, Query(description="A touchpoint id among the record's touchpoints.", examples=["fulfil"])] = None,
    sentiment: Annotated[Label | None, Query(description="The record's overall sentiment.")] = None,
    lang: Annotated[Literal["zh", "en"] | None, Query(description="The record's language.")] = None,
    nps_min: Annotated[float | None, Query()] = None,
    nps_max: Annotated[float | None, Query()] = None,
    csat_min: Annotated[float | None, Query()] = None,
    csat_max: Annotated[float | None, Query()] = None,
    ces_min: Annotated[float | None, Query()] = None,
    ces_max: Annotated[float | None, Query()] = None,
    rating_min: Annotated[float | None, Query()] = None,
    rating_max: Annotated[float | None, Query()] = None,
    recommend: Annotated[bool | None, Query()] = None,
    ts_from: Annotated[str | None, Query(alias="from", description="Records with `ts` at or after this ISO 8601 date or date-time.", examples=["2024-05-01"])] = None,
    ts_to: Annotated[str | None, Query(alias="to", description="Records with `ts` before this date-time, or on or before this date.", examples=["2024-05-31"])] = None,
) -> dict[str, Any]:  # fmt: skip
    """Filters combine with AND. Besides the parameters below, `meta.<field>=<value>` keeps the
    records whose metadata field equals the value (as text), e.g. `meta.channel=app` or
    `meta.store=上海徐汇店`. Unknown parameters, topic or touchpoint ids are a 422."""
    dataset = owned_dataset(session, dataset_id, principal)
    filters = parse_record_filters(
        query_params(request.query_params), **_served_ids(request, principal.tenant_id)
    )
    query = apply_record_filters(
        select(DatasetRecord).where(
            DatasetRecord.dataset_id == dataset.id, DatasetRecord.tenant_id == principal.tenant_id
        ),
        filters,
    )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(DatasetRecord.line, DatasetRecord.pk).limit(limit).offset(offset)
    ).all()
    return _page([RecordOut.of(r) for r in rows], total, limit, offset)


def _served_ids(request: Request, tenant_id: str) -> dict[str, Any]:
    """The topic and touchpoint ids of the model that classifies the tenant's verbatims now (its
    promoted model, or one derived for its current taxonomy, may add nodes to the default's);
    none besides the default's while no model is loaded."""
    try:
        classifier = get_tenant_models(request.app.state).classifier(tenant_id)
    except UnavailableError:
        classifier = None
    config = getattr(classifier, "config", None)
    return {
        "topic_ids": tuple(getattr(config, "topic_ids", ()) or ()),
        "touchpoint_ids": tuple(getattr(config, "touchpoint_ids", ()) or ()),
    }


@router.delete(
    "/datasets/{dataset_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a data set with its records, labels, rejections and upload",
    responses=_NOT_FOUND,
)
def remove_dataset(
    dataset_id: str, principal: AnalyzePrincipal, session: SessionDep, settings: SettingsDep
) -> Response:
    """An import still running is cancelled (its job ends as `cancelled`)."""
    dataset = owned_dataset(session, dataset_id, principal)
    delete_dataset(session, dataset)
    session.commit()
    remove_upload(settings.home, principal.tenant_id, dataset_id)
    return Response(status_code=204)
