"""Alembic environment of the DMP access tables (own version table)."""
from access.store import VERSION_TABLE, metadata
from storage.database import alembic_env

alembic_env(metadata, VERSION_TABLE)
