"""Envelope, WS-Addressing, dispatch and fault rules (plain application/soap+xml)."""

from __future__ import annotations

import logging
from pathlib import Path

from lxml import etree

from xds.soap import NS_SOAP11, NS_SOAP12, NS_WSA, Operation, SoapEndpoint, SoapFault, SoapResponse

from .conftest import (
    ACTION_ITI42,
    NS_LCM,
    SUBMIT,
    ack_body,
    assert_fault,
    call,
    envelope,
)

NS = {"env": NS_SOAP12, "wsa": NS_WSA}
WSDL_DIR = Path(__file__).resolve().parents[2] / "bindings" / "wsdl"


def test_plain_request_dispatched_and_answered_with_relates_to_action_and_new_message_id(app, recorder):
    res = call(app, envelope(SUBMIT, message_id="urn:uuid:abc-123"))
    assert res.status == 200
    assert res.content_type == (
        'application/soap+xml; charset=UTF-8; action="urn:ihe:iti:2007:RegisterDocumentSet-bResponse"'
    )
    env = res.xml()
    assert env.tag == f"{{{NS_SOAP12}}}Envelope"
    action = env.find("env:Header/wsa:Action", NS)
    assert action.text == "urn:ihe:iti:2007:RegisterDocumentSet-bResponse"
    assert action.get(f"{{{NS_SOAP12}}}mustUnderstand") in ("1", "true")
    assert env.findtext("env:Header/wsa:RelatesTo", namespaces=NS) == "urn:uuid:abc-123"
    mid = env.findtext("env:Header/wsa:MessageID", namespaces=NS)
    assert mid.startswith("urn:uuid:") and mid != "urn:uuid:abc-123"
    assert env.findtext("env:Header/wsa:To", namespaces=NS) == "http://www.w3.org/2005/08/addressing/anonymous"
    assert env.find("env:Body/{urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0}RegistryResponse", NS) is not None
    (request,) = recorder.seen
    assert request.action == ACTION_ITI42
    assert request.message_id == "urn:uuid:abc-123"
    assert request.body.tag == f"{{{NS_LCM}}}SubmitObjectsRequest"
    assert request.environ["REQUEST_METHOD"] == "POST"
    # a second request gets another MessageID
    again = call(app, envelope(SUBMIT, message_id="urn:uuid:abc-123")).xml()
    assert again.findtext("env:Header/wsa:MessageID", namespaces=NS) != mid


def test_no_relates_to_when_request_has_no_message_id(app):
    res = call(app, envelope(SUBMIT, message_id=None))
    assert res.status == 200
    assert res.xml().find("env:Header/wsa:RelatesTo", NS) is None


def test_wsdl_served_and_parses():
    for name, operation in (("registry.wsdl", "RegisterDocumentSet-b"), ("repository.wsdl", "RetrieveDocumentSet")):
        app = SoapEndpoint([], WSDL_DIR / name)
        for query in ("wsdl", "WSDL"):
            res = call(app, b"", method="GET", query=query, content_type=None)
            assert res.status == 200
            assert res.content_type.startswith("text/xml")
            wsdl = etree.fromstring(res.body)
            assert wsdl.tag == "{http://schemas.xmlsoap.org/wsdl/}definitions"
            assert operation.encode() in res.body
            # the service address is rewritten to the URL the WSDL was fetched from
            address = wsdl.find(".//{http://schemas.xmlsoap.org/wsdl/soap12/}address")
            assert address.get("location") == "http://127.0.0.1/xds"


def test_get_without_wsdl_says_endpoint_expects_soap_post(app):
    res = call(app, b"", method="GET", content_type=None)
    assert res.status == 405
    assert b"POST" in res.body
    res = call(app, b"", method="PUT", content_type=None)
    assert res.status == 405


def test_unknown_action(app):
    res = call(app, envelope(SUBMIT, action="urn:ihe:iti:2007:Nope"))
    assert_fault(app, res, "Sender", 400, "urn:ihe:iti:2007:Nope", subcode="wsa:ActionNotSupported")


def test_missing_action(app):
    res = call(app, envelope(SUBMIT, action=None))
    assert_fault(app, res, "Sender", 400, "wsa:Action header is required", subcode="wsa:MessageAddressingHeaderRequired")


def test_wrong_body_element(app):
    res = call(app, envelope('<x:Other xmlns:x="urn:x"/>'))
    assert_fault(app, res, "Sender", 400, f"{{{NS_LCM}}}SubmitObjectsRequest", "{urn:x}Other")


def test_soap11_envelope_is_version_mismatch(app):
    res = call(app, envelope(SUBMIT, soap_ns=NS_SOAP11))
    fault = assert_fault(app, res, "VersionMismatch", 500, "SOAP 1.1 is not supported; XDS.b requires SOAP 1.2")
    assert fault
    upgrade = res.xml().find("env:Header/env:Upgrade/env:SupportedEnvelope", NS)
    assert upgrade is not None


