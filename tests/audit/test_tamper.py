"""Tamper evidence of the audit trail to the last record (issue 18): seals, checkpoints, the
derived search index and emergency-access list, on SQLite and PostgreSQL.

Each test plays an attacker with write access to the database (not to the seal key) and checks
that ``store.verify`` (what ``xds audit verify`` runs) names the first record concerned.
"""
from __future__ import annotations

import json
import socket

import pytest
from sqlalchemy import delete, select, text, update

from access import emergency_list
from access.policy import AccessPolicy
from access.store import emergency
from access.store import migrate as migrate_access
from audit import checkpoint, messages, seal, store
from audit.auditor import Auditor
from audit.history import access_history
from audit.sender import Sender
from config import Settings
from registry.register import Registry
from storage.database import Database
from tests.support.metadata import SubmissionDraft, document_entry, fresh_patient, submission_set
from transactions.alerts import alert_sink
from xds.context import Caller

PATIENT = "1234567890123^^^&1.2.250.1.213.1.4.10&ISO^NH"
DOCTOR = Caller(remote_addr="10.0.0.5", endpoint="http://h/registry", user_id="810001", user_name="Dr A")


@pytest.fixture
def sealer(tmp_path):
    return seal.load_or_create(tmp_path / "seal.pem")


@pytest.fixture
def verifier(sealer):
    return seal.SealVerifier([sealer.public])


def _audit(db, sealer, n: int, batch: int = 1) -> None:
    """``n`` ITI-18 records appended ``batch`` per transaction (one seal each)."""
    a = Auditor(db, "src")
    for i in range(n):
        a.record(messages.stored_query(DOCTOR, "src", 0, "urn:uuid:q", f"<q n='{i}'/>".encode(), PATIENT))
    a.flush()
    a.close()
    Sender(db, batch=batch, sealer=sealer).deliver_once()


def _recompute_from(db, seq: int) -> None:
    """What an attacker does after editing record ``seq``: rehash it and every later record."""
    with db.write() as conn:
        rows = conn.execute(select(store.records).where(store.records.c.seq >= seq - 1)
                            .order_by(store.records.c.seq)).all()
        prev = rows[0].hash if rows[0].seq == seq - 1 else store.GENESIS
        for r in rows:
            if r.seq < seq:
                continue
            row = dict(r._mapping)
            row["prev_hash"] = prev
            row["hash"] = store.record_hash(row)
            conn.execute(update(store.records).where(store.records.c.seq == r.seq)
                         .values(prev_hash=row["prev_hash"], hash=row["hash"]))
            prev = row["hash"]


def test_a_sealed_trail_verifies_with_the_public_key(audit_db, sealer, verifier):
    _audit(audit_db, sealer, 6, batch=2)
    r = store.verify(audit_db, verifier)
    assert r.ok, r
    assert (r.checked, r.seals, r.warnings) == (6, 3, None)


def test_the_first_seal_covers_a_trail_older_than_sealing(audit_db, sealer, verifier):
    _audit(audit_db, None, 3)
    _audit(audit_db, sealer, 2)
    r = store.verify(audit_db, verifier)
    assert r.ok and r.checked == 5, r
    with audit_db.read() as conn:
        assert conn.execute(select(store.seals.c.from_seq).order_by(store.seals.c.to_seq)).scalars().all() == [0, 4]


def test_an_unsealed_trail_verifies_with_a_warning(audit_db):
    _audit(audit_db, None, 2)
    r = store.verify(audit_db)
    assert r.ok and r.warnings and "no seals" in r.warnings[0]


def test_deleting_the_last_records_is_named_truncated(audit_db, sealer, verifier):
    _audit(audit_db, sealer, 6)
    with audit_db.write() as conn:
        conn.execute(delete(store.records).where(store.records.c.seq >= 5))
    r = store.verify(audit_db, verifier)
    assert (r.problem, r.seq) == (store.TRUNCATED, 5), r


