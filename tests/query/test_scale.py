"""GetAll for one large record: work and memory grow with the answer, not faster (issue 3).

One patient with 1,000 entries and one with 5,000 (benchmarks/loader.py: the rows and stored
ebRIM Registry.register writes, four documents per submission). Memory is the tracemalloc peak
of answering; work is the number of SQL statements. Speed is measured by benchmarks/query.py,
never asserted here.
"""
from __future__ import annotations

import time
import tracemalloc

import pytest
from sqlalchemy import event

from benchmarks import loader
from tests.query.conftest import run
from xds.vocabulary import Status

SMALL, LARGE = 1_000, 5_000


@pytest.fixture
def records(db):
    naming = loader.Naming()
    template = loader.capture(0, 4)
    small = loader.fill_patient(db.url, 1, SMALL, naming, template)
    large = loader.fill_patient(db.url, 2, LARGE, naming, template)
    return small, large


def get_all(db, patient: str):
    approved = f"('{Status.APPROVED}')"
    return run(db, "GetAll", {"$patientId": f"'{patient}'", "$XDSDocumentEntryStatus": approved,
                              "$XDSSubmissionSetStatus": approved, "$XDSFolderStatus": approved},
               max_results=4 * LARGE)


def measure(db, patient: str) -> tuple[int, int, float, int]:
    """(objects, tracemalloc peak bytes, seconds, SQL statements) of one GetAll."""
    statements = []

    def count(*_args):
        statements.append(1)

    event.listen(db.reader, "before_cursor_execute", count)
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        result = get_all(db, patient)
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        event.remove(db.reader, "before_cursor_execute", count)
    assert result.ok, [(e.code, e.context) for e in result.errors]
    return len(result.objects), peak, seconds, len(statements)


def test_get_all_grows_linearly_with_the_record(db, records):
    small, large = records
    get_all(db, small)  # warm: compiled statement caches, the pool
    n_small, mem_small, t_small, sql_small = measure(db, small)
    n_large, mem_large, t_large, sql_large = measure(db, large)
    # documents, their SubmissionSets (one per 4 documents) and the HasMember associations
    assert n_small == SMALL + SMALL // 4 + SMALL
    assert n_large == LARGE + LARGE // 4 + LARGE
    report = (f"{n_small} objects: {mem_small / 2**20:.1f} MiB peak, {t_small * 1000:.0f} ms, {sql_small} statements; "
              f"{n_large} objects: {mem_large / 2**20:.1f} MiB peak, {t_large * 1000:.0f} ms, {sql_large} statements")
    print(report)
    assert mem_large / mem_small < 7, "memory grows faster than the answer: " + report
    # statements: a fixed few plus one per 500 ids (engine.CHUNK)
    assert sql_large <= 5 * sql_small + 4, "SQL statements grow faster than the answer: " + report
