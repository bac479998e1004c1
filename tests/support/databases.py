"""Database back-ends the suite runs on: SQLite (embedded default) and PostgreSQL (production).

PostgreSQL is at 127.0.0.1:5432 (user postgres, database test) on developer machines and in CI.
Each use gets its own schema, so runs never see each other's rows. In CI (``CI`` set) an
unreachable PostgreSQL fails the run instead of skipping.
"""
from __future__ import annotations

import os
import uuid
from urllib.parse import quote

import pytest

PG_BASE = os.environ.get("XDS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = [b for b in os.environ.get("XDS_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]


def postgres_available() -> str | None:
    """None when PostgreSQL answers, else the reason."""
    from sqlalchemy import create_engine, text
    try:
        engine = create_engine(PG_BASE)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the reason
        return f"PostgreSQL at {PG_BASE} is not reachable: {exc.__class__.__name__}: {exc}"


def require_postgres() -> None:
    reason = postgres_available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI must run the PostgreSQL tests)")
        pytest.skip(reason)


class PostgresSchema:
    """A fresh schema in the test database, dropped on close."""

    def __init__(self) -> None:
        from sqlalchemy import create_engine, text
        self.name = "xds_t_" + uuid.uuid4().hex[:12]
        self._admin = create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.name}"'))
        self.url = f"{PG_BASE}?options={quote('-csearch_path=' + self.name)}"

    def close(self) -> None:
        from sqlalchemy import text
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE'))
        self._admin.dispose()


def database_url(backend: str, tmp_path) -> tuple[str, object | None]:
    """A URL for ``backend`` and the handle to clean up afterwards."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}", None
    require_postgres()
    schema = PostgresSchema()
    return schema.url, schema
