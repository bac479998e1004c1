"""An in-process repository (both back-ends through the ``db`` fixture) and its /repository WSGI app."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

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
        return sorted((self.documents_dir / "staging").iterdir())

    def index_rows(self) -> list:
        from sqlalchemy import select
        from repository.index import documents
        with self.database.read() as conn:
            return conn.execute(select(documents).order_by(documents.c.unique_id)).all()


def build_env(db, tmp_path: Path, **overrides) -> Env:
    from registry.register import Registry
    from repository.service import build_repository, repository_operations
    from xds.app import Services
    from xds.config import Settings
    from xds.soap import SoapEndpoint
    from repository.service import WSDL

    settings = Settings(data_dir=tmp_path / "data", database_url=db.url, **overrides)
    registry = Registry(db)
    registry.add_patient(PATIENT)
    services = Services(settings=settings, database=db, registry=registry)
    repository = build_repository(services)
    app = SoapEndpoint(repository_operations(repository), wsdl_path=WSDL,
                       max_request_bytes=settings.max_request_bytes)
    return Env(settings, db, registry, repository, app, settings.documents_dir)


@pytest.fixture
def env(db, tmp_path) -> Env:
    return build_env(db, tmp_path)
