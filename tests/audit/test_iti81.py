"""ITI-81 Retrieve ATNA Audit Event (issue 18): only auditors read the trail, every read is itself
audited, and the answers are exact FHIR R4, validated by an independent library (fhir.resources,
R4 4.0.1), in JSON and XML. In-process through the server's own WSGI app, on SQLite and PostgreSQL."""
from __future__ import annotations

import base64
import io
import json
import re
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from fhir.resources.bundle import Bundle
from fhir.resources.operationoutcome import OperationOutcome

from audit import messages, store
from audit.sender import Sender
from tests.audit.support import assert_valid, xml_of
from xds.context import Caller, CodedValue

AUDITOR = "audrey"
TOKEN = "auditor-token-0123456789abcdef"
AUDITOR_NODE = "CN=audit-console,O=DMP"
OTHER_NODE = "CN=lps.example,O=Clinique"
OID = "1.2.250.1.213.1.4.10"
PID = "274017512345613"
PATIENT = f"{PID}^^^&{OID}&ISO"
ELSEWHERE = f"{PID}^^^&1.2.250.1.999.1&ISO"
"""The same id under another assigning authority."""
URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")


class _Socket:
    """gunicorn's socket as ``server.tls.peer_subject`` reads it: a verified client certificate."""

    def __init__(self, cn: str, org: str) -> None:
        self.cert = {"subject": ((("organizationName", org),), (("commonName", cn),))}

    def getpeercert(self):
        return self.cert


@pytest.fixture
def server(audit_db, tmp_path):
    from config import Settings
    from server.app import Application, build_services, mounts
    services = build_services(Settings(data_dir=tmp_path / "data", database_url=audit_db.url,
                                       audit_readers=[AUDITOR_NODE], audit_reader_tokens={AUDITOR: TOKEN}))
    app = Application(services, mounts(services))
    app.trail = lambda: _trail(services)
    app.services = services
    yield app
    services.close()


def _trail(services) -> list:
    services.auditor.flush()
    Sender(services.database).deliver_once()
    return list(store.iter_all(services.database))


def get(app, path: str, params: list[tuple[str, str]] | dict | None = None, token: str | None = None,
        certificate: str | None = None, accept: str | None = None):
    """GET ``/audit`` + ``path``: (status, headers, body)."""
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/audit" + path, "SCRIPT_NAME": "",
               "QUERY_STRING": urlencode(params or []), "wsgi.url_scheme": "http", "SERVER_NAME": "xds.test",
               "SERVER_PORT": "8080", "REMOTE_ADDR": "192.0.2.44", "wsgi.input": io.BytesIO(b"")}
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

    body = b"".join(app(environ, start_response))
    return got["status"], got["headers"], body


def search(app, **params):
    params.setdefault("date", "ge2000-01-01")
    status, _headers, body = get(app, "/AuditEvent", params, token=TOKEN)
    assert status == 200, body
    return json.loads(body)


def seed(app, patients=(PATIENT,), n: int = 1) -> None:
    """``n`` ITI-18 queries per patient, in the trail."""
    caller = Caller(remote_addr="192.0.2.7", endpoint="http://xds.test:8080/registry",
                    user_id="899700000001", user_name="Dr Jean Dupont",
                    roles=[CodedValue("10", "1.2.250.1.71.1.2.7", "Médecin")])
    for patient in patients:
        for _ in range(n):
            app.services.auditor.record(messages.stored_query(caller, "src", messages.SUCCESS, "urn:uuid:q",
                                                              b"<query/>", patient))
    app.trail()


def alerts(app) -> list:
    return [x for x in map(xml_of, (r.raw for r in app.trail()))
            if x.find("EventIdentification/EventID").get("csd-code") == "110113"]


def reads(app) -> list:
    return [x for x in map(xml_of, (r.raw for r in app.trail()))
            if x.find("EventIdentification/EventID").get("csd-code") == "110101"]


def test_unauthenticated_trail_read_is_refused_and_audited(server):
    seed(server)
    status, headers, body = get(server, "/AuditEvent", {"date": "ge2000-01-01", "_count": "1000"})
    assert status == 401
    assert headers["www-authenticate"].startswith("Bearer")
    outcome = OperationOutcome.parse_raw(body)
    assert outcome.issue[0].code == "login"
    assert PID not in body.decode()
    status, headers, body = get(server, "/AuditEvent", {"date": "ge2000-01-01"}, token="not-a-token")
    assert status == 401 and 'error="invalid_token"' in headers["www-authenticate"] and PID not in body.decode()
    assert get(server, "/AuditEvent/1")[0] == 401
    assert get(server, "/AuditEvent/no-such-id")[0] == 401  # not even a 404 before the credential
    refused = alerts(server)
    assert len(refused) == 4
    for x in refused:
        assert_valid(x)
        assert "192.0.2.44" in x.findtext("EventIdentification/EventOutcomeDescription")
        assert "not-a-token" not in xml_of_text(x)


def xml_of_text(x) -> str:
    from lxml import etree
    return etree.tostring(x, encoding="unicode")


