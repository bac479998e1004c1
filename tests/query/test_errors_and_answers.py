"""Error codes of ITI-18 (TF-2 3.18.4.1.3, TF-3 table 4.2.4.1-2) and the shape of the answers."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from registry.query.engine import run_stored_query
from registry.query.params import MAX_PATTERN_BYTES, split_value
from registry.store import schema as t
from tests.query.builders import PID, PID2, document
from tests.query.conftest import APPROVED, codes_of, find_docs, run
from xds.errors import XDSError
from xds.rim import Slot
from xds.vocabulary import NS_RIM, Status

HOME = "urn:oid:1.2.3.4.5"


def test_unknown_stored_query(db):
    r = run(db, "urn:uuid:00000000-0000-0000-0000-000000000000", {})
    assert codes_of(r) == ["XDSUnknownStoredQuery"]
    assert r.status.endswith("Failure") and r.objects == []


def test_missing_required_param(db):
    r = run(db, "FindDocuments", {"$XDSDocumentEntryPatientId": f"'{PID}'"})
    assert codes_of(r) == ["XDSStoredQueryMissingParam"]
    assert "$XDSDocumentEntryStatus" in r.errors.errors[0].context


def test_single_valued_param_in_two_slots_is_param_number(db):
    r = run(db, "FindDocuments", {"$XDSDocumentEntryPatientId": ([f"'{PID}'"], [f"'{PID2}'"]),
                                  "$XDSDocumentEntryStatus": APPROVED})
    assert codes_of(r) == ["XDSStoredQueryParamNumber"]


def test_and_ed_slots_beyond_the_registry_bound_are_registry_error(store, db):
    """At most MAX_AND_SLOTS Slots AND-ed per query, all AND-able parameters together: each is a
    join the database plans, and 200 of them exhausted PostgreSQL's memory."""
    from registry.query.params import MAX_AND_SLOTS
    store.submit([document()])
    events = tuple([f"('E{i}^^1.2.3')"] for i in range(MAX_AND_SLOTS - 1))
    assert codes_of(find_docs(db, EventCodeList=events, ConfidentialityCode="('N^^2.16.840.1.113883.5.25')")) == []
    r = find_docs(db, EventCodeList=events, ConfidentialityCode=(["('N^^2.16.840.1.113883.5.25')"], ["('R^^2.1')"]))
    assert codes_of(r) == ["XDSRegistryError"] and f"at most {MAX_AND_SLOTS}" in r.errors.errors[0].context
    many = tuple([f"('E{i}^^1.2.3')"] for i in range(200))
    assert codes_of(find_docs(db, EventCodeList=many)) == ["XDSRegistryError"]
    folders = run(db, "FindFolders", {"$XDSFolderPatientId": f"'{PID}'", "$XDSFolderStatus": APPROVED,
                                      "$XDSFolderCodeList": many})
    assert codes_of(folders) == ["XDSRegistryError"]


def test_patterns_beyond_the_registry_bound_are_registry_error(store, db):
    """At most MAX_PATTERNS authorPerson patterns: each is a LIKE OR-ed to the others (SQLite
    refuses an expression 1,000 deep), counted over all the parameter's Slots."""
    from registry.query.params import MAX_PATTERNS
    store.submit([document()])
    bound = "(" + ",".join(f"'Author{i}%'" for i in range(MAX_PATTERNS)) + ")"
    assert codes_of(find_docs(db, AuthorPerson=bound)) == []
    r = find_docs(db, AuthorPerson=([bound], ["('Another%')"]))
    assert codes_of(r) == ["XDSRegistryError"] and f"at most {MAX_PATTERNS}" in r.errors.errors[0].context
    many = "(" + ",".join(f"'Author{i}%'" for i in range(1000)) + ")"
    assert codes_of(find_docs(db, AuthorPerson=many)) == ["XDSRegistryError"]


def test_single_valued_param_with_list_is_param_number(db):
    r = find_docs(db, CreationTimeFrom="(2020, 2021)")
    assert codes_of(r) == ["XDSStoredQueryParamNumber"]


