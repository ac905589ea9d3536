"""analyst labels: per-record (or free-text) sentiment, topics and touchpoints, with history

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "analyst_labels",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=320), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.String(length=40), nullable=True),
        sa.Column("record_id", sa.String(length=256), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=True),
        sa.Column("sentiment", sa.String(length=16), nullable=True),
        sa.Column("topics", JSON, nullable=True),
        sa.Column("touchpoints", JSON, nullable=True),
        sa.Column("taxonomy_key", sa.String(length=64), nullable=False),
        sa.Column("taxonomy_version", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.String(length=40), nullable=False),
        sa.Column("author_name", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("superseded_by", sa.String(length=40), nullable=True),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_analyst_labels_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analyst_labels")),
        sa.UniqueConstraint(
            "tenant_id", "subject", "revision", name="uq_analyst_labels_tenant_id_subject_revision"
        ),
    )
    with op.batch_alter_table("analyst_labels", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_analyst_labels_tenant_id"), ["tenant_id"], unique=False
        )
        batch_op.create_index(
            "ix_analyst_labels_tenant_id_dataset_id_record_id",
            ["tenant_id", "dataset_id", "record_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_analyst_labels_tenant_id_superseded_by",
            ["tenant_id", "superseded_by"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("analyst_labels", schema=None) as batch_op:
        batch_op.drop_index("ix_analyst_labels_tenant_id_superseded_by")
        batch_op.drop_index("ix_analyst_labels_tenant_id_dataset_id_record_id")
        batch_op.drop_index(batch_op.f("ix_analyst_labels_tenant_id"))
    op.drop_table("analyst_labels")
