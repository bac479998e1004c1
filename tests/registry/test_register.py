"""ITI-42 Register Document Set-b: the Document Registry's own checks (ITI TF-2 3.42.4.1.3).

Message-level metadata rules are tested in tests/validation; these need the registry's contents.
Every test runs on SQLite and PostgreSQL (the ``db`` fixture).
"""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from registry.register import Registry
from registry.store import schema as t
from tests.support.metadata import document_entry, draft, folder
from xds import rim
from xds.metadata import new_uuid
from xds.patient import patient_key
from xds.rim import Slot
from xds.vocabulary import AssocType, Status


@pytest.fixture
def registry(db) -> Registry:
    return Registry(db)


@pytest.fixture
def patient(registry) -> str:
    from tests.support.metadata import fresh_patient
    pid = fresh_patient()
    registry.add_patient(pid)
    return pid


def codes(errors) -> list[str]:
    return [e.code for e in errors if e.is_error]


def stored_uuids(registry, kind="document", patient=None) -> list[str]:
    q = select(t.registry_objects.c.uuid).where(t.registry_objects.c.kind == kind)
    if patient:
        q = q.where(t.registry_objects.c.patient_id == patient_key(patient))
    with registry.db.read() as conn:
        return list(conn.execute(q.order_by(t.registry_objects.c.seq)).scalars())


def doc_status(registry, unique_id) -> list[str]:
    with registry.db.read() as conn:
        return list(conn.execute(select(t.document_entries.c.status)
                                 .where(t.document_entries.c.unique_id == unique_id)).scalars())


def doc_uuid(registry, unique_id) -> str:
    with registry.db.read() as conn:
        return conn.execute(select(t.document_entries.c.uuid).where(t.document_entries.c.unique_id == unique_id)).scalar_one()


def register(registry, d):
    return registry.register(d.objects())


def test_register_one_document_assigns_uuids_and_approves(registry, patient):
    d = draft(patient)
    assert codes(register(registry, d)) == []
    docs = stored_uuids(registry, patient=patient)
    assert len(docs) == 1 and docs[0].startswith("urn:uuid:")
    assert doc_status(registry, d.documents[0].unique_id) == [Status.APPROVED]
    with registry.db.read() as conn:
        xml = conn.execute(select(t.registry_objects.c.xml).where(t.registry_objects.c.uuid == docs[0])).scalar_one()
    stored = rim.from_bytes(xml)
    assert stored.id == docs[0] and stored.get("status") == Status.APPROVED and stored.get("lid") == docs[0]
    assert all(c.get("classifiedObject") == docs[0] for c in stored.classifications)


def test_unknown_patient_id(registry):
    from tests.support.metadata import fresh_patient
    d = draft(fresh_patient())
    assert codes(register(registry, d)) == ["XDSUnknownPatientId"]
    assert stored_uuids(registry) == []


def test_closed_record_refuses_submission(registry, patient):
    registry.set_patient_state(patient, "closed")
    errors = register(registry, draft(patient))
    assert codes(errors) == ["XDSUnknownPatientId"]
    assert "closed" in errors.errors[0].context


def test_patient_check_can_be_switched_off(db):
    from tests.support.metadata import fresh_patient
    registry = Registry(db, check_patient_ids=False)
    assert codes(register(registry, draft(fresh_patient()))) == []


def test_duplicate_submission_set_unique_id_in_registry(registry, patient):
    d = draft(patient)
    assert codes(register(registry, d)) == []
    again = draft(patient)
    again.submission_set.unique_id = d.submission_set.unique_id
    assert codes(register(registry, again)) == ["XDSDuplicateUniqueIdInRegistry"]


def test_duplicate_folder_unique_id_in_registry(registry, patient):
    d = draft(patient, documents=0)
    f = d.add_folder()
    assert codes(register(registry, d)) == []
    again = draft(patient, documents=0)
    again.add_folder(folder(patient, "FolderX")).unique_id = f.unique_id
    assert codes(register(registry, again)) == ["XDSDuplicateUniqueIdInRegistry"]


def test_document_resubmission_with_identical_hash_is_accepted(registry, patient):
    d = draft(patient)
    assert codes(register(registry, d)) == []
    again = draft(patient, documents=0)
    again.add_document(document_entry(patient, unique_id=d.documents[0].unique_id, hash=d.documents[0].hash,
                                      size=d.documents[0].size))
    assert codes(register(registry, again)) == []
    assert len(doc_status(registry, d.documents[0].unique_id)) == 2


def test_non_identical_hash(registry, patient):
    d = draft(patient)
    assert codes(register(registry, d)) == []
    again = draft(patient, documents=0)
    again.add_document(document_entry(patient, unique_id=d.documents[0].unique_id, hash="0" * 40))
    assert codes(register(registry, again)) == ["XDSNonIdenticalHash"]
    assert len(doc_status(registry, d.documents[0].unique_id)) == 1


