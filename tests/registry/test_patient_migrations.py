"""Migrations 0004 (registry) and x0003 (access policy): databases filled before the patient key
(commit 6a3f4de) are re-keyed (ITI TF-3 4.2.3.1.7: CX.1 in CX.4; CX.5 does not split a patient)
and their stored ebRIM put in schema order. Rows are written as the code before 6a3f4de wrote
them, the tables taken back to the revision before, then upgraded. SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from lxml import etree
from sqlalchemy import select, text, update

from access.store import MIGRATIONS as ACCESS_MIGRATIONS
from access.store import AccessStore
from access.store import migrate as migrate_access
from registry.query import run_stored_query
from registry.register import Registry
from registry.store import MIGRATIONS as REGISTRY_MIGRATIONS
from registry.store import migrate as migrate_registry
from registry.store import schema as t
from tests.registry.test_schema_validity import assert_valid
from tests.support.metadata import draft, fresh_patient
from xds.vocabulary import NS_RIM, STORED_QUERIES, Status

APPROVED = f"('{Status.APPROVED}')"
RIM = "{%s}" % NS_RIM


def key_of(patient: str) -> str:
    return patient.removesuffix("^NH")


def find(registry: Registry, patient: str, returns: str = "ObjectRef"):
    return run_stored_query(registry.db, STORED_QUERIES["FindDocuments"], {
        "$XDSDocumentEntryPatientId": [[f"'{patient}'"]], "$XDSDocumentEntryStatus": [[APPROVED]]}, returns)


def old_order(xml: bytes) -> bytes:
    """What the registry stored before 6a3f4de for a request written Name first: Name and
    Description ahead of the Slots, against ebRIM 3.0's order."""
    el = etree.fromstring(xml)
    for tag in ("Description", "Name"):
        child = el.find(RIM + tag)
        if child is not None:
            el.remove(child)
            el.insert(0, child)
    return etree.tostring(el)


def age_registry(db, patient: str) -> None:
    """Rewrite the rows of ``patient`` as the code before 6a3f4de stored them: the id as sent
    (with CX.5) in every patient column, each object's XML in the order it was sent."""
    with db.write() as conn:
        for table in (t.patients, t.registry_objects, t.document_entries, t.submission_sets, t.folders):
            conn.execute(update(table).where(table.c.patient_id == key_of(patient)).values(patient_id=patient))
        for seq, xml in conn.execute(select(t.registry_objects.c.seq, t.registry_objects.c.xml)).all():
            conn.execute(update(t.registry_objects).where(t.registry_objects.c.seq == seq)
                         .values(xml=old_order(bytes(xml))))


@pytest.fixture
def registry(db) -> Registry:
    return Registry(db)


def test_migration_0004_rekeys_stored_patient_ids_and_finds_them_under_either_spelling(registry):
    db = registry.db
    patient = fresh_patient()
    assert registry.add_patient(patient)
    d = draft(patient, documents=2)
    d.add_folder()
    assert not registry.register(d.objects()).has_errors
    age_registry(db, patient)
    with db.read() as conn:
        assert conn.execute(select(t.document_entries.c.patient_id)).scalars().all() == [patient] * 2
    assert not find(registry, key_of(patient)).ids, "rows stored before the key are invisible: the bug"
    db.downgrade("0003", REGISTRY_MIGRATIONS)
    migrate_registry(db)
    for spelling in (patient, key_of(patient)):
        assert len(find(registry, spelling).ids) == 2
    with db.read() as conn:
        for table in (t.patients, t.registry_objects, t.document_entries, t.submission_sets, t.folders):
            stored = set(conn.execute(select(table.c.patient_id).where(table.c.patient_id.is_not(None)))
                         .scalars())
            assert stored == {key_of(patient)}, table.name
    assert not registry.register(draft(key_of(patient)).objects()).has_errors, "the record is open, found"


def test_migration_0004_puts_stored_ebrim_in_schema_order(registry):
    """LeafClass answers return the stored XML (ITI TF-2 3.18.4.1.3.7): after 0004 they are schema-valid."""
    db = registry.db
    patient = fresh_patient()
    registry.add_patient(patient)
    d = draft(patient)
    d.add_folder()
    assert not registry.register(d.objects()).has_errors
    age_registry(db, patient)
    with db.read() as conn:
        stale = [etree.fromstring(bytes(x)) for x in conn.execute(select(t.registry_objects.c.xml)).scalars()]
    assert any(el[0].tag == RIM + "Name" for el in stale), "stored in the old order"
    db.downgrade("0003", REGISTRY_MIGRATIONS)
    migrate_registry(db)
    answer = find(registry, key_of(patient), "LeafClass")
    assert answer.objects
    for el in answer.objects:
        assert_valid(el)
    with db.read() as conn:
        for (xml,) in conn.execute(select(t.registry_objects.c.xml)).all():
            el = etree.fromstring(bytes(xml))
            assert el.find(RIM + "Slot") is None or el.index(el.find(RIM + "Slot")) == 0, etree.tostring(el)[:200]
        values = {e.get("value") for (xml,) in conn.execute(select(t.registry_objects.c.xml)).all()
                  for e in etree.fromstring(bytes(xml)).iter() if e.get("value", "").startswith(patient[:15])}
        assert values == {patient}, "the XML keeps the id as sent"


