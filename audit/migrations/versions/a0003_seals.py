"""The seals of the audit chain (audit.seal): one signed range per append transaction.

Revision ID: a0003
Revises: a0002
"""
import sqlalchemy as sa
from alembic import op

revision = "a0003"
down_revision = "a0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("audit_seals",
                    sa.Column("to_seq", sa.BigInteger, nullable=False, autoincrement=False),
                    sa.Column("from_seq", sa.BigInteger, nullable=False),
                    sa.Column("head", sa.String(64), nullable=False),
                    sa.Column("at", sa.Float, nullable=False),
                    sa.Column("key_id", sa.String(32), nullable=False),
                    sa.Column("signature", sa.String(128), nullable=False),
                    sa.PrimaryKeyConstraint("to_seq", name=op.f("pk_audit_seals")))


def downgrade() -> None:
    op.drop_table("audit_seals")
