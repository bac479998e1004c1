"""Our own ITI-41/ITI-43 messages for the repository tests: metadata from xds.metadata, envelopes by hand."""
from __future__ import annotations

import base64
import hashlib
import io
import re
import uuid
from dataclasses import dataclass, field
from wsgiref.util import setup_testing_defaults

from lxml import etree

from tests.support.metadata import document_entry, submission_set
from xds import rim
from xds.metadata import Association, Author, DocumentEntry
from xds.vocabulary import NS_LCM, NS_RIM, NS_RS, NS_XDSB, Actions, AssocType, q

NS_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
NS_WSA = "http://www.w3.org/2005/08/addressing"
NS_XOP = "http://www.w3.org/2004/08/xop/include"
PATIENT = "123456789012311^^^&1.2.250.1.213.1.4.10&ISO^NH"
AUTHOR = "801234567890^DUPONT^Jean^^^Dr^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
INSTITUTION = "Hopital Saint-Louis^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^3750100018"
REPOSITORY_UID = "1.3.6.1.4.1.21367.2017.2.3.52"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
PARTIAL = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"


def new_oid() -> str:
    return f"2.25.{uuid.uuid4().int}"


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def entry(doc_id: str, unique_id: str, patient: str = PATIENT, mime: str = "text/xml") -> DocumentEntry:
    """The shared test DocumentEntry as a Document Source sends it in ITI-41: without what the
    repository computes (hash, size, repositoryUniqueId), authored with the national ids."""
    return document_entry(patient, doc_id, unique_id=unique_id, mime_type=mime, hash=None, size=None,
                          repository_unique_id=None, authors=[Author(AUTHOR, [INSTITUTION], ["Medecin"])],
                          source_patient_info=["PID-5|DUPONT^Marie^^^^^L"])


@dataclass
class Doc:
    id: str
    unique_id: str
    data: bytes
    mime: str = "text/xml"


@dataclass
class Submission:
    docs: list[Doc]
    objects: list[rim.RegistryObject]
    ss_unique_id: str = ""

    def entry(self, doc_id: str) -> rim.RegistryObject:
        return next(o for o in self.objects if o.id == doc_id)


def submission(contents: list[bytes], patient: str = PATIENT, unique_ids: list[str] | None = None,
               mime: str = "text/xml", edit=None) -> Submission:
    """A valid ITI-41 submission of ``contents``; ``edit(DocumentEntry, index)`` may change entries."""
    docs = [Doc(f"Document{i:02d}", (unique_ids[i] if unique_ids else new_oid()), data, mime)
            for i, data in enumerate(contents)]
    ss = submission_set(patient)
    ss.authors = [Author(AUTHOR, [INSTITUTION])]
    objects: list[rim.RegistryObject] = []
    for i, d in enumerate(docs):
        e = entry(d.id, d.unique_id, patient, mime)
        if edit is not None:
            edit(e, i)
        objects.append(e.to_rim())
    objects += ss.to_rim()
    for i, d in enumerate(docs):
        objects.append(Association(f"as{i:02d}", AssocType.HAS_MEMBER, "SubmissionSet01", d.id,
                                   submission_set_status="Original").to_rim())
    return Submission(docs, objects, ss.unique_id)


# ----------------------------------------------------------------------------- envelopes

def envelope(body: etree._Element | bytes, action: str) -> bytes:
    body_xml = body if isinstance(body, bytes) else etree.tostring(body)
    return (f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{NS_SOAP12}" xmlns:wsa="{NS_WSA}">'
            f'<s:Header><wsa:Action s:mustUnderstand="1">{action}</wsa:Action>'
            f'<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>'
            f'<wsa:ReplyTo><wsa:Address>http://www.w3.org/2005/08/addressing/anonymous</wsa:Address></wsa:ReplyTo>'
            f'<wsa:To>http://localhost/repository</wsa:To></s:Header><s:Body>').encode() + body_xml + b"</s:Body></s:Envelope>"


def provide_body(sub: Submission, mtom: bool, extra_docs: list[tuple[str, bytes]] = ()) -> tuple[etree._Element, list]:
    """The ProvideAndRegisterDocumentSetRequest element and its MTOM parts [(cid, data)]."""
    root = etree.Element(q(NS_XDSB, "ProvideAndRegisterDocumentSetRequest"),
                         nsmap={"xdsb": NS_XDSB, "lcm": NS_LCM, "rim": NS_RIM, "xop": NS_XOP})
    root.append(rim.submit_objects_request(sub.objects))
    parts = []
    for i, (doc_id, data) in enumerate([(d.id, d.data) for d in sub.docs] + list(extra_docs)):
        el = etree.SubElement(root, q(NS_XDSB, "Document"), id=doc_id)
        if mtom:
            cid = f"doc{i}.{uuid.uuid4().hex}@test"
            etree.SubElement(el, q(NS_XOP, "Include"), href=f"cid:{cid}")
            parts.append((cid, data))
        else:
            el.text = base64.b64encode(data).decode()
    return root, parts


BOUNDARY = "MIMEBoundary_test_0123456789"


