"""ITI-57 Update Document Set at the Document Registry (ITI TF-2 3.57.4.1.3): each rule that needs
the registry's contents, with its error code; the message-level rules are in
tests/registry/test_update_rules.py. Every test runs on SQLite and PostgreSQL (``db``)."""
from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select

from registry.query import run_stored_query
from registry.register import Registry
from registry.store import schema as t
from registry.update import update_document_set
from tests.support.metadata import document_entry, draft, fresh_oid, fresh_patient
from xds.metadata import Association, new_uuid
from xds.rim import Slot
from xds.vocabulary import STORED_QUERIES, AssocType, Status
from xds.vocabulary import MetadataUpdate as MU


@pytest.fixture
def registry(db) -> Registry:
    return Registry(db)


@pytest.fixture
def patient(registry) -> str:
    pid = fresh_patient()
    registry.add_patient(pid)
    return pid


def codes(errors) -> list[str]:
    return [e.code for e in errors if e.is_error]


def original(registry, patient):
    d = draft(patient, documents=0)
    doc = d.add_document(document_entry(patient, new_uuid()))
    assert codes(registry.register(d.objects())) == []
    return doc


def new_version(patient, previous, version: int = 1, propagation: str | None = None, **changes):
    d = draft(patient, documents=0)
    doc = dataclasses.replace(previous, entry_uuid=new_uuid(), logical_id=previous.logical_id or previous.entry_uuid,
                              **changes)
    d.add_document(doc)
    member = d.associations[-1]
    member.extra_slots = [Slot(MU.PREVIOUS_VERSION, [str(version)])]
    if propagation is not None:
        member.extra_slots.append(Slot(MU.ASSOCIATION_PROPAGATION, [propagation]))
    return d, doc


def status_update(patient, target: str, original_status: str, new_status: str):
    d = draft(patient, documents=0)
    d.associations.append(Association(new_uuid(), MU.UPDATE_AVAILABILITY_STATUS, d.submission_set.entry_uuid, target,
                                      extra_slots=[Slot(MU.ORIGINAL_STATUS, [original_status]),
                                                   Slot(MU.NEW_STATUS, [new_status])]))
    return d


def versions(registry, lid: str) -> list[tuple[int, str, int]]:
    with registry.db.read() as conn:
        de = t.document_entries
        return [tuple(r) for r in conn.execute(select(de.c.version, de.c.status, de.c.is_latest)
                                               .where(de.c.lid == lid).order_by(de.c.version))]


def test_new_version_deprecates_the_previous_and_takes_its_status(registry, patient):
    doc = original(registry, patient)
    d, _ = new_version(patient, doc, title="corrected title")
    assert codes(update_document_set(registry, d.objects())) == []
    assert versions(registry, doc.entry_uuid) == [(1, Status.DEPRECATED, 0), (2, Status.APPROVED, 1)]


def test_previous_version_not_the_latest_is_xds_metadata_version_error(registry, patient):
    doc = original(registry, patient)
    d, _ = new_version(patient, doc, version=4)
    assert codes(update_document_set(registry, d.objects())) == ["XDSMetadataVersionError"]
    assert versions(registry, doc.entry_uuid) == [(1, Status.APPROVED, 1)]


def test_unknown_logical_id_is_xds_metadata_version_error(registry, patient):
    doc = document_entry(patient, new_uuid())
    d, _ = new_version(patient, doc)
    assert codes(update_document_set(registry, d.objects())) == ["XDSMetadataVersionError"]


def test_changed_unique_id_is_xds_metadata_update_error(registry, patient):
    doc = original(registry, patient)
    d, _ = new_version(patient, doc, unique_id=fresh_oid())
    assert codes(update_document_set(registry, d.objects())) == ["XDSMetadataUpdateError"]


def test_update_availability_status_deprecates_and_approves_again(registry, patient):
    doc = original(registry, patient)
    assert codes(update_document_set(registry, status_update(patient, doc.entry_uuid, Status.APPROVED,
                                                             Status.DEPRECATED).objects())) == []
    assert versions(registry, doc.entry_uuid) == [(1, Status.DEPRECATED, 1)]
    assert codes(update_document_set(registry, status_update(patient, doc.entry_uuid, Status.DEPRECATED,
                                                             Status.APPROVED).objects())) == []
    assert versions(registry, doc.entry_uuid) == [(1, Status.APPROVED, 1)]


def test_original_status_not_current_is_xds_metadata_update_error(registry, patient):
    doc = original(registry, patient)
    d = status_update(patient, doc.entry_uuid, Status.DEPRECATED, Status.APPROVED)
    assert codes(update_document_set(registry, d.objects())) == ["XDSMetadataUpdateError"]


