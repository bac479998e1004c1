"""Ownership of in-flight submissions and the background reconciler (issue 19, findings 1 and 2).

Every process that serves ITI-41 is an *owner*: an id (host, pid, start time and a random part)
written on each pending index row it creates, and a lease row in ``repository_leases`` that it
renews every third of ``repository_lease_seconds``. While the lease holds, no other process touches
its rows, whatever their age: any number of servers share one database and one document store.

Each owner runs a :class:`Reconciler` thread that

* renews its lease;
* settles, against the registry, its own rows that it could not settle during the request (the
  index commit failed after the registry's Success, or a rollback failed:
  :attr:`repository.transactions.Repository.unsettled`), retrying until it succeeds;
* when elected (the ``reconciler`` lease, taken through the same table on SQLite and PostgreSQL),
  every ``repository_reconcile_interval`` runs :func:`repository.recovery.sweep` over the rows of
  owners that are gone (lease expired) - a worker killed between the registry commit and the index
  commit no longer leaves a registered document unretrievable until the next full restart.

If an owner is alive but cannot renew its lease for a whole lease period (database unreachable),
its rows may be settled under it: a row removed that way makes its own commit update no row and the
submission answers a Failure (``Repository._commit``), so no acknowledged document is lost.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import uuid
import weakref

from repository.index import RECONCILER_LEASE
from repository.recovery import PENDING_MIN_AGE, SweepReport, settle, sweep
from repository.store import host_name
from repository.transactions import Repository

log = logging.getLogger(__name__)

FORGET_LEASES_AFTER = 86_400.0
"""Seconds after which an expired owner's lease row is deleted (an absent lease reads as gone)."""


def new_owner_id() -> str:
    """``<host>-<pid>-<start ms>-<random>``: unique across hosts, restarts and reused pids."""
    return f"{host_name()}-{os.getpid()}-{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}"


class Reconciler:
    """The lease of one owner and its settling work; :meth:`run_once` is one round of it."""

    def __init__(self, repository: Repository, lease_seconds: float, interval: float,
                 unowned_older_than: float = PENDING_MIN_AGE) -> None:
        if repository.owner is None:
            raise ValueError("a reconciler needs a repository with an owner id")
        self.repository = repository
        self.owner: str = repository.owner
        self.lease_seconds = lease_seconds
        self.interval = interval
        self.unowned_older_than = unowned_older_than
        self._next_sweep = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> bool:
        """Renew this owner's lease; False if the database could not be reached."""
        try:
            return self.repository.index.hold_lease(self.owner, self.owner, self.lease_seconds)
        except Exception:  # noqa: BLE001 - retried at the next beat
            log.exception("repository: could not renew the lease of %s", self.owner)
            return False

    def settle_own(self) -> SweepReport:
        """Settle this process's queued rows against the registry; what cannot be settled now is
        queued again."""
        repo = self.repository
        report = SweepReport()
        keys = repo.unsettled.take()
        if not keys:
            return report
        try:
            rows = repo.index.pending_of(keys)
            if rows and not settle(repo.store, repo.index, repo.registry, rows, report):
                repo.unsettled.put_back(keys)
        except Exception:  # noqa: BLE001 - retried at the next round
            log.exception("repository: could not settle %d queued documents; retrying", len(keys))
            repo.unsettled.put_back(keys)
        if report.committed or report.removed:
            log.info("repository: settled this process's queued documents: %s", report)
        return report

    def elected(self) -> bool:
        try:
            return self.repository.index.hold_lease(RECONCILER_LEASE, self.owner, self.lease_seconds)
        except Exception:  # noqa: BLE001 - retried at the next round
            log.exception("repository: could not take the reconciler lease")
            return False

    def sweep_gone(self) -> SweepReport:
        """When elected: settle the rows of owners that are gone (and staging of dead processes)."""
        if not self.elected():
            return SweepReport()
        repo = self.repository
        try:
            report = sweep(repo.store, repo.index, repo.registry, older_than=self.unowned_older_than,
                           owned_older_than=self.lease_seconds)
            repo.index.forget_expired_leases(FORGET_LEASES_AFTER)
            return report
        except Exception:  # noqa: BLE001 - retried at the next interval
            log.exception("repository: reconciliation failed; retrying at the next interval")
            return SweepReport()

    def run_once(self, sweep_now: bool = True) -> SweepReport:
        self.beat()
        report = self.settle_own()
        if sweep_now:
            gone = self.sweep_gone()
            report.committed += gone.committed
            report.removed += gone.removed
            report.undecided += gone.undecided
            report.staged_removed += gone.staged_removed
        return report

    def start(self) -> Reconciler:
        """Take the lease now (before this process writes a row), then keep the round going in a
        daemon thread. The thread holds the reconciler weakly: it ends once its repository is gone."""
        self.beat()
        ref = weakref.ref(self)
        stop = self._stop
        period = max(0.05, min(self.lease_seconds / 3, self.interval))
        thread = threading.Thread(target=_loop, args=(ref, stop, period), name="repository-reconciler", daemon=True)
        self._thread = thread
        thread.start()
        return self

    def tick(self) -> None:
        """One beat of the thread: the lease and the own queue always, the sweep once per interval."""
        now = time.monotonic()
        due = now >= self._next_sweep
        if due:
            self._next_sweep = now + self.interval
        self.run_once(sweep_now=due)

    def stop(self) -> None:
        """Stop the thread and give up this owner's leases (its leftovers need not wait for expiry)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)
        try:
            self.repository.index.drop_leases(self.owner)
        except Exception:  # noqa: BLE001 - the lease then simply expires
            log.exception("repository: could not drop the leases of %s", self.owner)


def _loop(ref: weakref.ReferenceType[Reconciler], stop: threading.Event, period: float) -> None:
    while not stop.wait(period):
        reconciler = ref()
        if reconciler is None:
            return
        try:
            reconciler.tick()
        except Exception:  # noqa: BLE001 - the thread must outlive one bad round
            log.exception("repository: reconciler round failed")
        del reconciler
