"""Sweep: settle what a crash left between "bytes stored" and "registry answered".

* staged files of processes that are gone (a crash while a document streamed in) are deleted;
* ITI-86 removals a crash interrupted are finished (:func:`repository.removal.finish_removals`);
* each ``pending`` index row whose owner is gone is asked about at the registry: if the registry
  knows the uniqueId with the same hash, the registration went through before the crash and the row
  becomes ``committed``; otherwise the row is deleted, and the bytes with it when no row uses them.

If the registry cannot be asked (remote and unreachable) the rows stay pending, unretrievable,
for the next sweep.

Which rows are settled (issue 19 finding 1: the start-up sweep used no limit, so a second server
on the same database or an immediate restart after a master SIGKILL deleted other processes'
in-flight submissions - 36 + 1 acknowledged documents lost):

* a row with an ``owner`` only when the owner's lease has expired (the process is gone, see
  :mod:`repository.reconciler`) and the row is older than ``owned_older_than`` (default one lease
  period): a live process's submission is never touched, whatever its age;
* a row without an owner (written before leases existed) only when older than
  :data:`PENDING_MIN_AGE`: the longest request is bounded by the gunicorn timeout (300 s) and the
  registry timeout (30 s), so 900 s leaves a margin of three times the longest request.

Tests of crash recovery pass ``older_than=0``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from repository.index import DocumentIndex, IndexRow
from repository.registry_client import RegistryGateway
from repository.removal import finish_removals
from repository.store import DocumentStore
from repository.transactions import Repository

log = logging.getLogger(__name__)

PENDING_MIN_AGE = 900.0
"""Seconds: a pending row without an owner, or a staged file of another host, younger than this may
be another process's request in flight."""

LEASE_SECONDS = 30.0
"""Default lease of a running process (``repository_lease_seconds``): renewed every third of it."""


@dataclass
class SweepReport:
    staged_removed: int = 0
    committed: int = 0
    removed: int = 0
    undecided: int = 0
    removals_finished: int = 0


def sweep(store: DocumentStore, index: DocumentIndex, registry: RegistryGateway, older_than: float = PENDING_MIN_AGE,
          batch: int = 500, max_batches: int = 10_000, owned_older_than: float = LEASE_SECONDS) -> SweepReport:
    """Settle the staging files and pending rows of processes that are gone (see the module docstring)."""
    report = SweepReport(staged_removed=store.sweep_staging(older_than),
                         removals_finished=finish_removals(store, index))
    for _ in range(max_batches):
        rows = index.settleable(older_than, owned_older_than, limit=batch)
        if not rows or not settle(store, index, registry, rows, report):
            break
    if report.committed or report.removed or report.staged_removed or report.removals_finished:
        log.info("repository sweep: %s", report)
    return report


def settle(store: DocumentStore, index: DocumentIndex, registry: RegistryGateway, rows: list[IndexRow],
           report: SweepReport) -> bool:
    """Commit the rows the registry knows with their hash, remove the others with their bytes.

    Each row is committed or removed only as the pending row of its own submission (its ``txn``):
    a new submission of the same uniqueId that started meanwhile keeps its row. False when the
    registry cannot tell now (the rows stay pending, counted as undecided)."""
    known = registry.registered_hashes(sorted({r.unique_id for r in rows}))
    if known is None:
        report.undecided += len(rows)
        log.warning("sweep: registry not reachable; %d pending documents left for the next sweep", len(rows))
        return False
    releaser = Repository(store, index, registry, repository_unique_id="")
    for r in rows:
        if r.unique_id in known and (known[r.unique_id] in (None, r.ref.sha1)):
            if index.commit_settled(r.unique_id, r.txn):
                report.committed += 1
        else:
            releaser.release(r.unique_id, r.ref, txn=r.txn)
            report.removed += 1
    return True
