"""MHD Document Responder (ITI-66, ITI-67, ITI-68) and IUA under ``/fhir``, in-process on SQLite and
PostgreSQL: a document provided with ITI-41 (SOAP, XUA) is found with ITI-67 and read with ITI-68,
its metadata equal field by field per the XDS-on-FHIR mapping, its bytes exact; every answer is
validated by an independent library (fhir.resources, R4), JSON and XML; the DMP policy holds at
this door; IUA token attacks are refused with 401 and a Security Alert; the transactions are in
the audit trail (DICOM) with their MHD event types.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import time
import uuid
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from fhir.resources.bundle import Bundle
from fhir.resources.capabilitystatement import CapabilityStatement
from fhir.resources.documentreference import DocumentReference
from fhir.resources.operationoutcome import OperationOutcome
from lxml import etree

from access.iua import IuaVerifier, TokenIssuer, fill_caller, local_token_issuer
from access.xua import fill_caller as xua_fill
from access.xua import local_issuer, read_assertion
from audit import store
from audit.sender import Sender
from bindings.fhir_mapping import fhir_system, fhir_time, patient_resource_id
from client.transport import Transport, decode_reply
from tests.access import matrix as m
from tests.audit.support import xml_of
from tests.support.metadata import SubmissionDraft, document_entry, folder, fresh_patient, submission_set
from xds.context import Caller
from xds.metadata import Author, Code, DocumentEntry
from xds.patient import patient_key
from xds.vocabulary import NS_XDSB, Actions, q

BASE = "http://xds.test:8080/fhir"
TREATING, AUTHORISED, UNAUTHORISED, AUTHOR = m.TREATING, m.AUTHORISED, m.UNAUTHORISED, m.AUTHOR


@pytest.fixture
def dmp(db, tmp_path):
    from config import Settings
    from server.app import Application, build_services, mounts
    store.migrate(db)
    settings = Settings(data_dir=tmp_path / "data", database_url=db.url, access_policy="dmp",
                        xua_trust_local_issuer="true")
    services = build_services(settings)
    app = Application(services, mounts(services))
    app.services = services
    app.xua = local_issuer(settings.data_dir)
    app.iua = local_token_issuer(settings.data_dir)
    yield app
    services.close()


def call(app, method: str, path: str, params=None, token: str | None = None, accept: str | None = None,
         body: bytes = b"", content_type: str = ""):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "",
               "QUERY_STRING": urlencode(params or []), "wsgi.url_scheme": "http", "SERVER_NAME": "xds.test",
               "SERVER_PORT": "8080", "REMOTE_ADDR": "192.0.2.50", "wsgi.input": io.BytesIO(body),
               "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": content_type}
    if token:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    if accept:
        environ["HTTP_ACCEPT"] = accept
    got = {}

    def start_response(status, headers, exc_info=None):
        got["status"], got["headers"] = int(status.split()[0]), {k.lower(): v for k, v in headers}

    data = b"".join(app(environ, start_response))
    return got["status"], got["headers"], data


def provide(app, draft: SubmissionDraft, contents: dict[str, bytes], submitter: str = AUTHOR):
    """ITI-41 over SOAP (MTOM) with the submitter's XUA assertion, in-process."""
    root = etree.Element(q(NS_XDSB, "ProvideAndRegisterDocumentSetRequest"), nsmap={"xdsb": NS_XDSB})
    root.append(draft.request())
    for doc in draft.documents:
        etree.SubElement(root, q(NS_XDSB, "Document"), id=doc.entry_uuid).text = \
            base64.b64encode(contents[doc.entry_uuid]).decode()
    url = "http://xds.test:8080/repository"
    data, headers = Transport(assertion=app.xua.security_header(submitter, patient_id=draft.patient)).encode(
        url, Actions.PROVIDE, root)
    status, got, body = call(app, "POST", "/repository", body=data, content_type=headers["Content-Type"])
    reply = decode_reply(status, got["content-type"], body, url)
    assert reply.body.get("status", "").endswith("Success"), body


def token(app, professional: str, patient: str | None = None, **kw) -> str:
    return app.iua.token(professional, BASE, patient_id=patient, **kw)


