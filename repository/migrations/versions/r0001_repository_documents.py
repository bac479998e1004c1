"""Repository index: document uniqueId -> content address, hashes, size, mimeType, state.

Revision ID: r0001
Revises:
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = "r0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "repository_documents",
        sa.Column("unique_id", sa.String(length=128), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("sha1", sa.String(length=40), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mime_type", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("txn", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("unique_id", name=op.f("pk_repository_documents")),
    )
    op.create_index(op.f("ix_repository_documents_address"), "repository_documents", ["address"])
    op.create_index(op.f("ix_repository_documents_state_created_at"), "repository_documents",
                    ["state", "created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_repository_documents_state_created_at"), table_name="repository_documents")
    op.drop_index(op.f("ix_repository_documents_address"), table_name="repository_documents")
    op.drop_table("repository_documents")