def mtom_message(env: bytes, parts: list[tuple[str, bytes]], boundary: str = BOUNDARY) -> tuple[bytes, str]:
    out = io.BytesIO()
    b = boundary.encode()
    out.write(b"--" + b + b"\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"application/soap+xml\"\r\n"
              b"Content-Transfer-Encoding: binary\r\nContent-ID: <root.message@test>\r\n\r\n" + env)
    for cid, data in parts:
        out.write(b"\r\n--" + b + b"\r\nContent-Type: application/octet-stream\r\n"
                  b"Content-Transfer-Encoding: binary\r\nContent-ID: <" + cid.encode() + b">\r\n\r\n" + data)
    out.write(b"\r\n--" + b + b"--\r\n")
    ctype = (f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; '
             f'start="<root.message@test>"; start-info="application/soap+xml"')
    return out.getvalue(), ctype


def provide_request(sub: Submission, mtom: bool = True, extra_docs=()) -> tuple[bytes, str]:
    body, parts = provide_body(sub, mtom, extra_docs)
    env = envelope(body, Actions.PROVIDE)
    if mtom:
        return mtom_message(env, parts)
    return env, f'application/soap+xml; charset=UTF-8; action="{Actions.PROVIDE}"'


def retrieve_body(requests: list[tuple[str, str] | tuple[str, str, str]]) -> etree._Element:
    root = etree.Element(q(NS_XDSB, "RetrieveDocumentSetRequest"), nsmap={"xdsb": NS_XDSB})
    for r in requests:
        dr = etree.SubElement(root, q(NS_XDSB, "DocumentRequest"))
        if len(r) == 3:
            etree.SubElement(dr, q(NS_XDSB, "HomeCommunityId")).text = r[2]
        etree.SubElement(dr, q(NS_XDSB, "RepositoryUniqueId")).text = r[0]
        etree.SubElement(dr, q(NS_XDSB, "DocumentUniqueId")).text = r[1]
    return root


def retrieve_request(requests, mtom: bool = False) -> tuple[bytes, str]:
    env = envelope(retrieve_body(requests), Actions.RETRIEVE)
    if mtom:
        return mtom_message(env, [])
    return env, f'application/soap+xml; charset=UTF-8; action="{Actions.RETRIEVE}"'


# ----------------------------------------------------------------------------- replies

def split_multipart(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    """Split a multipart/related reply byte-exactly (our own splitter, never zeep's)."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    assert m, content_type
    delim = b"--" + m.group(1).encode()
    assert body.startswith(delim + b"\r\n"), body[:100]
    end = body.rindex(b"\r\n" + delim + b"--")
    pieces = body[len(delim) + 2:end].split(b"\r\n" + delim + b"\r\n")
    parts = []
    for piece in pieces:
        head, _, data = piece.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        parts.append((headers, data))
    return parts


@dataclass
class Reply:
    status: int
    content_type: str
    envelope: etree._Element
    attachments: dict[str, bytes] = field(default_factory=dict)

    @property
    def body(self) -> etree._Element:
        return self.envelope.find(q(NS_SOAP12, "Body"))[0]

    @property
    def fault_reason(self) -> str | None:
        if self.body.tag != q(NS_SOAP12, "Fault"):
            return None
        return self.body.findtext(f"{{{NS_SOAP12}}}Reason/{{{NS_SOAP12}}}Text")

    @property
    def registry_response(self) -> etree._Element:
        b = self.body
        return b if b.tag == q(NS_RS, "RegistryResponse") else b.find(q(NS_RS, "RegistryResponse"))

    @property
    def status_value(self) -> str:
        return self.registry_response.get("status")

    @property
    def error_codes(self) -> list[str]:
        return [e.get("errorCode") for e in self.registry_response.iter(q(NS_RS, "RegistryError"))]

    @property
    def errors(self) -> list[dict]:
        return [dict(e.attrib) for e in self.registry_response.iter(q(NS_RS, "RegistryError"))]

    def documents(self) -> dict[str, tuple[str, bytes]]:
        """DocumentUniqueId -> (mimeType, bytes) of an ITI-43 answer."""
        out = {}
        for dr in self.body.iter(q(NS_XDSB, "DocumentResponse")):
            inc = dr.find(f"{q(NS_XDSB, 'Document')}/{q(NS_XOP, 'Include')}")
            cid = inc.get("href")[4:]
            out[dr.findtext(q(NS_XDSB, "DocumentUniqueId"))] = (dr.findtext(q(NS_XDSB, "mimeType")),
                                                                 self.attachments[cid])
        return out


def parse_reply(status: int, content_type: str, body: bytes) -> Reply:
    if content_type.startswith("multipart/related"):
        parts = split_multipart(body, content_type)
        env = etree.fromstring(parts[0][1])
        atts = {h["content-id"].strip("<>"): data for h, data in parts[1:]}
        return Reply(status, content_type, env, atts)
    return Reply(status, content_type, etree.fromstring(body))


# ----------------------------------------------------------------------------- calling a WSGI app in-process

def call_wsgi(app, body: bytes, content_type: str, path: str = "/repository") -> Reply:
    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update(REQUEST_METHOD="POST", PATH_INFO=path, CONTENT_TYPE=content_type,
                   CONTENT_LENGTH=str(len(body)), **{"wsgi.input": io.BytesIO(body)})
    captured = {}

    def start_response(status, headers, exc_info=None):
        captured["status"] = int(status.split()[0])
        captured["headers"] = {k.lower(): v for k, v in headers}

    it = app(environ, start_response)
    try:
        data = b"".join(it)
    finally:
        if hasattr(it, "close"):
            it.close()
    return parse_reply(captured["status"], captured["headers"]["content-type"], data)
