"""SOAP 1.2 + WS-Addressing envelopes, MTOM/XOP build and split, HTTP exchange."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from urllib.parse import unquote

from lxml import etree

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
XOP = "http://www.w3.org/2004/08/xop/include"
ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"

ACTION_REGISTER = "urn:ihe:iti:2007:RegisterDocumentSet-b"
ACTION_PNR = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ACTION_SQ = "urn:ihe:iti:2007:RegistryStoredQuery"
ACTION_RETRIEVE = "urn:ihe:iti:2007:RetrieveDocumentSet"
ACTION_REMOVE_METADATA = "urn:ihe:iti:2010:DeleteDocumentSet"
ACTION_REMOVE_DOCUMENTS = "urn:ihe:iti:2017:RemoveDocuments"
ACTION_UPDATE = "urn:ihe:iti:2010:UpdateDocumentSet"

RESPONSE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def build_envelope(action: str, to: str, body: etree._Element,
                   message_id: str | None = None) -> etree._Element:
    env = etree.Element(f"{{{SOAP12}}}Envelope", nsmap={"soapenv": SOAP12, "wsa": WSA})
    header = etree.SubElement(env, f"{{{SOAP12}}}Header")
    a = etree.SubElement(header, f"{{{WSA}}}Action")
    a.set(f"{{{SOAP12}}}mustUnderstand", "1")
    a.text = action
    m = etree.SubElement(header, f"{{{WSA}}}MessageID")
    m.text = message_id or "urn:uuid:" + str(uuid.uuid4())
    r = etree.SubElement(header, f"{{{WSA}}}ReplyTo")
    etree.SubElement(r, f"{{{WSA}}}Address").text = ANONYMOUS
    t = etree.SubElement(header, f"{{{WSA}}}To")
    t.set(f"{{{SOAP12}}}mustUnderstand", "1")
    t.text = to
    b = etree.SubElement(env, f"{{{SOAP12}}}Body")
    b.append(body)
    return env


def soap_content_type(action: str) -> str:
    return f'application/soap+xml; charset=UTF-8; action="{action}"'


@dataclass
class Part:
    headers: dict[str, str]
    body: bytes

    @property
    def content_id(self) -> str | None:
        cid = self.headers.get("content-id")
        if cid is None:
            return None
        return cid.strip().strip("<>")


def build_mtom(envelope: etree._Element, attachments: dict[str, tuple[bytes, str]],
               action: str) -> tuple[bytes, str]:
    """Multipart/related XOP package. ``attachments``: content-id -> (bytes, mime).

    The envelope must already contain ``xop:Include href="cid:..."`` elements.
    Returns (body, content-type header value).
    """
    boundary = "MIMEBoundary_" + uuid.uuid4().hex
    root_xml = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    out = bytearray()
    out += f"--{boundary}\r\n".encode()
    out += (f'Content-Type: application/xop+xml; charset=UTF-8; '
            f'type="application/soap+xml"; action="{action}"\r\n').encode()
    out += b"Content-Transfer-Encoding: binary\r\nContent-ID: <root>\r\n\r\n"
    out += root_xml + b"\r\n"
    for cid, (data, mime) in attachments.items():
        out += f"--{boundary}\r\n".encode()
        out += f"Content-Type: {mime}\r\nContent-Transfer-Encoding: binary\r\n".encode()
        out += f"Content-ID: <{cid}>\r\n\r\n".encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    ctype = (f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; '
             f'start="<root>"; start-info="application/soap+xml"; action="{action}"')
    return bytes(out), ctype


def _param(content_type: str, name: str) -> str | None:
    m = re.search(rf'(?i)(?:^|;)\s*{name}\s*=\s*("([^"]*)"|[^;\s]+)', content_type)
    if not m:
        return None
    return m.group(2) if m.group(2) is not None else m.group(1)


def split_multipart(body: bytes, content_type: str) -> list[Part]:
    """Split a multipart/related body, keeping every part's bytes exactly."""
    boundary = _param(content_type, "boundary")
    if not boundary:
        raise ValueError(f"no boundary in {content_type!r}")
    delim = b"--" + boundary.encode()
    parts: list[Part] = []
    pos = body.find(delim)
    if pos < 0:
        raise ValueError("boundary not found in body")
    while True:
        pos += len(delim)
        if body[pos:pos + 2] == b"--":
            break
        # skip transport padding and the CRLF after the delimiter
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            raise ValueError("truncated multipart")
        start = eol + 2
        nxt = body.find(b"\r\n" + delim, start)
        if nxt < 0:
            raise ValueError("unterminated part")
        raw = body[start:nxt]
        sep = raw.find(b"\r\n\r\n")
        if sep < 0:
            head, data = raw, b""
        else:
            head, data = raw[:sep], raw[sep + 4:]
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").split("\r\n"):
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        parts.append(Part(headers, data))
        pos = nxt + 2
    return parts


@dataclass
class SoapReply:
    http_status: int
    envelope: etree._Element | None
    body: etree._Element | None  # first child of soap:Body
    attachments: dict[str, bytes] = field(default_factory=dict)  # content-id -> bytes
    fault: str | None = None
    raw: bytes = b""


def parse_reply(status: int, content_type: str, data: bytes) -> SoapReply:
    attachments: dict[str, bytes] = {}
    xml = data
    if content_type.lower().startswith("multipart/"):
        parts = split_multipart(data, content_type)
        start = _param(content_type, "start")
        root_part = parts[0]
        if start:
            for p in parts:
                if p.content_id == start.strip("<>"):
                    root_part = p
        xml = root_part.body
        for p in parts:
            if p is not root_part and p.content_id:
                attachments[unquote(p.content_id)] = p.body
    try:
        env = etree.fromstring(xml, RESPONSE_PARSER)
    except etree.XMLSyntaxError as e:
        return SoapReply(status, None, None, attachments, f"unparsable reply: {e}", data)
    body_el = env.find(f"{{{SOAP12}}}Body")
    first = None
    if body_el is not None:
        first = next((c for c in body_el if isinstance(c.tag, str)), None)
    fault = None
    if first is not None and etree.QName(first).localname == "Fault":
        reason = first.find(f".//{{{SOAP12}}}Text")
        fault = (reason.text or "").strip() if reason is not None else "SOAP fault"
    return SoapReply(status, env, first, attachments, fault, data)


def resolve_xop(element: etree._Element, attachments: dict[str, bytes]) -> bytes | None:
    """Bytes of an element carrying an xop:Include (or inline base64 text)."""
    inc = element.find(f"{{{XOP}}}Include")
    if inc is not None:
        href = inc.get("href", "")
        cid = unquote(href[4:] if href.startswith("cid:") else href)
        return attachments.get(cid)
    import base64
    text = (element.text or "").strip()
    return base64.b64decode(text) if text else b""


def post(url: str, action: str, body: etree._Element,
         attachments: dict[str, tuple[bytes, str]] | None = None,
         timeout: float = 60.0, session=None) -> SoapReply:
    import requests
    env = build_envelope(action, url, body)
    if attachments is not None:
        data, ctype = build_mtom(env, attachments, action)
    else:
        data = etree.tostring(env, xml_declaration=True, encoding="UTF-8")
        ctype = soap_content_type(action)
    s = session or requests
    resp = s.post(url, data=data, headers={"Content-Type": ctype}, timeout=timeout)
    return parse_reply(resp.status_code, resp.headers.get("Content-Type", ""), resp.content)
