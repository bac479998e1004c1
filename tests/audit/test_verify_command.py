"""``xds audit verify|reindex|public-key`` and the audit process's seals and checkpoints (issue 18),
on SQLite and PostgreSQL."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import delete, update

from audit import checkpoint, daemon, fields, messages, seal, store
from audit.auditor import Auditor
from audit.sender import Sender
from config import Settings
from server.cli import main
from storage.database import Database
from tests.support.databases import database_url
from xds.context import Caller

PATIENT = "1234567890123^^^&1.2.250.1.213.1.4.10&ISO"
DOCTOR = Caller(remote_addr="10.0.0.5", endpoint="http://h/registry", user_id="810001")


@pytest.fixture
def trail(backend, tmp_path):
    """A data folder whose audit trail holds 5 records sealed with the folder's own key."""
    url, handle = database_url(backend, tmp_path)
    db = Database(url)
    store.migrate(db)
    data = tmp_path / "data"
    sealer = seal.load_or_create(data / "audit-seal-key.pem")
    a = Auditor(db, "src")
    for i in range(5):
        a.record(messages.stored_query(DOCTOR, "src", 0, "urn:uuid:q", f"<q n='{i}'/>".encode(), PATIENT))
    a.flush()
    a.close()
    Sender(db, batch=1, sealer=sealer).deliver_once()
    yield db, ["--data-dir", str(data), "--database-url", url], sealer
    db.dispose()
    if handle is not None:
        handle.close()


def test_verify_says_intact_with_the_servers_own_key(trail, capsys):
    _, where, _ = trail
    assert main(["audit", "verify", *where]) == 0
    assert "audit trail intact: 5 records, 5 seals" in capsys.readouterr().out


def test_verify_names_a_forged_append_and_exits_1(trail, capsys):
    db, where, _ = trail
    forged = b"<85>1 - - - - IHE+RFC-3881 - <AuditMessage/>"
    store.append(db, [store.Incoming(forged, "udp", "6.6.6.6", fields.extract(forged))])
    assert main(["audit", "verify", *where]) == 1
    assert "record 6 unsealed" in capsys.readouterr().out


def test_verify_with_an_auditors_public_key_and_anchor(trail, tmp_path, capsys):
    db, where, _ = trail
    pub = tmp_path / "seal.pub"
    assert main(["audit", "public-key", *where]) == 0
    pub.write_text(capsys.readouterr().out)
    assert pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    anchor = tmp_path / "anchor.log"
    checkpoint.Checkpoints(db, str(anchor)).tick()
    with db.write() as conn:
        conn.execute(delete(store.records).where(store.records.c.seq == 5))
        conn.execute(delete(store.seals).where(store.seals.c.to_seq == 5))
    assert main(["audit", "verify", *where, "--public-key", str(pub)]) == 0
    capsys.readouterr()
    assert main(["audit", "verify", *where, "--public-key", str(pub), "--anchor", str(anchor)]) == 1
    assert "record 5 truncated" in capsys.readouterr().out


def test_verify_refuses_seals_of_a_key_the_auditor_does_not_trust(trail, tmp_path, capsys):
    _, where, _ = trail
    other = tmp_path / "other.pub"
    other.write_bytes(seal.load_or_create(tmp_path / "other.pem").public_pem())
    assert main(["audit", "verify", *where, "--public-key", str(other)]) == 1
    assert "record 1 bad seal" in capsys.readouterr().out


def test_reindex_rebuilds_a_deleted_index_and_verify_agrees(trail, capsys):
    db, where, _ = trail
    with db.write() as conn:
        conn.execute(delete(store.record_keys).where(store.record_keys.c.seq == 3))
    assert main(["audit", "verify", *where]) == 1
    assert "record 3 index" in capsys.readouterr().out
    assert main(["audit", "reindex", *where]) == 0
    assert main(["audit", "verify", *where]) == 0


def test_reindex_refuses_a_chain_that_does_not_verify(trail, capsys):
    db, where, _ = trail
    with db.write() as conn:
        conn.execute(update(store.records).where(store.records.c.seq == 2).values(peer="x"))
    assert main(["audit", "reindex", *where]) == 1
    assert "refusing to reindex: record 2 altered" in capsys.readouterr().err


def test_the_audit_process_seals_and_anchors_its_last_checkpoint_at_stop(backend, tmp_path):
    url, handle = database_url(backend, tmp_path)
    db = Database(url)
    store.migrate(db)
    anchor = tmp_path / "anchor.log"
    settings = Settings(data_dir=tmp_path / "data", database_url=url, audit_anchor_file=str(anchor),
                        audit_checkpoint_records=1000, audit_checkpoint_seconds=3600)
    stop, ready, done = threading.Event(), threading.Event(), threading.Event()
    worker = threading.Thread(target=daemon.run, args=(settings, stop, ready, done))
    worker.start()
    try:
        assert ready.wait(30)
        a = Auditor(db, "src")
        for i in range(3):
            a.record(messages.stored_query(DOCTOR, "src", 0, "urn:uuid:q", f"<q n='{i}'/>".encode(), PATIENT))
        a.flush()
        a.close()
    finally:
        stop.set()
        worker.join(30)
    try:
        points = checkpoint.read_anchor(anchor)
        assert points and points[-1].to_seq == store.count(db) == 3
        key = seal.load_public(settings.seal_key_path.read_bytes())
        report = store.verify(db, seal.SealVerifier([key]), points)
        assert report.ok and report.checkpoints == len(points), report
    finally:
        db.dispose()
        if handle is not None:
            handle.close()