def test_entry_uuid_already_in_registry(registry, patient):
    fixed = new_uuid()
    d = draft(patient, documents=0)
    d.add_document(document_entry(patient, entry_id=fixed))
    assert codes(register(registry, d)) == []
    again = draft(patient, documents=0)
    again.add_document(document_entry(patient, entry_id=fixed))
    assert codes(register(registry, again)) == ["XDSRegistryMetadataError"]


def test_association_to_unknown_object_is_unresolved_reference(registry, patient):
    d = draft(patient)
    d.relate(AssocType.RPLC, d.documents[0].entry_uuid, new_uuid())
    assert codes(register(registry, d)) == ["UnresolvedReferenceException"]
    assert stored_uuids(registry, patient=patient) == []


def _registered_document(registry, patient) -> tuple[str, str]:
    d = draft(patient)
    assert codes(register(registry, d)) == []
    uid = d.documents[0].unique_id
    return doc_uuid(registry, uid), uid


def test_replace_deprecates_original(registry, patient):
    original, uid = _registered_document(registry, patient)
    d = draft(patient)
    d.relate(AssocType.RPLC, d.documents[0].entry_uuid, original)
    assert codes(register(registry, d)) == []
    assert doc_status(registry, uid) == [Status.DEPRECATED]
    assert doc_status(registry, d.documents[0].unique_id) == [Status.APPROVED]


def test_xfrm_rplc_deprecates_original(registry, patient):
    original, uid = _registered_document(registry, patient)
    d = draft(patient)
    d.relate(AssocType.XFRM_RPLC, d.documents[0].entry_uuid, original)
    assert codes(register(registry, d)) == []
    assert doc_status(registry, uid) == [Status.DEPRECATED]


def test_replace_deprecates_addenda_and_transformations_of_original(registry, patient):
    original, _uid = _registered_document(registry, patient)
    addendum = draft(patient)
    addendum.relate(AssocType.APND, addendum.documents[0].entry_uuid, original)
    transform = draft(patient)
    transform.relate(AssocType.XFRM, transform.documents[0].entry_uuid, original)
    assert codes(register(registry, addendum)) == [] and codes(register(registry, transform)) == []
    replacement = draft(patient)
    replacement.relate(AssocType.RPLC, replacement.documents[0].entry_uuid, original)
    assert codes(register(registry, replacement)) == []
    assert doc_status(registry, addendum.documents[0].unique_id) == [Status.DEPRECATED]
    assert doc_status(registry, transform.documents[0].unique_id) == [Status.DEPRECATED]


def test_append_to_deprecated_document_fails(registry, patient):
    original, _ = _registered_document(registry, patient)
    replacement = draft(patient)
    replacement.relate(AssocType.RPLC, replacement.documents[0].entry_uuid, original)
    assert codes(register(registry, replacement)) == []
    addendum = draft(patient)
    addendum.relate(AssocType.APND, addendum.documents[0].entry_uuid, original)
    assert codes(register(registry, addendum)) == ["XDSRegistryDeprecatedDocumentError"]
    assert doc_status(registry, addendum.documents[0].unique_id) == []


def test_replacement_patient_must_match_original(registry, patient):
    from tests.support.metadata import fresh_patient
    original, _ = _registered_document(registry, patient)
    other = fresh_patient()
    registry.add_patient(other)
    d = draft(other)
    d.relate(AssocType.RPLC, d.documents[0].entry_uuid, original)
    assert codes(register(registry, d)) == ["XDSPatientIdDoesNotMatch"]


def test_new_folder_gets_last_update_time(registry, patient):
    d = draft(patient)
    f = d.add_folder()
    f.last_update_time = "19990101000000"
    d.file_in_folder(f.entry_uuid, d.documents[0].entry_uuid)
    assert codes(register(registry, d)) == []
    with registry.db.read() as conn:
        row = conn.execute(select(t.folders).where(t.folders.c.unique_id == f.unique_id)).one()
        xml = conn.execute(select(t.registry_objects.c.xml).where(t.registry_objects.c.uuid == row.uuid)).scalar_one()
    assert row.last_update_time > "20200101000000"
    assert rim.from_bytes(xml).slot_values("lastUpdateTime") == [row.last_update_time]


def _registered_folder(registry, patient):
    d = draft(patient, documents=0)
    f = d.add_folder()
    assert codes(register(registry, d)) == []
    with registry.db.read() as conn:
        return conn.execute(select(t.folders.c.uuid, t.folders.c.last_update_time)
                            .where(t.folders.c.unique_id == f.unique_id)).one()


def test_add_new_document_to_existing_folder_updates_last_update_time(registry, patient):
    fol = _registered_folder(registry, patient)
    with registry.db.write() as conn:
        conn.execute(t.folders.update().where(t.folders.c.uuid == fol.uuid).values(last_update_time="20000101000000"))
    d = draft(patient)
    d.file_in_folder(fol.uuid, d.documents[0].entry_uuid)
    assert codes(register(registry, d)) == []
    with registry.db.read() as conn:
        assert conn.execute(select(t.folders.c.last_update_time).where(t.folders.c.uuid == fol.uuid)).scalar_one() \
            > "20200101000000"


