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
import select
import signal
import subprocess
import sys
import threading
import time

from audit import seal, store
from audit.arr import ArrServer, server_context
from audit.checkpoint import Checkpoints
from audit.sender import Sender
from storage.database import Database

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


class AuditProcess:
    """Handle on the audit process (started and stopped by ``xds serve``'s master).

    A plain subprocess (fresh interpreter), not multiprocessing: gunicorn's workers are forks of
    the master and multiprocessing would try to join the master's child at their exit. gunicorn's
    master also reaps every child (SIGCHLD): the end of the child is seen as the end of its
    stdout, never through waitpid.
    """

    def __init__(self, settings) -> None:
        self.settings = settings
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    def start(self, timeout: float = 60.0, supervise: bool = False) -> AuditProcess:
        """Start the process; ``supervise``: restart it whenever it ends before :meth:`stop`
        (issue 19: after a kill -9 it never came back and auditing stopped silently)."""
        self._spawn(timeout)
        if supervise:
            self._watcher = threading.Thread(target=self._watch, name="audit-supervisor", daemon=True)
            self._watcher.start()
        return self

    def _watch(self) -> None:
        """Wait for the end of the process's stdout (its end: gunicorn's master reaps it, so
        waitpid is not ours), then start a new one, backing off while it keeps failing."""
        delay = 0.5
        while not self._stopping.is_set():
            process = self.process
            if process is None or process.stdout is None:
                return
            try:
                ended = _readline(process.stdout, 1.0) == b""
            except (ValueError, OSError):  # stdout closed by stop() meanwhile
                ended = True
            if not ended or self._stopping.is_set():
                continue
            with self._lock:
                if self._stopping.is_set():
                    return
                process.stdout.close()
                log.error("audit process %s ended; starting a new one (restart %d)", process.pid, self.restarts + 1)
                try:
                    self._spawn(60.0)
                    self.restarts += 1
                    delay = 0.5
                except Exception:  # noqa: BLE001 - keep trying: auditing must come back
                    log.exception("audit: the new audit process did not start; retrying in %.0f s", delay)
                    self._stopping.wait(delay)
                    delay = min(30.0, delay * 2)

    def _spawn(self, timeout: float) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "audit.daemon"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, cwd=os.getcwd(),
                                        env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                            filter(None, [_ROOT, os.environ.get("PYTHONPATH")]))})
        assert self.process.stdin is not None and self.process.stdout is not None  # both are PIPEs
        self.process.stdin.write(pickle.dumps(self.settings))
        self.process.stdin.close()
        line = _readline(self.process.stdout, timeout)
        if line is None or line.strip() != b"ready":  # None: nothing within the timeout
            raise RuntimeError("the audit process did not start (see the log above)")

    def stop(self, timeout: float = 20.0) -> None:
        self._stopping.set()
        with self._lock:
            self._stop_process(timeout)
        if self._watcher is not None:
            self._watcher.join(5)

    def _stop_process(self, timeout: float) -> None:
        if self.process is None or self.process.stdout is None or self.process.stdout.closed:
            return
        try:
            os.kill(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        assert self.process.stdout is not None  # a PIPE
        if _readline(self.process.stdout, timeout) != b"":  # EOF: the process has ended
            log.warning("audit process did not stop within %.0f s; killing it", timeout)
            try:
                os.kill(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.stdout.close()


_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readline(stream, timeout: float) -> bytes | None:
    """One line of ``stream`` (b"" at EOF), None if nothing came within ``timeout``."""
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 0.2)
        if ready:
            chunk = os.read(stream.fileno(), 1)
            if not chunk:
                return buf
            buf += chunk
            if chunk == b"\n":
                return buf
    return None


if __name__ == "__main__":
    sys.exit(main())
