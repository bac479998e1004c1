"""SOAP 1.2 envelope: checking a request envelope and building response envelopes."""

from __future__ import annotations

from collections.abc import Iterable

from lxml import etree

from xds.soap.faults import SoapFault
from xds.soap.namespaces import (
    NS_SOAP11,
    NS_SOAP12,
    NS_WSA,
    SOAP12_ROLE_NEXT,
    SOAP12_ROLE_ULTIMATE_RECEIVER,
    qname,
)

ENVELOPE = qname(NS_SOAP12, "Envelope")
HEADER = qname(NS_SOAP12, "Header")
BODY = qname(NS_SOAP12, "Body")
MUST_UNDERSTAND = qname(NS_SOAP12, "mustUnderstand")
ROLE = qname(NS_SOAP12, "role")
_ROLES_FOR_US = (None, SOAP12_ROLE_NEXT, SOAP12_ROLE_ULTIMATE_RECEIVER)

SOAP11_REASON = "SOAP 1.1 is not supported; XDS.b requires SOAP 1.2"


def _elements(parent: etree._Element) -> list[etree._Element]:
    return [child for child in parent if isinstance(child.tag, str)]


def upgrade_header() -> etree._Element:
    """``env:Upgrade`` naming SOAP 1.2 as the supported envelope (SOAP 1.2 Part 1, 5.4.7)."""
    up = etree.Element(qname(NS_SOAP12, "Upgrade"), nsmap={"env": NS_SOAP12})
    sup = etree.SubElement(up, qname(NS_SOAP12, "SupportedEnvelope"))
    sup.set("qname", "env:Envelope")
    return up


def version_mismatch() -> SoapFault:
    return SoapFault("VersionMismatch", SOAP11_REASON, header_blocks=[upgrade_header()])


def split_envelope(root: etree._Element) -> tuple[etree._Element | None, etree._Element]:
    """Check the envelope structure; return ``(header, body child)``."""
    if not isinstance(root.tag, str):
        raise SoapFault("Sender", "the root element must be a SOAP 1.2 Envelope")
    qn = etree.QName(root)
    if root.tag == qname(NS_SOAP11, "Envelope"):
        raise version_mismatch()
    if qn.localname == "Envelope" and qn.namespace != NS_SOAP12:
        raise SoapFault(
            "VersionMismatch",
            f"unsupported envelope namespace {qn.namespace!r}; XDS.b requires SOAP 1.2 ({NS_SOAP12})",
            header_blocks=[upgrade_header()],
        )
    if root.tag != ENVELOPE:
        raise SoapFault("Sender", f"the root element must be a SOAP 1.2 Envelope, found {root.tag}")
    children = _elements(root)
    header = None
    if children and children[0].tag == HEADER:
        header = children.pop(0)
    if not children or children[0].tag != BODY:
        raise SoapFault("Sender", "the SOAP Envelope has no Body")
    body = children[0]
    if len(children) > 1:
        raise SoapFault("Sender", f"unexpected element {children[1].tag} after the SOAP Body")
    content = _elements(body)
    if not content:
        raise SoapFault("Sender", "the SOAP Body is empty")
    if len(content) > 1:
        raise SoapFault("Sender", f"the SOAP Body must hold exactly one element, found {len(content)}")
    return header, content[0]


def check_must_understand(header: etree._Element | None, understood: frozenset[str] | set[str]) -> None:
    """MustUnderstand fault (with env:NotUnderstood blocks) for targeted blocks we do not process."""
    if header is None:
        return
    missing = []
    for block in _elements(header):
        flag = (block.get(MUST_UNDERSTAND) or "").strip()
        if flag not in ("true", "1"):
            continue
        if block.get(ROLE) not in _ROLES_FOR_US:
            continue
        if block.tag not in understood:
            missing.append(block.tag)
    if not missing:
        return
    blocks = []
    for tag in missing:
        q = etree.QName(tag)
        nsmap = {"env": NS_SOAP12}
        if q.namespace:
            nsmap["ns"] = q.namespace
        nu = etree.Element(qname(NS_SOAP12, "NotUnderstood"), nsmap=nsmap)
        nu.set("qname", f"ns:{q.localname}" if q.namespace else q.localname)
        blocks.append(nu)
    names = ", ".join(missing)
    raise SoapFault("MustUnderstand", f"header block(s) not understood: {names}", header_blocks=blocks)


def serialize_envelope(body_child: etree._Element, header_blocks: Iterable[etree._Element]) -> bytes:
    """A complete envelope as UTF-8 bytes.

    The body element is serialized in place (not moved into a new tree), so a
    handler's element is never mutated and is not copied.
    """
    env = etree.Element(ENVELOPE, nsmap={"env": NS_SOAP12, "wsa": NS_WSA})
    header = etree.SubElement(env, HEADER)
    for block in header_blocks:
        header.append(block)
    body = etree.SubElement(env, BODY)
    body.text = ""
    head = etree.tostring(env, xml_declaration=True, encoding="UTF-8")
    cut = head.rindex(b"</env:Body>")
    return head[:cut] + etree.tostring(body_child, encoding="UTF-8", xml_declaration=False) + head[cut:]