def test_get_documents_uuid_and_unique_id_both_is_param_number(db):
    r = run(db, "GetDocuments", {"$XDSDocumentEntryEntryUUID": "('urn:uuid:a')", "$XDSDocumentEntryUniqueId": "('1.2')"})
    assert codes_of(r) == ["XDSStoredQueryParamNumber"]


def test_get_documents_neither_uuid_nor_unique_id_is_param_number(db):
    assert codes_of(run(db, "GetDocuments", {})) == ["XDSStoredQueryParamNumber"]


@pytest.mark.parametrize("name, value, why", [
    ("PatientId", "P1^^^&1.2&ISO", "single quotes"),
    ("PatientId", "'P1^^^&1.2&ISO", "unterminated"),
    ("PatientId", "'P1'junk", "unexpected text"),
    ("PatientId", "'a','b'", "list"),
    ("CreationTimeFrom", "2020-01-01", "not a number"),
    ("CreationTimeFrom", "20201301", "not a DTM"),
    ("ClassCode", "('A^^')", "not a code"),
    ("ClassCode", "('A','B'", "does not end"),
    ("Type", "('urn:uuid:nope')", "stable"),
])
def test_malformed_value_is_registry_error(db, name, value, why):
    params = {"$XDSDocumentEntryPatientId": f"'{PID}'", "$XDSDocumentEntryStatus": APPROVED,
              "$XDSDocumentEntry" + name: value}
    r = run(db, "FindDocuments", params)
    assert codes_of(r) == ["XDSRegistryError"]
    err = r.errors.errors[0]
    assert "$XDSDocumentEntry" + name in err.context and why in err.context, err.context


def test_unknown_status_is_registry_error(db):
    r = find_docs(db, status="('urn:oasis:names:tc:ebxml-regrep:StatusType:Bogus')")
    assert codes_of(r) == ["XDSRegistryError"] and "$XDSDocumentEntryStatus" in r.errors.errors[0].context


def test_bad_return_type_is_registry_error(db):
    r = run(db, "FindDocuments", {"$XDSDocumentEntryPatientId": f"'{PID}'",
                                  "$XDSDocumentEntryStatus": APPROVED}, return_type="RegistryObject")
    assert codes_of(r) == ["XDSRegistryError"]


def test_unknown_params_are_ignored(store, db):
    d = document()
    store.submit([d])
    assert find_docs(db, Whatever="'x'").ids == [d.entry_uuid]


def test_metadata_level(store, db):
    d = document()
    store.submit([d])
    p = {"$XDSDocumentEntryEntryUUID": f"('{d.entry_uuid}')"}
    assert run(db, "GetDocuments", {**p, "$MetadataLevel": "1"}).ids == [d.entry_uuid]
    assert run(db, "GetDocuments", {**p, "$MetadataLevel": "2"}).ids == [d.entry_uuid]  # XDS Metadata Update
    assert codes_of(run(db, "GetDocuments", {**p, "$MetadataLevel": "3"})) == ["XDSRegistryError"]


def test_home_community_id_accepted_or_unknown(store, db):
    d = document()
    store.submit([d])
    p = {"$XDSDocumentEntryEntryUUID": f"('{d.entry_uuid}')"}
    assert run(db, "GetDocuments", {**p, "$homeCommunityId": f"'{HOME}'"}, home_community_id=HOME).ids == [d.entry_uuid]
    r = run(db, "GetDocuments", {**p, "$homeCommunityId": "'urn:oid:9.9'"}, home_community_id=HOME)
    assert codes_of(r) == ["XDSUnknownCommunity"]


def test_result_not_single_patient(store, db):
    a, b = document(PID), document(PID2)
    store.submit([a])
    store.submit([b], patient=PID2)
    r = run(db, "GetDocuments", {"$XDSDocumentEntryEntryUUID": f"('{a.entry_uuid}','{b.entry_uuid}')"})
    assert codes_of(r) == ["XDSResultNotSinglePatient"] and r.objects == []
    r = run(db, "GetAssociations", {"$uuid": f"('{a.entry_uuid}','{b.entry_uuid}')"})
    assert codes_of(r) == ["XDSResultNotSinglePatient"]


