"""WS-Addressing 1.0 (SOAP binding): reading request headers, writing response headers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from lxml import etree

from xds.soap.faults import SoapFault
from xds.soap.namespaces import NS_SOAP12, NS_WSA, WSA_ANONYMOUS, WSA_NONE, qname

WSA_HEADERS = frozenset(
    qname(NS_WSA, name) for name in ("To", "Action", "MessageID", "ReplyTo", "From", "FaultTo", "RelatesTo")
)
_SINGLETONS = ("To", "Action", "MessageID", "ReplyTo", "From", "FaultTo")


@dataclass(frozen=True)
class AddressingHeaders:
    action: str
    message_id: str | None
    reply_to: str | None
    to: str | None


def new_message_id() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _problem_header(name: str) -> etree._Element:
    el = etree.Element(qname(NS_WSA, "ProblemHeaderQName"), nsmap={"wsa": NS_WSA})
    el.text = f"wsa:{name}"
    return el


def _text(el: etree._Element | None) -> str | None:
    if el is None:
        return None
    return (el.text or "").strip() or None


def claimed_addressing(header: etree._Element | None) -> tuple[str | None, str | None]:
    """The first wsa:Action and wsa:MessageID texts of a header, unchecked.

    For reporting a refused request only (what it claimed to be): :func:`read_addressing`
    is what decides whether the headers are acceptable.
    """
    if header is None:
        return None, None
    return _text(header.find(qname(NS_WSA, "Action"))), _text(header.find(qname(NS_WSA, "MessageID")))


def read_addressing(header: etree._Element | None) -> AddressingHeaders:
    """The WS-Addressing properties of a request; faults per WS-Addressing 1.0 SOAP binding §6."""
    found: dict[str, list[etree._Element]] = {}
    if header is not None:
        prefix = "{" + NS_WSA + "}"
        for block in header:
            tag = block.tag
            if isinstance(tag, str) and tag.startswith(prefix):
                found.setdefault(tag[len(prefix):], []).append(block)
    for name in _SINGLETONS:
        if len(found.get(name, ())) > 1:
            raise SoapFault(
                "Sender",
                f"wsa:{name} header appears more than once",
                subcode=qname(NS_WSA, "InvalidAddressingHeader"),
                detail=_problem_header(name),
            )
    action = _text(found.get("Action", [None])[0])
    if not action:
        raise SoapFault(
            "Sender",
            "wsa:Action header is required",
            subcode=qname(NS_WSA, "MessageAddressingHeaderRequired"),
            detail=_problem_header("Action"),
        )
    reply_to = None
    if "ReplyTo" in found:
        reply_to = _text(found["ReplyTo"][0].find(qname(NS_WSA, "Address")))
    if reply_to not in (None, WSA_ANONYMOUS, WSA_NONE):
        raise SoapFault(
            "Sender",
            f"wsa:ReplyTo {reply_to} is not supported: replies are sent on the HTTP response only",
            subcode=qname(NS_WSA, "OnlyAnonymousAddressSupported"),
            detail=_problem_header("ReplyTo"),
        )
    return AddressingHeaders(
        action=action,
        message_id=_text(found.get("MessageID", [None])[0]),
        reply_to=reply_to,
        to=_text(found.get("To", [None])[0]),
    )


def response_headers(action: str, relates_to: str | None) -> list[etree._Element]:
    """wsa:Action (mustUnderstand), wsa:MessageID (new), wsa:RelatesTo, wsa:To (anonymous)."""
    nsmap = {"wsa": NS_WSA}
    blocks = []
    action_el = etree.Element(qname(NS_WSA, "Action"), nsmap=nsmap)
    action_el.set(qname(NS_SOAP12, "mustUnderstand"), "1")
    action_el.text = action
    blocks.append(action_el)
    mid = etree.Element(qname(NS_WSA, "MessageID"), nsmap=nsmap)
    mid.text = new_message_id()
    blocks.append(mid)
    if relates_to:
        rel = etree.Element(qname(NS_WSA, "RelatesTo"), nsmap=nsmap)
        rel.text = relates_to
        blocks.append(rel)
    to = etree.Element(qname(NS_WSA, "To"), nsmap=nsmap)
    to.text = WSA_ANONYMOUS
    blocks.append(to)
    return blocks
