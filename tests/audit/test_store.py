"""The record store: hash chain (edited, deleted, inserted rows), searches, outbox order."""
from __future__ import annotations

from datetime import UTC

import pytest
from sqlalchemy import delete, insert, select, text, update

from audit import messages, store
from audit.auditor import Auditor
from audit.history import access_history
from audit.sender import Sender
from xds.context import Caller, CodedValue
from xds.vocabulary import STORED_QUERIES

PATIENT = "1234567890123^^^&1.2.250.1.213.1.4.10&ISO^NH"
OTHER = "9999999999999^^^&1.2.250.1.213.1.4.10&ISO^NH"


def _fill(db, n=6):
    a = Auditor(db, "src")
    dr = Caller(remote_addr="10.0.0.5", endpoint="http://h/registry", user_id="810001", user_name="Dr A",
                roles=[CodedValue("10", "1.2.250.1.71.1.2.7", "Medecin")], organization_id="3750100018")
    urgent = Caller(remote_addr="10.0.0.6", endpoint="http://h/registry", user_id="810002",
                    access_mode="bris_de_glace")
    for i in range(n):
        a.record(messages.stored_query(dr if i % 2 == 0 else urgent, "src", 0 if i % 3 else 8,
                                       "urn:uuid:q", b"<q/>", PATIENT if i < n - 1 else OTHER))
    a.flush()
    a.close()
    Sender(db).deliver_once()


def test_chain_intact_then_edit_detected(audit_db):
    _fill(audit_db)
    assert store.verify(audit_db).ok and store.verify(audit_db).checked == 6
    with audit_db.write() as conn:
        conn.execute(update(store.records).where(store.records.c.seq == 3).values(outcome=0, event_id="110112"))
        conn.execute(update(store.records).where(store.records.c.seq == 3).values(peer="forged"))
    r = store.verify(audit_db)
    assert (r.problem, r.seq, r.checked) == ("altered", 3, 2)


def test_raw_message_edit_detected(audit_db):
    _fill(audit_db)
    with audit_db.write() as conn:
        raw = conn.execute(select(store.records.c.raw).where(store.records.c.seq == 4)).scalar()
        conn.execute(update(store.records).where(store.records.c.seq == 4)
                     .values(raw=bytes(raw).replace(b'EventOutcomeIndicator="8"', b'EventOutcomeIndicator="0"')
                             .replace(b'EventOutcomeIndicator="0"', b'EventOutcomeIndicator="4"')))
    r = store.verify(audit_db)
    assert (r.problem, r.seq) == ("altered", 4)


def test_deleted_row_detected(audit_db):
    _fill(audit_db)
    with audit_db.write() as conn:
        conn.execute(delete(store.records).where(store.records.c.seq == 2))
    r = store.verify(audit_db)
    assert (r.problem, r.seq) == ("deleted", 2)


def test_inserted_row_detected(audit_db):
    _fill(audit_db)
    with audit_db.write() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(store.records).where(store.records.c.seq >= 4)
                                                       .order_by(store.records.c.seq.desc()))]
        for r in rows:  # make room after seq 3, keeping every hash as it was
            conn.execute(update(store.records).where(store.records.c.seq == r["seq"]).values(seq=r["seq"] + 1))
        forged = dict(rows[-1], seq=4)
        forged["prev_hash"] = conn.execute(select(store.records.c.hash).where(store.records.c.seq == 3)).scalar()
        forged["hash"] = store.record_hash(forged)  # a well-formed record, linked to its predecessor
        conn.execute(insert(store.records).values(forged))
    r = store.verify(audit_db)
    assert r.problem in ("inserted", "altered") and r.seq == 5  # the record after the forgery no longer links


def test_appended_forgery_detected(audit_db):
    _fill(audit_db)
    with audit_db.write() as conn:
        last = dict(conn.execute(select(store.records).where(store.records.c.seq == 6)).one()._mapping)
        conn.execute(insert(store.records).values(dict(last, seq=7, prev_hash="f" * 64)))
    r = store.verify(audit_db)
    assert (r.problem, r.seq) == ("altered", 7)