def test_result_spanning_patients_is_allowed_as_object_refs(store, db):
    """ObjectRefs disclose no patient data: the single-patient rule is for LeafClass (NIST 12368)."""
    a, b = document(PID), document(PID2)
    store.submit([a])
    store.submit([b], patient=PID2)
    r = run(db, "GetDocuments", {"$XDSDocumentEntryEntryUUID": f"('{a.entry_uuid}','{b.entry_uuid}')"},
            return_type="ObjectRef")
    assert codes_of(r) == [] and set(r.ids) == {a.entry_uuid, b.entry_uuid}


def test_too_many_results(store, db):
    store.submit([document() for _ in range(4)])
    r = run(db, "FindDocuments", {"$XDSDocumentEntryPatientId": f"'{PID}'", "$XDSDocumentEntryStatus": APPROVED},
            max_results=3)
    assert codes_of(r) == ["XDSTooManyResults"] and r.objects == []
    assert "more than 3" in r.errors.errors[0].context
    assert r.status == "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
    ok = run(db, "FindDocuments", {"$XDSDocumentEntryPatientId": f"'{PID}'", "$XDSDocumentEntryStatus": APPROVED},
             max_results=4)
    assert len(ok.ids) == 4
    # Get* queries count their whole answer (documents + associations here)
    sub_all = run(db, "GetAll", {"$patientId": f"'{PID}'", "$XDSDocumentEntryStatus": APPROVED,
                                 "$XDSSubmissionSetStatus": APPROVED, "$XDSFolderStatus": APPROVED}, max_results=5)
    assert codes_of(sub_all) == ["XDSTooManyResults"]


def test_leafclass_returns_extra_slots_and_current_status(store, db):
    d = document(extra_slots=[Slot("urn:dmp:extra", ["x", "y"])])
    store.submit([d])
    store.set_status(d.entry_uuid, Status.DEPRECATED)
    r = run(db, "GetDocuments", {"$XDSDocumentEntryEntryUUID": f"('{d.entry_uuid}')"}, home_community_id=HOME)
    [el] = r.objects
    assert el.tag == f"{{{NS_RIM}}}ExtrinsicObject" and el.get("id") == d.entry_uuid
    assert el.get("status") == Status.DEPRECATED and el.get("home") == HOME
    slot = el.find(f"{{{NS_RIM}}}Slot[@name='urn:dmp:extra']")
    assert [v.text for v in slot.iter(f"{{{NS_RIM}}}Value")] == ["x", "y"]
    assert len(el.findall(f"{{{NS_RIM}}}Classification")) == len(d.to_rim().classifications)


def test_objectref_return_type(store, db):
    a, b = document(), document()
    store.submit([a, b])
    r = run(db, "FindDocuments", {"$XDSDocumentEntryPatientId": f"'{PID}'", "$XDSDocumentEntryStatus": APPROVED},
            return_type="ObjectRef", home_community_id=HOME)
    assert [el.tag for el in r.objects] == [f"{{{NS_RIM}}}ObjectRef"] * 2
    assert [el.get("id") for el in r.objects] == [a.entry_uuid, b.entry_uuid]   # registration order
    assert all(el.get("home") == HOME and len(el) == 0 for el in r.objects)


def test_objects_in_registration_order(store, db):
    docs = [document() for _ in range(5)]
    sub = store.submit(docs)
    r = run(db, "GetSubmissionSetAndContents", {"$XDSSubmissionSetEntryUUID": f"'{sub['ss']}'"})
    assert r.ids == [sub["ss"], *[d.entry_uuid for d in docs], *sub["ss_members"].values()]


