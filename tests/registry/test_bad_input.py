"""Bad input to the registry endpoint of a running ``xds serve`` (ITI TF-2 Appendix V, SOAP 1.2).

Each request gets a specific SOAP fault, nothing is stored, and the server keeps serving: the
test registers a valid submission after each bad one.
"""
from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
import requests
from lxml import etree
from sqlalchemy import create_engine, func, select

from registry.store import schema as t
from tests.support.metadata import draft, fresh_patient
from xds.soap.client import encode_request
from xds.vocabulary import Actions

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"


def stored_objects(server) -> int:
    engine = create_engine(server.database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(t.registry_objects)).scalar_one()
    finally:
        engine.dispose()


def fault(resp: requests.Response) -> tuple[str, str]:
    env = etree.fromstring(resp.content, etree.XMLParser(resolve_entities=False, no_network=True))
    value = env.findtext(f".//{{{SOAP12}}}Fault/{{{SOAP12}}}Code/{{{SOAP12}}}Value")
    reason = env.findtext(f".//{{{SOAP12}}}Fault/{{{SOAP12}}}Reason/{{{SOAP12}}}Text")
    return value or "", reason or ""


def good_registration(server) -> None:
    patient = fresh_patient()
    server.add_patient(patient)
    data, headers = encode_request(Actions.REGISTER, server.registry_url, draft(patient).request())
    resp = requests.post(server.registry_url, data=data, headers=headers, timeout=30)
    assert resp.status_code == 200 and b"ResponseStatusType:Success" in resp.content, resp.text


def envelope(action: str | None, body: str) -> bytes:
    header = f'<wsa:Action s:mustUnderstand="1">{action}</wsa:Action>' if action else ""
    return (f'<s:Envelope xmlns:s="{SOAP12}" xmlns:wsa="{WSA}"><s:Header>{header}'
            f'<wsa:MessageID>urn:uuid:1b2c3d4e-0000-4000-8000-000000000001</wsa:MessageID></s:Header>'
            f'<s:Body>{body}</s:Body></s:Envelope>').encode()


SOR = '<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"/>'
SOAP_XML = {"Content-Type": 'application/soap+xml; charset=UTF-8'}

BAD = {
    "not_xml": (b"this is not XML at all", SOAP_XML, "Sender"),
    "dtd_external_entity": (b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                            + envelope(Actions.REGISTER, SOR + "&x;"), SOAP_XML, "Sender"),
    "billion_laughs": (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
                       b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
                       + envelope(Actions.REGISTER, "<x>&c;</x>"), SOAP_XML, "Sender"),
    "unknown_action": (envelope("urn:example:NoSuchAction", SOR), SOAP_XML, "Sender"),
    "missing_action": (envelope(None, SOR), SOAP_XML, "Sender"),
    "wrong_body_element": (envelope(Actions.REGISTER, '<query:AdhocQueryRequest xmlns:query='
                                                      '"urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"/>'),
                           SOAP_XML, "Sender"),
    "soap11_envelope": (b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
                        + SOR.encode() + b"</s:Body></s:Envelope>",
                        {"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": Actions.REGISTER}, None),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_request_is_a_fault_and_stores_nothing(live_server, case):
    data, headers, code = BAD[case]
    before = stored_objects(live_server)
    resp = requests.post(live_server.registry_url, data=data, headers=headers, timeout=30)
    assert resp.status_code in (400, 415, 500), resp.status_code
    value, reason = fault(resp)
    if code:
        assert value.endswith(code), (value, reason)
    else:
        assert value.endswith(("VersionMismatch", "Sender")), (value, reason)
    assert reason, "a fault says what is wrong"
    assert b"root:" not in resp.content, "no file content may leak"
    assert stored_objects(live_server) == before
    good_registration(live_server)


def _raw_post(server, head: bytes, body: bytes, shutdown: bool) -> bytes:
    parts = urlsplit(server.registry_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head + body)
        if shutdown:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if b"</env:Envelope>" in chunk or b"Envelope>" in b"".join(chunks)[-64:]:
                break
        return b"".join(chunks)


def test_oversize_body_is_refused_before_reading(live_server):
    before = stored_objects(live_server)
    head = (f"POST {urlsplit(live_server.registry_url).path} HTTP/1.1\r\nHost: localhost\r\n"
            f"Content-Type: application/soap+xml\r\nContent-Length: {200 * 1024 * 1024}\r\n\r\n").encode()
    answer = _raw_post(live_server, head, b"<s:Envelope", shutdown=False)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert stored_objects(live_server) == before
    good_registration(live_server)


def test_truncated_body_is_a_fault(live_server):
    before = stored_objects(live_server)
    patient = fresh_patient()
    data, _ = encode_request(Actions.REGISTER, live_server.registry_url, draft(patient).request())
    head = (f"POST {urlsplit(live_server.registry_url).path} HTTP/1.1\r\nHost: localhost\r\n"
            f"Content-Type: application/soap+xml\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode()
    answer = _raw_post(live_server, head, data[: len(data) // 2], shutdown=True)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    assert stored_objects(live_server) == before
    good_registration(live_server)


def test_wsdl_is_served(live_server):
    resp = requests.get(live_server.registry_url + "?wsdl", timeout=30)
    assert resp.status_code == 200
    wsdl = etree.fromstring(resp.content)
    actions = {op.get("{http://www.w3.org/2006/05/addressing/wsdl}Action") for op in wsdl.iter()
               if op.get("{http://www.w3.org/2006/05/addressing/wsdl}Action")}
    assert {Actions.REGISTER, Actions.STORED_QUERY} <= actions
