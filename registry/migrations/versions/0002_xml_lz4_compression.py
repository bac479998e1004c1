"""PostgreSQL: compress the stored ebRIM (registry_objects.xml) with lz4 instead of pglz.

Every LeafClass answer decompresses the XML of each object it returns and every registration
compresses it; lz4 does both several times faster than PostgreSQL's default pglz for about the same
size on disk (benchmarks/loader.py: COPY of document XML 88 MB/s with lz4 against 37 MB/s with
pglz, 64 MiB against 59 MiB for 161 MB). Values already stored keep their compression until
rewritten; new values use lz4. Nothing to do on SQLite, or on a PostgreSQL built without lz4.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def _lz4_available(bind) -> bool:
    return bind.dialect.name == "postgresql" and bind.exec_driver_sql(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'").scalar() is True


def upgrade() -> None:
    bind = op.get_bind()
    if _lz4_available(bind):
        op.execute("ALTER TABLE registry_objects ALTER COLUMN xml SET COMPRESSION lz4")


def downgrade() -> None:
    bind = op.get_bind()
    if _lz4_available(bind):
        op.execute("ALTER TABLE registry_objects ALTER COLUMN xml SET COMPRESSION pglz")