def record(app, patient: str) -> None:
    app.services.registry.add_patient(patient)
    app.services.policy.store.set_treating_physician(patient, TREATING)
    app.services.policy.store.set_professional(patient, AUTHORISED, "authorised")


def seeded(app, n: int = 1, **changes) -> tuple[str, list[DocumentEntry], dict[str, bytes]]:
    patient = fresh_patient()
    record(app, patient)
    ss = submission_set(patient, f"SubmissionSet{uuid.uuid4().hex[:8]}")
    ss.authors = [Author(m.person(AUTHOR), [m.INSTITUTION])]
    draft = SubmissionDraft(patient, ss)
    contents = {}
    for i in range(n):
        doc = document_entry(patient, f"Document{uuid.uuid4().hex[:8]}", hash=None, size=None,
                             repository_unique_id=None, authors=[Author(m.person(AUTHOR), [m.INSTITUTION],
                                                                        ["Medecin"])],
                             service_start_time="20240501080000", service_stop_time="20240501090000",
                             event_codes=[Code("GLE", "1.2.250.1.999.9", "Glycemie")], comments="note",
                             **changes)
        draft.add_document(doc)
        contents[doc.entry_uuid] = f"<doc n='{i}'>{uuid.uuid4().hex}</doc>".encode() * (i + 1)
    fol = folder(patient, f"Folder{uuid.uuid4().hex[:8]}")
    draft.add_folder(fol)
    draft.file_in_folder(fol.entry_uuid, draft.documents[0].entry_uuid)
    provide(app, draft, contents)
    return patient, draft.documents, contents


def search(app, params, who: str = TREATING, patient: str | None = None, accept: str | None = None):
    return call(app, "GET", "/fhir/DocumentReference", params, token=token(app, who, patient), accept=accept)


def identifier_param(patient: str) -> tuple[str, str]:
    value, oid = patient.split("^")[0], patient.split("&")[1]
    return ("patient.identifier", f"urn:oid:{oid}|{value}")


def trail(app) -> list[etree._Element]:
    app.services.auditor.flush()
    Sender(app.services.database).deliver_once()
    return [xml_of(r.raw) for r in store.iter_all(app.services.database)]


def event_types(events) -> list[str]:
    return [e.find("EventIdentification/EventTypeCode").get("csd-code") for e in events]


# ----------------------------------------------------------------------------- ITI-41 -> ITI-67 / ITI-68

