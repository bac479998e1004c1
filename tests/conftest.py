"""Fixtures shared by the suite: a database per back-end and a live server per back-end."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from registry.store import migrate as migrate_registry
from tests.support.databases import BACKENDS, database_url
from tests.support.server import start_server

AUDITOR_TOKEN = "test-auditor-token-4c7f0a9e"
"""The ``live_server``'s auditor (``audit_reader_tokens``): ITI-81 answers auditors only."""
SHARED = Path(os.environ.get("XDS_SHARED_DIR", Path(__file__).resolve().parents[1].parent / "shared"))


def shared_path(*parts: str) -> Path:
    """A file of ../shared; fails in CI and skips elsewhere when it is missing (DESIGN.md section 7)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: CI must have ../shared")
        pytest.skip(f"{path} is missing (../shared not laid out on this machine)")
    return path


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def db(backend, tmp_path):
    """A migrated registry database on each back-end."""
    from storage.database import Database
    url, handle = database_url(backend, tmp_path)
    database = Database(url)
    migrate_registry(database)
    yield database
    database.dispose()
    if handle is not None:
        handle.close()


@pytest.fixture(scope="session", params=BACKENDS)
def live_server(request, tmp_path_factory):
    """``xds serve`` on each back-end, shared by the tests of a session."""
    tmp = tmp_path_factory.mktemp(f"server-{request.param}")
    url, handle = database_url(request.param, tmp)
    server = start_server(tmp / "data", url, env={"XDS_AUDIT_READER_TOKENS": json.dumps({"auditor": AUDITOR_TOKEN})})
    server.backend = request.param
    yield server
    code = server.stop()
    if handle is not None:
        handle.close()
    assert code == 0, f"xds serve did not exit cleanly on SIGTERM ({code}):\n{server.log()}"
