"""Audit tables: outbox (durable send queue), per-destination cursors, hash-chained records, record keys.

Revision ID: a0001
Revises:
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "a0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_outbox",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("message", sa.LargeBinary(), nullable=False),
        sa.Column("fields", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_outbox")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "audit_cursors",
        sa.Column("destination", sa.String(length=255), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("destination", name=op.f("pk_audit_cursors")),
    )
    op.create_table(
        "audit_records",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("transport", sa.String(length=8), nullable=False),
        sa.Column("peer", sa.String(length=255), nullable=True),
        sa.Column("event_ts", sa.Float(), nullable=True),
        sa.Column("event_id", sa.String(length=64), nullable=True),
        sa.Column("event_action", sa.String(length=4), nullable=True),
        sa.Column("event_type", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.Integer(), nullable=True),
        sa.Column("source_id", sa.String(length=255), nullable=True),
        sa.Column("purpose", sa.String(length=512), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("keys", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_records")),
    )
    op.create_index(op.f("ix_audit_records_event_ts"), "audit_records", ["event_ts"])
    op.create_index(op.f("ix_audit_records_event_id_event_ts"), "audit_records", ["event_id", "event_ts"])
    op.create_table(
        "audit_record_keys",
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
    )
    op.create_index(op.f("ix_audit_record_keys_kind_value_seq"), "audit_record_keys", ["kind", "value", "seq"])
    op.create_index(op.f("ix_audit_record_keys_seq"), "audit_record_keys", ["seq"])


def downgrade() -> None:
    op.drop_table("audit_record_keys")
    op.drop_table("audit_records")
    op.drop_table("audit_cursors")
    op.drop_table("audit_outbox")
