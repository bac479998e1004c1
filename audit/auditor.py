"""The one interface the actors call: ``services.auditor.record(event)``.

The hot path only appends the :class:`~audit.messages.AuditEvent` to an in-memory list (a few
microseconds). A background thread of the worker process serializes the events (compact JSON,
:mod:`audit.compact`) and writes them in batches, one INSERT per batch, into the durable outbox
(:mod:`audit.store`); the audit process (:mod:`audit.sender`), below the workers' priority,
writes the messages, chains them and forwards them from there. Auditing therefore
never slows a transaction down by a database round trip, and never fails one: an error while
writing is logged and the batch retried.

What a crash can lose: events handed over in the last flush interval (``interval``, 50 ms by
default) if the worker process is killed with SIGKILL. A graceful stop (SIGTERM, gunicorn's
worker exit, interpreter exit) flushes everything first. On PostgreSQL the outbox batches commit
without waiting for the WAL flush unless ``audit_sync_commit`` is set: a crash of the database
server (not of ours) can then lose its last ~0.6 s of them. Measured in benchmarks/audit.py.
"""
from __future__ import annotations

import atexit
import logging
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from audit import compact, messages, store, syslog
from audit.messages import AuditEvent
from config import Settings
from storage import Database, host_lock
from xds.context import Caller

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Facts:
    """A transaction's facts waiting in the queue (:meth:`Auditor.record_facts`)."""
    builder: str
    caller: list
    args: tuple
    time: float


class Auditor:
    """Records audit events of one process; start the writer thread lazily on first use."""

    enabled = True

    def __init__(self, database, source_id: str, interval: float = 0.05, max_batch: int = 500,
                 app_name: str = syslog.APP_NAME, sync_commit: bool = True) -> None:
        self.database = database
        self.sync_commit = sync_commit
        """Wait for the database's flush of each outbox batch (``audit_sync_commit``; store.enqueue)."""
        self.source_id = source_id
        self.interval = interval
        self.max_batch = max_batch
        self.app_name = app_name
        self.hostname = socket.gethostname()
        self._events: list[AuditEvent | _Facts] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._busy = False
        self._urgent = False

    # -- the API ------------------------------------------------------------------------------
    def record(self, event: AuditEvent | _Facts) -> None:
        """Queue one audit event; never raises, never waits for the database."""
        if isinstance(event, AuditEvent) and not event.source_id:
            event.source_id = self.source_id
        with self._cond:
            self._events.append(event)
            if self._thread is None:
                self._start()
            if len(self._events) >= self.max_batch:
                self._cond.notify()

    def record_facts(self, builder: str, caller: Caller, *args) -> None:
        """Queue the facts of a transaction; the audit process builds the event
        (``compact.BUILDERS[builder]``). Never raises, never waits for the database."""
        self.record(_Facts(builder, compact.caller_facts(caller), args, time.time()))

    def security_alert(self, caller: Caller, description: str,
                       alert_type: messages.Code = messages.USE_OF_RESTRICTED_FUNCTION,
                       outcome: int = messages.MINOR_FAILURE, patient_id: str | None = None) -> None:
        """A Security Alert (DICOM PS3.15 A.5.3.11): authentication failure, refused access...

        ``alert_type``: e.g. ``messages.NODE_AUTHENTICATION`` (TLS/XUA failure),
        ``messages.USER_AUTHENTICATION`` (portal login), ``messages.USE_OF_RESTRICTED_FUNCTION``
        (refused access), ``messages.EMERGENCY_OVERRIDE`` (break-glass).
        """
        self.record(messages.security_alert(caller, self.source_id, description, alert_type, outcome, patient_id))

    def application_event(self, start: bool, application: str = "xds serve") -> None:
        """Application Start / Stop (110100), written synchronously (the process is starting/ending)."""
        self.write_now([messages.application_activity(self.source_id, start, application)])

    def write_now(self, events: list[AuditEvent]) -> None:
        store.enqueue(self.database, [self._encode(e) for e in events])

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything recorded so far is in the outbox."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._urgent = True
            self._cond.notify()
            while (self._events or self._busy) and time.monotonic() < deadline and self._thread is not None:
                self._cond.wait(0.01)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(15)

    # -- the writer thread ----------------------------------------------------------------------
    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def _encode(self, event: AuditEvent | _Facts) -> bytes:
        """The event's compact outbox form; the audit process writes the message (audit.compact)."""
        if isinstance(event, _Facts):
            return compact.encode_facts(event.builder, event.caller, event.args, event.time, self.source_id,
                                        self.hostname, self.app_name)
        return compact.encode(event, self.hostname, self.app_name)

    def _run(self) -> None:
        """Write a batch every ``interval`` (sooner when it is full, or on flush and close).

        Waiting out the interval even when events are already there is what makes batches: at a
        few hundred transactions per second a writer that went straight back to the outbox would
        write a handful of events per transaction, and the transaction, not the event, is what
        costs (benchmarks/audit.py).
        """
        while True:
            with self._cond:
                until = time.monotonic() + self.interval
                while not (self._closed or self._urgent or len(self._events) >= self.max_batch):
                    left = until - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch, self._events = self._events[:self.max_batch], self._events[self.max_batch:]
                closed = self._closed
                self._urgent = bool(self._events) and self._urgent
                self._busy = bool(batch)
            if batch:
                self._write(batch, closed)
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
            elif closed:
                return

    def _write(self, batch: list[AuditEvent | _Facts], closing: bool) -> None:
        try:
            encoded = [self._encode(e) for e in batch]
        except Exception:  # noqa: BLE001 - a bad event must not stop auditing
            log.exception("audit: could not serialize %d events", len(batch))
            return
        for attempt in range(1 if closing else 1000):
            try:
                store.enqueue(self.database, encoded, self.sync_commit)
                return
            except Exception as exc:  # noqa: BLE001 - database down: keep the batch, retry
                log.warning("audit: outbox write failed (%s), retrying", exc)
                time.sleep(min(2.0, 0.05 * (attempt + 1)))
        log.error("audit: %d events could not be written to the outbox", len(batch))


