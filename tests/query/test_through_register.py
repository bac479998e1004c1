"""Stored queries over content registered by ITI-42 (Registry.register), lifecycle included."""
from __future__ import annotations

import pytest

from registry.register import Registry
from tests.query.conftest import APPROVED, DEPRECATED, run
from tests.support.metadata import draft, fresh_patient
from xds.vocabulary import AssocType, Status


@pytest.fixture
def registry(db) -> Registry:
    return Registry(db)


@pytest.fixture
def patient(registry) -> str:
    pid = fresh_patient()
    registry.add_patient(pid)
    return pid


def register(registry, d) -> None:
    errors = registry.register(d.objects())
    assert not errors.has_errors, [(e.code, e.context) for e in errors]


def uuid_of(db, unique_id: str) -> str:
    r = run(db, "GetDocuments", {"$XDSDocumentEntryUniqueId": f"('{unique_id}')"}, return_type="ObjectRef")
    [uuid] = r.ids
    return uuid


def test_replacement_lifecycle_through_queries(registry, patient, db):
    first = draft(patient)
    fol = first.add_folder()
    first.file_in_folder(fol.entry_uuid, first.documents[0].entry_uuid)
    register(registry, first)
    original_uid = first.documents[0].unique_id
    original = uuid_of(db, original_uid)

    second = draft(patient)
    second.relate(AssocType.RPLC, second.documents[0].entry_uuid, original)
    register(registry, second)
    replacement = uuid_of(db, second.documents[0].unique_id)

    base = {"$XDSDocumentEntryPatientId": f"'{patient}'"}
    assert run(db, "FindDocuments", {**base, "$XDSDocumentEntryStatus": APPROVED}).ids == [replacement]
    assert run(db, "FindDocuments", {**base, "$XDSDocumentEntryStatus": DEPRECATED}).ids == [original]

    related = run(db, "GetRelatedDocuments", {"$XDSDocumentEntryUniqueId": f"'{original_uid}'",
                                              "$AssociationTypes": f"('{AssocType.RPLC}')"})
    assert related.ok and {original, replacement} <= set(related.ids) and len(related.ids) == 3

    # the replacement joined the original's folder (TF-3 4.1.6.1)
    folders = run(db, "FindFolders", {"$XDSFolderPatientId": f"'{patient}'", "$XDSFolderStatus": APPROVED})
    [folder_uuid] = folders.ids
    contents = run(db, "GetFolderAndContents", {"$XDSFolderEntryUUID": f"'{folder_uuid}'"})
    docs = [el.get("id") for el in contents.objects if el.tag.endswith("ExtrinsicObject")]
    assert set(docs) == {original, replacement}
    statuses = {el.get("id"): el.get("status") for el in contents.objects}
    assert statuses[original] == Status.DEPRECATED and statuses[replacement] == Status.APPROVED

    sets = run(db, "FindSubmissionSets", {"$XDSSubmissionSetPatientId": f"'{patient}'",
                                          "$XDSSubmissionSetStatus": APPROVED})
    assert len(sets.ids) == 2
    everything = run(db, "GetAll", {"$patientId": f"'{patient}'",
                                    "$XDSDocumentEntryStatus": f"('{Status.APPROVED}','{Status.DEPRECATED}')",
                                    "$XDSSubmissionSetStatus": APPROVED, "$XDSFolderStatus": APPROVED})
    assert everything.ok
    assert {original, replacement, folder_uuid, *sets.ids} <= set(everything.ids)
    kinds = sorted(el.tag.rsplit("}", 1)[1] for el in everything.objects)
    assert kinds.count("RegistryPackage") == 3 and kinds.count("ExtrinsicObject") == 2


def test_get_submission_set_and_contents_after_register(registry, patient, db):
    d = draft(patient, documents=2)
    register(registry, d)
    uid = d.submission_set.unique_id
    r = run(db, "GetSubmissionSetAndContents", {"$XDSSubmissionSetUniqueId": f"'{uid}'"})
    assert r.ok
    kinds = [el.tag.rsplit("}", 1)[1] for el in r.objects]
    assert kinds.count("ExtrinsicObject") == 2 and kinds.count("Association") == 2 and kinds.count("RegistryPackage") == 1
