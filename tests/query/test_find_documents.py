"""FindDocuments (ITI TF-2 3.18.4.1.2.3.7.1) and the parameter rules it exercises."""
from __future__ import annotations

from tests.query.builders import ON_DEMAND, PID, PID2, code, document
from tests.query.conftest import APPROVED, BOTH, DEPRECATED, find_docs, run
from xds.metadata import Author
from xds.vocabulary import ObjectType, Status


def ids(result) -> set[str]:
    assert result.ok, [(e.code, e.context) for e in result.errors]
    return set(result.ids)


def test_find_documents_by_patient_and_status(store, db):
    a, b = document(), document()
    other = document(PID2)
    store.submit([a, b])
    store.submit([other], patient=PID2)
    assert ids(find_docs(db)) == {a.entry_uuid, b.entry_uuid}
    assert ids(find_docs(db, PID2)) == {other.entry_uuid}
    assert ids(find_docs(db, "NOBODY^^^&1.2.3&ISO")) == set()


def test_find_documents_class_code_or_within_slot(store, db):
    a, b, c = document(class_code=code("A")), document(class_code=code("B")), document(class_code=code("C"))
    store.submit([a, b, c])
    assert ids(find_docs(db, ClassCode="('A^^1.2.3','B^^1.2.3')")) == {a.entry_uuid, b.entry_uuid}
    # several Value elements in one Slot: OR as well (TF-2 3.18.4.1.2.3.5)
    assert ids(find_docs(db, ClassCode=["('A^^1.2.3')", "'C^^1.2.3'"])) == {a.entry_uuid, c.entry_uuid}


def test_find_documents_class_code_slots_are_merged(store, db):
    """classCode is single-valued: several Slots are merged (OR), not AND-ed (which could never match)."""
    a, b = document(class_code=code("A")), document(class_code=code("B"))
    store.submit([a, b])
    assert ids(find_docs(db, ClassCode=(["('A^^1.2.3')"], ["('B^^1.2.3')"]))) == {a.entry_uuid, b.entry_uuid}


def test_find_documents_code_scheme_must_match(store, db):
    a = document(class_code=code("A", "1.2.3"))
    store.submit([a])
    assert ids(find_docs(db, ClassCode="('A^^9.9.9')")) == set()


def test_find_documents_code_without_scheme_is_registry_error(store, db):
    """Coded parameters are HL7 CE values, code^^scheme (ITI TF-2 3.18.4.1.2.3.7; NIST 11897 old_scheme)."""
    store.submit([document(type_code=code("T", "1.1"))])
    result = find_docs(db, TypeCode="('T')")
    assert [e.code for e in result.errors] == ["XDSRegistryError"]
    assert "$XDSDocumentEntryTypeCode" in result.errors.errors[0].context


def test_find_documents_code_matches_code_and_scheme_exactly(store, db):
    a, b = document(type_code=code("T", "1.1")), document(type_code=code("T", "2.2"))
    c, d = document(type_code=code("T2", "1.1")), document(type_code=code("t", "1.1"))
    store.submit([a, b, c, d])
    assert ids(find_docs(db, TypeCode="('T^^1.1')")) == {a.entry_uuid}


def test_find_documents_code_like_characters_are_literal(store, db):
    a, b = document(type_code=code("T_1", "1.1")), document(type_code=code("TX1", "1.1"))
    store.submit([a, b])
    assert ids(find_docs(db, TypeCode="('T_1^^1.1')")) == {a.entry_uuid}


def test_find_documents_practice_setting_facility_and_format_codes(store, db):
    a = document(practice_setting_code=code("PS1"), healthcare_facility_type_code=code("H1"), format_code=code("F1"))
    b = document(practice_setting_code=code("PS2"), healthcare_facility_type_code=code("H1"), format_code=code("F2"))
    store.submit([a, b])
    assert ids(find_docs(db, PracticeSettingCode="('PS1^^1.2.3')")) == {a.entry_uuid}
    assert ids(find_docs(db, HealthcareFacilityTypeCode="('H1^^1.2.3')")) == {a.entry_uuid, b.entry_uuid}
    assert ids(find_docs(db, FormatCode="('F2^^1.2.3')")) == {b.entry_uuid}


def test_find_documents_event_code_or_within_slot(store, db):
    a, b = document(event_codes=[code("E1")]), document(event_codes=[code("E2")])
    store.submit([a, b, document(event_codes=[])])
    assert ids(find_docs(db, EventCodeList="('E1^^1.2.3','E2^^1.2.3')")) == {a.entry_uuid, b.entry_uuid}


