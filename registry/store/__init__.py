"""Metadata storage of the Document Registry (DESIGN.md section 4)."""
from pathlib import Path

from storage import Database

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
"""The registry's Alembic history (its tables: ``registry.store.schema``)."""


def migrate(database: Database) -> None:
    """Bring the registry's tables to the newest revision (idempotent)."""
    database.migrate(MIGRATIONS)
