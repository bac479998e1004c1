"""Alembic environment of the repository tables (own version table)."""
from registry.store.db import alembic_env
from repository.index import VERSION_TABLE, metadata

alembic_env(metadata, VERSION_TABLE)