def test_deleting_the_tail_with_its_seals_is_named_through_the_anchor(audit_db, sealer, verifier, tmp_path):
    anchor = tmp_path / "anchor.log"
    _audit(audit_db, sealer, 6)
    assert checkpoint.Checkpoints(audit_db, str(anchor)).tick() is not None
    with audit_db.write() as conn:
        conn.execute(delete(store.records).where(store.records.c.seq >= 5))
        conn.execute(delete(store.seals).where(store.seals.c.to_seq >= 5))
    assert store.verify(audit_db, verifier).ok  # what the database alone can no longer show
    r = store.verify(audit_db, verifier, checkpoint.read_anchor(anchor))
    assert (r.problem, r.seq) == (store.TRUNCATED, 5), r


def test_a_record_rewritten_with_every_later_hash_recomputed_is_named(audit_db, sealer, verifier):
    _audit(audit_db, sealer, 6)
    with audit_db.write() as conn:
        conn.execute(update(store.records).where(store.records.c.seq == 3).values(outcome=8, peer="forged"))
    _recompute_from(audit_db, 3)
    assert store.verify(audit_db).problem == store.ALTERED  # the seals' heads, even without the key
    r = store.verify(audit_db, verifier)
    assert (r.problem, r.seq) == (store.ALTERED, 3), r


def test_a_forged_append_is_named(audit_db, sealer, verifier):
    _audit(audit_db, sealer, 3)
    _audit(audit_db, None, 1)
    r = store.verify(audit_db, verifier)
    assert (r.problem, r.seq) == (store.UNSEALED, 4), r


def test_a_forged_append_stays_named_when_later_records_chain_onto_it(audit_db, sealer, verifier):
    _audit(audit_db, sealer, 3)
    _audit(audit_db, None, 1)
    _audit(audit_db, sealer, 2)
    r = store.verify(audit_db, verifier)
    assert (r.problem, r.seq) == (store.UNSEALED, 4), r


def test_an_append_sealed_with_an_untrusted_key_is_named(audit_db, sealer, verifier, tmp_path):
    _audit(audit_db, sealer, 2)
    _audit(audit_db, seal.load_or_create(tmp_path / "attacker.pem"), 1)
    r = store.verify(audit_db, verifier)
    assert (r.problem, r.seq) == (store.BAD_SEAL, 3), r
    assert "not among the trusted" in r.detail


def test_a_forged_seal_signature_is_named(audit_db, sealer, verifier):
    _audit(audit_db, sealer, 2)
    with audit_db.write() as conn:
        conn.execute(update(store.seals).where(store.seals.c.to_seq == 2).values(signature="00" * 64))
    r = store.verify(audit_db, verifier)
    assert (r.problem, r.seq) == (store.BAD_SEAL, 2), r


def test_deleted_index_rows_are_named_and_reindex_restores_the_access_history(audit_db, sealer, verifier):
    _audit(audit_db, sealer, 4)
    assert len(access_history(audit_db, PATIENT)) == 4
    with audit_db.write() as conn:
        conn.execute(delete(store.record_keys).where(store.record_keys.c.kind == "patient",
                                                     store.record_keys.c.seq >= 2))
    assert len(access_history(audit_db, PATIENT)) == 1
    r = store.verify(audit_db, verifier)
    assert (r.problem, r.seq) == (store.INDEX, 2), r
    assert store.reindex(audit_db) > 0
    assert store.verify(audit_db, verifier).ok
    assert len(access_history(audit_db, PATIENT)) == 4


def test_a_corrupt_column_is_named_never_a_crash(audit_db, sealer, verifier):
    _audit(audit_db, sealer, 3)
    with audit_db.write() as conn:
        conn.execute(update(store.records).where(store.records.c.seq == 2).values(keys="{not json"))
    r = store.verify(audit_db, verifier)
    assert (r.problem, r.seq) == (store.CORRUPT, 2), r


def test_a_message_column_holding_text_is_named_never_a_crash(sealer, verifier, tmp_path):
    """SQLite only: PostgreSQL's bytea refuses text at the write itself."""
    audit_db = Database(f"sqlite:///{tmp_path / 'audit.db'}")
    store.migrate(audit_db)
    _audit(audit_db, sealer, 3)
    with audit_db.write() as conn:
        conn.execute(text("UPDATE audit_records SET raw = 'plain text' WHERE seq = 2"))
    r = store.verify(audit_db, verifier)
    audit_db.dispose()
    assert (r.problem, r.seq) == (store.CORRUPT, 2), r


