"""Crash tests of issue 19 ("Never lose an acknowledged document"), live ``xds serve`` on SQLite
and PostgreSQL: two servers on one database and one store with one restarting, an immediate restart
after a master SIGKILL, workers killed between the registry commit and the index commit (and index
commits failing), a full disk.

After each run the survivors settle (their reconcilers, lease 2 s, every second) and then:

* 0 acknowledged documents lost: every document answered Success is retrievable by ITI-43 with its
  bytes, and the registry's hash is their SHA-1;
* 0 orphans: every stored object is a committed document the registry knows, no pending row is
  left, and every submitted document the registry knows (answered or not) is retrievable.

Each test prints its figures (documents submitted / acknowledged / refused / unanswered /
registered / retrievable, kills) to be read with ``pytest -s``.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from repository.faults import EXIT_STATUS
from repository.index import COMMITTED, PENDING, documents
from repository.registry_client import registered_hashes_in_database
from tests.repository.support import (
    PATIENT,
    REPOSITORY_UID,
    SUCCESS,
    Submission,
    parse_reply,
    provide_request,
    retrieve_request,
    submission,
)
from tests.support.server import LiveServer, start_server

FAST_LEASES = {"XDS_REPOSITORY_LEASE_SECONDS": "2", "XDS_REPOSITORY_RECONCILE_INTERVAL": "1",
               "XDS_AUDIT_ENABLED": "false"}
"""Leases of 2 s renewed every 0.67 s, a reconciliation every second: settling in seconds, not minutes."""


@dataclass
class Ledger:
    """What every submission got for an answer."""
    acknowledged: list[Submission] = field(default_factory=list)
    refused: list[tuple[Submission, list[str]]] = field(default_factory=list)
    unanswered: list[Submission] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def submitted(self) -> list[Submission]:
        return self.acknowledged + [s for s, _ in self.refused] + self.unanswered


def submit(url: str, sub: Submission, ledger: Ledger) -> bool:
    """Send one ITI-41; False when it got no answer."""
    body, ctype = provide_request(sub)
    try:
        res = requests.post(url, data=body, headers={"Content-Type": ctype}, timeout=60)
        reply = parse_reply(res.status_code, res.headers.get("Content-Type", ""), res.content)
        outcome = "ok" if res.status_code == 200 and reply.status_value == SUCCESS else reply.error_codes
    except Exception:  # noqa: BLE001 - a reset, a fault, no answer: the outcome is unknown to the source
        outcome = None
    with ledger.lock:
        if outcome == "ok":
            ledger.acknowledged.append(sub)
        elif outcome:
            ledger.refused.append((sub, outcome))
        else:
            ledger.unanswered.append(sub)
    return outcome is not None


def load(target: Callable[[], str], count: int, ledger: Ledger, threads: int = 4, docs: int = 1,
         size: int = 2048, until: threading.Event | None = None) -> list[threading.Thread]:
    """``count`` submissions of ``docs`` documents each, by ``threads`` clients, to ``target()``;
    fewer if ``until`` is set first."""
    subs = [submission([os.urandom(size // 2).hex().encode() for _ in range(docs)]) for _ in range(count)]
    lock = threading.Lock()

    def client() -> None:
        while True:
            with lock:
                if not subs or (until is not None and until.is_set()):
                    return
                sub = subs.pop()
            if not submit(target(), sub, ledger):
                time.sleep(0.3)  # the server is away (killed, restarting): do not burn the submissions

    workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    return workers


def wait(workers: list[threading.Thread], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    for w in workers:
        w.join(max(0.0, deadline - time.monotonic()))
    assert not any(w.is_alive() for w in workers), "clients still running"


def settle(db, timeout: float = 30) -> float:
    """Seconds until no pending row is left (the live servers' reconcilers at work)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        with db.read() as conn:
            if conn.execute(select(func.count()).select_from(documents)
                            .where(documents.c.state == PENDING)).scalar_one() == 0:
                return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"pending rows left after {timeout} s")