def test_soap11_content_type_is_version_mismatch(app):
    res = call(app, envelope(SUBMIT, soap_ns=NS_SOAP11), content_type="text/xml; charset=UTF-8")
    assert_fault(app, res, "VersionMismatch", 500, "SOAP 1.1 is not supported")


def test_must_understand_on_unknown_header(app):
    extra = '<sec:Secret xmlns:sec="urn:secret" xmlns:s="%s" s:mustUnderstand="true">x</sec:Secret>' % NS_SOAP12
    res = call(app, envelope(SUBMIT, extra_headers=extra))
    assert_fault(app, res, "MustUnderstand", 500, "{urn:secret}Secret")
    nu = res.xml().find("env:Header/env:NotUnderstood", NS)
    qname = nu.get("qname")
    prefix, local = qname.split(":")
    assert local == "Secret" and nu.nsmap[prefix] == "urn:secret"


def test_must_understand_false_or_other_role_is_ignored(app):
    extra = (f'<a:A xmlns:a="urn:a" xmlns:s="{NS_SOAP12}" s:mustUnderstand="false"/>'
             f'<b:B xmlns:b="urn:b" xmlns:s="{NS_SOAP12}" s:mustUnderstand="1" s:role="urn:someone-else"/>')
    assert call(app, envelope(SUBMIT, extra_headers=extra)).status == 200


def test_understood_headers_are_configurable(recorder):
    sec = "{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd}Security"
    extra = (f'<w:Security xmlns:w="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"'
             f' xmlns:s="{NS_SOAP12}" s:mustUnderstand="1"/>')
    from xds.soap import DEFAULT_UNDERSTOOD_HEADERS

    op = Operation(ACTION_ITI42, f"{{{NS_LCM}}}SubmitObjectsRequest", recorder.register)
    strict = SoapEndpoint([op], None)
    assert call(strict, envelope(SUBMIT, extra_headers=extra)).status == 500
    lenient = SoapEndpoint([op], None, understood_headers=DEFAULT_UNDERSTOOD_HEADERS | {sec})
    assert call(lenient, envelope(SUBMIT, extra_headers=extra)).status == 200


def test_handler_exception_is_receiver_fault_without_traceback(caplog):
    def boom(request):
        raise RuntimeError("secret database password in traceback")

    app = SoapEndpoint([Operation(ACTION_ITI42, f"{{{NS_LCM}}}SubmitObjectsRequest", boom)], None)
    with caplog.at_level(logging.ERROR, logger="xds.soap"):
        res = call(app, envelope(SUBMIT))
    assert res.status == 500
    fault = res.fault()
    assert fault["code"] == "env:Receiver"
    assert fault["reason"] == "internal error"
    assert b"secret" not in res.body and b"Traceback" not in res.body and b"RuntimeError" not in res.body
    assert any(r.exc_info for r in caplog.records)  # logged with the traceback


def test_handler_soap_fault_is_passed_through(app):
    def refuse(request):
        raise SoapFault("Sender", "XDSRegistryMetadataError", detail=etree.Element("{urn:d}Why"))

    app = SoapEndpoint([Operation(ACTION_ITI42, f"{{{NS_LCM}}}SubmitObjectsRequest", refuse)], None)
    res = call(app, envelope(SUBMIT))
    assert res.status == 400
    assert res.fault()["reason"] == "XDSRegistryMetadataError"
    assert res.xml().find("env:Body/env:Fault/env:Detail/{urn:d}Why", NS) is not None


def test_root_not_envelope(app):
    res = call(app, b"<hello/>")
    assert_fault(app, res, "Sender", 400, "Envelope")


def test_missing_or_empty_body(app):
    no_body = f'<s:Envelope xmlns:s="{NS_SOAP12}"><s:Header/></s:Envelope>'.encode()
    assert_fault(app, call(app, no_body), "Sender", 400, "no Body")
    empty = envelope("")
    assert_fault(app, call(app, empty), "Sender", 400, "Body is empty")


def test_body_with_more_than_one_child(app):
    res = call(app, envelope(SUBMIT + SUBMIT))
    assert_fault(app, res, "Sender", 400, "exactly one element")


def test_unsupported_media_type(app):
    res = call(app, envelope(SUBMIT), content_type="application/json")
    assert_fault(app, res, "Sender", 415, "unsupported media type")


def test_non_anonymous_reply_to_is_refused(app):
    body = envelope(SUBMIT).replace(
        b"http://www.w3.org/2005/08/addressing/anonymous", b"http://elsewhere.example/callback"
    )
    res = call(app, body)
    assert_fault(app, res, "Sender", 400, "ReplyTo", subcode="wsa:OnlyAnonymousAddressSupported")


def test_handler_response_element_is_not_moved():
    shared = ack_body()

    def handler(request):
        return SoapResponse(shared, ACTION_ITI42 + "Response")

    app = SoapEndpoint([Operation(ACTION_ITI42, f"{{{NS_LCM}}}SubmitObjectsRequest", handler)], None)
    assert call(app, envelope(SUBMIT)).status == 200
    assert shared.getparent() is None
