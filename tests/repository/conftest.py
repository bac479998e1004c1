"""An in-process repository (both back-ends through the ``db`` fixture) and its /repository WSGI app."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bindings.repository import repository_endpoint
from config import Settings
from server.app import SOAP_HEADERS, build_services
from tests.repository.support import PATIENT


@dataclass
class Env:
    settings: object
    database: object
    registry: object
    repository: object
    app: object
    documents_dir: Path

    def stored_files(self) -> list[Path]:
        return sorted(p for p in (self.documents_dir / "objects").rglob("*") if p.is_file())

    def staged_files(self) -> list[Path]:
        return sorted(p for p in (self.documents_dir / "staging").rglob("*") if p.is_file())

    def index_rows(self) -> list:
        from sqlalchemy import select

        from repository.index import documents
        with self.database.read() as conn:
            return conn.execute(select(documents).order_by(documents.c.unique_id)).all()


def build_env(db, tmp_path: Path, **overrides) -> Env:
    settings = Settings(data_dir=tmp_path / "data", database_url=db.url, **({"audit_enabled": False} | overrides))
    services = build_services(settings)
    services.registry.add_patient(PATIENT)
    app = repository_endpoint(services, SOAP_HEADERS)
    return Env(settings, db, services.registry, services.repository, app, settings.documents_dir)


@pytest.fixture
def env(db, tmp_path) -> Iterator[Env]:
    built = build_env(db, tmp_path)
    yield built
    built.repository.close()  # its reconciler thread, before the database goes
