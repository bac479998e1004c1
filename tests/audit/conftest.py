from __future__ import annotations

import pytest

from tests.audit.support import make_pki


@pytest.fixture
def audit_db(db):
    """The ``db`` fixture (SQLite and PostgreSQL) with the audit tables."""
    from audit import store
    store.migrate(db)
    return db


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))