def test_document_provided_by_iti41_is_found_by_iti67_with_its_metadata_mapped(dmp):
    patient, docs, contents = seeded(dmp)
    status, headers, body = search(dmp, [identifier_param(patient), ("status", "current")])
    assert status == 200, body
    assert headers["content-type"].startswith("application/fhir+json")
    bundle = Bundle.parse_raw(body)
    assert bundle.type == "searchset" and bundle.total == 1
    ref = json.loads(body)["entry"][0]["resource"]
    DocumentReference.parse_obj(ref)
    doc = docs[0]
    content = contents[doc.entry_uuid]
    attachment = ref["content"][0]["attachment"]
    assert ref["masterIdentifier"] == {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{doc.unique_id}"}
    assert ref["status"] == "current"
    assert ref["type"]["coding"] == [{"system": "http://loinc.org", "code": doc.type_code.code,
                                      "display": doc.type_code.display_name}]
    assert ref["category"][0]["coding"][0] == {"system": fhir_system(doc.class_code.scheme),
                                               "code": doc.class_code.code, "display": doc.class_code.display_name}
    assert ref["subject"]["reference"] == f"Patient/{patient_resource_id(patient)}"
    assert ref["description"] == doc.comments
    assert [c["coding"][0]["code"] for c in ref["securityLabel"]] == [c.code for c in doc.confidentiality_codes]
    assert attachment["contentType"] == doc.mime_type
    assert attachment["language"] == doc.language_code
    assert attachment["title"] == doc.title
    assert attachment["creation"] == fhir_time(doc.creation_time)
    assert attachment["size"] == len(content)
    assert base64.b64decode(attachment["hash"]) == hashlib.sha1(content).digest()
    assert ref["content"][0]["format"]["code"] == doc.format_code.code
    context = ref["context"]
    assert context["event"][0]["coding"][0]["code"] == "GLE"
    assert context["period"] == {"start": fhir_time(doc.service_start_time), "end": fhir_time(doc.service_stop_time)}
    assert context["facilityType"]["coding"][0]["code"] == doc.healthcare_facility_type_code.code
    assert context["practiceSetting"]["coding"][0]["code"] == doc.practice_setting_code.code
    contained = {r["id"]: r for r in ref["contained"]}
    assert contained["sourcePatient"]["identifier"][0]["value"] == "P-0042"
    assert contained["sourcePatient"]["name"] == [{"family": "DUPONT", "given": ["Marie"]}]
    role = contained[ref["author"][0]["reference"][1:]]
    person = contained[role["practitioner"]["reference"][1:]]
    assert person["identifier"] == [{"system": "urn:oid:1.2.250.1.71.4.2.1", "value": AUTHOR}]
    assert role["code"][0]["text"] == "Medecin"
    assert contained[role["organization"]["reference"][1:]]["name"] == "CHU Test"
    entry_uuid = next(i["value"] for i in ref["identifier"] if i["type"]["coding"][0]["code"] == "entryUUID")
    assert entry_uuid.startswith("urn:uuid:") and entry_uuid[9:] == ref["id"]


def test_iti68_returns_the_bytes_exactly_with_their_mime_type(dmp):
    patient, _docs, contents = seeded(dmp, n=2)
    _s, _h, body = search(dmp, [identifier_param(patient), ("status", "current")])
    for entry in json.loads(body)["entry"]:
        attachment = entry["resource"]["content"][0]["attachment"]
        path = urlsplit(attachment["url"]).path
        status, headers, data = call(dmp, "GET", path, token=token(dmp, TREATING, patient))
        assert status == 200
        assert headers["content-type"] == attachment["contentType"]
        assert int(headers["content-length"]) == len(data) == attachment["size"]
        assert data in contents.values() and hashlib.sha1(data).digest() == base64.b64decode(attachment["hash"])


def test_answers_are_valid_fhir_xml(dmp):
    patient, _docs, _c = seeded(dmp)
    status, headers, body = search(dmp, [identifier_param(patient), ("status", "current"), ("_format", "xml")])
    assert status == 200 and headers["content-type"].startswith("application/fhir+xml")
    parsed = Bundle.parse_raw(body, content_type="text/xml")
    assert parsed.total == 1 and parsed.entry[0].resource.resource_type == "DocumentReference"
    status, _h, body = call(dmp, "GET", "/fhir/List", [identifier_param(patient)], token=token(dmp, TREATING),
                            accept="application/fhir+xml")
    assert status == 200
    assert Bundle.parse_raw(body, content_type="text/xml").total == 2
    status, _h, body = call(dmp, "GET", "/fhir/metadata", [("_format", "xml")])
    assert status == 200
    CapabilityStatement.parse_raw(body, content_type="text/xml")


def test_search_parameters_select_as_the_stored_query_does(dmp):
    patient, docs, _c = seeded(dmp, n=3)
    doc = docs[0]
    base = [identifier_param(patient), ("status", "current")]

    def found(*extra) -> int:
        status, _h, body = search(dmp, [*base, *extra])
        assert status == 200, body
        return Bundle.parse_raw(body).total
    assert found() == 3
    assert found(("type", f"http://loinc.org|{doc.type_code.code}")) == 3
    assert found(("type", "http://loinc.org|00000-0")) == 0
    assert found(("category", f"urn:oid:{doc.class_code.scheme}|{doc.class_code.code}")) == 3
    assert found(("event", "urn:oid:1.2.250.1.999.9|GLE")) == 3
    assert found(("security-label", "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|N")) == 3
    assert found(("security-label", "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|V")) == 0
    assert found(("creation", "2024-05-01")) == 3
    assert found(("creation", "lt2024-05-01")) == 0
    assert found(("period", "ge2024-05-01"), ("period", "le2024-05-01")) == 3
    assert found(("period", "ge2024-05-02")) == 0
    assert found(("setting", f"urn:oid:{doc.practice_setting_code.scheme}|{doc.practice_setting_code.code}")) == 3
    assert found(("facility", f"urn:oid:{doc.healthcare_facility_type_code.scheme}|SA01")) == 3
    assert found(("format", f"urn:oid:{doc.format_code.scheme}|{doc.format_code.code}")) == 3
    assert found(("author.family", "TEST")) == 3 and found(("author.family", "NOBODY")) == 0
    assert found(("identifier", f"urn:ietf:rfc:3986|urn:oid:{doc.unique_id}")) == 1
    assert found(("status", "superseded")) == 3  # status=current OR superseded
    status, _h, body = search(dmp, [identifier_param(patient), ("status", "superseded")])
    assert Bundle.parse_raw(body).total == 0
    status, _h, body = search(dmp, [("patient", f"Patient/{patient_resource_id(patient)}"), ("status", "current")])
    assert Bundle.parse_raw(body).total == 3
    status, _h, body = search(dmp, [("patient", f"{BASE}/Patient/{patient_resource_id(patient)}"),
                                    ("status", "current,entered-in-error")])
    assert Bundle.parse_raw(body).total == 3
    status, _h, body = search(dmp, [("patient.identifier", patient.split("^")[0]), ("status", "current")])
    # no system: the configured authority (INS-NIR), where this patient (INS-NIR test arc) has no record
    assert status == 404 and OperationOutcome.parse_raw(body).issue[0].code == "not-found"


def test_paging_gives_total_self_and_next(dmp):
    patient, _docs, _c = seeded(dmp, n=3)
    first = [identifier_param(patient), ("status", "current"), ("_count", "2")]
    seen, url = [], f"/fhir/DocumentReference?{urlencode(first)}"
    while url:
        parts = urlsplit(url)
        _status, _h, body = call(dmp, "GET", parts.path, parse_qsl(parts.query), token=token(dmp, TREATING))
        page = json.loads(body)
        Bundle.parse_obj(page)
        assert page["total"] == 3 and page["link"][0]["relation"] == "self"
        seen += [e["resource"]["id"] for e in page["entry"]]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), "")
        url = url.replace("http://xds.test:8080", "")
    assert len(seen) == len(set(seen)) == 3


