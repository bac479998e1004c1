"""Each transaction and outcome audited with the exact codes of ITI TF-2 (through the real SOAP
endpoints in-process, on SQLite and PostgreSQL), and every message valid against DICOM's schemas."""
from __future__ import annotations

import base64

import pytest
from lxml import etree

from audit import store
from audit.sender import Sender
from tests.audit.support import assert_valid, xml_of
from tests.repository.support import (
    FAILURE,
    PATIENT,
    REPOSITORY_UID,
    SUCCESS,
    call_wsgi,
    envelope,
    provide_request,
    retrieve_request,
    submission,
)
from tests.support.metadata import draft
from xds.context import Caller, CodedValue
from xds.vocabulary import NS_QUERY, NS_RIM, Actions, q

SS_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
SOAP = 'application/soap+xml; charset=UTF-8; action="{}"'


@pytest.fixture
def app(audit_db, tmp_path):
    from config import Settings
    from server.app import Application, build_services, mounts
    services = build_services(Settings(data_dir=tmp_path / "data", database_url=audit_db.url))
    services.registry.add_patient(PATIENT)
    application = Application(services, mounts(services))
    application.trail = lambda: _trail(services)
    yield application
    services.auditor.close()


def _trail(services) -> list[etree._Element]:
    services.auditor.flush()
    Sender(services.database).deliver_once()
    return [xml_of(r.raw) for r in store.iter_all(services.database)]


def code(el, tag=None):
    c = el if tag is None or el.tag == tag else el.find(tag)
    return c.get("csd-code"), c.get("codeSystemName"), c.get("originalText")


def event(x):
    ei = x.find("EventIdentification")
    return (code(ei, "EventID"), ei.get("EventActionCode"), ei.get("EventOutcomeIndicator"),
            [code(t) for t in ei.iterfind("EventTypeCode")])


def participants(x):
    return [(p.get("UserID"), p.get("UserIsRequestor"), [r.get("csd-code") for r in p.iterfind("RoleIDCode")])
            for p in x.iterfind("ActiveParticipant")]


def objects(x):
    return [(o.get("ParticipantObjectID"), o.get("ParticipantObjectTypeCode"), o.get("ParticipantObjectTypeCodeRole"),
             o.find("ParticipantObjectIDTypeCode").get("csd-code")) for o in x.iterfind("ParticipantObjectIdentification")]


def query_body(patient: str) -> etree._Element:
    body = etree.Element(q(NS_QUERY, "AdhocQueryRequest"), nsmap={"query": NS_QUERY, "rim": NS_RIM})
    etree.SubElement(body, q(NS_QUERY, "ResponseOption"), returnType="ObjectRef")
    aq = etree.SubElement(body, q(NS_RIM, "AdhocQuery"), id=FIND_DOCUMENTS)
    for name, value in (("$XDSDocumentEntryPatientId", f"'{patient}'"),
                        ("$XDSDocumentEntryStatus", "('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')")):
        slot = etree.SubElement(aq, q(NS_RIM, "Slot"), name=name)
        etree.SubElement(etree.SubElement(slot, q(NS_RIM, "ValueList")), q(NS_RIM, "Value")).text = value
    return body


def test_provide_success_audits_iti41_import_and_iti42_both_sides(app):
    sub = submission([b"hello audit"])
    reply = call_wsgi(app, *provide_request(sub))
    assert reply.status_value == SUCCESS
    trail = app.trail()
    for x in trail:
        assert_valid(x)
    by_type = {event(x)[3][0][0] + ":" + event(x)[0][0]: x for x in trail}
    assert set(by_type) == {"ITI-41:110107", "ITI-42:110106", "ITI-42:110107"}
    x = by_type["ITI-41:110107"]
    assert event(x) == (("110107", "DCM", "Import"), "C", "0",
                        [("ITI-41", "IHE Transactions", "Provide and Register Document Set-b")])
    ps = participants(x)
    assert [p[1:] for p in ps] == [("true", ["110153"]), ("false", ["110152"])]
    assert ps[1][0].endswith("/repository")
    assert objects(x) == [(PATIENT, "1", "1", "2"), (sub.ss_unique_id, "2", "20", SS_NODE)]
    export = by_type["ITI-42:110106"]
    assert event(export)[:3] == (("110106", "DCM", "Export"), "R", "0")
    assert [p[2] for p in participants(export)] == [["110153"], ["110152"]]
    assert objects(export) == objects(x)
    imp = by_type["ITI-42:110107"]
    assert event(imp)[:3] == (("110107", "DCM", "Import"), "C", "0")


