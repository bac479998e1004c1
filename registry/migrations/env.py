"""Alembic environment of the registry tables."""
from storage.database import alembic_env
from registry.store.schema import metadata

alembic_env(metadata)
