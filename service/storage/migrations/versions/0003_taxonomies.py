"""taxonomies and their versions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 02:30:59.505765
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "taxonomies",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name_zh", sa.String(length=200), nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_taxonomies_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_taxonomies")),
        sa.UniqueConstraint("tenant_id", "key", name="uq_taxonomies_tenant_id_key"),
    )
    with op.batch_alter_table("taxonomies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_taxonomies_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "taxonomy_versions",
        sa.Column("taxonomy_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("yaml", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["taxonomy_id"],
            ["taxonomies.id"],
            name=op.f("fk_taxonomy_versions_taxonomy_id_taxonomies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("taxonomy_id", "version", name=op.f("pk_taxonomy_versions")),
    )


def downgrade() -> None:
    op.drop_table("taxonomy_versions")
    with op.batch_alter_table("taxonomies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_taxonomies_tenant_id"))

    op.drop_table("taxonomies")
