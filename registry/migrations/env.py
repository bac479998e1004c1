"""Alembic environment of the registry tables."""
from registry.store.db import alembic_env
from registry.store.schema import metadata

alembic_env(metadata)
