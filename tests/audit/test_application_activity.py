"""One Application Start and one Application Stop (DICOM PS3.15 A.5.3.1, 110120 / 110121) per
``xds serve`` run: the master's, never a worker's, also across a reload (SIGHUP)."""
from __future__ import annotations

import os
import signal
import time

from audit import store
from audit.sender import Sender
from storage.database import Database
from tests.audit.support import xml_of
from tests.support.server import start_server


def _children(pid: int) -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.add(int(entry))
            except OSError:
                continue
    return out


def _workers(pid: int) -> set[int]:
    mine = set()
    for child in _children(pid):
        try:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                if b"audit.daemon" not in f.read():
                    mine.add(child)
        except OSError:
            continue
    return mine


def _activity(database_url: str) -> list[tuple[str, str | None]]:
    """(EventTypeCode, AlternativeUserID: the writer's pid) of every Application Activity."""
    db = Database(database_url)
    try:
        Sender(db).deliver_once()
        out = []
        for r in store.iter_all(db):
            x = xml_of(r.raw)
            ei = x.find("EventIdentification")
            if ei.find("EventID").get("csd-code") == "110100":
                out.append((ei.find("EventTypeCode").get("csd-code"), x.find("ActiveParticipant").get(
                    "AlternativeUserID")))
        return out
    finally:
        db.dispose()


def test_one_start_and_one_stop_per_run_across_a_reload(tmp_path):
    url = f"sqlite:///{tmp_path / 'xds.db'}"
    server = start_server(tmp_path / "data", url, workers=2)
    try:
        master = server.process.pid
        deadline = time.monotonic() + 30
        while len(old := _workers(master)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(old) == 2
        os.kill(master, signal.SIGHUP)  # gunicorn reload: new workers, the old ones exit
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = _workers(master)
            if len(now) == 2 and not now & old:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the workers were not replaced: {old} -> {_workers(master)}")
    finally:
        assert server.stop() == 0, server.log()
    events = _activity(url)
    assert sorted(code for code, _ in events) == ["110120", "110121"], events
    assert {pid for _, pid in events} == {str(master)}
