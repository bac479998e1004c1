"""Start ``xds serve`` as a real process on a free port, as an integrator would."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    process: subprocess.Popen
    base_url: str
    data_dir: Path
    database_url: str
    log_path: Path

    @property
    def registry_url(self) -> str:
        return self.base_url + "/registry"

    @property
    def repository_url(self) -> str:
        return self.base_url + "/repository"

    def xds(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run an ``xds`` command on this server's store."""
        return subprocess.run([sys.executable, "-m", "server.cli", *args, "--data-dir", str(self.data_dir),
                               "--database-url", self.database_url], capture_output=True, text=True, check=check,
                              cwd=ROOT)

    def add_patient(self, pid: str) -> None:
        self.xds("patients", "add", pid)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_server(data_dir: Path, database_url: str, *extra: str, workers: int = 1, threads: int = 8,
                 env: dict | None = None, port: int | None = None, scheme: str = "http",
                 health: dict | None = None) -> LiveServer:
    """``health``: keyword arguments of the start-up probe (``verify``, ``cert`` for HTTPS)."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "server.log"
    log = open(log_path, "wb")
    cmd = [sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--data-dir", str(data_dir), "--database-url", database_url, "--workers", str(workers),
           "--threads", str(threads), *extra]
    # From the project root: a script's own folder first on sys.path (benchmarks/audit.py) must
    # not shadow the project's packages.
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                            cwd=ROOT)
    server = LiveServer(proc, f"{scheme}://127.0.0.1:{port}", data_dir, database_url, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"xds serve exited with {proc.returncode}:\n{server.log()}")
        try:
            if requests.get(server.base_url + "/health", timeout=1, **(health or {})).status_code == 200:
                return server
        except requests.RequestException:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"xds serve did not start within 60 s:\n{server.log()}")


def child_processes(pid: int) -> list[tuple[int, bytes]]:
    """(pid, command line) of every process whose parent is ``pid``: gunicorn's workers and the
    audit process of an ``xds serve`` master, read from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            out.append((int(entry.name), cmdline))
    return out