def test_provide_failure_is_serious_failure(app):
    sub = submission([b"x"], patient="999999999999983^^^&1.2.250.1.213.1.4.10&ISO")  # no record: registry refuses
    reply = call_wsgi(app, *provide_request(sub))
    assert reply.status_value == FAILURE
    outcomes = {event(x)[3][0][0] + ":" + event(x)[0][0]: event(x)[2] for x in app.trail()}
    assert outcomes == {"ITI-41:110107": "8", "ITI-42:110106": "8", "ITI-42:110107": "8"}


def test_provide_fault_is_major_failure(app):
    sub = submission([b"x"])
    body, ctype = provide_request(sub, mtom=False)
    body = body.replace(b"<xdsb:Document id=\"Document00\">", b"<xdsb:Document id=\"Document00\">!!!")
    reply = call_wsgi(app, body, ctype)
    trail = app.trail()
    assert reply.fault_reason is not None or reply.status_value == FAILURE
    x = next(x for x in trail if event(x)[3][0][0] == "ITI-41")
    assert event(x)[2] in ("8", "12")
    assert_valid(x)


def test_retrieve_one_object_per_document_with_repository_detail(app):
    sub = submission([b"one", b"two"])
    assert call_wsgi(app, *provide_request(sub)).status_value == SUCCESS
    uids = [d.unique_id for d in sub.docs]
    reply = call_wsgi(app, *retrieve_request([(REPOSITORY_UID, u) for u in uids] + [(REPOSITORY_UID, "1.2.3.404")]))
    assert reply.status_value.endswith("PartialSuccess")
    x = next(x for x in app.trail() if event(x)[3][0][0] == "ITI-43")
    assert_valid(x)
    assert event(x) == (("110106", "DCM", "Export"), "R", "4",
                        [("ITI-43", "IHE Transactions", "Retrieve Document Set")])
    ps = participants(x)
    assert ps[0][0].endswith("/repository") and ps[0][2] == ["110153"] and ps[1][2] == ["110152"]
    assert [o[:4] for o in objects(x)] == [(u, "2", "3", "9") for u in uids]
    for o in x.iterfind("ParticipantObjectIdentification"):
        d = o.find("ParticipantObjectDetail")
        assert d.get("type") == "Repository Unique Id"
        assert base64.b64decode(d.get("value")).decode() == REPOSITORY_UID


def test_retrieve_unknown_document_is_failure(app):
    call_wsgi(app, *retrieve_request([(REPOSITORY_UID, "1.2.3.404")]))
    x = next(x for x in app.trail() if event(x)[3][0][0] == "ITI-43")
    assert event(x)[2] == "8"
    assert objects(x) == [("1.2.3.404", "2", "3", "9")]


def test_stored_query_carries_the_request_and_the_patient(app):
    body = query_body(PATIENT)
    data = envelope(body, Actions.STORED_QUERY)
    call_wsgi(app, data, SOAP.format(Actions.STORED_QUERY), path="/registry")
    x = next(x for x in app.trail() if event(x)[3][0][0] == "ITI-18")
    assert_valid(x)
    assert event(x) == (("110112", "DCM", "Query"), "E", "0",
                        [("ITI-18", "IHE Transactions", "Registry Stored Query")])
    assert [p[1:] for p in participants(x)] == [("true", ["110153"]), ("false", ["110152"])]
    assert objects(x) == [(PATIENT, "1", "1", "2"), (FIND_DOCUMENTS, "2", "24", "ITI-18")]
    qo = x.findall("ParticipantObjectIdentification")[1]
    sent = etree.fromstring(base64.b64decode(qo.findtext("ParticipantObjectQuery")))
    assert sent.tag == q(NS_QUERY, "AdhocQueryRequest") and sent.find(q(NS_RIM, "AdhocQuery")).get("id") == FIND_DOCUMENTS
    d = qo.find("ParticipantObjectDetail")
    assert (d.get("type"), base64.b64decode(d.get("value"))) == ("QueryEncoding", b"UTF-8")