def test_search_and_access_history(audit_db):
    _fill(audit_db)
    assert len(store.search(audit_db, store.Query(patient=[PATIENT]))) == 5
    assert len(store.search(audit_db, store.Query(patient=["1.2.250.1.213.1.4.10|1234567890123"]))) == 5
    assert len(store.search(audit_db, store.Query(patient=[OTHER]))) == 1
    assert len(store.search(audit_db, store.Query(user=["810001"]))) == 3
    assert len(store.search(audit_db, store.Query(outcome=[8]))) == 2
    assert len(store.search(audit_db, store.Query(event=["ITI-18"], user=["810002"], outcome=[0]))) == 2
    history = access_history(audit_db, PATIENT)
    assert len(history) == 5
    assert [h.user for h in history] == ["810001", "810002", "810001", "810002", "810001"]
    h = history[-1]
    assert (h.role, h.organization, h.event, h.outcome, h.emergency, h.user_name) == (
        "Medecin", "3750100018", "ITI-18 Registry Stored Query", 8, False, "Dr A")
    assert history[1].emergency and not history[0].emergency


def test_outbox_in_order_once_and_pruned(audit_db):
    store.enqueue(audit_db, [b"<85>1 - h a 1 IHE+RFC-3881 - <AuditMessage/>"] * 3)
    _, rows = store.pending(audit_db, store.LOCAL)
    assert [r[0] for r in rows] == sorted(r[0] for r in rows) and len(rows) == 3
    s = Sender(audit_db)
    assert s.deliver_once() == 3 and s.deliver_once() == 0
    assert store.outbox_size(audit_db) == 0
    store.enqueue(audit_db, [b"<85>1 - h a 1 IHE+RFC-3881 - <AuditMessage/>"])
    _, rows2 = store.pending(audit_db, store.LOCAL)
    assert len(rows2) == 1 and rows2[0][0] > rows[-1][0]  # ids never reused after pruning
    assert s.deliver_once() == 1 and store.count(audit_db) == 4 and store.verify(audit_db).ok


def test_prune_deletes_from_the_previous_prune_point_to_the_slowest_cursor(audit_db):
    """Rows up to ``after`` went in an earlier prune: the delete is a range, not a walk over the
    index entries of every row deleted since the last vacuum."""
    store.enqueue(audit_db, [b"<85>1 - h a 1 IHE+RFC-3881 - <AuditMessage/>"] * 5)
    ids = [r[0] for r in store.pending(audit_db, store.LOCAL)[1]]
    store.advance(audit_db, store.LOCAL, ids[3])
    assert store.prune(audit_db, [store.LOCAL], after=ids[0]) == (3, ids[3])
    assert [r[0] for r in store.pending(audit_db, "nobody")[1]] == [ids[0], ids[4]]
    assert store.prune(audit_db, [store.LOCAL], after=ids[3]) == (0, ids[3])


def test_sender_vacuums_the_outbox_after_every_few_thousand_deletes(audit_db, monkeypatch):
    """A queue table is all dead rows after a while; the sender reclaims them itself, whether
    autovacuum is on or not: on PostgreSQL a VACUUM of the outbox runs. (How many pages it frees
    depends on the oldest transaction open anywhere in the database, the other test worker's
    included, so the count of vacuums is what is checked, not the table's size.)"""

    from audit import sender as sender_module

    def vacuum_count() -> int:
        with audit_db.read() as conn:
            return conn.execute(text("SELECT pg_stat_get_vacuum_count('audit_outbox'::regclass)")).scalar()

    before = None if audit_db.is_sqlite else vacuum_count()
    vacuums = []
    real = store.vacuum_outbox
    monkeypatch.setattr(sender_module, "VACUUM_EVERY", 150)
    monkeypatch.setattr(store, "vacuum_outbox", lambda db: (vacuums.append(1), real(db)))
    s = Sender(audit_db)
    store.enqueue(audit_db, [b"<85>1 - h a 1 IHE+RFC-3881 - <AuditMessage>" + b"x" * 2000 + b"</AuditMessage>"] * 100)
    s.deliver_once()
    assert vacuums == []
    store.enqueue(audit_db, [b"<85>1 - h a 1 IHE+RFC-3881 - <AuditMessage/>"] * 100)
    s.deliver_once()
    assert vacuums == [1] and store.outbox_size(audit_db) == 0
    if not audit_db.is_sqlite:
        assert vacuum_count() == before + 1


def test_outbox_writes_are_batched_per_interval(audit_db, monkeypatch):
    """A steady trickle of events is written once per flush interval, not once per event: the
    outbox transaction is what auditing costs a transaction (benchmarks/audit.py)."""
    import time

    writes: list[int] = []
    real = store.enqueue

    def counting(database, batch, *rest):
        writes.append(len(batch))
        time.sleep(0.01)  # a commit's round trips and WAL flush, as on PostgreSQL
        real(database, batch, *rest)

    monkeypatch.setattr(store, "enqueue", counting)
    a = Auditor(audit_db, "src", interval=0.2)
    caller = Caller(remote_addr="10.0.0.5", endpoint="http://h/registry")
    for _ in range(40):
        a.record(messages.stored_query(caller, "src", 0, "urn:uuid:q", b"<q/>", PATIENT))
        time.sleep(0.005)
    a.flush()
    a.close()
    assert sum(writes) == 40
    assert len(writes) <= 4, writes
    assert store.outbox_size(audit_db) == 40


