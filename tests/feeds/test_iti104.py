"""ITI-104 Patient Identity Feed FHIR (IHE PIXm, ITI TF-2 3.104) at ``/fhir``: Add or Revise
Patient by conditional update, Resolve Patient Duplicate (a ``replaced-by`` link) merging the
record's entries and access policy into the survivor, Remove Patient not supported, only trusted
sources, every message audited (Patient Record 110110, ITI-104). In-process through the server's
WSGI app, SQLite and PostgreSQL; answers checked with fhir.resources (R4)."""
from __future__ import annotations

import io
import json
import random
from urllib.parse import urlencode

from fhir.resources.capabilitystatement import CapabilityStatement
from fhir.resources.operationoutcome import OperationOutcome
from fhir.resources.patient import Patient

from access.store import AUTHORISED, BLOCKED
from config import Settings
from registry.query import run_stored_query
from server.app import Application, build_services, mounts
from server.serve import migrate_all
from tests.audit.support import assert_valid as assert_valid_audit
from tests.audit.test_iti81 import _Socket
from tests.feeds.conftest import OTHER_NODE, SOURCE_NODE, TOKEN, alerts, feed_records, trail
from tests.registry.test_schema_validity import assert_valid as assert_valid_ebrim
from tests.support.metadata import draft
from xds.errors import ErrorCode
from xds.vocabulary import DOC, STORED_QUERIES, Status

NIR_TEST = "1.2.250.1.213.1.4.10"
NIA = "1.2.250.1.213.1.4.9"
APPROVED = f"('{Status.APPROVED}')"


def ins(authority: str = NIR_TEST) -> tuple[str, str]:
    """(value, CX) of a fresh INS with its check key."""
    number = random.randrange(10**12, 10**13)
    value = f"{number}{97 - number % 97:02d}"
    return value, f"{value}^^^&{authority}&ISO"


def patient(value: str, authority: str = NIR_TEST, **more) -> dict:
    out = {"resourceType": "Patient", "identifier": [{"system": f"urn:oid:{authority}", "value": value},
                                                     {"system": "http://hopital.example/ipp", "value": "IPP-42"}],
           "active": True, "name": [{"use": "official", "family": "MOHR", "given": ["ALICE", "MARIE"]}],
           "gender": "female", "birthDate": "1958-01-30"}
    out.update(more)
    return out


def call(app, method: str, path: str, body: bytes = b"", params=None, token: str | None = TOKEN,
         certificate: str | None = None, content_type: str = "application/fhir+json", accept: str | None = None):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": "/fhir" + path, "SCRIPT_NAME": "",
               "QUERY_STRING": urlencode(params or []), "wsgi.url_scheme": "https", "SERVER_NAME": "xds.test",
               "SERVER_PORT": "8443", "REMOTE_ADDR": "192.0.2.80", "wsgi.input": io.BytesIO(body),
               "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": content_type}
    if token:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    if certificate:
        cn, org = (part.split("=", 1)[1] for part in certificate.split(","))
        environ["gunicorn.socket"] = _Socket(cn, org)
    if accept:
        environ["HTTP_ACCEPT"] = accept
    got = {}

    def start_response(status, headers, exc_info=None):
        got["status"], got["headers"] = int(status.split()[0]), {k.lower(): v for k, v in headers}

    out = b"".join(app(environ, start_response))
    return got["status"], got["headers"], out


def put(app, value: str, resource: dict, authority: str = NIR_TEST, **kw):
    return call(app, "PUT", "/Patient", json.dumps(resource).encode(),
                [("identifier", f"urn:oid:{authority}|{value}")], **kw)


def find(services, patient_id: str, query: str = "FindDocuments", returns: str = "ObjectRef"):
    prefix = {"FindDocuments": "$XDSDocumentEntry", "FindFolders": "$XDSFolder",
              "FindSubmissionSets": "$XDSSubmissionSet"}[query]
    return run_stored_query(services.database, STORED_QUERIES[query], {
        f"{prefix}PatientId": [[f"'{patient_id}'"]], f"{prefix}Status": [[APPROVED]]}, returns)


# ----------------------------------------------------------------------------- Add or Revise Patient

def test_add_patient_creates_the_record_with_its_demographics(app, services):
    """3.104.4.1: a conditional update on an unknown identifier creates the record (201, Location)."""
    value, cx = ins()
    status, headers, body = put(app, value, patient(value))
    assert status == 201, body
    answer = Patient.parse_raw(body)
    assert headers["location"] == f"Patient/{answer.id}"
    assert answer.identifier[0].value == value and answer.active is True
    record = services.registry.patient_record(cx + "^NH")
    assert record is not None and record.state == "open"
    assert (record.identity.family_name, record.identity.given_name, record.identity.birth_date,
            record.identity.sex) == ("MOHR", "ALICE MARIE", "1958-01-30", "female")
    assert not services.registry.register(draft(cx + "^NH").objects()).has_errors, "the record takes submissions"
    assert feed_records(services, "ITI-104") == [("C", "0", cx, "ITI-104")]


