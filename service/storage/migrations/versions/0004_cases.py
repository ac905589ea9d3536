"""support cases, their records and audit trail

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 02:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("team", sa.String(length=64), nullable=False),
        sa.Column("priority", sa.String(length=2), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("topic", sa.String(length=100), nullable=True),
        sa.Column("touchpoint", sa.String(length=100), nullable=True),
        sa.Column("lang", sa.String(length=8), nullable=True),
        sa.Column("reasons", JSON, nullable=False),
        sa.Column("customer_id", sa.String(length=256), nullable=True),
        sa.Column("assignee", sa.String(length=200), nullable=True),
        sa.Column("resolution_code", sa.String(length=64), nullable=True),
        sa.Column("notes", JSON, nullable=False),
        sa.Column("repeat_count", sa.Integer(), nullable=False),
        sa.Column("policy", sa.String(length=100), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_cases_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cases_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(
            "ix_cases_tenant_id_status_team", ["tenant_id", "status", "team"], unique=False
        )
        batch_op.create_index(
            "ix_cases_tenant_id_customer_id", ["tenant_id", "customer_id"], unique=False
        )

    op.create_table(
        "case_records",
        sa.Column("pk", BIGPK, autoincrement=True, nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("dataset_id", sa.String(length=40), nullable=False),
        sa.Column("record_id", sa.String(length=256), nullable=False),
        sa.Column("priority", sa.String(length=2), nullable=False),
        sa.Column("reasons", JSON, nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_records_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_case_records")),
        sa.UniqueConstraint(
            "dataset_id", "record_id", name="uq_case_records_dataset_id_record_id"
        ),
    )
    with op.batch_alter_table("case_records", schema=None) as batch_op:
        batch_op.create_index("ix_case_records_case_id", ["case_id"], unique=False)

    op.create_table(
        "case_audit",
        sa.Column("pk", BIGPK, autoincrement=True, nullable=False),
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.String(length=40), nullable=False),
        sa.Column("actor_name", sa.String(length=100), nullable=False),
        sa.Column("field", sa.String(length=32), nullable=False),
        sa.Column("old", JSON, nullable=True),
        sa.Column("new", JSON, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_audit_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_case_audit")),
    )
    with op.batch_alter_table("case_audit", schema=None) as batch_op:
        batch_op.create_index("ix_case_audit_case_id_at", ["case_id", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("case_audit", schema=None) as batch_op:
        batch_op.drop_index("ix_case_audit_case_id_at")
    op.drop_table("case_audit")
    with op.batch_alter_table("case_records", schema=None) as batch_op:
        batch_op.drop_index("ix_case_records_case_id")
    op.drop_table("case_records")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_tenant_id_customer_id")
        batch_op.drop_index("ix_cases_tenant_id_status_team")
        batch_op.drop_index(batch_op.f("ix_cases_tenant_id"))
    op.drop_table("cases")
