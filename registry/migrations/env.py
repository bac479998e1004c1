"""Alembic environment of the registry tables."""
from registry.store.schema import metadata
from storage.database import alembic_env

alembic_env(metadata)