def test_revise_patient_in_fhir_xml_updates_the_demographics(app, services):
    value, cx = ins()
    assert put(app, value, patient(value))[0] == 201
    xml = (f'<Patient xmlns="http://hl7.org/fhir"><identifier><system value="urn:oid:{NIR_TEST}"/>'
           f'<value value="{value}"/></identifier><active value="true"/><name><family value="MOHR"/>'
           '<given value="ALICE"/></name><gender value="female"/><birthDate value="1958-01"/></Patient>').encode()
    status, headers, body = call(app, "PUT", "/Patient", xml, [("identifier", f"urn:oid:{NIR_TEST}|{value}")],
                                 content_type="application/fhir+xml", accept="application/fhir+xml")
    assert status == 200, body
    assert headers["content-type"].startswith("application/fhir+xml")
    record = services.registry.patient_record(cx)
    assert (record.identity.given_name, record.identity.birth_date) == ("ALICE", "1958-01")
    assert [a for a, *_ in feed_records(services, "ITI-104")] == ["C", "U"]


def test_revision_does_not_reopen_a_closed_record(app, services):
    value, cx = ins()
    put(app, value, patient(value))
    services.registry.set_patient_state(cx, "closed")
    assert put(app, value, patient(value, gender="other"))[0] == 200
    assert services.registry.patient_record(cx).state == "closed"


def test_conditional_update_needs_the_identifier_it_updates_on(app):
    value, _ = ins()
    status, _, body = call(app, "PUT", "/Patient", json.dumps(patient(value)).encode())
    assert status == 400 and "conditional update" in OperationOutcome.parse_raw(body).issue[0].diagnostics
    other, _ = ins()
    status, _, body = put(app, other, patient(value))
    assert status == 400 and "does not carry the identifier" in json.loads(body)["issue"][0]["diagnostics"]
    status, _, body = call(app, "PUT", "/Patient", b"{not json", [("identifier", f"urn:oid:{NIR_TEST}|{value}")])
    assert status == 400
    status, _, body = put(app, value, patient(value, gender="femme"))
    assert status == 400 and "gender" in json.loads(body)["issue"][0]["diagnostics"]


def test_an_invalid_ins_is_refused_with_its_reason_and_audited(app, services):
    value, _ = ins()
    bad = value[:13] + f"{(int(value[13:]) + 1) % 100:02d}"
    status, _, body = put(app, bad, patient(bad))
    assert status == 422
    assert "check key" in OperationOutcome.parse_raw(body).issue[0].diagnostics
    assert services.registry.patient_record(f"{bad}^^^&{NIR_TEST}&ISO") is None
    assert feed_records(services, "ITI-104") == [("U", "4", f"{bad}^^^&{NIR_TEST}&ISO", "ITI-104")]


def test_post_creates_the_record_of_the_ins_identifier(app, services):
    value, cx = ins()
    status, headers, _ = call(app, "POST", "/Patient", json.dumps(patient(value)).encode())
    assert status == 201 and headers["location"].startswith("Patient/")
    assert services.registry.patient_record(cx).state == "open"


def test_remove_patient_is_not_supported(app):
    """3.104.4.3.4: 400, OperationOutcome not-supported, "Remove Patient is not supported"."""
    value, _ = ins()
    status, _, body = call(app, "DELETE", "/Patient", params=[("identifier", f"urn:oid:{NIR_TEST}|{value}")])
    issue = OperationOutcome.parse_raw(body).issue[0]
    assert (status, issue.severity, issue.code, issue.diagnostics) == (
        400, "error", "not-supported", "Remove Patient is not supported")


def test_capability_statement_declares_conditional_update_on_patient(app):
    status, _, body = call(app, "GET", "/metadata", token=None)
    assert status == 200
    cap = CapabilityStatement.parse_raw(body)
    [resource] = [r for r in cap.rest[0].resource if r.type == "Patient"]
    assert resource.conditionalUpdate is True
    assert resource.conditionalDelete == "not-supported"


# ----------------------------------------------------------------------------- trusted sources only

def test_only_trusted_sources_feed_others_get_401_or_403_and_a_security_alert(app, services):
    value, cx = ins()
    body = json.dumps(patient(value)).encode()
    params = [("identifier", f"urn:oid:{NIR_TEST}|{value}")]
    for kw, expected, code in (({"token": None}, 401, "login"), ({"token": "not-the-token"}, 401, "login"),
                               ({"token": None, "certificate": OTHER_NODE}, 403, "forbidden")):
        status, headers, out = call(app, "PUT", "/Patient", body, params, **kw)
        assert status == expected, out
        assert OperationOutcome.parse_raw(out).issue[0].code == code
        if expected == 401:
            assert headers["www-authenticate"].startswith("Bearer")
    assert services.registry.patient_record(cx) is None
    found = alerts(services)
    assert len(found) == 3 and all("ITI-104 Patient Identity Feed" in
                                   x.find("EventIdentification/EventOutcomeDescription").text for x in found)
    status, _, _ = call(app, "PUT", "/Patient", body, params, token=None, certificate=SOURCE_NODE)
    assert status == 201, "a source's certificate"