def _emergency_world(db, tmp_path):
    migrate_access(db)
    registry = Registry(db)
    patient = fresh_patient()
    registry.add_patient(patient)
    draft = SubmissionDraft(patient, submission_set(patient))
    draft.add_document(document_entry(patient))
    assert not registry.register(draft.objects()).has_errors
    auditor = Auditor(db, "src")
    policy = AccessPolicy(Settings(data_dir=tmp_path, access_policy="dmp"), db, alert=alert_sink(auditor))
    urgent = Caller(user_id="810000000007", user_name="Dr Urgence", organization="SAMU 75",
                    access_mode="bris_de_glace", authenticated=True, kind="professional")
    query = {"$XDSDocumentEntryPatientId": [[f"'{patient}'"]],
             "$XDSDocumentEntryStatus": [["('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')"]]}
    assert policy.check_query(urgent, query) is None
    auditor.flush()
    auditor.close()
    return patient


def test_a_deleted_emergency_access_row_is_named_and_restored(audit_db, sealer, tmp_path):
    _emergency_world(audit_db, tmp_path)
    Sender(audit_db, sealer=sealer).deliver_once()
    assert emergency_list.check(audit_db, audit_db) is None
    with audit_db.write() as conn:
        assert conn.execute(delete(emergency)).rowcount == 1
    problem = emergency_list.check(audit_db, audit_db)
    assert problem is not None and problem.seq is not None and "810000000007" in problem.detail, problem
    assert emergency_list.restore(audit_db, audit_db) == 1
    assert emergency_list.check(audit_db, audit_db) is None
    with audit_db.read() as conn:
        row = conn.execute(select(emergency)).one()
    assert (row.professional_id, row.mode, row.organization) == ("810000000007", "bris_de_glace", "SAMU 75")


def test_an_emergency_row_not_yet_chained_is_not_a_problem(audit_db, tmp_path):
    _emergency_world(audit_db, tmp_path)  # the alert waits in the outbox
    assert emergency_list.check(audit_db, audit_db) is None


def test_a_checkpoint_is_due_after_its_record_count_or_its_interval(audit_db, sealer, tmp_path):
    now = [0.0]
    anchor = tmp_path / "anchor.log"
    points = checkpoint.Checkpoints(audit_db, str(anchor), every_records=3, every_seconds=60, clock=lambda: now[0])
    assert points.tick() is None  # nothing sealed yet
    _audit(audit_db, sealer, 1)
    assert points.tick().to_seq == 1  # the first seal is published at once
    _audit(audit_db, sealer, 1)
    assert points.tick() is None
    _audit(audit_db, sealer, 2)
    assert points.tick().to_seq == 4  # 3 records since the last checkpoint
    _audit(audit_db, sealer, 1)
    now[0] += 61
    assert points.tick().to_seq == 5  # the interval
    assert [s.to_seq for s in checkpoint.read_anchor(anchor)] == [1, 4, 5]


def test_checkpoints_are_forwarded_to_the_audit_record_repositories(audit_db, sealer):
    arr = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    arr.bind(("127.0.0.1", 0))
    arr.settimeout(5)
    sender = Sender(audit_db, forward=[f"udp://127.0.0.1:{arr.getsockname()[1]}"], sealer=sealer)
    points = checkpoint.Checkpoints(audit_db, forward=sender.queue_checkpoint)
    try:
        a = Auditor(audit_db, "src")
        a.record(messages.stored_query(DOCTOR, "src", 0, "urn:uuid:q", b"<q/>", PATIENT))
        a.flush()
        a.close()
        sender.deliver_once()
        published = points.tick()
        sender.deliver_once()
        got = [arr.recv(65536) for _ in range(2)]
    finally:
        sender.close()
        arr.close()
    assert b" IHE+RFC-3881 " in got[0]
    assert f" {checkpoint.MSGID} - ".encode() in got[1]
    body = got[1].split(f" {checkpoint.MSGID} - ".encode(), 1)[1]
    assert published is not None and seal.Seal.from_json(body.decode()) == published
    assert seal.SealVerifier([sealer.public]).problem(published) is None


def test_the_anchor_file_rejects_a_line_that_is_not_a_checkpoint(tmp_path):
    bad = tmp_path / "anchor.log"
    bad.write_text(json.dumps({"to_seq": 1}) + "\n")
    with pytest.raises(ValueError, match="line 1"):
        checkpoint.read_anchor(bad)
