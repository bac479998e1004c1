"""Alembic environment of the DMP access tables (own version table)."""
from storage.database import alembic_env
from access.store import VERSION_TABLE, metadata

alembic_env(metadata, VERSION_TABLE)
