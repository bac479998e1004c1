"""Every request the SOAP edge refuses before a handler runs is reported once to ``on_refusal``.

Issue #17 point 6: these refusals reached no audit record, so the ATNA trail missed them.
"""

from __future__ import annotations

import dataclasses
import io
import logging

import pytest

from xds.soap import NS_SOAP11, NS_SOAP12, EdgeRefusal, Operation, SoapEndpoint, SoapFault

from .conftest import (
    ACTION_ITI42,
    NS_LCM,
    ROOT_HEADERS,
    SUBMIT,
    EndlessInput,
    Recorder,
    ack_body,
    assert_fault,
    call,
    envelope,
    mtom_ct,
    multipart,
)

PEER = {"REMOTE_ADDR": "192.0.2.7", "xds.peer_subject": "CN=lps.example,O=Clinique"}


class Sink(list[EdgeRefusal]):
    def __call__(self, refusal: EdgeRefusal) -> None:
        self.append(refusal)


def operations(recorder: Recorder) -> list[Operation]:
    return [Operation(ACTION_ITI42, f"{{{NS_LCM}}}SubmitObjectsRequest", recorder.register, accept_mtom=True)]


def reporting_app(recorder: Recorder, sink: Sink, **kwargs) -> SoapEndpoint:
    return SoapEndpoint(operations(recorder), None, on_refusal=sink, **kwargs)


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def app(recorder, sink):
    return reporting_app(recorder, sink)


def only(sink: Sink) -> EdgeRefusal:
    assert len(sink) == 1, sink
    return sink[0]


def test_not_well_formed_xml_is_refused_and_reported(app, sink):
    res = call(app, b"<s:Envelope xmlns:s='" + NS_SOAP12.encode() + b"'><s:Body>", environ_extra=PEER)
    assert_fault(app, res, "Sender", 400, "not well-formed")
    refusal = only(sink)
    assert refusal.code == "Sender" and refusal.subcode is None and refusal.http_status == 400
    assert "not well-formed" in refusal.reason
    assert refusal.action is None and refusal.message_id is None
    assert refusal.remote_addr == "192.0.2.7"
    assert refusal.peer_subject == "CN=lps.example,O=Clinique"
    assert refusal.endpoint_url == "http://127.0.0.1/xds"


def test_empty_body_is_reported(app, sink):
    res = call(app, b"")
    assert_fault(app, res, "Sender", 400, "empty document")
    assert "empty document" in only(sink).reason


def test_missing_wsa_action_is_reported(app, sink):
    res = call(app, envelope(SUBMIT, action=None, message_id="urn:uuid:no-action"))
    assert_fault(app, res, "Sender", 400, "wsa:Action header is required")
    refusal = only(sink)
    assert refusal.subcode == "{http://www.w3.org/2005/08/addressing}MessageAddressingHeaderRequired"
    assert refusal.action is None
    assert refusal.message_id == "urn:uuid:no-action"


def test_unknown_wsa_action_is_reported(app, sink):
    res = call(app, envelope(SUBMIT, action="urn:ihe:iti:2007:Nope", message_id="urn:uuid:nope"))
    assert_fault(app, res, "Sender", 400, "urn:ihe:iti:2007:Nope", subcode="wsa:ActionNotSupported")
    refusal = only(sink)
    assert refusal.subcode == "{http://www.w3.org/2005/08/addressing}ActionNotSupported"
    assert refusal.action == "urn:ihe:iti:2007:Nope"
    assert refusal.message_id == "urn:uuid:nope"


def test_unknown_body_element_is_reported(app, sink):
    res = call(app, envelope('<x:Other xmlns:x="urn:x"/>'))
    assert_fault(app, res, "Sender", 400, "{urn:x}Other")
    refusal = only(sink)
    assert "{urn:x}Other" in refusal.reason and refusal.action == ACTION_ITI42


def test_must_understand_failure_is_reported_with_the_action_the_header_claims(app, sink):
    extra = f'<sec:Secret xmlns:sec="urn:secret" xmlns:s="{NS_SOAP12}" s:mustUnderstand="true">x</sec:Secret>'
    res = call(app, envelope(SUBMIT, extra_headers=extra, message_id="urn:uuid:mu"))
    assert_fault(app, res, "MustUnderstand", 500, "{urn:secret}Secret")
    refusal = only(sink)
    assert refusal.code == "MustUnderstand" and refusal.http_status == 500
    assert refusal.action == ACTION_ITI42 and refusal.message_id == "urn:uuid:mu"


def test_doctype_is_reported(app, sink):
    body = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]>' + envelope(SUBMIT).split(b"?>", 1)[1]
    res = call(app, body)
    assert_fault(app, res, "Sender", 400, "DTDs are not allowed")
    refusal = only(sink)
    assert refusal.reason == "DTDs are not allowed" and refusal.http_status == 400


def test_soap11_envelope_is_reported(app, sink):
    res = call(app, envelope(SUBMIT, soap_ns=NS_SOAP11))
    assert_fault(app, res, "VersionMismatch", 500, "SOAP 1.1 is not supported")
    refusal = only(sink)
    assert refusal.code == "VersionMismatch" and refusal.http_status == 500
    sink.clear()
    res = call(app, envelope(SUBMIT, soap_ns=NS_SOAP11), content_type="text/xml; charset=UTF-8")
    assert_fault(app, res, "VersionMismatch", 500, "SOAP 1.1 is not supported")
    assert only(sink).code == "VersionMismatch"


