"""``xds serve`` with ``mllp_port`` opens the ITI-8 listener in a supervised process of its own:
it answers, comes back after a kill -9, and ends with the server. SQLite and PostgreSQL."""
from __future__ import annotations

import os
import signal
import socket
import time

from bindings.mllp import END, START, frames
from registry.register import Registry
from storage import Database
from tests.feeds.test_iti8 import adt, field, ins
from tests.support.databases import database_url
from tests.support.server import child_processes, free_port, start_server


def ack_of(port: int, message: bytes) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(START + message + END)
        return next(frames(sock, 10**6)).decode()


def listeners(pid: int) -> list[int]:
    return [child for child, cmd in child_processes(pid) if b"bindings.mllp" in cmd]


def test_xds_serve_runs_a_supervised_iti8_listener(backend, tmp_path):
    url, handle = database_url(backend, tmp_path)
    port = free_port()
    server = start_server(tmp_path / "data", url, env={"XDS_MLLP_PORT": str(port)})
    try:
        patient = ins()
        assert field(ack_of(port, adt("A01", patient)), "MSA", 1) == "AA"
        db = Database(url)
        try:
            assert Registry(db).patient_record(patient).state == "open"
        finally:
            db.dispose()
        assert "patient identity feed (ITI-8, MLLP)" in server.log()
        [first] = listeners(server.process.pid)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = listeners(server.process.pid)
            if found and found != [first]:
                try:
                    if field(ack_of(port, adt("A08", patient)), "MSA", 1) == "AA":
                        break
                except OSError:
                    pass
            time.sleep(0.2)
        else:
            raise AssertionError(f"no new ITI-8 listener after a kill -9:\n{server.log()}")
    finally:
        code = server.stop()
        if handle is not None:
            handle.close()
    assert code == 0, server.log()
    assert not listeners(server.process.pid)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))
