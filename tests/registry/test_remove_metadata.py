"""ITI-62 Remove Metadata at the Document Registry (ITI TF-2 3.62.4.1.3): one test per rule and
error code, on SQLite and PostgreSQL (the ``db`` fixture). The message rules alone are tested in
tests/validation/test_removal_rules.py."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from registry.register import Registry
from registry.remove import remove_metadata
from registry.store import schema as t
from tests.support.metadata import document_entry, draft, fresh_patient, submission_set
from tests.support.metadata import folder as make_folder
from xds.metadata import new_uuid
from xds.validation.removal import RemovalRequest
from xds.vocabulary import AssocType


@pytest.fixture
def registry(db) -> Registry:
    return Registry(db)


@pytest.fixture
def patient(registry) -> str:
    pid = fresh_patient()
    registry.add_patient(pid)
    return pid


def submit(registry, patient, documents: int = 1, folder: bool = False):
    """A registered submission whose objects all carry entryUUIDs (so the test knows them)."""
    d = draft(patient, documents=0)
    d.submission_set = submission_set(patient, new_uuid())
    for _ in range(documents):
        d.add_document(document_entry(patient, new_uuid()))
    if folder:
        d.add_folder(make_folder(patient, new_uuid()))
    for a in d.associations:
        assert a.entry_uuid.startswith("urn:uuid:")
    errors = registry.register(d.objects())
    assert not errors.has_errors, list(errors)
    return d


def remove(registry, *ids, refuse=None):
    return remove_metadata(registry, RemovalRequest(list(ids)), refuse)


def codes(result) -> list[str]:
    return [e.code for e in result.errors if e.is_error]


def count(registry, table, **where) -> int:
    stmt = select(func.count()).select_from(table)
    for column, value in where.items():
        stmt = stmt.where(table.c[column] == value)
    with registry.db.read() as conn:
        return conn.execute(stmt).scalar_one()


def everything(d) -> list[str]:
    return [x.entry_uuid for x in d.documents + d.folders + d.associations] + [d.submission_set.entry_uuid]


def test_unknown_object_is_unresolved_reference(registry, patient):
    result = remove(registry, new_uuid())
    assert codes(result) == ["UnresolvedReferenceException"]


def test_unknown_object_among_known_ones_removes_nothing(registry, patient):
    d = submit(registry, patient)
    result = remove(registry, *everything(d), new_uuid())
    assert codes(result) == ["UnresolvedReferenceException"]
    assert count(registry, t.document_entries, uuid=d.documents[0].entry_uuid) == 1


def test_removing_submission_set_alone_is_references_exist(registry, patient):
    d = submit(registry, patient)
    result = remove(registry, d.submission_set.entry_uuid)
    assert codes(result) == ["ReferencesExistException"]
    assert count(registry, t.submission_sets, uuid=d.submission_set.entry_uuid) == 1


def test_removing_document_and_membership_leaves_set_unreferenced(registry, patient):
    d = submit(registry, patient)
    result = remove(registry, d.documents[0].entry_uuid, d.associations[0].entry_uuid)
    assert codes(result) == ["XDSUnreferencedObjectException"]
    assert count(registry, t.document_entries, uuid=d.documents[0].entry_uuid) == 1


def test_removing_a_whole_submission_deletes_every_row(registry, patient):
    d = submit(registry, patient, documents=2, folder=True)
    doc = d.documents[0]
    result = remove(registry, *everything(d))
    assert codes(result) == []
    assert sorted(o.uuid for o in result.removed) == sorted(everything(d))
    for uuid in everything(d):
        assert count(registry, t.registry_objects, uuid=uuid) == 0
    assert count(registry, t.document_entries, unique_id=doc.unique_id) == 0
    assert count(registry, t.entry_codes, entry_uuid=doc.entry_uuid) == 0
    assert count(registry, t.entry_authors, entry_uuid=doc.entry_uuid) == 0
    assert count(registry, t.entry_authors, entry_uuid=d.submission_set.entry_uuid) == 0
    assert count(registry, t.document_unique_ids, unique_id=doc.unique_id) == 0
    assert count(registry, t.associations, source=d.submission_set.entry_uuid) == 0


def test_removed_unique_id_may_be_registered_again(registry, patient):
    d = submit(registry, patient)
    assert codes(remove(registry, *everything(d))) == []
    again = draft(patient, documents=0)
    again.add_document(document_entry(patient, new_uuid(), unique_id=d.documents[0].unique_id,
                                      hash="0" * 40))
    assert not registry.register(again.objects()).has_errors


def test_document_still_target_of_append_is_references_exist(registry, patient):
    original = submit(registry, patient)
    addendum = draft(patient, documents=0)
    addendum.submission_set = submission_set(patient, new_uuid())
    addendum.add_document(document_entry(patient, new_uuid()))
    apnd = addendum.relate(AssocType.APND, addendum.documents[0].entry_uuid, original.documents[0].entry_uuid)
    assert not registry.register(addendum.objects()).has_errors
    assert codes(remove(registry, *everything(original))) == ["ReferencesExistException"]
    assert codes(remove(registry, *everything(addendum))) == []
    assert count(registry, t.associations, uuid=apnd.entry_uuid) == 0
    assert codes(remove(registry, *everything(original))) == []


def test_removing_the_append_association_alone_is_allowed(registry, patient):
    original = submit(registry, patient)
    addendum = draft(patient, documents=0)
    addendum.submission_set = submission_set(patient, new_uuid())
    addendum.add_document(document_entry(patient, new_uuid()))
    apnd = addendum.relate(AssocType.APND, addendum.documents[0].entry_uuid, original.documents[0].entry_uuid)
    assert not registry.register(addendum.objects()).has_errors
    assert codes(remove(registry, apnd.entry_uuid)) == []
    assert count(registry, t.document_entries, uuid=addendum.documents[0].entry_uuid) == 1


def test_removing_folder_membership_keeps_folder_and_document(registry, patient):
    d = draft(patient, documents=0)
    d.submission_set = submission_set(patient, new_uuid())
    doc = d.add_document(document_entry(patient, new_uuid()))
    fol = d.add_folder(make_folder(patient, new_uuid()))
    member = d.file_in_folder(fol.entry_uuid, doc.entry_uuid)
    link = d.associations[-1]
    assert not registry.register(d.objects()).has_errors
    assert codes(remove(registry, member.entry_uuid)) == ["ReferencesExistException"]
    assert codes(remove(registry, member.entry_uuid, link.entry_uuid)) == []
    assert count(registry, t.folders, uuid=fol.entry_uuid) == 1
    assert count(registry, t.document_entries, uuid=doc.entry_uuid) == 1


def test_refused_object_is_answered_as_unknown(registry, patient):
    d = submit(registry, patient)
    doc = d.documents[0].entry_uuid
    result = remove(registry, *everything(d), refuse=lambda conn, named: {doc} & named.keys())
    assert codes(result) == ["UnresolvedReferenceException"]
    assert result.errors.errors[0].context == \
        f"ObjectRef {doc} is not a DocumentEntry, Folder, SubmissionSet or Association of this registry"
    assert count(registry, t.document_entries, uuid=doc) == 1


def test_dry_run_removes_nothing(registry, patient):
    d = submit(registry, patient)
    result = remove_metadata(registry, RemovalRequest(everything(d)), dry_run=True)
    assert codes(result) == [] and len(result.removed) == len(everything(d))
    assert count(registry, t.document_entries, uuid=d.documents[0].entry_uuid) == 1


def test_removed_document_answers_every_stored_query_as_an_unknown_one(registry, patient):
    """FindDocuments, GetDocuments (by entryUUID and by uniqueId), GetSubmissionSetAndContents,
    GetAssociations and GetRelatedDocuments answer a removed document exactly as one never
    registered (ITI TF-2 3.18.4.1.2.3.7: an empty Success)."""
    from tests.query.conftest import BOTH, find_docs, run
    d = submit(registry, patient)
    doc = d.documents[0]
    never = document_entry(patient, new_uuid())
    assert codes(remove(registry, *everything(d))) == []

    def answers(entry_uuid: str, unique_id: str, ss_unique_id: str) -> list:
        results = [
            find_docs(registry.db, patient=patient, status=BOTH),
            run(registry.db, "GetDocuments", {"$XDSDocumentEntryEntryUUID": f"('{entry_uuid}')"}),
            run(registry.db, "GetDocuments", {"$XDSDocumentEntryUniqueId": f"('{unique_id}')"}),
            run(registry.db, "GetSubmissionSetAndContents", {"$XDSSubmissionSetUniqueId": f"'{ss_unique_id}'"}),
            run(registry.db, "GetAssociations", {"$uuid": f"('{entry_uuid}')"}),
            run(registry.db, "GetRelatedDocuments", {"$XDSDocumentEntryEntryUUID": f"'{entry_uuid}'",
                                                     "$AssociationTypes": "('urn:ihe:iti:2007:AssociationType:RPLC')"}),
        ]
        return [(r.status, [e.code for e in r.errors], len(r.objects)) for r in results]

    assert answers(doc.entry_uuid, doc.unique_id, d.submission_set.unique_id) == \
        answers(never.entry_uuid, never.unique_id, "1.2.3.4.5.6.7.8.9")
    assert all(n == 0 for _, _, n in answers(doc.entry_uuid, doc.unique_id, d.submission_set.unique_id))


def test_process_killed_during_removal_leaves_the_old_state(registry, patient, db):
    """A process killed (os._exit) inside ITI-62's transaction, after every DELETE and before the
    commit, leaves every row of the submission in place (the old state); the same removal then
    succeeds whole (the new state): never half."""
    import subprocess
    import sys
    import textwrap
    d = submit(registry, patient, documents=2, folder=True)
    ids = everything(d)
    script = textwrap.dedent(f"""
        import os
        from registry import remove
        from registry.register import Registry
        from storage.database import Database
        from xds.validation.removal import RemovalRequest
        deleting = remove._delete
        def die_before_commit(conn, removed):
            deleting(conn, removed)
            os._exit(87)
        remove._delete = die_before_commit
        remove.remove_metadata(Registry(Database({db.url!r})), RemovalRequest({ids!r}))
        raise SystemExit("the removal did not reach its deletes")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 87, done.stderr
    for uuid in ids:
        assert count(registry, t.registry_objects, uuid=uuid) == 1
    assert count(registry, t.document_entries, uuid=d.documents[0].entry_uuid) == 1
    assert count(registry, t.document_unique_ids, unique_id=d.documents[0].unique_id) == 1
    assert count(registry, t.entry_codes, entry_uuid=d.documents[0].entry_uuid) > 0
    assert codes(remove(registry, *ids)) == []
    assert all(count(registry, t.registry_objects, uuid=uuid) == 0 for uuid in ids)