def test_non_auditor_certificate_is_refused(server):
    seed(server)
    status, _headers, body = get(server, "/AuditEvent", {"date": "ge2000-01-01"}, certificate=OTHER_NODE)
    assert status == 403
    assert OperationOutcome.parse_raw(body).issue[0].code == "forbidden"
    assert PID not in body.decode()
    (alert,) = alerts(server)
    assert_valid(alert)
    assert OTHER_NODE in alert.findtext("EventIdentification/EventOutcomeDescription")
    # the auditors' node is let in
    status, _headers, body = get(server, "/AuditEvent", {"date": "ge2000-01-01"}, certificate=AUDITOR_NODE)
    assert status == 200 and json.loads(body)["total"] >= 1


def test_auditor_token_reads_the_trail(server):
    seed(server)
    doc = search(server, **{"patient.identifier": f"urn:oid:{OID}|{PID}"})
    assert doc["total"] == 1 and doc["entry"][0]["resource"]["subtype"][0]["code"] == "ITI-18"
    (read,) = reads(server)
    humans = [p for p in read.iterfind("ActiveParticipant") if p.get("UserID") == AUDITOR]
    assert humans and humans[0].get("UserIsRequestor") == "true"


def test_every_trail_read_is_audited(server):
    seed(server)
    params = {"date": "ge2000-01-01", "patient.identifier": f"urn:oid:{OID}|{PID}"}
    assert get(server, "/AuditEvent", params, token=TOKEN)[0] == 200
    first = server.trail()[0].seq
    assert get(server, f"/AuditEvent/{first}", token=TOKEN)[0] == 200
    assert get(server, "/AuditEvent", {"date": "ge2000-01-01"}, certificate=AUDITOR_NODE)[0] == 200
    assert get(server, "/AuditEvent", {"date": "yesterday"}, token=TOKEN)[0] == 400
    search_read, record_read, node_read, bad_read = reads(server)
    for x in (search_read, record_read, node_read, bad_read):
        assert_valid(x)
        ei = x.find("EventIdentification")
        assert (ei.find("EventID").get("csd-code"), ei.get("EventActionCode")) == ("110101", "R")
        assert ei.find("EventTypeCode").get("csd-code") == "ITI-81"
        log = [o for o in x.iterfind("ParticipantObjectIdentification")
               if o.get("ParticipantObjectTypeCodeRole") == "13"]
        assert len(log) == 1 and log[0].get("ParticipantObjectTypeCode") == "2"
    # the reader and the patient the search names
    assert AUDITOR in [p.get("UserID") for p in search_read.iterfind("ActiveParticipant")]
    patients = [o.get("ParticipantObjectID") for o in search_read.iterfind("ParticipantObjectIdentification")
                if o.get("ParticipantObjectTypeCodeRole") == "1"]
    assert patients == [PATIENT]
    query = next(o for o in search_read.iterfind("ParticipantObjectIdentification")
                 if o.get("ParticipantObjectTypeCodeRole") == "13").findtext("ParticipantObjectQuery")
    assert dict(parse_qsl(base64.b64decode(query).decode())) == params
    # a record read names the patients of the record
    assert [o.get("ParticipantObjectID") for o in record_read.iterfind("ParticipantObjectIdentification")
            if o.get("ParticipantObjectTypeCodeRole") == "1"] == [PATIENT]
    assert AUDITOR_NODE in [p.get("UserID") for p in node_read.iterfind("ActiveParticipant")]
    assert bad_read.find("EventIdentification").get("EventOutcomeIndicator") == "4"
    # the patient's access history shows that her part of the trail was read
    from audit.history import access_history
    assert any(e.event.startswith("ITI-81") for e in access_history(server.services.database, PATIENT))


def test_token_search_without_system_matches_any_system(server):
    seed(server, (PATIENT, ELSEWHERE, "111111111111120^^^&1.2.250.1.213.1.4.10&ISO"))
    ids = lambda doc: sorted(  # noqa: E731 - a short reader
        o["what"]["identifier"]["value"] for e in doc.get("entry", []) for o in e["resource"]["entity"]
        if o["role"]["code"] == "1")
    assert ids(search(server, **{"patient.identifier": PID})) == sorted([PATIENT, ELSEWHERE])
    assert ids(search(server, **{"patient.identifier": f"urn:oid:{OID}|{PID}"})) == [PATIENT]
    assert ids(search(server, **{"patient.identifier": f"|{PID}"})) == []
    assert ids(search(server, **{"patient.identifier": f"{PID[:5]}"})) == []
    assert ids(search(server, **{"patient.identifier": "27401751234_6"})) == []


def _systems(node, path="") -> list[tuple[str, str]]:
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "system" and isinstance(value, str):
                out.append((path, value))
            out += _systems(value, f"{path}.{key}")
    elif isinstance(node, list):
        for item in node:
            out += _systems(item, path)
    return out


