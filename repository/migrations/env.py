"""Alembic environment of the repository tables (own version table)."""
from storage.database import alembic_env
from repository.index import VERSION_TABLE, metadata

alembic_env(metadata, VERSION_TABLE)
