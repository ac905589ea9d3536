"""Every table, one module per resource. Importing this package registers them on ``Base.metadata``.

A new resource adds its module here and an Alembic migration under ``storage/migrations/versions``.
"""

from __future__ import annotations

from service.storage.models.analyses import Analysis, AnalysisItem, AnalysisStatus  # noqa: F401
from service.storage.models.api_keys import ApiKey
from service.storage.models.cases import Case, CaseAudit, CaseRecord, CaseStatus
from service.storage.models.datasets import (
    Dataset,
    DatasetRecord,
    DatasetStatus,
    LabelKind,
    RecordLabel,
    RecordRejection,
)
from service.storage.models.jobs import Job, JobState
from service.storage.models.labels import AnalystLabel, LabelSource  # noqa: F401
from service.storage.models.registry import ModelEvent, ModelVersion, TenantModel, TrainingRun  # noqa: F401
from service.storage.models.taxonomies import TaxonomyVersion, TenantTaxonomy
from service.storage.models.tenants import Tenant
from service.storage.models.triage_policies import TenantTriagePolicy, TriagePolicyVersion

__all__ = [
    "ApiKey",
    "Case",
    "CaseAudit",
    "CaseRecord",
    "CaseStatus",
    "Dataset",
    "DatasetRecord",
    "DatasetStatus",
    "Job",
    "JobState",
    "LabelKind",
    "RecordLabel",
    "RecordRejection",
    "TaxonomyVersion",
    "Tenant",
    "TenantTaxonomy",
    "TenantTriagePolicy",
    "TriagePolicyVersion",
]
