"""Alembic environment of the audit tables (own version table)."""
from audit.store import VERSION_TABLE, metadata
from storage.database import alembic_env

alembic_env(metadata, VERSION_TABLE)
