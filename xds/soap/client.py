"""The client side of our SOAP 1.2 binding: request envelopes and plain (non-MTOM) calls.

Used by the repository to reach a remote registry (ITI-42), by the benchmarks and by the
command-line client. WS-Addressing as ITI TF-2 Appendix V asks: Action and To with
mustUnderstand, a MessageID, ReplyTo anonymous.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from lxml import etree

from xds.soap.addressing import new_message_id
from xds.soap.namespaces import NS_SOAP12, NS_WSA, WSA_ANONYMOUS
from xds.soap.parsing import parse_xml


def _q(ns: str, local: str) -> str:
    return "{%s}%s" % (ns, local)


def request_envelope(action: str, to: str, body: etree._Element, message_id: str | None = None,
                     extra_headers: tuple[etree._Element, ...] = ()) -> etree._Element:
    env = etree.Element(_q(NS_SOAP12, "Envelope"), nsmap={"s": NS_SOAP12, "a": NS_WSA})
    header = etree.SubElement(env, _q(NS_SOAP12, "Header"))
    for name, value, must in (("Action", action, True), ("MessageID", message_id or new_message_id(), False)):
        el = etree.SubElement(header, _q(NS_WSA, name))
        if must:
            el.set(_q(NS_SOAP12, "mustUnderstand"), "1")
        el.text = value
    reply_to = etree.SubElement(header, _q(NS_WSA, "ReplyTo"))
    etree.SubElement(reply_to, _q(NS_WSA, "Address")).text = WSA_ANONYMOUS
    to_el = etree.SubElement(header, _q(NS_WSA, "To"))
    to_el.set(_q(NS_SOAP12, "mustUnderstand"), "1")
    to_el.text = to
    for h in extra_headers:
        header.append(h)
    etree.SubElement(env, _q(NS_SOAP12, "Body")).append(body)
    return env


def content_type(action: str) -> str:
    return f'application/soap+xml; charset=UTF-8; action="{action}"'


def encode_request(action: str, to: str, body: etree._Element, **kw: Any) -> tuple[bytes, dict[str, str]]:
    env = request_envelope(action, to, body, **kw)
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8"), {"Content-Type": content_type(action)}


@dataclass
class SoapReply:
    http_status: int
    envelope: etree._Element
    body: etree._Element | None
    """First child of soap:Body: the answer, or ``soap:Fault``."""

    @property
    def is_fault(self) -> bool:
        return self.body is not None and self.body.tag == _q(NS_SOAP12, "Fault")

    def fault_reason(self) -> str | None:
        text = self.body.find(f"{_q(NS_SOAP12, 'Reason')}/{_q(NS_SOAP12, 'Text')}") if self.body is not None else None
        return text.text if text is not None else ""


def decode_reply(http_status: int, data: bytes) -> SoapReply:
    env = parse_xml(data)
    body = env.find(_q(NS_SOAP12, "Body"))
    first = next((c for c in body if isinstance(c.tag, str)), None) if body is not None else None
    return SoapReply(http_status, env, first)


def call(url: str, action: str, body: etree._Element, session: requests.Session | None = None,
         timeout: float = 60.0, **kw: Any) -> SoapReply:
    """POST one plain SOAP 1.2 request and parse the answer (raises ``requests`` errors as is)."""
    data, headers = encode_request(action, url, body, **kw)
    http = session or requests
    resp = http.post(url, data=data, headers=headers, timeout=timeout)
    return decode_reply(resp.status_code, resp.content)