@pytest.mark.parametrize("sync_commit", [True, False])
def test_outbox_batches_wait_for_the_wal_flush_only_when_asked(audit_db, monkeypatch, sync_commit):
    """``audit_sync_commit``: on PostgreSQL an outbox batch commits with ``synchronous_commit``
    off unless asked, for that transaction only; the rows are there either way."""
    seen: list[str] = []
    real = store._copy

    def watching(conn, *args):
        if not audit_db.is_sqlite:
            seen.append(conn.execute(text("SHOW synchronous_commit")).scalar())
        real(conn, *args)

    monkeypatch.setattr(store, "_copy", watching)
    store.enqueue(audit_db, [b"one", b"two"], sync_commit=sync_commit)
    assert store.outbox_size(audit_db) == 2
    if not audit_db.is_sqlite:
        assert seen == ["on" if sync_commit else "off"]
        with audit_db.write() as conn:
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"


@pytest.mark.parametrize("sync_commit", [True, False])
def test_the_sender_stores_and_moves_cursors_waiting_for_the_flush_only_when_asked(audit_db, monkeypatch,
                                                                                   sync_commit):
    """The audit process's own transactions follow ``audit_sync_commit`` as the outbox does: an
    append and its cursor commit together, so a lost one is stored again from the outbox."""
    seen: list[str] = []
    for name in ("_append", "_set_cursor"):
        real = getattr(store, name)

        def watching(conn, *args, _real=real):
            if not audit_db.is_sqlite:
                seen.append(conn.execute(text("SHOW synchronous_commit")).scalar())
            return _real(conn, *args)
        monkeypatch.setattr(store, name, watching)
    store.enqueue(audit_db, [messages.stored_query(Caller(remote_addr="10.0.0.5"), "src", 0, "urn:uuid:q", b"<q/>",
                                                   PATIENT).to_xml()])
    Sender(audit_db, sync_commit=sync_commit).deliver_once()
    store.advance(audit_db, "udp://127.0.0.1:9", 1, sync_commit)
    assert store.count(audit_db) == 1 and store.outbox_size(audit_db) == 0
    if not audit_db.is_sqlite:
        assert seen == ["on" if sync_commit else "off"] * 3


def test_the_auditor_takes_audit_sync_commit_from_the_settings(audit_db, tmp_path):
    from audit.auditor import build_auditor
    from config import Settings

    assert build_auditor(Settings(data_dir=tmp_path), audit_db).sync_commit is False
    strict = build_auditor(Settings(data_dir=tmp_path, audit_sync_commit=True), audit_db)
    assert strict.sync_commit is True
    from audit.daemon import build
    assert build(Settings(data_dir=tmp_path), audit_db)[0].sync_commit is False
    assert build(Settings(data_dir=tmp_path, audit_sync_commit=True), audit_db)[0].sync_commit is True


def test_the_outbox_holds_the_event_and_the_store_its_message(audit_db):
    """The worker queues the compact event; the audit process writes the very message the
    worker would have written (its host, application, process id and time)."""
    import os

    from audit import syslog

    a = Auditor(audit_db, "src")
    event = messages.stored_query(Caller(remote_addr="10.0.0.5", endpoint="http://h/registry", user_id="810001"),
                                  "src", 0, "urn:uuid:q", b"<AdhocQueryRequest/>", PATIENT)
    a.record(event)
    a.flush()
    a.close()
    (_, queued), = store.pending(audit_db, store.LOCAL)[1]
    assert queued.startswith(b"{") and b"AuditMessage" not in queued
    Sender(audit_db).deliver_once()
    (record,) = store.iter_all(audit_db)
    assert bytes(record.raw) == syslog.encode(event.to_xml(), a.hostname, a.app_name, procid=str(os.getpid()),
                                              timestamp=event.time)
    assert store.verify(audit_db).ok


