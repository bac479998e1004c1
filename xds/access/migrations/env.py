"""Alembic environment of the DMP access tables (own version table)."""
from registry.store.db import alembic_env
from xds.access.store import VERSION_TABLE, metadata

alembic_env(metadata, VERSION_TABLE)