def test_stored_query_error_is_serious_failure(app):
    body = query_body(PATIENT)
    body.find(q(NS_RIM, "AdhocQuery")).set("id", "urn:uuid:00000000-0000-0000-0000-000000000000")
    call_wsgi(app, envelope(body, Actions.STORED_QUERY), SOAP.format(Actions.STORED_QUERY), path="/registry")
    x = next(x for x in app.trail() if event(x)[3][0][0] == "ITI-18")
    assert event(x)[2] == "8"
    assert_valid(x)


def test_register_at_registry_is_import(app):
    d = draft(PATIENT)
    call_wsgi(app, envelope(d.request(), Actions.REGISTER), SOAP.format(Actions.REGISTER), path="/registry")
    x = next(x for x in app.trail() if event(x)[3][0][0] == "ITI-42")
    assert_valid(x)
    assert event(x) == (("110107", "DCM", "Import"), "C", "0",
                        [("ITI-42", "IHE Transactions", "Register Document Set-b")])
    assert objects(x) == [(PATIENT, "1", "1", "2"), (d.submission_set.unique_id, "2", "20", SS_NODE)]


def test_human_requestor_and_purpose_of_use_when_caller_known():
    from audit import messages
    caller = Caller(remote_addr="10.1.2.3", endpoint="https://dmp.example/registry", user_id="810000012345",
                    user_name="Dr Martin", roles=[CodedValue("10", "1.2.250.1.71.1.2.7", "Medecin")],
                    organization_id="3750100018", purpose_of_use=[CodedValue("TREATMENT", "2.16.840.1.113883.3.18.7.1",
                                                                             "Treatment")],
                    access_mode="bris_de_glace")
    ev = messages.stored_query(caller, "src", 0, FIND_DOCUMENTS, b"<q/>", PATIENT)
    x = assert_valid(ev.to_xml())
    human = x.findall("ActiveParticipant")[2]
    assert (human.get("UserID"), human.get("UserName"), human.get("AlternativeUserID"),
            human.get("UserIsRequestor")) == ("810000012345", "Dr Martin", "3750100018", "true")
    assert code(human, "RoleIDCode") == ("10", "1.2.250.1.71.1.2.7", "Medecin")
    pou = [code(p, "PurposeOfUse") for p in x.find("EventIdentification").iterfind("PurposeOfUse")]
    assert pou == [("TREATMENT", "2.16.840.1.113883.3.18.7.1", "Treatment"),
                   ("bris_de_glace", "1.2.250.1.213.1.1.4.248", "bris_de_glace")]


def test_application_activity_and_security_alert():
    from audit import messages
    start = assert_valid(messages.application_activity("src", True).to_xml())
    assert event(start) == (("110100", "DCM", "Application Activity"), "E", "0",
                            [("110120", "DCM", "Application Start")])
    assert participants(start)[0][2] == ["110150"]
    stop = assert_valid(messages.application_activity("src", False).to_xml())
    assert event(stop)[3] == [("110121", "DCM", "Application Stop")]
    caller = Caller(remote_addr="10.9.9.9", endpoint="https://dmp.example/repository")
    alert = assert_valid(messages.security_alert(caller, "src", "certificate refused",
                                                 messages.NODE_AUTHENTICATION, messages.SERIOUS_FAILURE).to_xml())
    assert event(alert) == (("110113", "DCM", "Security Alert"), "E", "8",
                            [("110126", "DCM", "Node Authentication")])
    assert alert.findtext("EventIdentification/EventOutcomeDescription") == "certificate refused"


def test_auditor_security_alert_api(audit_db):
    from audit.auditor import Auditor
    a = Auditor(audit_db, "src")
    a.security_alert(Caller(remote_addr="10.0.0.9"), "XUA assertion signature invalid")
    a.flush()
    a.close()
    Sender(audit_db).deliver_once()
    rows = store.search(audit_db, store.Query(event=["110113"]))
    assert len(rows) == 1 and rows[0].outcome == 4 and rows[0].event_type == "110132"


