"""A helper process of ``xds serve``'s master, started in a fresh interpreter and restarted when it ends.

The audit process (:mod:`audit.daemon`) and the ITI-8 listener (:mod:`bindings.mllp`) are such
processes. A plain subprocess, not multiprocessing: gunicorn's workers are forks of the master
and multiprocessing would try to join the master's child at their exit. gunicorn's master also
reaps every child (SIGCHLD), so the end of the child is seen as the end of its stdout, never
through waitpid. The child reads the pickled settings on stdin and prints ``ready`` once it
serves; supervision restarts it when it ends before :meth:`SupervisedProcess.stop`, backing off
while it keeps failing (issue 19: after a kill -9 the audit process never came back).
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
from typing import IO, Any

log = logging.getLogger(__name__)

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class SupervisedProcess:
    """Handle on ``python -m <module>`` fed ``settings``; ``name`` is what the log calls it."""

    def __init__(self, settings: Any, module: str, name: str, start_timeout: float = 60.0,
                 stop_timeout: float = 20.0) -> None:
        self.settings = settings
        self.module = module
        self.name = name
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    def start(self, supervise: bool = False) -> SupervisedProcess:
        """Start the process; ``supervise``: restart it whenever it ends before :meth:`stop`."""
        self._spawn()
        if supervise:
            self._watcher = threading.Thread(target=self._watch, name=f"{self.module}-supervisor", daemon=True)
            self._watcher.start()
        return self

    def _spawn(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen([sys.executable, "-m", self.module], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, cwd=os.getcwd(), env=env)
        assert self.process.stdin is not None and self.process.stdout is not None  # both are PIPEs
        self.process.stdin.write(pickle.dumps(self.settings))
        self.process.stdin.close()
        line = readline(self.process.stdout, self.start_timeout)
        if line is None or line.strip() != b"ready":  # None: nothing within the timeout
            raise RuntimeError(f"the {self.name} did not start (see the log above)")

    def _watch(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            process = self.process
            if process is None or process.stdout is None:
                return
            try:
                ended = readline(process.stdout, 1.0) == b""
            except (ValueError, OSError):  # stdout closed by stop() meanwhile
                ended = True
            if not ended or self._stopping.is_set():
                continue
            with self._lock:
                if self._stopping.is_set():
                    return
                process.stdout.close()
                log.error("%s %s ended; starting a new one (restart %d)", self.name, process.pid, self.restarts + 1)
                try:
                    self._spawn()
                    self.restarts += 1
                    delay = 0.5
                except Exception:  # noqa: BLE001 - keep trying: the process must come back
                    log.exception("the new %s did not start; retrying in %.0f s", self.name, delay)
                    self._stopping.wait(delay)
                    delay = min(30.0, delay * 2)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not ended within ``stop_timeout``; no restart after."""
        self._stopping.set()
        with self._lock:
            self._stop_process()
        if self._watcher is not None:
            self._watcher.join(5)

    def _stop_process(self) -> None:
        process = self.process
        if process is None or process.stdout is None or process.stdout.closed:
            return
        try:
            os.kill(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        if readline(process.stdout, self.stop_timeout) != b"":  # EOF: the process has ended
            log.warning("%s did not stop within %.0f s; killing it", self.name, self.stop_timeout)
            try:
                os.kill(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.stdout.close()


def readline(stream: IO[bytes], timeout: float) -> bytes | None:
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