class AuditorLike(Protocol):
    """What a transaction asks of an auditor: :class:`Auditor`, or :class:`NullAuditor` when
    auditing is off."""

    enabled: bool
    source_id: str

    def record(self, event: AuditEvent) -> None: ...

    def record_facts(self, builder: str, caller: Caller, *args: object) -> None: ...

    def security_alert(self, caller: Caller, description: str,
                       alert_type: messages.Code = messages.USE_OF_RESTRICTED_FUNCTION,
                       outcome: int = messages.MINOR_FAILURE, patient_id: str | None = None) -> None: ...

    def flush(self, timeout: float = 10.0) -> None: ...

    def close(self) -> None: ...


class NullAuditor:
    """``--no-audit``: the same interface, nothing recorded (test domains only)."""

    enabled = False
    source_id = ""

    def record(self, event: AuditEvent) -> None:
        pass

    def record_facts(self, *args) -> None:
        pass

    def security_alert(self, *args, **kwargs) -> None:
        pass

    def application_event(self, *args, **kwargs) -> None:
        pass

    def write_now(self, events) -> None:
        pass

    def flush(self, timeout: float = 10.0) -> None:
        pass

    def close(self) -> None:
        pass


def source_id(settings) -> str:
    """AuditSourceID: this server (DICOM PS3.15 A.5.1: unique within the enterprise)."""
    return f"dmp-xds@{socket.gethostname()}:{settings.port}"


def build_auditor(settings: Settings, database: Database) -> Auditor | NullAuditor:
    """The auditor of one process: migrates the audit tables (idempotent, one process at a time)."""
    if not settings.audit_enabled:
        return NullAuditor()
    with host_lock(Path(settings.data_dir) / "audit-migrate.lock"):
        store.migrate(database)
    return Auditor(database, source_id(settings), sync_commit=settings.audit_sync_commit)
