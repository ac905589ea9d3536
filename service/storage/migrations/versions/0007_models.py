"""model registry: model versions, the promoted pointer, promotion events, training runs

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"],
        ["tenants.id"],
        name=op.f(f"fk_{table}_tenant_id_tenants"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("parent_version", sa.String(length=64), nullable=True),
        sa.Column("base_version", sa.String(length=64), nullable=False),
        sa.Column("taxonomy_id", sa.String(length=40), nullable=True),
        sa.Column("taxonomy_key", sa.String(length=64), nullable=True),
        sa.Column("taxonomy_version", sa.Integer(), nullable=True),
        sa.Column("training_run_id", sa.String(length=40), nullable=True),
        sa.Column("model_dir", sa.Text(), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("guard", JSON, nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("promoted_at", TS, nullable=True),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        _tenant_fk("model_versions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("tenant_id", "version", name="uq_model_versions_tenant_id_version"),
    )
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_model_versions_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "tenant_models",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("promoted_version", sa.String(length=64), nullable=True),
        sa.Column("history", JSON, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        _tenant_fk("tenant_models"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenant_models")),
    )

    op.create_table(
        "model_events",
        sa.Column("pk", BIGPK, autoincrement=True, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("previous_version", sa.String(length=64), nullable=True),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("guard", JSON, nullable=True),
        sa.Column("actor_id", sa.String(length=40), nullable=False),
        sa.Column("actor_name", sa.String(length=100), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        _tenant_fk("model_events"),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_model_events")),
    )
    with op.batch_alter_table("model_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_events_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index("ix_model_events_tenant_id_at", ["tenant_id", "at"], unique=False)

    op.create_table(
        "training_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("parent_version", sa.String(length=64), nullable=True),
        sa.Column("taxonomy_id", sa.String(length=40), nullable=True),
        sa.Column("taxonomy_version", sa.Integer(), nullable=True),
        sa.Column("params", JSON, nullable=False),
        sa.Column("result", JSON, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        _tenant_fk("training_runs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_runs")),
        sa.UniqueConstraint("tenant_id", "version", name="uq_training_runs_tenant_id_version"),
    )
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_training_runs_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_training_runs_tenant_id"))
    op.drop_table("training_runs")
    with op.batch_alter_table("model_events", schema=None) as batch_op:
        batch_op.drop_index("ix_model_events_tenant_id_at")
        batch_op.drop_index(batch_op.f("ix_model_events_tenant_id"))
    op.drop_table("model_events")
    op.drop_table("tenant_models")
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_versions_tenant_id"))
    op.drop_table("model_versions")