def test_the_compact_form_keeps_every_field():
    from lxml import etree

    from audit import compact
    caller = Caller(remote_addr="10.0.0.6", endpoint="http://h/repository", user_id="810002", user_name="Dr B",
                    roles=[CodedValue("10", "1.2.250.1.71.1.2.7", "Medecin")], organization_id="3750100018",
                    purpose_of_use=[CodedValue("TREATMENT", "2.16.840.1.113883.5.8", "Soins")],
                    access_mode="bris_de_glace", reply_to="http://source.example/ws")
    events = [messages.stored_query(caller, "src", 4, "urn:uuid:q", etree.fromstring("<q>é &amp; ü</q>"), PATIENT,
                                    "urn:oid:1.2.3", description="partial <answer>"),
              messages.retrieve(caller, "src", 0, [messages.DocumentRef("1.2.3.4", "1.2.5", "urn:oid:9")], PATIENT),
              messages.application_activity("src", True)]
    events[1].objects[1].details.append(("raw", b"\xff\x00 not text"))
    events[1].site_id = "site"
    for event in events:
        back, host, app, pid = compact.decode(compact.encode(event, "host-1", "app", "42"))
        assert (host, app, pid) == ("host-1", "app", "42")
        assert back.to_xml() == event.to_xml() and back.index_fields() == event.index_fields()


def _adhoc() -> bytes:
    """An AdhocQueryRequest as a worker serializes it, a non-ASCII character included."""
    from lxml import etree

    from tests.audit.test_transactions import query_body
    body = query_body(PATIENT)
    body.append(etree.Comment(" é "))
    return etree.tostring(body, encoding="UTF-8")


ADHOC = _adhoc()


def test_the_facts_of_a_stored_query_give_the_event_the_worker_would_have_built():
    """A worker queues an ITI-18 as facts (the caller, the outcome, the AdhocQueryRequest); the
    audit process's event is the one :func:`messages.stored_query` builds with the request's
    query id and patient, at the time the worker recorded it."""
    from datetime import datetime

    from audit import compact
    caller = Caller(remote_addr="10.0.0.6", endpoint="http://h/registry", user_id="810002", user_name="Dr B",
                    roles=[CodedValue("10", "1.2.250.1.71.1.2.7", "Medecin")], organization="Hôpital",
                    organization_id="3750100018", patient_id=PATIENT, kind="professional",
                    purpose_of_use=[CodedValue("TREATMENT", "2.16.840.1.113883.5.8", "Soins")],
                    access_mode="centre_15", reply_to="http://source.example/ws", node_subject="CN=node")
    when = 1_790_000_000.123456
    row = compact.encode_facts("iti18", compact.caller_facts(caller), [8, ADHOC, "urn:oid:1.2.3"], when, "src",
                               "host-1", "app", "42")
    assert b"AdhocQueryRequest" in row and b"110112" not in row
    back, host, app, pid = compact.decode(row)
    token = messages.SERVED_BY.set("42")  # the worker that queued the facts
    try:
        expected = messages.stored_query(caller, "src", 8, STORED_QUERIES["FindDocuments"], ADHOC, PATIENT,
                                         "urn:oid:1.2.3")
    finally:
        messages.SERVED_BY.reset(token)
    assert (host, app, pid) == ("host-1", "app", "42")
    assert back.time == datetime.fromtimestamp(when, UTC)
    expected.time = back.time
    assert back.to_xml() == expected.to_xml() and back.index_fields() == expected.index_fields()


def test_a_stored_query_request_that_does_not_parse_is_still_audited():
    event = messages.stored_query_of_request(Caller(remote_addr="10.0.0.5"), "src", 8, b"<not xml")
    objects = event.objects
    assert [(o.object_id, o.query) for o in objects] == [("unknown", b"<not xml")]


def test_the_auditor_queues_facts_and_the_store_gets_their_message(audit_db):
    import os

    from audit import compact, syslog
    a = Auditor(audit_db, "src")
    caller = Caller(remote_addr="10.0.0.5", endpoint="http://h/registry", user_id="810001")
    a.record_facts("iti18", caller, 0, ADHOC, None)
    caller.user_id = "changed after the transaction"
    a.flush()
    a.close()
    (_, queued), = store.pending(audit_db, store.LOCAL)[1]
    assert queued.startswith(b'{"b":"iti18"')
    Sender(audit_db).deliver_once()
    (record,) = store.iter_all(audit_db)
    event, *_ = compact.decode(queued)
    assert [p.user_id for p in event.participants][-1] == "810001"
    assert bytes(record.raw) == syslog.encode(event.to_xml(), a.hostname, a.app_name, procid=str(os.getpid()),
                                              timestamp=event.time)
    assert store.verify(audit_db).ok