def test_bad_search_is_a_400_operation_outcome(dmp):
    for params in ([("status", "current")], [identifier_param(fresh_patient())],
                   [identifier_param(fresh_patient()), ("status", "current"), ("unknown", "x")],
                   [identifier_param(fresh_patient()), ("status", "current"), ("type", "11490-0")],
                   [identifier_param(fresh_patient()), ("status", "current"), ("creation", "ne2024")]):
        status, _h, body = search(dmp, params)
        assert status == 400, params
        assert OperationOutcome.parse_raw(body).issue[0].code == "invalid"


def test_iti66_finds_submission_set_and_folder_lists(dmp):
    patient, _docs, _c = seeded(dmp, n=2)
    status, _h, body = call(dmp, "GET", "/fhir/List", [identifier_param(patient), ("code", "folder")],
                            token=token(dmp, TREATING))
    assert status == 200, body
    page = json.loads(body)
    Bundle.parse_obj(page)
    (folder_list,) = [e["resource"] for e in page["entry"]]
    assert folder_list["code"]["coding"][0]["code"] == "folder" and folder_list["title"] == "Sejour"
    assert len(folder_list["entry"]) == 1
    status, _h, body = call(dmp, "GET", "/fhir/List", [identifier_param(patient), ("code", "submissionset")],
                            token=token(dmp, TREATING))
    (ss,) = [e["resource"] for e in json.loads(body)["entry"]]
    assert len(ss["entry"]) == 2 and ss["date"] == fhir_time("20240501100000")


# ----------------------------------------------------------------------------- the policy at this door