def test_no_audit_and_a_failing_auditor_never_fail_a_transaction(audit_db, tmp_path):
    from config import Settings
    from server.app import Application, build_services, mounts
    services = build_services(Settings(data_dir=tmp_path / "off", database_url=audit_db.url, audit_enabled=False))
    services.registry.add_patient(PATIENT)
    assert not services.auditor.enabled
    assert call_wsgi(Application(services, mounts(services)), *provide_request(submission([b"off"]))).status_value == SUCCESS

    class Broken:
        enabled, source_id = True, "src"

        def record(self, event):
            raise RuntimeError("audit store on fire")

        def record_facts(self, *args):
            raise RuntimeError("audit store on fire")

        def security_alert(self, *args, **kwargs):
            raise RuntimeError("audit store on fire")

        def close(self):
            pass
    services = build_services(Settings(data_dir=tmp_path / "broken", database_url=audit_db.url))
    services.auditor.close()
    services.auditor = Broken()
    reply = call_wsgi(Application(services, mounts(services)), envelope(query_body(PATIENT), Actions.STORED_QUERY),
                      SOAP.format(Actions.STORED_QUERY), path="/registry")
    assert reply.body.get("status").endswith("Success")
    assert store.count(audit_db) == 0


def test_index_fields_from_the_model_equal_those_read_from_the_xml():
    from audit import fields, messages
    caller = Caller(remote_addr="10.1.2.3", endpoint="https://dmp.example/registry", user_id="810000012345",
                    organization_id="3750100018", access_mode="centre_15",
                    purpose_of_use=[CodedValue("TREATMENT", "2.16.840.1.113883.3.18.7.1", "Treatment")])
    events = [messages.stored_query(caller, "src", 0, FIND_DOCUMENTS, b"<q/>", PATIENT),
              messages.provide_and_register(caller, "src", 8, PATIENT, "1.2.3"),
              messages.register_export(caller, "src", "https://r/registry", 0, PATIENT, "1.2.3"),
              messages.register_import(caller, "", 4, None, None),
              messages.retrieve(caller, "src", 0, [messages.DocumentRef("1.2", "3.4", "urn:oid:5")]),
              messages.application_activity("src", False),
              messages.security_alert(caller, "src", "no", patient_id=PATIENT)]
    for ev in events:
        assert ev.index_fields() == fields.fields_of(etree.fromstring(ev.to_xml()))
        assert fields.from_json(fields.to_json(ev.index_fields())) == ev.index_fields()


@pytest.mark.parametrize("body, content_type", [
    (b"<not well-formed", SOAP.format(Actions.STORED_QUERY)),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>', SOAP.format(Actions.STORED_QUERY)),
    (b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>',
     'text/xml; charset=UTF-8'),
], ids=["not-well-formed", "doctype", "soap-1.1"])
def test_a_request_refused_at_the_soap_edge_is_a_security_alert_naming_the_node(app, body, content_type):
    """ITI TF-2 3.20.7.3: a refused request is audited; it never reached a transaction, so the
    endpoint's on_refusal hook writes a Security Alert (110113) with the node's address."""
    reply = call_wsgi(app, body, content_type, path="/registry")
    assert reply.fault_reason is not None
    alerts = [x for x in app.trail() if event(x)[0][0] == "110113"]
    assert len(alerts) == 1, [etree.tostring(a) for a in alerts]
    assert_valid(alerts[0])
    text = etree.tostring(alerts[0]).decode()
    assert "SOAP request" in text and "127.0.0.1" in text


def test_the_audited_endpoint_is_the_server_s_own_never_the_host_header():
    """A client-written Host header must not reach the audit trail as the Destination."""
    from xds.context import caller_from_environ
    caller = caller_from_environ({"wsgi.url_scheme": "https", "SERVER_NAME": "xds.example.org", "SERVER_PORT": "443",
                                  "HTTP_HOST": "evil.example\r\nX: y", "SCRIPT_NAME": "/registry", "PATH_INFO": ""})
    assert caller.endpoint == "https://xds.example.org:443/registry"
