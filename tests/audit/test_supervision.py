"""Audit that never stops quietly (issue 19, finding 3), against a real ``xds serve`` on SQLite and
PostgreSQL: the audit process comes back after a kill -9, a HUP of the master keeps auditing,
and ``/health`` reports the delivery lag."""
from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request

import pytest

from audit import store
from storage.database import Database
from tests.support.databases import database_url
from tests.support.server import child_processes, start_server


def _children(pid: int, marker: str) -> list[int]:
    return [child for child, cmdline in child_processes(pid) if marker.encode() in cmdline]


def _wait(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def _audited_request(server) -> None:
    """Something every server audits: an ITI-81 read without credentials (refused, audited)."""
    try:
        urllib.request.urlopen(server.base_url + "/audit/AuditEvent", timeout=10)
    except urllib.error.HTTPError as exc:
        assert exc.code in (401, 403)


def _health(server) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(server.base_url + "/health", timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def serve(backend, tmp_path):
    """Starts an ``xds serve`` with one worker (``serve(env)`` -> (server, database)), which must
    stop cleanly at the end of the test."""
    started = []
    url, handle = database_url(backend, tmp_path)

    def start(env: dict[str, str] | None = None):
        server = start_server(tmp_path / "data", url, workers=1, env=env)
        db = Database(url)
        started.append((server, db))
        return server, db

    yield start
    for server, db in started:
        code = server.stop()
        db.dispose()
        assert code == 0, server.log()
    if handle is not None:
        handle.close()


def test_the_audit_process_comes_back_after_a_kill_and_auditing_goes_on(serve):
    server, db = serve()
    first = _wait(lambda: _children(server.process.pid, "audit.daemon"))[0]
    os.kill(first, signal.SIGKILL)
    second = _wait(lambda: [p for p in _children(server.process.pid, "audit.daemon") if p != first])[0]
    assert second != first
    before = store.count(db)
    _audited_request(server)
    _wait(lambda: store.count(db) > before)
    status, health = _health(server)
    assert status == 200 and health["status"] == "ok" and health["audit"]["backlog"] == 0, health
    assert "audit process" in server.log() and "starting a new one" in server.log()


def test_a_hup_of_the_master_keeps_auditing(serve):
    server, db = serve()
    audit_pid = _wait(lambda: _children(server.process.pid, "audit.daemon"))[0]
    workers = _wait(lambda: _children(server.process.pid, "server.cli"))
    os.kill(server.process.pid, signal.SIGHUP)
    _wait(lambda: [p for p in _children(server.process.pid, "server.cli") if p not in workers])
    before = store.count(db)
    _audited_request(server)
    _wait(lambda: store.count(db) > before)
    assert _children(server.process.pid, "audit.daemon") == [audit_pid]


def test_health_says_degraded_when_records_wait_too_long(serve):
    server, _ = serve({"XDS_AUDIT_MAX_LAG": "1"})
    audit_pid = _wait(lambda: _children(server.process.pid, "audit.daemon"))[0]
    os.kill(audit_pid, signal.SIGSTOP)  # alive but delivering nothing
    try:
        _audited_request(server)
        time.sleep(1.5)
        status, health = _health(server)
    finally:
        os.kill(audit_pid, signal.SIGCONT)
    assert status == 503 and health["status"] == "degraded" and health["audit"]["backlog"] >= 1, health
    _wait(lambda: _health(server)[0] == 200)