def test_codings_have_uri_systems(server):
    caller = Caller(remote_addr="192.0.2.7", endpoint="http://xds.test:8080/repository", user_id="899700000001",
                    roles=[CodedValue("10", "1.2.250.1.71.1.2.7", "Médecin"), CodedValue("AUDITOR", "portal", "A")],
                    purpose_of_use=[CodedValue("EMERGENCY", "portal", "urgence")], access_mode="bris_de_glace")
    auditor = server.services.auditor
    auditor.record(messages.provide_and_register(caller, "src", messages.SUCCESS, PATIENT, "1.2.3.4"))
    auditor.record(messages.stored_query(caller, "src", messages.SUCCESS, "urn:uuid:q", b"<q/>", PATIENT))
    auditor.record(messages.retrieve(caller, "src", messages.SUCCESS,
                                     [messages.DocumentRef("1.2.3.5", "1.3.6.1.4.1.21367.2017.2.3.52")], PATIENT))
    auditor.record(messages.security_alert(caller, "src", "refused", patient_id=PATIENT))
    server.trail()
    doc = search(server)
    Bundle.parse_obj(doc)
    systems = _systems(doc)
    assert {path for path, _ in systems} >= {".entry.resource.type", ".entry.resource.subtype",
                                             ".entry.resource.agent.type.coding"}
    bad = [(path, system) for path, system in systems if not URI.fullmatch(system)]
    assert bad == []
    subtypes = {(c["system"], c["code"]) for e in doc["entry"] for c in e["resource"].get("subtype", [])}
    assert ("urn:ihe:event-type-code", "ITI-41") in subtypes
    assert ("http://dicom.nema.org/resources/ontology/DCM", "110132") in subtypes
    assert {"system": "urn:oid:1.2.250.1.71.1.2.7", "code": "10", "display": "Médecin"} in [
        c for e in doc["entry"] for a in e["resource"]["agent"] for r in a.get("role", [])
        for c in r["coding"]]


def test_paging_walks_to_the_end_with_next_links(server):
    seed(server, n=7)
    params = {"date": "ge2000-01-01", "patient.identifier": PID, "_count": "3"}
    status, _headers, body = get(server, "/AuditEvent", params, token=TOKEN)
    doc = json.loads(body)
    total, seen, pages = doc["total"], [], 0
    assert total == 7
    links = {link["relation"]: link["url"] for link in doc["link"]}
    assert links["self"].startswith("http://xds.test:8080/audit/AuditEvent?")
    assert dict(parse_qsl(urlsplit(links["self"]).query)) == params
    while True:
        pages += 1
        Bundle.parse_obj(doc)
        assert doc["total"] == total
        seen += [e["resource"]["id"] for e in doc.get("entry", [])]
        links = {link["relation"]: link["url"] for link in doc["link"]}
        if "next" not in links:
            break
        url = urlsplit(links["next"])
        assert url.path == "/audit/AuditEvent"
        server.trail()  # the reads are audited meanwhile: pages do not shift
        status, _headers, body = get(server, "/AuditEvent", parse_qsl(url.query), token=TOKEN)
        assert status == 200
        doc = json.loads(body)
    assert pages == 3 and len(seen) == len(set(seen)) == total
    assert [int(s) for s in seen] == sorted((int(s) for s in seen), reverse=True)


def test_xml_format_is_valid_fhir(server):
    seed(server, n=2)
    params = {"date": "ge2000-01-01", "patient.identifier": PID}
    as_json = json.loads(get(server, "/AuditEvent", params, token=TOKEN)[2])
    for extra, accept in (({"_format": "xml"}, None), ({}, "application/fhir+xml"),
                          ({"_format": "application/fhir+xml"}, "application/fhir+json")):
        status, headers, body = get(server, "/AuditEvent", {**params, **extra}, token=TOKEN, accept=accept)
        assert status == 200 and headers["content-type"].startswith("application/fhir+xml")
        assert body.startswith(b"<?xml") and b'xmlns="http://hl7.org/fhir"' in body
        from_xml = Bundle.parse_raw(body, content_type="text/xml")
        assert from_xml.type == "searchset" and from_xml.total == as_json["total"] == 2
        assert [e.resource.id for e in from_xml.entry] == [e["resource"]["id"] for e in as_json["entry"]]
        assert from_xml.entry[0].resource.subtype[0].system == "urn:ihe:event-type-code"
        assert {link.relation for link in from_xml.link} == {"self"}
    one = as_json["entry"][0]["resource"]["id"]
    status, headers, body = get(server, f"/AuditEvent/{one}", {"_format": "xml"}, token=TOKEN)
    assert status == 200 and headers["content-type"].startswith("application/fhir+xml")
    from fhir.resources.auditevent import AuditEvent
    assert AuditEvent.parse_raw(body, content_type="text/xml").id == one
    status, headers, body = get(server, "/AuditEvent", {"date": "ge2000-01-01", "_format": "xml"})
    assert status == 401 and headers["content-type"].startswith("application/fhir+xml")
    assert OperationOutcome.parse_raw(body, content_type="text/xml").issue[0].code == "login"