def test_migration_0004_merges_records_of_one_patient_keeping_the_earliest_and_a_closure(registry):
    db = registry.db
    closed_first, open_first = fresh_patient(), fresh_patient()
    with db.write() as conn:
        conn.execute(t.patients.insert(), [
            {"patient_id": key_of(closed_first), "state": "closed", "created_at": "2020-01-01T00:00:00+00:00"},
            {"patient_id": closed_first, "state": "open", "created_at": "2023-01-01T00:00:00+00:00"},
            {"patient_id": open_first, "state": "open", "created_at": "2019-05-01T00:00:00+00:00"},
            {"patient_id": key_of(open_first) + "^INS", "state": "open", "created_at": "2021-05-01T00:00:00+00:00"},
            {"patient_id": key_of(open_first), "state": "open", "created_at": "2022-05-01T00:00:00+00:00"},
        ])
    db.downgrade("0003", REGISTRY_MIGRATIONS)
    migrate_registry(db)
    assert sorted(registry.list_patients()) == sorted([
        (key_of(closed_first), "closed", "2020-01-01T00:00:00+00:00"),
        (key_of(open_first), "open", "2019-05-01T00:00:00+00:00")])


def test_migration_0004_handles_more_rows_than_a_batch(registry):
    db = registry.db
    patients = [fresh_patient() for _ in range(1203)]
    with db.write() as conn:
        conn.execute(t.patients.insert(), [{"patient_id": p, "state": "open", "created_at": "2020-01-01"}
                                           for p in patients])
    db.downgrade("0003", REGISTRY_MIGRATIONS)
    migrate_registry(db)
    with db.read() as conn:
        assert set(conn.execute(select(t.patients.c.patient_id)).scalars()) == {key_of(p) for p in patients}


# ----------------------------------------------------------------------------- x0003

def test_migration_x0003_rekeys_and_merges_the_access_policy(db):
    """A blocked professional stays blocked, an authorisation is kept, every emergency access
    stays in the log, the patient's opposition to break-glass is kept."""
    migrate_access(db)
    store = AccessStore(db)
    patient = fresh_patient()
    key = key_of(patient)
    db.downgrade("x0002", ACCESS_MIGRATIONS)
    with db.write() as conn:
        conn.execute(text(
            "INSERT INTO access_records (patient_id, treating_physician, break_glass_allowed, centre_15_allowed, "
            "updated_at) VALUES (:p1, '810000000009', :f, :t, 1.0), (:p2, NULL, :t, :t, 2.0)"),
            {"p1": patient, "p2": key, "t": True, "f": False})
        conn.execute(text("INSERT INTO access_professionals (patient_id, professional_id, status, updated_at) VALUES "
                          "(:p1, '810000000001', 'blocked', 1.0), (:p2, '810000000001', 'authorised', 2.0), "
                          "(:p1, '810000000002', 'authorised', 1.0), (:p2, '810000000003', 'blocked', 1.0)"),
                     {"p1": patient, "p2": key})
        conn.execute(text("INSERT INTO access_documents (unique_id, patient_id, masked, disclosed, updated_at) "
                          "VALUES ('1.2.3.4', :p1, :t, :f, 1.0)"), {"p1": patient, "t": True, "f": False})
        conn.execute(text("INSERT INTO access_emergency (patient_id, professional_id, mode, at) VALUES "
                          "(:p1, '810000000004', 'bris_de_glace', 1.0), (:p2, '810000000005', 'centre_15', 2.0)"),
                     {"p1": patient, "p2": key})
    migrate_access(db)
    for spelling in (patient, key):
        record = store.record(spelling)
        assert record.blocked == {"810000000001", "810000000003"}
        assert record.authorised == {"810000000002"}
        assert record.treating_physician == "810000000009"
        assert record.break_glass_allowed is False and record.centre_15_allowed is True
        assert record.documents["1.2.3.4"].masked is True
        assert [e["professional_id"] for e in store.emergency_accesses(spelling)] == ["810000000004", "810000000005"]
    with db.read() as conn:
        for table in ("access_records", "access_professionals", "access_documents", "access_emergency"):
            assert set(conn.execute(text(f"SELECT patient_id FROM {table}")).scalars()) == {key}, table


def test_each_migration_history_has_one_head():
    """Revisions written in parallel (0004 patient keys, 0005 metadata versions, 0006 patient
    demographics) chain into one line: ``upgrade head`` needs one head."""
    for migrations in (REGISTRY_MIGRATIONS, ACCESS_MIGRATIONS):
        cfg = Config()
        cfg.set_main_option("script_location", str(migrations))
        assert len(ScriptDirectory.from_config(cfg).get_heads()) == 1, migrations
