"""FindSubmissionSets, FindFolders, GetAll and the Get* queries (ITI TF-2 3.18.4.1.2.3.7.2 - .13)."""
from __future__ import annotations

from tests.query.builders import ON_DEMAND, PID, PID2, code, document, folder, submission_set
from tests.query.conftest import APPROVED, BOTH, run
from xds.metadata import Author
from xds.vocabulary import AssocType, Status


def ids(result) -> set[str]:
    assert result.ok, [(e.code, e.context) for e in result.errors]
    return set(result.ids)


def find_ss(db, **params):
    p = {"$XDSSubmissionSetPatientId": f"'{PID}'", "$XDSSubmissionSetStatus": APPROVED}
    p.update({"$XDSSubmissionSet" + k: v for k, v in params.items()})
    return run(db, "FindSubmissionSets", p)


def test_find_submission_sets(store, db):
    s1 = submission_set(source_id="1.1.1", submission_time="20200101", content_type_code=code("CT1"),
                        authors=[Author(person="^Martin^Anne")])
    s2 = submission_set(source_id="2.2.2", submission_time="20200301", content_type_code=code("CT2"),
                        authors=[Author(person="^Durand^Paul")])
    store.submit([document()], ss=s1)
    store.submit([document()], ss=s2)
    store.submit([document(PID2)], ss=submission_set(PID2), patient=PID2)
    assert ids(find_ss(db)) == {s1.entry_uuid, s2.entry_uuid}
    assert ids(find_ss(db, SourceId="('1.1.1','9.9')")) == {s1.entry_uuid}
    assert ids(find_ss(db, SubmissionTimeFrom="202002")) == {s2.entry_uuid}
    assert ids(find_ss(db, SubmissionTimeTo="20200301")) == {s1.entry_uuid}
    assert ids(find_ss(db, AuthorPerson="'%Durand%'")) == {s2.entry_uuid}
    assert ids(find_ss(db, ContentType="('CT1^^1.2.3')")) == {s1.entry_uuid}


def test_find_submission_sets_author_person_is_single_valued(store, db):
    r = find_ss(db, AuthorPerson="('%a%','%b%')")
    assert [e.code for e in r.errors] == ["XDSStoredQueryParamNumber"]


def test_find_folders_code_list_and_last_update_time(store, db):
    f1 = folder(codes=[code("F1"), code("F2")])
    f2 = folder(codes=[code("F1")])
    with db.write() as conn:
        store.put_folder(conn, f1, last_update="20200101")
        store.put_folder(conn, f2, last_update="20200601")
        store.put_folder(conn, folder(PID2), last_update="20200601")
    p = {"$XDSFolderPatientId": f"'{PID}'", "$XDSFolderStatus": APPROVED}
    assert ids(run(db, "FindFolders", p)) == {f1.entry_uuid, f2.entry_uuid}
    assert ids(run(db, "FindFolders", {**p, "$XDSFolderLastUpdateTimeFrom": "202003"})) == {f2.entry_uuid}
    assert ids(run(db, "FindFolders", {**p, "$XDSFolderLastUpdateTimeTo": "202003"})) == {f1.entry_uuid}
    assert ids(run(db, "FindFolders", {**p, "$XDSFolderCodeList": "('F1^^1.2.3')"})) == {f1.entry_uuid, f2.entry_uuid}
    assert ids(run(db, "FindFolders", {**p, "$XDSFolderCodeList": (["('F1^^1.2.3')"], ["('F2^^1.2.3')"])})) \
        == {f1.entry_uuid}


def test_get_all(store, db):
    d1, d2, f = document(), document(format_code=code("OTHER")), folder()
    sub = store.submit([d1, d2], [f], members=[(f.entry_uuid, d1.entry_uuid)])
    store.submit([document(PID2)], patient=PID2)
    p = {"$patientId": f"'{PID}'", "$XDSDocumentEntryStatus": APPROVED, "$XDSSubmissionSetStatus": APPROVED,
         "$XDSFolderStatus": APPROVED}
    everything = {sub["ss"], d1.entry_uuid, d2.entry_uuid, f.entry_uuid, *sub["folder_members"],
                  *sub["ss_members"].values()}
    assert ids(run(db, "GetAll", p)) == everything
    # a filtered-out document takes its associations with it
    filtered = ids(run(db, "GetAll", {**p, "$XDSDocumentEntryFormatCode": "('FMT-A^^1.2.3')"}))
    assert filtered == everything - {d2.entry_uuid, sub["ss_members"][d2.entry_uuid]}