def test_run_on_an_open_connection(store, db):
    d = document()
    store.submit([d])
    with db.read() as conn:
        r = run_stored_query(conn, "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4",
                             {"$XDSDocumentEntryEntryUUID": [[f"'{d.entry_uuid}'"]]}, "ObjectRef")
    assert r.ids == [d.entry_uuid]


def test_sql_injection_in_patient_id_changes_nothing(store, db):
    store.submit([document()])

    def counts():
        with db.read() as conn:
            return {tb.name: conn.execute(select(func.count()).select_from(tb)).scalar()
                    for tb in (t.registry_objects, t.document_entries, t.associations)}
    before = counts()
    # a quote closing the string early: malformed, refused
    r = find_docs(db, "x' OR '1'='1")
    assert codes_of(r) == ["XDSRegistryError"]
    # the same text properly quoted (quotes doubled): a value like any other, bound, no match
    r = find_docs(db, "x'' OR ''1''=''1")
    assert r.ok and r.ids == []
    r = find_docs(db, "P1''; DROP TABLE document_entries; --")
    assert r.ok and r.ids == []
    # the IPF sample's tail: a malformed value, refused with the parameter named
    r = run(db, "FindDocuments", {
        "$XDSDocumentEntryPatientId": "'593603^^^&2.16.756.5.33.2.5.1.5.1&ISO''%20and%20611%3d611--%20",
        "$XDSDocumentEntryStatus": APPROVED})
    assert codes_of(r) == ["XDSRegistryError"] and "$XDSDocumentEntryPatientId" in r.errors.errors[0].context
    assert counts() == before


# ----------------------------------------------------------------------------- value grammar (no db)

@pytest.mark.parametrize("text, items", [
    ("'abc'", [("abc", True)]),
    ("  'abc'  ", [("abc", True)]),
    ("('a','b')", [("a", True), ("b", True)]),
    ("( 'a' , 'b' )", [("a", True), ("b", True)]),
    ("('it''s')", [("it's", True)]),
    ("20200101", [("20200101", False)]),
    ("(1, 2)", [("1", False), ("2", False)]),
    ("'a,b'", [("a,b", True)]),
    ("'(x)'", [("(x)", True)]),
])
def test_value_grammar(text, items):
    assert split_value("$p", text) == items


@pytest.mark.parametrize("text", ["", "()", "('a',)", "'a' 'b'", "('a'", "'a", "a'b", "('a' 'b')"])
def test_value_grammar_errors(text):
    with pytest.raises(XDSError):
        split_value("$p", text)


@pytest.mark.parametrize("size", [MAX_PATTERN_BYTES + 1, 50_001, 1_000_000])
def test_pattern_beyond_the_limit_is_a_registry_error(db, size):
    """SQLite refuses a LIKE pattern over 50,000 bytes (an HTTP 500 before issue 20); the registry bounds
    patterns up front on both back-ends and answers XDSRegistryError naming the parameter."""
    pattern = "%" + "a" * (size - 1)
    result = find_docs(db, AuthorPerson=f"'{pattern}'")
    assert codes_of(result) == ["XDSRegistryError"]
    assert f"{size} bytes" in result.errors.errors[0].context
    assert result.errors.errors[0].location == "$XDSDocumentEntryAuthorPerson"
    result = run(db, "FindSubmissionSets", {"$XDSSubmissionSetPatientId": f"'{PID}'",
                                            "$XDSSubmissionSetStatus": APPROVED,
                                            "$XDSSubmissionSetAuthorPerson": f"'{pattern}'"})
    assert codes_of(result) == ["XDSRegistryError"]


def test_pattern_at_the_limit_runs(store, db):
    store.submit([document()])
    multibyte = "é" * ((MAX_PATTERN_BYTES - 2) // 2)
    for pattern in ("%" + "_" * (MAX_PATTERN_BYTES - 2) + "%", "%" + multibyte + "%"):
        assert len(pattern.encode()) <= MAX_PATTERN_BYTES
        result = find_docs(db, AuthorPerson=f"'{pattern}'")
        assert not result.errors, [e.context for e in result.errors]
        assert result.ids == []