def test_unsupported_media_type_is_reported_with_415(app, sink):
    res = call(app, envelope(SUBMIT), content_type="application/json")
    assert_fault(app, res, "Sender", 415, "unsupported media type")
    assert only(sink).http_status == 415


def test_body_over_the_limit_is_reported_with_413(recorder, sink):
    app = reporting_app(recorder, sink, max_request_bytes=10_000)
    res = call(app, b"", content_length=10_001, wsgi_input=io.BytesIO(b""))
    assert_fault(app, res, "Sender", 413, "maximum size of 10000 bytes")
    refusal = only(sink)
    assert refusal.http_status == 413 and refusal.code == "Sender"
    sink.clear()
    res = call(app, b"", content_length=None, wsgi_input=EndlessInput())
    assert_fault(app, res, "Sender", 413, "maximum size")
    assert only(sink).http_status == 413
    sink.clear()
    body = multipart([(ROOT_HEADERS, envelope(SUBMIT)),
                      ({"Content-Type": "application/octet-stream", "Content-ID": "<x>"}, b"z" * 20_000)])
    res = call(app, body, content_type=mtom_ct(), content_length=None)
    assert_fault(app, res, "Sender", 413, "maximum size")
    assert only(sink).http_status == 413


def test_mtom_reference_to_a_missing_part_is_reported(app, sink):
    doc = ('<xdsb:Document xmlns:xdsb="urn:ihe:iti:xds-b:2007" id="d"><xop:Include '
           'xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:absent"/></xdsb:Document>')
    body = multipart([(ROOT_HEADERS, envelope(SUBMIT.replace("/>", f">{doc}</lcm:SubmitObjectsRequest>")))])
    res = call(app, body, content_type=mtom_ct())
    assert_fault(app, res, "Sender", 400, "not found")
    assert "absent" in only(sink).reason


def test_client_disconnect_while_reading_is_reported_as_a_receiver_fault(app, sink, caplog):
    class Disconnected(io.RawIOBase):
        def readable(self):
            return True

        def read(self, n=-1):
            raise OSError("connection reset by peer")

    with caplog.at_level(logging.ERROR, logger="xds.soap"):
        res = call(app, b"", content_length=500, wsgi_input=Disconnected())
    assert res.status == 500 and res.fault()["reason"] == "internal error"
    refusal = only(sink)
    assert refusal.code == "Receiver" and refusal.http_status == 500 and refusal.reason == "internal error"


def test_accepted_request_is_not_reported(app, sink, recorder):
    assert call(app, envelope(SUBMIT)).status == 200
    assert len(recorder.seen) == 1
    assert sink == []


def test_handler_fault_is_not_reported_as_an_edge_refusal(sink):
    def refuse(request):
        raise SoapFault("Sender", "XDSRegistryMetadataError")

    def crash(request):
        raise RuntimeError("bug")

    def wrong_type(request):
        return ack_body()

    for handler in (refuse, crash, wrong_type):
        app = SoapEndpoint([Operation(ACTION_ITI42, f"{{{NS_LCM}}}SubmitObjectsRequest", handler)], None,
                           on_refusal=sink)
        res = call(app, envelope(SUBMIT))
        assert res.status in (400, 500)
        assert sink == [], handler


def test_a_failing_hook_does_not_change_the_answer(recorder, caplog):
    def broken(refusal: EdgeRefusal) -> None:
        raise RuntimeError("audit store down")

    quiet = reporting_app(recorder, Sink())
    loud = SoapEndpoint(operations(recorder), None, on_refusal=broken)
    bad = envelope(SUBMIT, action="urn:ihe:iti:2007:Nope")
    expected = call(quiet, bad)
    with caplog.at_level(logging.ERROR, logger="xds.soap"):
        got = call(loud, bad)
    assert got.status == expected.status == 400
    assert got.fault() == expected.fault()
    assert got.content_type == expected.content_type
    assert any("on_refusal" in r.getMessage() and r.exc_info for r in caplog.records)
    assert call(loud, envelope(SUBMIT)).status == 200


def test_refusal_endpoint_url_ignores_the_host_header_and_uses_public_url(recorder, sink):
    app = reporting_app(recorder, sink)
    call(app, b"<oops", environ_extra={"HTTP_HOST": "evil.example", "HTTP_X_FORWARDED_HOST": "evil.example"})
    assert only(sink).endpoint_url == "http://127.0.0.1/xds"
    sink.clear()
    public = reporting_app(recorder, sink, public_url="https://xds.example.fr/registry")
    call(public, b"<oops", environ_extra={"HTTP_HOST": "evil.example"})
    assert only(sink).endpoint_url == "https://xds.example.fr/registry"


def test_refusal_without_peer_certificate_or_address(app, sink):
    call(app, b"<oops")
    refusal = only(sink)
    assert refusal.peer_subject is None and refusal.remote_addr is None


def test_refusal_is_frozen_and_bounds_what_the_peer_controls(app, sink):
    long_action = "urn:x:" + "a" * 5000
    call(app, envelope(SUBMIT, action=long_action))
    refusal = only(sink)
    with pytest.raises(dataclasses.FrozenInstanceError):
        refusal.reason = "changed"  # type: ignore[misc]
    assert refusal.action is not None and refusal.action.startswith("urn:x:aaa")
    assert len(refusal.action) <= EdgeRefusal.MAX_TEXT
    assert len(refusal.reason) <= EdgeRefusal.MAX_TEXT


def test_get_requests_are_not_reported(app, sink):
    call(app, b"", method="GET", query="wsdl", content_type=None)
    call(app, b"", method="GET", content_type=None)
    assert sink == []