def test_status_of_an_older_version_is_xds_metadata_update_error(registry, patient):
    doc = original(registry, patient)
    d, _ = new_version(patient, doc)
    assert codes(update_document_set(registry, d.objects())) == []
    d = status_update(patient, doc.entry_uuid, Status.DEPRECATED, Status.APPROVED)
    assert codes(update_document_set(registry, d.objects())) == ["XDSMetadataUpdateError"]


def test_status_of_unknown_object_is_unresolved_reference(registry, patient):
    d = status_update(patient, new_uuid(), Status.APPROVED, Status.DEPRECATED)
    assert codes(update_document_set(registry, d.objects())) == ["UnresolvedReferenceException"]


def test_status_of_a_submission_set_is_xds_metadata_update_operation_error(registry, patient):
    d = draft(patient, documents=0)
    d.add_document(document_entry(patient, new_uuid()))
    assert codes(registry.register(d.objects())) == []
    with registry.db.read() as conn:
        ss = conn.execute(select(t.submission_sets.c.uuid)
                          .where(t.submission_sets.c.unique_id == d.submission_set.unique_id)).scalar()
    u = status_update(patient, ss, Status.APPROVED, Status.DEPRECATED)
    assert codes(update_document_set(registry, u.objects())) == ["XDSMetadataUpdateOperationError"]


def test_relationship_between_patients_is_xds_patient_id_reconciliation_error(registry, patient):
    doc = original(registry, patient)
    other = fresh_patient()
    registry.add_patient(other)
    doc2 = original(registry, other)
    d = draft(patient, documents=0)
    a = d.relate(AssocType.APND, doc.entry_uuid, doc2.entry_uuid)
    d.associations.append(Association(new_uuid(), AssocType.HAS_MEMBER, d.submission_set.entry_uuid, a.entry_uuid))
    assert codes(update_document_set(registry, d.objects())) == ["XDSPatientIDReconciliationError"]


def test_patient_change_of_a_folder_member_is_xds_patient_id_reconciliation_error(registry, patient):
    d = draft(patient, documents=0)
    doc = d.add_document(document_entry(patient, new_uuid()))
    fol = d.add_folder()
    d.file_in_folder(fol.entry_uuid, doc.entry_uuid)
    assert codes(registry.register(d.objects())) == []
    other = fresh_patient()
    registry.add_patient(other)
    u, _ = new_version(other, doc, patient_id=other)
    assert codes(update_document_set(registry, u.objects())) == ["XDSPatientIDReconciliationError"]


def test_new_version_joins_the_folders_of_the_previous_with_propagation(registry, patient):
    d = draft(patient, documents=0)
    doc = d.add_document(document_entry(patient, new_uuid()))
    fol = d.add_folder()
    d.file_in_folder(fol.entry_uuid, doc.entry_uuid)
    assert codes(registry.register(d.objects())) == []
    u, _ = new_version(patient, doc)
    assert codes(update_document_set(registry, u.objects())) == []
    with registry.db.read() as conn:
        a = t.associations
        targets = set(conn.execute(select(a.c.target).where(a.c.association_type == AssocType.HAS_MEMBER,
                                                           a.c.source.not_in(select(t.submission_sets.c.uuid))))
                      .scalars())
    assert doc.entry_uuid in targets and len(targets) == 2


def test_find_documents_returns_the_latest_version_only(registry, patient):
    doc = original(registry, patient)
    d, _ = new_version(patient, doc)
    assert codes(update_document_set(registry, d.objects())) == []
    statuses = f"('{Status.APPROVED}','{Status.DEPRECATED}')"
    result = run_stored_query(registry.db, STORED_QUERIES["FindDocuments"],
                              {"$XDSDocumentEntryPatientId": [[f"'{patient}'"]],
                               "$XDSDocumentEntryStatus": [[statuses]]}, "ObjectRef")
    assert result.ok and len(result.ids) == 1
    by_lid = run_stored_query(registry.db, STORED_QUERIES["GetDocuments"],
                              {"$XDSDocumentEntryLogicalID": [[f"'{doc.entry_uuid}'"]],
                               "$MetadataLevel": [["2"]]})
    assert by_lid.ok and len(by_lid.ids) == 2
    by_uid_level_1 = run_stored_query(registry.db, STORED_QUERIES["GetDocuments"],
                                      {"$XDSDocumentEntryUniqueId": [[f"'{doc.unique_id}'"]]})
    assert by_uid_level_1.ok and len(by_uid_level_1.ids) == 1


def test_metadata_level_3_is_xds_registry_error(registry, patient):
    result = run_stored_query(registry.db, STORED_QUERIES["GetDocuments"],
                              {"$XDSDocumentEntryUniqueId": [["'1.2.3'"]], "$MetadataLevel": [["3"]]})
    assert [e.code for e in result.errors] == ["XDSRegistryError"]
