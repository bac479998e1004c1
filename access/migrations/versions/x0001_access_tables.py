"""DMP access policy tables: records, professionals, documents, emergency accesses, seen assertions.

Revision ID: x0001
Revises:
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "x0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_records",
        sa.Column("patient_id", sa.String(length=256), nullable=False),
        sa.Column("treating_physician", sa.String(length=128), nullable=True),
        sa.Column("break_glass_allowed", sa.Boolean(), nullable=False),
        sa.Column("centre_15_allowed", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_access_records")),
    )
    op.create_table(
        "access_professionals",
        sa.Column("patient_id", sa.String(length=256), nullable=False),
        sa.Column("professional_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("patient_id", "professional_id", name=op.f("pk_access_professionals")),
    )
    op.create_table(
        "access_documents",
        sa.Column("unique_id", sa.String(length=128), nullable=False),
        sa.Column("patient_id", sa.String(length=256), nullable=False),
        sa.Column("masked", sa.Boolean(), nullable=True),
        sa.Column("disclosed", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("unique_id", name=op.f("pk_access_documents")),
    )
    op.create_table(
        "access_emergency",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("patient_id", sa.String(length=256), nullable=False),
        sa.Column("professional_id", sa.String(length=128), nullable=False),
        sa.Column("professional_name", sa.String(length=256), nullable=True),
        sa.Column("organization", sa.String(length=256), nullable=True),
        sa.Column("mode", sa.String(length=32), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_emergency")),
    )
    op.create_index(op.f("ix_access_emergency_patient_id_at"), "access_emergency", ["patient_id", "at"])
    op.create_table(
        "access_assertions",
        sa.Column("assertion_id", sa.String(length=256), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("assertion_id", name=op.f("pk_access_assertions")),
    )
    op.create_index(op.f("ix_access_assertions_expires_at"), "access_assertions", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_access_assertions_expires_at"), table_name="access_assertions")
    op.drop_table("access_assertions")
    op.drop_index(op.f("ix_access_emergency_patient_id_at"), table_name="access_emergency")
    op.drop_table("access_emergency")
    op.drop_table("access_documents")
    op.drop_table("access_professionals")
    op.drop_table("access_records")