def test_find_documents_event_code_and_between_slots(store, db):
    both = document(event_codes=[code("E1"), code("E2")])
    one = document(event_codes=[code("E1")])
    store.submit([both, one])
    assert ids(find_docs(db, EventCodeList=(["('E1^^1.2.3')"], ["('E2^^1.2.3')"]))) == {both.entry_uuid}
    # (E1 OR E3) AND (E2 OR E3)
    assert ids(find_docs(db, EventCodeList=(["('E1^^1.2.3','E3^^1.2.3')"], ["('E2^^1.2.3','E3^^1.2.3')"]))) \
        == {both.entry_uuid}


def test_find_documents_confidentiality_code_and_between_slots(store, db):
    nr = document(confidentiality_codes=[code("N"), code("R")])
    n = document(confidentiality_codes=[code("N")])
    store.submit([nr, n])
    assert ids(find_docs(db, ConfidentialityCode="('N^^1.2.3')")) == {nr.entry_uuid, n.entry_uuid}
    assert ids(find_docs(db, ConfidentialityCode=(["('N^^1.2.3')"], ["('R^^1.2.3')"]))) == {nr.entry_uuid}


def test_find_documents_creation_time_from_inclusive(store, db):
    a, b = document(creation_time="20200101120000"), document(creation_time="20200101115959")
    store.submit([a, b])
    assert ids(find_docs(db, CreationTimeFrom="20200101120000")) == {a.entry_uuid}


def test_find_documents_creation_time_to_exclusive(store, db):
    a, b = document(creation_time="20200101120000"), document(creation_time="20200101115959")
    store.submit([a, b])
    assert ids(find_docs(db, CreationTimeTo="20200101120000")) == {b.entry_uuid}


def test_find_documents_creation_time_any_precision(store, db):
    """Parameters of any precision are taken at their first instant (engine.py docstring)."""
    a, b = document(creation_time="20200315"), document(creation_time="20210101000000")
    store.submit([a, b])
    assert ids(find_docs(db, CreationTimeFrom="2020", CreationTimeTo="2021")) == {a.entry_uuid}
    assert ids(find_docs(db, CreationTimeFrom="202003", CreationTimeTo="20200316")) == {a.entry_uuid}
    assert ids(find_docs(db, CreationTimeFrom="'2021'")) == {b.entry_uuid}   # quoted time tolerated


def test_find_documents_lower_precision_stored_time_compares_as_first_instant(store, db):
    year = document(creation_time="2004")
    store.submit([year])
    assert ids(find_docs(db, CreationTimeFrom="20040101")) == {year.entry_uuid}
    assert ids(find_docs(db, CreationTimeFrom="200402")) == set()
    assert ids(find_docs(db, CreationTimeTo="2005")) == {year.entry_uuid}
    assert ids(find_docs(db, CreationTimeTo="2004")) == set()


def test_find_documents_service_start_and_stop_time(store, db):
    a = document(service_start_time="20200101", service_stop_time="20200110")
    b = document(service_start_time="20200201", service_stop_time="20200210")
    c = document()  # no service times: never matches a bound on them
    store.submit([a, b, c])
    assert ids(find_docs(db, ServiceStartTimeFrom="20200115")) == {b.entry_uuid}
    assert ids(find_docs(db, ServiceStopTimeTo="20200201")) == {a.entry_uuid}
    assert ids(find_docs(db, ServiceStartTimeFrom="20200101", ServiceStopTimeTo="20200301")) \
        == {a.entry_uuid, b.entry_uuid}


def test_find_documents_author_person_wildcards(store, db):
    a = document(authors=[Author(person="^Dupont^Jean")])
    b = document(authors=[Author(person="^Durand^Paul"), Author(person="^Martin^Luc")])
    store.submit([a, b])
    assert ids(find_docs(db, AuthorPerson="'%Dupont%'")) == {a.entry_uuid}
    assert ids(find_docs(db, AuthorPerson="'^Du_and%'")) == {b.entry_uuid}
    assert ids(find_docs(db, AuthorPerson="('%Martin%','%Dupont%')")) == {a.entry_uuid, b.entry_uuid}
    assert ids(find_docs(db, AuthorPerson="'^Dupont'")) == set()
    # case-insensitive on both back-ends (a documented choice)
    assert ids(find_docs(db, AuthorPerson="'%dupont%'")) == {a.entry_uuid}


def test_find_documents_author_person_quote_and_backslash_are_literal(store, db):
    a = document(authors=[Author(person="^O'Brien^Pat")])
    b = document(authors=[Author(person="^Back\\slash^X")])
    store.submit([a, b])
    assert ids(find_docs(db, AuthorPerson="'%O''Brien%'")) == {a.entry_uuid}
    assert ids(find_docs(db, AuthorPerson="'%Back\\slash%'")) == {b.entry_uuid}


