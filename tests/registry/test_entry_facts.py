"""A DocumentEntry's row carries its confidentialityCodes and authorPerson values (migration 0003),
which an access policy reads with every FindDocuments answer; on SQLite and PostgreSQL."""
from __future__ import annotations

from sqlalchemy import select, update

from registry.register import Registry
from registry.store import MIGRATIONS as REGISTRY_MIGRATIONS
from registry.store import migrate as migrate_registry
from registry.store import schema as t
from tests.support.metadata import document_entry, draft, fresh_patient
from xds.metadata import Author, Code
from xds.patient import patient_key

SEP = t.FACTS_SEPARATOR
CODES = [Code("N", "2.16.840.1.113883.5.25", "Normal"), Code("MASQUE_PS", "1.2.250.1.213.1.1.4.13", "Masqué")]
AUTHORS = [Author("801234567890^Martin^Anne", ["Clinique"], ["Medecin"]), Author(None, ["Laboratoire"], []),
           Author("809876543210^Durand^Paul", [], ["Infirmier"])]


def registered(db) -> tuple[str, dict[str, tuple]]:
    registry = Registry(db)
    patient = fresh_patient()
    registry.add_patient(patient)
    d = draft(patient, documents=0)
    d.add_document(document_entry(patient, confidentiality_codes=CODES, authors=AUTHORS))
    d.add_document(document_entry(patient, confidentiality_codes=CODES[:1], authors=[]))
    assert not [e for e in registry.register(d.objects()) if e.is_error]
    return patient, facts_of(db, patient)


def facts_of(db, patient: str) -> dict[str, tuple]:
    de = t.document_entries
    with db.read() as conn:
        rows = conn.execute(select(de.c.unique_id, de.c.confidentiality_codes, de.c.author_persons)
                            .where(de.c.patient_id == patient_key(patient))).all()
    return {r.unique_id: (r.confidentiality_codes, r.author_persons) for r in rows}


def as_sets(facts: dict[str, tuple]) -> dict[str, tuple[set, set]]:
    return {uid: (set((c or "").split(SEP)) - {""}, set((a or "").split(SEP)) - {""}) for uid, (c, a) in facts.items()}


def test_registration_writes_the_confidentiality_codes_and_author_persons_in_the_entry_row(db):
    _, facts = registered(db)
    assert sorted(facts.values(), key=str) == sorted([
        ("N^^2.16.840.1.113883.5.25" + SEP + "MASQUE_PS^^1.2.250.1.213.1.1.4.13",
         "801234567890^Martin^Anne" + SEP + "809876543210^Durand^Paul"),
        ("N^^2.16.840.1.113883.5.25", None)], key=str)


def test_migration_0003_fills_the_rows_stored_before_it(db):
    patient, facts = registered(db)
    with db.write() as conn:
        conn.execute(update(t.document_entries).values(confidentiality_codes=None, author_persons=None))
    db.downgrade("0002", REGISTRY_MIGRATIONS)
    migrate_registry(db)
    assert as_sets(facts_of(db, patient)) == as_sets(facts)
