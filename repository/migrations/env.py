"""Alembic environment of the repository tables (own version table)."""
from repository.index import VERSION_TABLE, metadata
from storage.database import alembic_env

alembic_env(metadata, VERSION_TABLE)
