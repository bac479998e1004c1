"""Owned pending rows and leases (issue 19): a pending row names the process that wrote it; each
running process, and the elected reconciler, hold a lease row.

Revision ID: r0002
Revises: r0001
Create Date: 2026-12-14
"""
import sqlalchemy as sa
from alembic import op

revision = "r0002"
down_revision = "r0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("repository_documents") as batch:
        batch.add_column(sa.Column("owner", sa.String(length=128), nullable=True))
    op.create_table(
        "repository_leases",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_repository_leases")),
    )


def downgrade() -> None:
    op.drop_table("repository_leases")
    with op.batch_alter_table("repository_documents") as batch:
        batch.drop_column("owner")