def retrieve(server: LiveServer, uids: list[str]) -> dict[str, bytes]:
    got: dict[str, bytes] = {}
    for i in range(0, len(uids), 50):
        body, ctype = retrieve_request([(REPOSITORY_UID, u) for u in uids[i:i + 50]])
        res = requests.post(server.repository_url, data=body, headers={"Content-Type": ctype}, timeout=60)
        reply = parse_reply(res.status_code, res.headers.get("Content-Type", ""), res.content)
        got.update({u: v[1] for u, v in reply.documents().items()})
    return got


def check(db, server: LiveServer, documents_dir: Path, ledger: Ledger, name: str, **figures) -> dict:
    """The two assertions of issue 19 after settling, and the figures of the run."""
    settle_s = settle(db)
    submitted = [d for s in ledger.submitted for d in s.docs]
    acknowledged = [d for s in ledger.acknowledged for d in s.docs]
    registered = registered_hashes_in_database(db, [d.unique_id for d in submitted])
    retrievable = retrieve(server, [d.unique_id for d in submitted])
    lost = [d.unique_id for d in acknowledged
            if retrievable.get(d.unique_id) != d.data
            or registered.get(d.unique_id) != hashlib.sha1(d.data).hexdigest()]
    registered_without_bytes = [u for u in registered if u not in retrievable]
    with db.read() as conn:
        rows = conn.execute(select(documents.c.unique_id, documents.c.address, documents.c.state)).all()
    committed_addresses = {r.address for r in rows if r.state == COMMITTED}
    committed_unregistered = [r.unique_id for r in rows
                              if r.state == COMMITTED and r.unique_id not in
                              registered_hashes_in_database(db, [r.unique_id])]
    objects = [p.name for p in (documents_dir / "objects").rglob("*") if p.is_file()]
    orphans = [a for a in objects if a not in committed_addresses]
    report = {"submitted": len(submitted), "acknowledged": len(acknowledged),
              "refused": sum(len(s.docs) for s, _ in ledger.refused),
              "unanswered": sum(len(s.docs) for s in ledger.unanswered),
              "registered": len(registered), "retrievable": len(retrievable), "lost": len(lost),
              "orphans": len(orphans) + len(committed_unregistered) + len(registered_without_bytes),
              "settled_in_s": round(settle_s, 1), **figures}
    print(f"\n[issue 19] {name}: {report}")
    assert lost == [], f"acknowledged documents lost: {lost}"
    assert orphans == [] and committed_unregistered == [], (orphans, committed_unregistered)
    assert registered_without_bytes == [], f"registered but not retrievable: {registered_without_bytes}"
    assert [r for r in rows if r.state != COMMITTED] == []
    return report


def serve(data_dir: Path, url: str, workers: int = 2, **env: str) -> LiveServer:
    server = start_server(data_dir, url, workers=workers, threads=4, env={**FAST_LEASES, **env})
    return server


