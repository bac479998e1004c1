"""Patient identity (ITI TF-3 4.2.3.1.7): CX.1 in the assigning authority CX.4; CX.5 does not split a
patient. INS values are checked (ANS referentiel INS). Every test runs on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest

from access.store import AUTHORISED, AccessStore
from access.store import migrate as migrate_access
from registry.facts import has_authored
from registry.query import run_stored_query
from registry.register import Registry
from tests.support.metadata import draft, fresh_patient
from xds.errors import ErrorCode
from xds.metadata import Association, new_uuid
from xds.patient import ins_check_key, ins_problem, patient_key, same_patient
from xds.vocabulary import STORED_QUERIES, AssocType, Status

APPROVED = f"('{Status.APPROVED}')"


@pytest.fixture
def registry(db) -> Registry:
    return Registry(db)


def without_cx5(patient: str) -> str:
    assert patient.endswith("^NH")
    return patient.removesuffix("^NH")


def find_documents(registry: Registry, patient: str):
    return run_stored_query(registry.db, STORED_QUERIES["FindDocuments"], {
        "$XDSDocumentEntryPatientId": [[f"'{patient}'"]], "$XDSDocumentEntryStatus": [[APPROVED]]}, "ObjectRef")


# ----------------------------------------------------------------------------- the key (kernel)

def test_patient_key_is_cx1_in_the_assigning_authority():
    base = "277076322082910^^^&1.2.250.1.213.1.4.8&ISO"
    assert patient_key(base) == patient_key(base + "^NH") == patient_key(base + "^INS") == base
    assert patient_key("277076322082910^^^NS&1.2.250.1.213.1.4.8&ISO^NH") == base, "CX.4.1 is not identity"
    assert patient_key(base.replace("4.8", "4.10")) != patient_key(base), "another authority, another patient"
    assert patient_key("not a cx") == "not a cx"
    assert same_patient(base, base + "^NH") and not same_patient(base, None)


def test_ins_check_key_with_corsica():
    assert ins_check_key("2770763220829") == 10
    assert ins_check_key("185012A123456") == 97 - int("1850119123456") % 97
    assert ins_check_key("185012B123456") == 97 - int("1850118123456") % 97
    key = f"{ins_check_key('185012A123456'):02d}"
    assert ins_problem(f"185012A123456{key}^^^&1.2.250.1.213.1.4.8&ISO") is None
    assert "check key" in (ins_problem("185012A12345600^^^&1.2.250.1.213.1.4.8&ISO") or "")
    assert ins_problem("42^^^&1.2.250.1.999&ISO") is None, "not an INS authority"


# ----------------------------------------------------------------------------- the registry

def test_record_created_without_cx5_receives_a_submission_with_cx5(registry):
    """Issue 20: a record created as ``id^^^&1.2.250.1.213.1.4.8&ISO`` was unknown to ``...&ISO^NH``."""
    patient = fresh_patient().replace("4.10", "4.8")
    assert registry.add_patient(without_cx5(patient))
    assert not registry.add_patient(patient), "one patient, one record"
    d = draft(patient)
    errors = registry.register(d.objects())
    assert not errors.has_errors, [e.context for e in errors]
    assert len(find_documents(registry, without_cx5(patient)).ids) == 1
    assert len(find_documents(registry, patient).ids) == 1
    assert registry.list_patients()[-1][0] == without_cx5(patient)


def test_metadata_keeps_the_patient_id_as_sent(registry):
    patient = fresh_patient()
    registry.add_patient(without_cx5(patient))
    registry.register(draft(patient).objects())
    result = run_stored_query(registry.db, STORED_QUERIES["FindDocuments"], {
        "$XDSDocumentEntryPatientId": [[f"'{without_cx5(patient)}'"]], "$XDSDocumentEntryStatus": [[APPROVED]]})
    values = [e.get("value") for el in result.objects for e in el.iter() if e.get("value", "").startswith(
        patient.split("^")[0])]
    assert values and set(values) == {patient}


def test_replacement_across_cx5_spellings_is_the_same_patient(registry):
    patient = fresh_patient()
    registry.add_patient(patient)
    first = draft(patient)
    assert not registry.register(first.objects()).has_errors
    original = find_documents(registry, patient).ids[0]
    second = draft(without_cx5(patient))
    doc = second.documents[0]
    second.associations.append(Association(new_uuid(), AssocType.RPLC, doc.entry_uuid, original))
    errors = registry.register(second.objects())
    assert not errors.has_errors, [e.context for e in errors]
    assert len(find_documents(registry, patient).ids) == 1, "the original is deprecated"


def test_closing_the_record_under_another_spelling(registry):
    patient = fresh_patient()
    registry.add_patient(patient)
    assert registry.set_patient_state(without_cx5(patient), "closed")
    errors = registry.register(draft(patient).objects())
    assert [e.code for e in errors.errors] == [ErrorCode.UNKNOWN_PATIENT_ID.value]


def test_malformed_ins_is_refused_at_registration(registry):
    """A patientId under an INS authority whose check key is wrong: XDSRegistryMetadataError (TF-3 4.2.4,
    an error in the metadata), not XDSPatientIdDoesNotMatch nor an unknown patient."""
    good = fresh_patient()
    bad = good[:13] + f"{(int(good[13:15]) + 1) % 100:02d}" + good[15:]
    errors = registry.register(draft(bad).objects())
    assert errors.has_errors
    assert {e.code for e in errors.errors} == {ErrorCode.REGISTRY_METADATA_ERROR.value}
    assert all("check key" in e.context for e in errors.errors)


def test_malformed_ins_is_refused_at_record_creation(registry):
    with pytest.raises(ValueError, match="15 characters"):
        registry.add_patient("1234567890123^^^&1.2.250.1.213.1.4.8&ISO")


def test_malformed_ins_in_a_query_is_an_unknown_patient(registry):
    result = find_documents(registry, "1234567890123^^^&1.2.250.1.213.1.4.10&ISO^NH")
    assert [e.code for e in result.errors] == [ErrorCode.UNKNOWN_PATIENT_ID.value]
    assert "15 characters" in result.errors.errors[0].context


def test_has_authored_reads_the_patient_key(registry):
    patient = fresh_patient()
    registry.add_patient(patient)
    d = draft(patient)
    registry.register(d.objects())
    author = d.documents[0].authors[0].person
    assert author is not None
    with registry.db.read() as conn:
        assert has_authored(conn, without_cx5(patient), author.split("^")[0])


# ----------------------------------------------------------------------------- the access policy's tables

def test_access_store_keys_decisions_by_patient_key(db, registry):
    migrate_access(db)
    store = AccessStore(db)
    patient = fresh_patient()
    registry.add_patient(without_cx5(patient))
    store.set_professional(patient, "810000000001", AUTHORISED)
    store.set_treating_physician(without_cx5(patient), "810000000002")
    store.log_emergency(patient, "810000000003", "bris_de_glace")
    for spelling in (patient, without_cx5(patient)):
        record = store.record(spelling)
        assert record.state == "open"
        assert "810000000001" in record.authorised
        assert record.treating_physician == "810000000002"
        assert [e["professional_id"] for e in store.emergency_accesses(spelling)] == ["810000000003"]
