"""Sweep: settle what a crash left between "bytes stored" and "registry answered".

* staged files of processes that are gone (a crash while a document streamed in) are deleted;
* each ``pending`` index row older than a bound is asked about at the registry: if the registry
  knows the uniqueId with the same hash, the registration went through before the crash and the row
  becomes ``committed``; otherwise the row is deleted, and the bytes with it when no row uses them.

If the registry cannot be asked (remote and unreachable) the rows stay pending, unretrievable,
for the next sweep.

Only rows older than :data:`PENDING_MIN_AGE` are settled by default. Issue 19 finding 1: the
start-up sweep used no age limit, so a second server on the same database (the README's stateless
workers) or an immediate restart after a master SIGKILL deleted other processes' in-flight
submissions - 36 + 1 acknowledged documents lost (two servers on PostgreSQL; restarts on SQLite).
A row younger than the bound may belong to a live request of another process; the longest request
is bounded by the gunicorn timeout (300 s) and the registry timeout (30 s), so 900 s leaves a
margin of three times the longest request. Tests of crash recovery pass ``older_than=0``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import update

from repository.index import COMMITTED, PENDING, DocumentIndex, documents
from repository.registry_client import RegistryGateway
from repository.store import DocumentStore
from repository.transactions import Repository

log = logging.getLogger(__name__)

PENDING_MIN_AGE = 900.0
"""Seconds: a pending row or staged file younger than this may be another process's request in flight."""


@dataclass
class SweepReport:
    staged_removed: int = 0
    committed: int = 0
    removed: int = 0
    undecided: int = 0


def sweep(store: DocumentStore, index: DocumentIndex, registry: RegistryGateway, older_than: float = PENDING_MIN_AGE,
          batch: int = 500, max_batches: int = 10_000) -> SweepReport:

    report = SweepReport(staged_removed=store.sweep_staging(older_than))
    releaser = Repository(store, index, registry, repository_unique_id="")
    for _ in range(max_batches):
        rows = index.pending(older_than=older_than, limit=batch)
        if not rows:
            break
        known = registry.registered_hashes([r.unique_id for r in rows])
        if known is None:
            report.undecided += len(rows)
            log.warning("sweep: registry not reachable; %d pending documents left for the next sweep", len(rows))
            break
        for r in rows:
            if r.unique_id in known and (known[r.unique_id] in (None, r.ref.sha1)):
                with index.db.write() as conn:
                    conn.execute(update(documents)
                                 .where(documents.c.unique_id == r.unique_id, documents.c.state == PENDING)
                                 .values(state=COMMITTED))
                report.committed += 1
            else:
                releaser.release(r.unique_id, r.ref, txn=None)
                report.removed += 1
    if report.committed or report.removed or report.staged_removed:
        log.info("repository sweep: %s", report)
    return report
