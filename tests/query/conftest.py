"""Fixtures and helpers of the stored query tests."""
from __future__ import annotations

import pytest

from registry.query import BY_NAME, run_stored_query
from tests.query.builders import PID, Store
from xds.vocabulary import Status

APPROVED = f"('{Status.APPROVED}')"
DEPRECATED = f"('{Status.DEPRECATED}')"
BOTH = f"('{Status.APPROVED}','{Status.DEPRECATED}')"


def slots(value) -> list[list[str]]:
    """'v' -> one Slot with one Value; ['a','b'] -> one Slot, two Values; (['a'],['b']) -> two Slots."""
    if isinstance(value, str):
        return [[value]]
    if isinstance(value, tuple):
        return [list(v) if not isinstance(v, str) else [v] for v in value]
    return [list(value)]


def run(db, name: str, params: dict, return_type: str = "LeafClass", **kw):
    query_id = BY_NAME[name].id if name in BY_NAME else name
    return run_stored_query(db, query_id, {k: slots(v) for k, v in params.items()}, return_type, **kw)


def find_docs(db, patient: str = PID, status: str = APPROVED, **params):
    """FindDocuments with keyword names without the $XDSDocumentEntry prefix."""
    p = {"$XDSDocumentEntryPatientId": f"'{patient}'", "$XDSDocumentEntryStatus": status}
    p.update({"$XDSDocumentEntry" + k: v for k, v in params.items()})
    return run(db, "FindDocuments", p)


def codes_of(result) -> list[str]:
    return [e.code for e in result.errors]


@pytest.fixture
def store(db) -> Store:
    return Store(db)