def test_professional_without_access_gets_no_entry_and_404_on_the_binary(dmp):
    patient, _docs, _c = seeded(dmp)
    _s, _h, body = search(dmp, [identifier_param(patient), ("status", "current")])
    ref = json.loads(body)["entry"][0]["resource"]
    binary = urlsplit(ref["content"][0]["attachment"]["url"]).path
    status, _h, body = search(dmp, [identifier_param(patient), ("status", "current")], who=UNAUTHORISED)
    assert status == 403 and OperationOutcome.parse_raw(body).issue[0].code == "forbidden"
    assert ref["id"] not in body.decode()
    status, _h, hidden = call(dmp, "GET", binary, token=token(dmp, UNAUTHORISED, patient))
    status_unknown, _h, unknown = call(dmp, "GET", "/fhir/Binary/1.2.3.4.5.404", token=token(dmp, UNAUTHORISED))
    assert status == status_unknown == 404
    assert OperationOutcome.parse_raw(hidden).issue[0].code == OperationOutcome.parse_raw(unknown).issue[0].code
    status, _h, _b = call(dmp, "GET", f"/fhir/DocumentReference/{ref['id']}", token=token(dmp, UNAUTHORISED))
    assert status == 404
    status, _h, _b = call(dmp, "GET", f"/fhir/DocumentReference/{ref['id']}", token=token(dmp, TREATING))
    assert status == 200


def test_document_masked_to_professionals_is_not_returned_to_an_authorised_professional(dmp):
    patient, _docs, _c = seeded(dmp, confidentiality_codes=[Code("MASQUE_PS", m.VIS, "MASQUE_PS")])
    status, _h, body = search(dmp, [identifier_param(patient), ("status", "current")], who=AUTHORISED)
    assert status == 200 and Bundle.parse_raw(body).total == 0
    _s, _h, body = search(dmp, [identifier_param(patient), ("status", "current")], who=TREATING)
    ref = json.loads(body)["entry"][0]["resource"]
    status, _h, _b = call(dmp, "GET", urlsplit(ref["content"][0]["attachment"]["url"]).path,
                          token=token(dmp, AUTHORISED, patient))
    assert status == 404
    status, _h, body = call(dmp, "GET", "/fhir/List", [identifier_param(patient), ("code", "submissionset")],
                            token=token(dmp, AUTHORISED))
    assert ref["id"] not in body.decode()


# ----------------------------------------------------------------------------- IUA

def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_iua_token_attacks_are_refused_with_401_and_audited(dmp):
    patient, _docs, _c = seeded(dmp)
    good = token(dmp, TREATING, patient)
    head, claims, signature = good.split(".")
    payload = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    stranger = TokenIssuer.generate("RS256")
    attacks = {
        "none": None,
        "expired": token(dmp, TREATING, patient, validity=10, not_before=time.time() - 3600),
        "wrong key": stranger.token(TREATING, BASE),
        "wrong audience": dmp.iua.token(TREATING, "https://elsewhere.example/fhir"),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{claims}.",
        "alg HS256": f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{claims}.{signature}",
        "tampered claims": f"{head}.{_b64({**payload, 'sub': AUTHORISED, 'extensions': {}})}.{signature}",
        "garbage": "not-a-jwt",
    }
    before = len(trail(dmp))
    for name, value in attacks.items():
        status, headers, body = call(dmp, "GET", "/fhir/DocumentReference",
                                     [identifier_param(patient), ("status", "current")], token=value)
        assert status == 401, (name, body)
        assert headers["www-authenticate"].startswith("Bearer"), name
        if value is not None:
            assert 'error="invalid_token"' in headers["www-authenticate"], name
        assert OperationOutcome.parse_raw(body).issue[0].code == "login"
    events = trail(dmp)[before:]
    alerts = [e for e in events if e.find("EventIdentification/EventID").get("csd-code") == "110113"]
    assert len(alerts) == len(attacks)
    queries = [e for e in events if event_types([e]) == ["ITI-67"]]
    assert len(queries) == len(attacks)
    assert all(e.find("EventIdentification").get("EventOutcomeIndicator") == "12" for e in queries)
    status, _h, _b = search(dmp, [identifier_param(patient), ("status", "current")])
    assert status == 200


