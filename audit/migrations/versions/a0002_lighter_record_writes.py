"""Cheaper audit writes: drop the redundant ``audit_record_keys (seq)`` index; lz4 for messages.

Every audit record adds about eight key rows. Searches reach them through the
``(kind, value, seq)`` index, which also answers the ``seq`` of the correlated EXISTS, so the
single-column ``seq`` index only cost one more index insert per key row. On PostgreSQL the
messages (``audit_outbox.message``, ``audit_records.raw``: about 2.7 KB, so TOASTed) are
compressed with lz4 rather than pglz, as the registry does for its stored ebRIM: several times
cheaper to compress on write and to decompress when the sender reads the outbox
(benchmarks/audit.py).

Revision ID: a0002
Revises: a0001
"""
from alembic import op

revision = "a0002"
down_revision = "a0001"
branch_labels = None
depends_on = None

_COMPRESSED = (("audit_outbox", "message"), ("audit_records", "raw"))


def _lz4_available(bind) -> bool:
    return bind.dialect.name == "postgresql" and bind.exec_driver_sql(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'").scalar() is True


def upgrade() -> None:
    op.drop_index("ix_audit_record_keys_seq", table_name="audit_record_keys")
    bind = op.get_bind()
    if _lz4_available(bind):
        for table, column in _COMPRESSED:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION lz4")


def downgrade() -> None:
    bind = op.get_bind()
    if _lz4_available(bind):
        for table, column in _COMPRESSED:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION pglz")
    op.create_index("ix_audit_record_keys_seq", "audit_record_keys", ["seq"])
