"""Alembic environment of the portal tables (own version table)."""
from portal.accounts import VERSION_TABLE, metadata
from storage.database import alembic_env

alembic_env(metadata, VERSION_TABLE)
