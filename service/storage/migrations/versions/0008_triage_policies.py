"""triage policies per tenant and their versions

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "triage_policies",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_triage_policies_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_triage_policies")),
        sa.UniqueConstraint("tenant_id", name="uq_triage_policies_tenant_id"),
    )
    with op.batch_alter_table("triage_policies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_triage_policies_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "triage_policy_versions",
        sa.Column("policy_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("yaml", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["triage_policies.id"],
            name=op.f("fk_triage_policy_versions_policy_id_triage_policies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("policy_id", "version", name=op.f("pk_triage_policy_versions")),
    )


def downgrade() -> None:
    op.drop_table("triage_policy_versions")
    with op.batch_alter_table("triage_policies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_triage_policies_tenant_id"))

    op.drop_table("triage_policies")