def test_iua_claims_fill_the_same_caller_as_xua(dmp):
    tok = dmp.iua.token(TREATING, BASE, name="Dr Jean", organization="CHU", organization_id="ORG1",
                        patient_id="123^^^&1.2.3&ISO", mode="bris_de_glace")
    claims = IuaVerifier([dmp.iua.trusted_key]).verify(tok, audience=BASE)
    iua, xua = Caller(), Caller()
    fill_caller(iua, claims)
    xua_fill(xua, read_assertion(dmp.xua.assertion(TREATING, name="Dr Jean", organization="CHU",
                                                   organization_id="ORG1", patient_id="123^^^&1.2.3&ISO",
                                                   mode="bris_de_glace")))
    for name in ("user_id", "user_name", "organization", "organization_id", "patient_id", "access_mode", "kind",
                 "authenticated"):
        assert getattr(iua, name) == getattr(xua, name), name
    assert [(r.code, r.scheme) for r in iua.roles] == [(r.code, r.scheme) for r in xua.roles]
    assert [(p.code, p.scheme) for p in iua.purpose_of_use] == [(p.code, p.scheme) for p in xua.purpose_of_use]


# ----------------------------------------------------------------------------- audit, metadata

def test_iti67_and_iti68_are_audited_in_the_chain_with_their_event_types(dmp):
    patient, docs, _c = seeded(dmp)
    before = len(trail(dmp))
    _s, _h, body = search(dmp, [identifier_param(patient), ("status", "current")])
    url = json.loads(body)["entry"][0]["resource"]["content"][0]["attachment"]["url"]
    call(dmp, "GET", urlsplit(url).path, token=token(dmp, TREATING, patient))
    call(dmp, "GET", "/fhir/List", [identifier_param(patient)], token=token(dmp, TREATING))
    events = [e for e in trail(dmp)[before:] if event_types([e])[0] in ("ITI-66", "ITI-67", "ITI-68")]
    assert event_types(events) == ["ITI-67", "ITI-68", "ITI-66"]
    query, retrieve, _lists = events
    assert query.find("EventIdentification/EventID").get("csd-code") == "110112"
    assert retrieve.find("EventIdentification/EventID").get("csd-code") == "110106"
    for event in events:
        assert event.find("EventIdentification").get("EventOutcomeIndicator") == "0"
        ids = [o.get("ParticipantObjectID") for o in event.iter("ParticipantObjectIdentification")]
        assert patient_key(patient) in ids
        assert TREATING in [p.get("UserID") for p in event.iter("ActiveParticipant")]
    assert docs[0].unique_id in [o.get("ParticipantObjectID") for o in retrieve.iter("ParticipantObjectIdentification")]
    query_text = base64.b64decode(next(query.iter("ParticipantObjectQuery")).text)
    assert b"/fhir/DocumentReference?" in query_text


def test_capability_statement_lists_the_document_responder(dmp):
    status, _h, body = call(dmp, "GET", "/fhir/metadata")
    assert status == 200
    cs = CapabilityStatement.parse_raw(body)
    types = {r.type: r for r in cs.rest[0].resource}
    assert set(types) >= {"DocumentReference", "List", "Binary"}
    assert {p.name for p in types["DocumentReference"].searchParam} >= {
        "patient", "patient.identifier", "status", "date", "period", "type", "category", "author.given", "format",
        "setting", "event", "facility", "security-label", "related", "identifier"}


def test_replaced_entry_shows_as_superseded():
    from bindings.fhir_mapping import document_reference
    entry = DocumentEntry("urn:uuid:0b7a3f4e-2f7b-4a44-9d3c-6cbf2d7e6d01", unique_id="1.2.3",
                          status="urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated", mime_type="text/plain")
    ref = document_reference(entry, BASE)
    DocumentReference.parse_obj(ref)
    assert ref["status"] == "superseded"


def test_xds_iua_issue_makes_a_token_the_server_accepts(tmp_path):
    import subprocess
    import sys

    from access.iua import build_iua_verifier
    from config import Settings
    data = tmp_path / "data"
    out = subprocess.run([sys.executable, "-m", "server.cli", "iua", "issue", TREATING, "--data-dir", str(data),
                          "--audience", BASE, "--mode", "bris_de_glace"],
                         capture_output=True, text=True, timeout=120, check=True)
    settings = Settings(data_dir=data, access_policy="dmp")
    caller = Caller()
    fill_caller(caller, build_iua_verifier(settings).verify(out.stdout.strip(), audience=BASE))
    assert caller.user_id == TREATING and caller.access_mode == "bris_de_glace" and caller.kind == "professional"
