"""Data sets: accepting an upload, the import job that validates, masks, classifies and stores its
records, and deletion.

The raw upload is kept under ``VERBATIM_HOME/uploads/<tenant>/<dataset>/`` until the import ends,
so that an import interrupted by a restart re-reads it; it is removed when the import ends (the
records keep the original text) or the data set is deleted.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from nlp.errors import InvalidFileError, InvalidInputError
from nlp.records import read_records
from service.storage.models import (
    Dataset,
    DatasetRecord,
    DatasetStatus,
    Job,
    JobState,
    RecordLabel,
    RecordRejection,
)
from service.storage.tenancy import HasTenant

IMPORT_KIND = "dataset_import"
MAX_NAME_CHARS = 200


def upload_dir(home: Path, tenant_id: str, dataset_id: str) -> Path:
    """Where a data set's raw upload is kept while it is imported."""
    return home / "uploads" / tenant_id / dataset_id


def _dataset_name(name: str | None, filename: str) -> str:
    cleaned = (name or "").strip() or Path(filename).name or "upload"
    if len(cleaned) > MAX_NAME_CHARS or not cleaned.isprintable():
        raise InvalidInputError(
            f"The data set name must be 1 to {MAX_NAME_CHARS} printable characters; got "
            f"{len(cleaned)} characters. Pick a shorter name, e.g. '2024-Q2 app survey'."
        )
    return cleaned[:MAX_NAME_CHARS]


def create_dataset(
    session: Session,
    principal: HasTenant,
    *,
    data: bytes,
    filename: str,
    name: str | None,
    home: Path,
) -> tuple[Dataset, Job]:
    """Validate an upload as a whole, keep it, and queue its import; the caller commits.

    Raises :class:`InvalidFileError` for whole-file problems (nothing is created then).
    """
    filename = "".join(ch for ch in Path(filename or "").name if ch.isprintable())[:255] or "upload"
    result = read_records(data, filename=filename)
    if result.total == 0:
        raise InvalidFileError(
            f"{filename} has a header but no records: expected one verbatim per row (with id and "
            "text) after the header."
        )
    dataset = Dataset(
        tenant_id=principal.tenant_id,
        name=_dataset_name(name, filename),
        status=DatasetStatus.queued.value,
        filename=filename,
        format=result.format.value,
        size_bytes=len(data),
        total=result.total,
    )
    session.add(dataset)
    session.flush()
    folder = upload_dir(home, principal.tenant_id, dataset.id)
    folder.mkdir(parents=True, exist_ok=True)
    stored = folder / f"upload.{result.format.value}"
    partial = stored.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(stored)
    job = Job(
        tenant_id=principal.tenant_id,
        kind=IMPORT_KIND,
        state=JobState.queued.value,
        counts=counts_of(total=result.total, rejected=len(result.rejected), classified=0),
        payload={
            "dataset_id": dataset.id,
            "upload": stored.relative_to(home).as_posix(),
            "filename": filename,
            "format": result.format.value,
        },
    )
    session.add(job)
    session.flush()
    dataset.job_id = job.id
    return dataset, job


def delete_dataset(session: Session, dataset: Dataset) -> None:
    """Delete a data set with its records, labels and rejections; cancel its import if live.

    The caller commits, then removes the upload with :func:`remove_upload`.
    """
    if dataset.job_id is not None:
        session.execute(
            update(Job)
            .where(Job.id == dataset.job_id, Job.state.in_([JobState.queued, JobState.running]))
            .values(
                state=JobState.cancelled.value,
                finished_at=datetime.now(UTC),
                error="The data set was deleted.",
            )
        )
    record_pks = select(DatasetRecord.pk).where(DatasetRecord.dataset_id == dataset.id)
    session.execute(delete(RecordLabel).where(RecordLabel.record_pk.in_(record_pks)))
    session.execute(delete(DatasetRecord).where(DatasetRecord.dataset_id == dataset.id))
    session.execute(delete(RecordRejection).where(RecordRejection.dataset_id == dataset.id))
    session.delete(dataset)
    session.flush()


def remove_upload(home: Path, tenant_id: str, dataset_id: str) -> None:
    """Remove a data set's kept upload, if any."""
    shutil.rmtree(upload_dir(home, tenant_id, dataset_id), ignore_errors=True)


def counts_of(*, total: int, rejected: int, classified: int) -> dict[str, int]:
    """A data set's counts: rows read, kept, rejected (with the reason), and stored with labels."""
    return {
        "total": total,
        "accepted": total - rejected,
        "rejected": rejected,
        "classified": classified,
    }