def kill_group(server: LiveServer) -> None:
    """SIGKILL the master and every worker it had (an orphaned worker holds its port and its lease)."""
    children = subprocess.run(["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True).stdout.split()
    server.process.kill()
    server.process.wait()
    for pid in children:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def servers():
    started: list[LiveServer] = []
    yield started
    for s in started:
        if s.process.poll() is None:
            kill_group(s)


def test_two_servers_on_one_database_and_store_with_one_restarting_lose_nothing(db, tmp_path, servers):
    """Issue 19 finding 1: a second server's start-up sweep deleted the first one's in-flight
    submissions (36 acknowledged documents lost on PostgreSQL)."""
    data = tmp_path / "data"
    steady = serve(data, db.url)
    servers.append(steady)
    steady.add_patient(PATIENT)
    restarting = serve(data, db.url)
    servers.append(restarting)
    ledger = Ledger()
    done = threading.Event()
    clients = load(lambda: steady.repository_url, 300, ledger, threads=4, until=done)
    for restart in range(4):
        time.sleep(1)
        kill_group(restarting) if restart % 2 else restarting.stop()
        restarting = serve(data, db.url)  # its start-up sweep runs beside the steady server's requests
        servers.append(restarting)
    done.set()
    wait(clients)
    report = check(db, steady, data / "documents", ledger, "two servers, one restarting (4 restarts, 2 SIGKILL)")
    assert report["acknowledged"] == report["submitted"] > 0  # the steady server answered everything


def test_an_immediate_restart_after_a_master_sigkill_loses_nothing(db, tmp_path, servers):
    """Issue 19 finding 1: the start-up sweep of an immediate restart deleted the submissions the
    killed server's workers were still finishing."""
    data = tmp_path / "data"
    current = serve(data, db.url)
    servers.append(current)
    current.add_patient(PATIENT)
    ledger = Ledger()
    done = threading.Event()
    clients = load(lambda: current.repository_url, 300, ledger, threads=4, until=done)
    for _ in range(3):
        time.sleep(1.5)
        current.process.kill()  # the master only: its workers finish what they hold, orphaned
        current.process.wait()
        current = serve(data, db.url)
        servers.append(current)
    time.sleep(1)
    done.set()
    wait(clients)
    report = check(db, current, data / "documents", ledger, "3 immediate restarts after a master SIGKILL")
    assert report["acknowledged"] > 0


def test_workers_killed_between_registry_and_index_commits_lose_nothing(db, tmp_path, servers):
    """Issue 19 finding 2: a worker that died after the registry's commit and before the index
    commit left the document registered but unretrievable until the next full restart; an index
    commit that failed (disk full, database error) did the same. Each worker here dies at its 12th
    submission and fails the index commit of every 5th."""
    data = tmp_path / "data"
    server = serve(data, db.url, XDS_REPOSITORY_FAULTS="exit_after_register=12,commit_error=5")
    servers.append(server)
    server.add_patient(PATIENT)
    ledger = Ledger()
    wait(load(lambda: server.repository_url, 120, ledger, threads=4))
    kills = server.log().count(f"exited with code {EXIT_STATUS}")
    report = check(db, server, data / "documents", ledger, "workers killed between the commits",
                   workers_killed=kills)
    assert kills >= 3 and report["unanswered"] >= kills
    assert report["registered"] == report["retrievable"] >= report["acknowledged"] + kills


def test_disk_full_answers_repository_out_of_resources_and_loses_nothing(db, tmp_path, servers):
    """ITI TF-3 Table 4.2.4.1-2: XDSRepositoryOutOfResources, not a SOAP fault (issue 19 finding
    6); nothing partially stored. ENOSPC injected at every 4th document a worker stores."""
    data = tmp_path / "data"
    server = serve(data, db.url, XDS_REPOSITORY_FAULTS="enospc=4")
    servers.append(server)
    server.add_patient(PATIENT)
    ledger = Ledger()
    wait(load(lambda: server.repository_url, 60, ledger, threads=2, docs=2))
    report = check(db, server, data / "documents", ledger, "disk full (ENOSPC injected)")
    assert report["refused"] > 0 and report["unanswered"] == 0
    assert {c for _, codes in ledger.refused for c in codes} == {"XDSRepositoryOutOfResources"}
    assert report["registered"] == report["acknowledged"]


def mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_full_file_system_answers_repository_out_of_resources_and_recovers(db, tmp_path, servers):
    """The same on a real full disk: the document store on a 1 MB tmpfs (needs the right to
    mount; skipped otherwise), then grown to 8 MB: the server accepts documents again."""
    data = tmp_path / "data"
    store = data / "documents"
    if not mount_tmpfs(store, "1m"):
        pytest.skip("cannot mount a tmpfs here (needs CAP_SYS_ADMIN)")
    try:
        server = serve(data, db.url)
        servers.append(server)
        server.add_patient(PATIENT)
        full = Ledger()
        wait(load(lambda: server.repository_url, 30, full, threads=2, size=96 * 1024))
        assert full.refused and {c for _, codes in full.refused for c in codes} == {"XDSRepositoryOutOfResources"}
        assert subprocess.run(["mount", "-o", "remount,size=8m", str(store)]).returncode == 0
        after = Ledger()
        wait(load(lambda: server.repository_url, 10, after, threads=2, size=96 * 1024))
        assert len(after.acknowledged) == 10
        merged = Ledger(full.acknowledged + after.acknowledged, full.refused + after.refused,
                        full.unanswered + after.unanswered)
        check(db, server, store, merged, "full tmpfs then grown")
        server.stop()
    finally:
        for s in servers:
            if s.process.poll() is None:
                kill_group(s)
        subprocess.run(["umount", "-l", str(store)], capture_output=True)