def test_deprecated_entries_by_status(store, db):
    a, b = document(), document()
    store.submit([a, b])
    store.set_status(b.entry_uuid, Status.DEPRECATED)
    assert ids(find_docs(db)) == {a.entry_uuid}
    assert ids(find_docs(db, status=DEPRECATED)) == {b.entry_uuid}
    assert ids(find_docs(db, status=BOTH)) == {a.entry_uuid, b.entry_uuid}
    # several Value elements for the status too
    assert ids(find_docs(db, status=[f"('{Status.APPROVED}')", f"('{Status.DEPRECATED}')"])) \
        == {a.entry_uuid, b.entry_uuid}


def test_find_documents_entry_type_defaults_to_stable(store, db):
    stable, on_demand = document(), document(object_type=ON_DEMAND, hash=None, size=None)
    store.submit([stable, on_demand])
    assert ids(find_docs(db)) == {stable.entry_uuid}
    assert ids(find_docs(db, Type=f"('{ON_DEMAND}')")) == {on_demand.entry_uuid}
    assert ids(find_docs(db, Type=f"('{ObjectType.STABLE_DOCUMENT}','{ON_DEMAND}')")) \
        == {stable.entry_uuid, on_demand.entry_uuid}


def test_find_documents_all_filters_together(store, db):
    a = document(class_code=code("A"), event_codes=[code("E1")], creation_time="20200505",
                 authors=[Author(person="^Dupont^Jean")])
    store.submit([a, document(class_code=code("A"))])
    r = find_docs(db, ClassCode="('A^^1.2.3')", TypeCode="('TYPE-A^^1.2.3')", EventCodeList="('E1^^1.2.3')",
                  CreationTimeFrom="2020", CreationTimeTo="2021", AuthorPerson="'%Dupont%'",
                  FormatCode="('FMT-A^^1.2.3')", ConfidentialityCode="('N^^1.2.3')")
    assert ids(r) == {a.entry_uuid}


def test_find_documents_by_reference_id(store, db):
    ref = "ORDER-1^^^&1.2.3&ISO^urn:ihe:iti:xds:2013:order"
    a = document(reference_ids=[ref])
    b = document(reference_ids=["OTHER^^^&1.2.3&ISO^urn:ihe:iti:xds:2013:order"])
    store.submit([a, b, document()])
    p = {"$XDSDocumentEntryPatientId": f"'{PID}'", "$XDSDocumentEntryStatus": APPROVED,
         "$XDSDocumentEntryReferenceIdList": f"('{ref}')"}
    assert ids(run(db, "FindDocumentsByReferenceId", p)) == {a.entry_uuid}
    p["$XDSDocumentEntryClassCode"] = "('NOPE^^1.2.3')"
    assert ids(run(db, "FindDocumentsByReferenceId", p)) == set()
    del p["$XDSDocumentEntryReferenceIdList"]
    assert run(db, "FindDocumentsByReferenceId", p).errors.errors[0].code == "XDSStoredQueryMissingParam"


def test_find_documents_carries_an_expression_in_its_statement(store, db):
    """``also``: a caller's scalar expression, evaluated by the FindDocuments statement itself
    (the dmp mode's record read rides on it); its value comes with the answer, None without one."""
    store.submit([document(), document()])
    answer = run(db, "FindDocuments", {"$XDSDocumentEntryPatientId": f"'{PID}'", "$XDSDocumentEntryStatus": APPROVED},
                 also=("SELECT :also_x || 'y'", {"also_x": "x"}))
    assert answer.ok and len(answer.ids) == 2 and answer.also == "xy"
    empty = run(db, "FindDocuments", {"$XDSDocumentEntryPatientId": "'NOBODY^^^&1.2.3&ISO'",
                                      "$XDSDocumentEntryStatus": APPROVED}, also=("SELECT 'y'", {}))
    assert empty.ok and empty.ids == [] and empty.also is None
    assert find_docs(db).also is None


def test_find_documents_builds_each_statement_once(store, db):
    """The same parameters give the same SQL text, whose statement is built once and kept."""
    from registry.query import engine
    store.submit([document()])
    engine._statement.cache_clear()
    assert find_docs(db).ok and find_docs(db).ok
    assert engine._statement.cache_info().currsize == 1 and engine._statement.cache_info().hits == 1
    assert find_docs(db, AuthorPerson="('Author%')").ok
    assert engine._statement.cache_info().currsize == 2