def test_add_existing_document_to_existing_folder(registry, patient):
    fol = _registered_folder(registry, patient)
    doc, _ = _registered_document(registry, patient)
    d = draft(patient, documents=0)
    d.file_in_folder(fol.uuid, doc)
    assert codes(register(registry, d)) == []
    with registry.db.read() as conn:
        n = conn.execute(select(func.count()).select_from(t.associations).where(
            t.associations.c.source == fol.uuid, t.associations.c.target == doc)).scalar_one()
    assert n == 1


def test_folder_patient_must_match_document(registry, patient):
    from tests.support.metadata import fresh_patient
    fol = _registered_folder(registry, patient)
    other = fresh_patient()
    registry.add_patient(other)
    d = draft(other)
    d.file_in_folder(fol.uuid, d.documents[0].entry_uuid)
    assert codes(register(registry, d)) == ["XDSPatientIdDoesNotMatch"]


def test_replacement_joins_the_folders_of_the_original(registry, patient):
    d = draft(patient)
    f = d.add_folder()
    d.file_in_folder(f.entry_uuid, d.documents[0].entry_uuid)
    assert codes(register(registry, d)) == []
    original = doc_uuid(registry, d.documents[0].unique_id)
    replacement = draft(patient)
    replacement.relate(AssocType.RPLC, replacement.documents[0].entry_uuid, original)
    assert codes(register(registry, replacement)) == []
    new_doc = doc_uuid(registry, replacement.documents[0].unique_id)
    with registry.db.read() as conn:
        folder_uuid = conn.execute(select(t.folders.c.uuid).where(t.folders.c.unique_id == f.unique_id)).scalar_one()
        members = set(conn.execute(select(t.associations.c.target).where(
            t.associations.c.source == folder_uuid,
            t.associations.c.association_type == AssocType.HAS_MEMBER)).scalars())
    assert members == {original, new_doc}


def test_extra_metadata_is_stored(registry, patient):
    d = draft(patient)
    d.documents[0].extra_slots = [Slot("urn:dmp:extra:visibility", ["patient", "ps"])]
    assert codes(register(registry, d)) == []
    with registry.db.read() as conn:
        xml = conn.execute(select(t.registry_objects.c.xml).where(
            t.registry_objects.c.uuid == doc_uuid(registry, d.documents[0].unique_id))).scalar_one()
    assert rim.from_bytes(xml).slot_values("urn:dmp:extra:visibility") == ["patient", "ps"]


def test_failed_submission_stores_nothing(registry, patient):
    d = draft(patient, documents=2)
    d.documents[1].repository_unique_id = None
    assert "XDSRegistryMetadataError" in codes(register(registry, d))
    assert stored_uuids(registry, patient=patient) == []
    assert stored_uuids(registry, kind="submission_set", patient=patient) == []


def test_failure_after_checks_rolls_back_every_row(registry, patient, monkeypatch):
    """A failure while storing (here: an injected error in the last step) leaves no partial rows."""
    original, _ = _registered_document(registry, patient)
    d = draft(patient)
    d.relate(AssocType.RPLC, d.documents[0].entry_uuid, original)

    def boom(*_a, **_k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(Registry, "_deprecate", boom)
    with pytest.raises(RuntimeError):
        register(registry, d)
    assert len(stored_uuids(registry, patient=patient)) == 1
    assert len(stored_uuids(registry, kind="submission_set", patient=patient)) == 1


def test_concurrent_submissions_of_one_unique_id_exactly_one_wins(registry, patient):
    shared_uid = draft(patient).documents[0].unique_id
    drafts = []
    for i in range(6):
        d = draft(patient, documents=0)
        d.add_document(document_entry(patient, unique_id=shared_uid, hash=f"{i:040d}"))
        drafts.append(d)
    results: list[list[str]] = [None] * len(drafts)
    barrier = threading.Barrier(len(drafts))

    def submit(i):
        barrier.wait()
        results[i] = codes(register(registry, drafts[i]))

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(drafts))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sum(1 for r in results if r == []) == 1, results
    assert all(r in ([], ["XDSNonIdenticalHash"]) for r in results), results
    assert len(doc_status(registry, shared_uid)) == 1


def test_free_standing_classifications_are_read_as_nested(registry, patient):
    """ebRIM lets a code Classification stand beside its object (TF-3 4.1.9.1)."""
    d = draft(patient)
    objects = d.objects()
    doc = objects[0]
    class_code = next(c for c in doc.classifications if c.get("classificationScheme") ==
                      "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a")
    doc.classifications.remove(class_code)
    objects.append(class_code)
    assert codes(registry.register(objects)) == []
    with registry.db.read() as conn:
        row = conn.execute(select(t.document_entries.c.class_code).where(
            t.document_entries.c.unique_id == d.documents[0].unique_id)).scalar_one()
    assert row == "10^^1.2.250.1.213.1.1.4.1"