def test_no_source_configured_refuses_everyone(db, tmp_path):
    migrate_all(db)
    services = build_services(Settings(data_dir=tmp_path / "d", database_url=db.url))
    try:
        value, _ = ins()
        status, _, body = put(Application(services, mounts(services)), value, patient(value))
        assert status == 403 and "no source is configured" in body.decode()
    finally:
        services.close()


# ----------------------------------------------------------------------------- Resolve Patient Duplicate

def test_merge_moves_entries_folders_submission_sets_and_access_policy_to_the_survivor(app, services, access):
    """3.104.4.2: the duplicate (an NIA) is replaced by the survivor (the NIR): every reference moves."""
    old_value, old = ins(NIA)
    new_value, new = ins(NIR_TEST)
    assert put(app, old_value, patient(old_value, NIA), NIA)[0] == 201
    assert put(app, new_value, patient(new_value))[0] == 201
    d = draft(old + "^NH", documents=2)
    d.add_folder()
    assert not services.registry.register(d.objects()).has_errors
    kept = draft(new)
    assert not services.registry.register(kept.objects()).has_errors
    uid = d.documents[0].unique_id
    access.set_professional(old, "810000000001", AUTHORISED)
    access.set_professional(old, "810000000002", BLOCKED)
    access.set_professional(new, "810000000002", AUTHORISED)
    access.set_document(uid, old, masked=True)
    access.log_emergency(old, "810000000003", "bris_de_glace")
    access.set_emergency(old, "bris_de_glace", False)

    duplicate = patient(old_value, NIA, active=False, link=[
        {"other": {"identifier": {"system": f"urn:oid:{NIR_TEST}", "value": new_value}}, "type": "replaced-by"}])
    status, _, body = put(app, old_value, duplicate, NIA)
    assert status == 200, body
    assert Patient.parse_raw(body).identifier[0].value == new_value

    assert len(find(services, new).ids) == 3 and not find(services, old).ids
    assert len(find(services, new, "FindFolders").ids) == 1 and not find(services, old, "FindFolders").ids
    assert len(find(services, new, "FindSubmissionSets").ids) == 2
    leaf = find(services, new, returns="LeafClass")
    for el in leaf.objects:
        assert_valid_ebrim(el)
        ids = [e.get("value") for e in el if e.get("identificationScheme") == DOC.PATIENT_ID]
        assert ids == [new]
    record = access.record(new)
    assert record.authorised == {"810000000001"} and record.blocked == {"810000000002"}
    assert record.documents[uid].masked is True and record.break_glass_allowed is False
    assert [e["professional_id"] for e in access.emergency_accesses(new)] == ["810000000003"]

    merged = services.registry.patient_record(old)
    assert (merged.state, merged.replaced_by) == ("merged", new), "the INS versions are linked"
    errors = services.registry.register(draft(old).objects())
    assert [e.code for e in errors.errors] == [ErrorCode.UNKNOWN_PATIENT_ID.value]
    status, _, body = put(app, old_value, patient(old_value, NIA), NIA)
    assert status == 422 and "merged into" in body.decode()

    records = [r for r in feed_records(services, "ITI-104") if r[1] == "0"]
    assert records[-2:] == [("D", "0", old, "ITI-104"), ("U", "0", new, "ITI-104")]
    for x in trail(services):
        assert_valid_audit(x)
    assert put(app, old_value, duplicate, NIA)[0] == 200, "the same merge again changes nothing"
    assert len(find(services, new).ids) == 3


def test_merge_into_an_unknown_survivor_creates_it(app, services):
    old_value, old = ins(NIA)
    new_value, new = ins()
    put(app, old_value, patient(old_value, NIA), NIA)
    services.registry.register(draft(old).objects())
    duplicate = patient(old_value, NIA, active=False, link=[
        {"other": {"identifier": {"system": f"urn:oid:{NIR_TEST}", "value": new_value}}, "type": "replaced-by"}])
    assert put(app, old_value, duplicate, NIA)[0] == 200
    assert services.registry.patient_record(new).state == "open"
    assert len(find(services, new).ids) == 1


def test_merge_of_a_closed_record_keeps_the_survivor_closed(app, services):
    old_value, old = ins(NIA)
    new_value, new = ins()
    put(app, old_value, patient(old_value, NIA), NIA)
    put(app, new_value, patient(new_value))
    services.registry.set_patient_state(old, "closed")
    duplicate = patient(old_value, NIA, active=False, link=[
        {"other": {"identifier": {"system": f"urn:oid:{NIR_TEST}", "value": new_value}}, "type": "replaced-by"}])
    assert put(app, old_value, duplicate, NIA)[0] == 200
    assert services.registry.patient_record(new).state == "closed"