def test_get_documents_by_uuid_and_by_unique_id(store, db):
    a, b = document(), document()
    store.submit([a, b])
    store.set_status(b.entry_uuid, Status.DEPRECATED)
    r = run(db, "GetDocuments", {"$XDSDocumentEntryEntryUUID": f"('{a.entry_uuid}','{b.entry_uuid}')"})
    assert ids(r) == {a.entry_uuid, b.entry_uuid}   # any status
    r = run(db, "GetDocuments", {"$XDSDocumentEntryUniqueId": f"('{a.unique_id}')"})
    assert ids(r) == {a.entry_uuid}
    assert ids(run(db, "GetDocuments", {"$XDSDocumentEntryEntryUUID": "('urn:uuid:unknown')"})) == set()


def test_get_folders(store, db):
    f = folder()
    store.submit([], [f])
    assert ids(run(db, "GetFolders", {"$XDSFolderEntryUUID": f"('{f.entry_uuid}')"})) == {f.entry_uuid}
    assert ids(run(db, "GetFolders", {"$XDSFolderUniqueId": f"('{f.unique_id}')"})) == {f.entry_uuid}


def test_get_associations(store, db):
    a, b = document(), document()
    sub = store.submit([a, b], relations=[(AssocType.APND, b.entry_uuid, a.entry_uuid)])
    r = run(db, "GetAssociations", {"$uuid": f"('{a.entry_uuid}')"})
    assert ids(r) == {sub["ss_members"][a.entry_uuid], *sub["relations"]}
    assert all(el.tag.endswith("Association") for el in r.objects)


def test_get_documents_and_associations(store, db):
    a, b = document(), document()
    sub = store.submit([a, b], relations=[(AssocType.APND, b.entry_uuid, a.entry_uuid)])
    r = run(db, "GetDocumentsAndAssociations", {"$XDSDocumentEntryUniqueId": f"('{b.unique_id}')"})
    assert ids(r) == {b.entry_uuid, sub["ss_members"][b.entry_uuid], *sub["relations"]}


def test_get_submission_sets(store, db):
    a, b = document(), document()
    s1 = store.submit([a])
    s2 = store.submit([b])
    r = run(db, "GetSubmissionSets", {"$uuid": f"('{a.entry_uuid}','{b.entry_uuid}')"})
    assert ids(r) == {s1["ss"], s2["ss"], s1["ss_members"][a.entry_uuid], s2["ss_members"][b.entry_uuid]}


def test_get_submission_set_and_contents(store, db):
    d1, d2, f = document(), document(format_code=code("F2")), folder()
    sub = store.submit([d1, d2], [f], members=[(f.entry_uuid, d1.entry_uuid), (f.entry_uuid, d2.entry_uuid)])
    store.submit([document()])
    everything = {sub["ss"], d1.entry_uuid, d2.entry_uuid, f.entry_uuid, *sub["folder_members"],
                  *sub["ss_members"].values()}
    assert ids(run(db, "GetSubmissionSetAndContents", {"$XDSSubmissionSetEntryUUID": f"'{sub['ss']}'"})) == everything
    r = run(db, "GetSubmissionSetAndContents", {"$XDSSubmissionSetEntryUUID": f"'{sub['ss']}'",
                                                "$XDSDocumentEntryFormatCode": "('F2^^1.2.3')"})
    folder_member_d1 = sub["folder_members"][0]
    assert ids(r) == everything - {d1.entry_uuid, sub["ss_members"][d1.entry_uuid], folder_member_d1,
                                   sub["ss_members"][folder_member_d1]}


