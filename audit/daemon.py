"""The audit process of ``xds serve`` (and the whole of ``xds arr``): sender and ARR listeners.

Process model: gunicorn forks workers that answer requests; each worker's
:class:`~audit.auditor.Auditor` only writes to the outbox table. Delivery must happen exactly
once per server and the hash chain needs a single ordered writer, so neither can live in the
workers. ``serve()`` starts this process once, from the master, *before* gunicorn runs, as a fresh
interpreter (``python -m audit.daemon``: no engine, socket or thread inherited), and stops it
after gunicorn has stopped its workers, so that the last records of the workers and the
Application Stop record are delivered. The process also exits by itself when its parent
disappears (a killed master), and a restart resumes from the cursors in the database.
"""
from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
import threading

from audit import seal, store
from audit.arr import ArrServer, server_context
from audit.checkpoint import Checkpoints
from audit.sender import Sender
from storage.database import Database
from xds.supervisor import SupervisedProcess

log = logging.getLogger(__name__)

POLL = 0.2


def build(settings, database) -> tuple[Sender | None, ArrServer | None, Checkpoints]:
    """The sender (None when auditing is off), the ARR (None without listeners) and the
    checkpoints, every append sealed with the key of ``settings.seal_key_path``."""
    sealer = seal.load_or_create(settings.seal_key_path)
    sender = None
    if settings.audit_enabled:
        sender = Sender(database, forward=list(settings.audit_forward), tls_cert=settings.tls_cert,
                        tls_key=settings.tls_key, tls_ca=settings.tls_ca, sync_commit=settings.audit_sync_commit,
                        sealer=sealer)
    arr = None
    if settings.arr_udp_port or settings.arr_tls_port:
        ctx = server_context(settings.tls_cert, settings.tls_key, settings.tls_ca) if settings.arr_tls_port else None
        arr = ArrServer(database, settings.host, udp_port=settings.arr_udp_port or None,
                        tls_port=settings.arr_tls_port or None, tls_context=ctx, sealer=sealer)
    checkpoints = Checkpoints(database, settings.audit_anchor_file, settings.audit_checkpoint_records,
                              settings.audit_checkpoint_seconds,
                              forward=sender.queue_checkpoint if sender is not None else None)
    return sender, arr, checkpoints


def run(settings, stop: threading.Event | None = None, ready=None, done=None, watch_parent: bool = False) -> int:
    """Deliver and listen until ``stop`` is set or SIGTERM/SIGINT arrives."""


    stop = stop or threading.Event()
    parent = os.getppid()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    database = Database(settings.effective_database_url())
    store.migrate(database)
    sender, arr, checkpoints = build(settings, database)
    try:
        if arr is not None:
            arr.start()
            log.info("audit record repository: udp %s tls %s", arr.udp_port, arr.tls_port)
        if ready is not None:
            ready.set()
        while not stop.is_set():
            if sender is not None:
                try:
                    sender.deliver_once()
                except Exception:  # noqa: BLE001 - database hiccup: next pass retries
                    log.exception("audit: delivery pass failed")
            try:
                checkpoints.tick()
            except Exception:  # noqa: BLE001 - the seals stay in the database; next pass retries
                log.exception("audit: could not publish a checkpoint")
            if watch_parent and os.getppid() != parent:
                log.warning("audit: parent process gone, stopping")
                break
            stop.wait(POLL)
    finally:
        if arr is not None:
            arr.stop()
        try:
            if sender is not None:
                sender.drain(timeout=5.0)
            checkpoints.tick(force=True)
            if sender is not None:
                sender.drain(timeout=2.0)
        except Exception:  # noqa: BLE001
            log.exception("audit: final delivery failed; the outbox keeps the rest")
        if sender is not None:
            sender.close()
        database.dispose()
        if done is not None:
            done.set()
    return 0


def main() -> int:
    """``python -m audit.daemon``: settings (pickled) on stdin, ``ready`` on stdout when listening."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = pickle.load(sys.stdin.buffer)
    lower_priority(settings.audit_nice)

    class _Ready:
        def set(self) -> None:
            sys.stdout.write("ready\n")
            sys.stdout.flush()
    return run(settings, ready=_Ready(), watch_parent=True)


def lower_priority(nice: int) -> None:
    """Run this process ``nice`` steps below the workers (ITI-20: auditing must not slow a transaction).

    Delivery reads from the durable outbox, so it may lag behind a burst without losing anything:
    when both cores are busy answering, the scheduler gives them to the workers and the audit
    process drains the outbox once the burst is over (benchmarks/audit.py reports the lag).
    """
    if nice > 0:
        try:
            os.nice(nice)
        except OSError as exc:
            log.warning("audit: could not lower the audit process priority: %s", exc)


class AuditProcess(SupervisedProcess):
    """The audit process, started, supervised and stopped by ``xds serve``'s master."""

    def __init__(self, settings) -> None:
        super().__init__(settings, "audit.daemon", "audit process", start_timeout=60.0, stop_timeout=20.0)


if __name__ == "__main__":
    sys.exit(main())
