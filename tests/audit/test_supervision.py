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
from pathlib import Path

from audit import store
from storage.database import Database
from tests.support.databases import database_url
from tests.support.server import start_server


def _children(pid: int, marker: str) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and marker.encode() in cmdline:
            out.append(int(entry.name))
    return out


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


def test_the_audit_process_comes_back_after_a_kill_and_auditing_goes_on(backend, tmp_path):
    url, handle = database_url(backend, tmp_path)
    server = start_server(tmp_path / "data", url, workers=1)
    db = Database(url)
    try:
        first = _wait(lambda: _children(server.process.pid, "audit.daemon"))[0]
        os.kill(first, signal.SIGKILL)
        second = _wait(lambda: [p for p in _children(server.process.pid, "audit.daemon") if p != first])[0]
        assert second != first
        before = store.count(db)
        _audited_request(server)
        _wait(lambda: store.count(db) > before)
        status, health = _health(server)
        assert status == 200 and health["status"] == "ok" and health["audit"]["backlog"] == 0, health
    finally:
        code = server.stop()
        db.dispose()
        if handle is not None:
            handle.close()
    assert code == 0, server.log()
    assert "audit process" in server.log() and "starting a new one" in server.log()


def test_a_hup_of_the_master_keeps_auditing(backend, tmp_path):
    url, handle = database_url(backend, tmp_path)
    server = start_server(tmp_path / "data", url, workers=1)
    db = Database(url)
    try:
        audit_pid = _wait(lambda: _children(server.process.pid, "audit.daemon"))[0]
        workers = _wait(lambda: _children(server.process.pid, "server.cli"))
        os.kill(server.process.pid, signal.SIGHUP)
        _wait(lambda: [p for p in _children(server.process.pid, "server.cli") if p not in workers])
        before = store.count(db)
        _audited_request(server)
        _wait(lambda: store.count(db) > before)
        assert _children(server.process.pid, "audit.daemon") == [audit_pid]
    finally:
        code = server.stop()
        db.dispose()
        if handle is not None:
            handle.close()
    assert code == 0, server.log()


def test_health_says_degraded_when_records_wait_too_long(backend, tmp_path):
    url, handle = database_url(backend, tmp_path)
    server = start_server(tmp_path / "data", url, workers=1, env={"XDS_AUDIT_MAX_LAG": "1"})
    db = Database(url)
    try:
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
    finally:
        code = server.stop()
        db.dispose()
        if handle is not None:
            handle.close()
    assert code == 0, server.log()