def test_get_submission_set_and_contents_by_unique_id_and_type(store, db):
    s = submission_set()
    stable, on_demand = document(), document(object_type=ON_DEMAND, hash=None, size=None)
    sub = store.submit([stable, on_demand], ss=s)
    r = run(db, "GetSubmissionSetAndContents", {"$XDSSubmissionSetUniqueId": f"'{s.unique_id}'"})
    assert ids(r) == {s.entry_uuid, stable.entry_uuid, sub["ss_members"][stable.entry_uuid]}
    r = run(db, "GetSubmissionSetAndContents", {"$XDSSubmissionSetUniqueId": f"'{s.unique_id}'",
                                                "$XDSDocumentEntryType": f"('{ON_DEMAND}')"})
    assert ids(r) == {s.entry_uuid, on_demand.entry_uuid, sub["ss_members"][on_demand.entry_uuid]}


def test_get_folder_and_contents(store, db):
    d1, d2, f = document(), document(confidentiality_codes=[code("R")]), folder()
    sub = store.submit([d1, d2], [f], members=[(f.entry_uuid, d1.entry_uuid), (f.entry_uuid, d2.entry_uuid)])
    r = run(db, "GetFolderAndContents", {"$XDSFolderEntryUUID": f"'{f.entry_uuid}'"})
    assert ids(r) == {f.entry_uuid, d1.entry_uuid, d2.entry_uuid, *sub["folder_members"]}
    r = run(db, "GetFolderAndContents", {"$XDSFolderUniqueId": f"'{f.unique_id}'",
                                         "$XDSDocumentEntryConfidentialityCode": "('R^^1.2.3')"})
    assert ids(r) == {f.entry_uuid, d2.entry_uuid, sub["folder_members"][1]}


def test_get_folders_for_document(store, db):
    d, f1, f2 = document(), folder(), folder()
    store.submit([d], [f1, f2], members=[(f1.entry_uuid, d.entry_uuid), (f2.entry_uuid, d.entry_uuid)])
    r = run(db, "GetFoldersForDocument", {"$XDSDocumentEntryEntryUUID": f"'{d.entry_uuid}'"})
    assert ids(r) == {f1.entry_uuid, f2.entry_uuid}
    r = run(db, "GetFoldersForDocument", {"$XDSDocumentEntryUniqueId": f"'{d.unique_id}'"})
    assert ids(r) == {f1.entry_uuid, f2.entry_uuid}


def test_get_related_documents(store, db):
    original, addendum, transform, lonely = document(), document(), document(), document()
    sub = store.submit([original, addendum, transform, lonely], relations=[
        (AssocType.APND, addendum.entry_uuid, original.entry_uuid),
        (AssocType.XFRM, transform.entry_uuid, original.entry_uuid)])
    apnd, xfrm = sub["relations"]
    p = {"$XDSDocumentEntryEntryUUID": f"'{original.entry_uuid}'", "$AssociationTypes": f"('{AssocType.APND}')"}
    assert ids(run(db, "GetRelatedDocuments", p)) == {original.entry_uuid, addendum.entry_uuid, apnd}
    p["$AssociationTypes"] = f"('{AssocType.APND}','{AssocType.XFRM}')"
    assert ids(run(db, "GetRelatedDocuments", p)) == {original.entry_uuid, addendum.entry_uuid,
                                                      transform.entry_uuid, apnd, xfrm}
    # from the other end of the association
    p2 = {"$XDSDocumentEntryUniqueId": f"'{addendum.unique_id}'", "$AssociationTypes": f"('{AssocType.APND}')"}
    assert ids(run(db, "GetRelatedDocuments", p2)) == {original.entry_uuid, addendum.entry_uuid, apnd}
    # nothing related: an empty answer
    p3 = {"$XDSDocumentEntryEntryUUID": f"'{lonely.entry_uuid}'", "$AssociationTypes": f"('{AssocType.RPLC}')"}
    assert ids(run(db, "GetRelatedDocuments", p3)) == set()


def test_get_related_documents_requires_association_types(store, db):
    r = run(db, "GetRelatedDocuments", {"$XDSDocumentEntryEntryUUID": "'urn:uuid:x'"})
    assert [e.code for e in r.errors] == ["XDSStoredQueryMissingParam"]


def test_find_queries_status_list(store, db):
    s = submission_set()
    store.submit([document()], ss=s)
    r = run(db, "FindSubmissionSets", {"$XDSSubmissionSetPatientId": f"'{PID}'", "$XDSSubmissionSetStatus": BOTH})
    assert ids(r) == {s.entry_uuid}
