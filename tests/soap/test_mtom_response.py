"""MTOM responses (ITI-43): streamed multipart/related, attachment bytes written exactly."""

from __future__ import annotations

import io
import os
from wsgiref.util import setup_testing_defaults

from lxml import etree

from xds.soap import (
    NS_SOAP12,
    NS_WSA,
    NS_XOP,
    Operation,
    OutgoingAttachment,
    SoapEndpoint,
    SoapResponse,
    make_xop_include,
)
from xds.soap.attachments import normalize_content_id
from xds.soap.mediatype import parse_media_type

from .conftest import NS_XDSB, ROOT_HEADERS, call, envelope, mtom_ct, multipart

ACTION_ITI43 = "urn:ihe:iti:2007:RetrieveDocumentSet"
RETRIEVE = (f'<xdsb:RetrieveDocumentSetRequest xmlns:xdsb="{NS_XDSB}"><xdsb:DocumentRequest>'
            f"<xdsb:DocumentUniqueId>1.2.3</xdsb:DocumentUniqueId></xdsb:DocumentRequest>"
            f"</xdsb:RetrieveDocumentSetRequest>")


def retrieve_response(cids: list[str]) -> etree._Element:
    root = etree.Element(f"{{{NS_XDSB}}}RetrieveDocumentSetResponse", nsmap={"xdsb": NS_XDSB})
    for cid in cids:
        doc = etree.SubElement(etree.SubElement(root, f"{{{NS_XDSB}}}DocumentResponse"), f"{{{NS_XDSB}}}Document")
        doc.append(make_xop_include(cid))
    return root


def split_multipart(content_type: str, body: bytes) -> tuple[dict, list[tuple[dict, bytes]]]:
    """A deliberately simple, independent split: the CRLF before each delimiter belongs to it."""
    media, params = parse_media_type(content_type)
    assert media == "multipart/related"
    delimiter = b"--" + params["boundary"].encode()
    assert body.startswith(delimiter + b"\r\n")
    assert body.endswith(b"\r\n" + delimiter + b"--\r\n")
    inner = body[len(delimiter) + 2 : -len(delimiter) - 6]
    parts = []
    for raw in inner.split(b"\r\n" + delimiter + b"\r\n"):
        head, _, data = raw.partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        parts.append((headers, data))
    return params, parts


def make_app(handler, accept_mtom=False):
    return SoapEndpoint([Operation(ACTION_ITI43, f"{{{NS_XDSB}}}RetrieveDocumentSetRequest", handler,
                                   accept_mtom=accept_mtom)], None)


def test_mtom_response_streamed_and_parseable_attachment_byte_exact():
    data1 = b"\r\n" + os.urandom(100_000) + b"\r\n--fake-boundary\r\n" + os.urandom(10) + b"\r\n"
    chunks2 = [b"\r\n", os.urandom(70_000), b"", b"end\r\n"]
    pulled = []

    def lazy():
        for c in chunks2:
            pulled.append(c)
            yield c

    def handler(request):
        return SoapResponse(
            retrieve_response(["doc@1", "doc 2"]),
            ACTION_ITI43 + "Response",
            attachments=[OutgoingAttachment.from_bytes("doc@1", "application/pdf", data1),
                         OutgoingAttachment("doc 2", "text/xml", lazy)],
        )

    app = make_app(handler)
    # the body must be an iterator consumed by the server, not a joined byte string
    environ = {}
    setup_testing_defaults(environ)
    req = envelope(RETRIEVE, action=ACTION_ITI43)
    environ.update(REQUEST_METHOD="POST", CONTENT_TYPE="application/soap+xml", CONTENT_LENGTH=str(len(req)),
                   **{"wsgi.input": io.BytesIO(req)})
    seen = {}
    iterable = app(environ, lambda status, headers: seen.update(status=status, headers=dict(headers)))
    assert not isinstance(iterable, (list, bytes))
    assert pulled == []  # nothing read from the attachment stream before the server iterates
    pieces = list(iterable)
    iterable.close()
    assert len(pieces) > 3
    body = b"".join(pieces)
    assert seen["status"].startswith("200")
    assert "Content-Length" not in seen["headers"]

    params, parts = split_multipart(seen["headers"]["Content-Type"], body)
    assert params["type"] == "application/xop+xml"
    assert params["start-info"] == "application/soap+xml"
    (root_headers, root), (h1, d1), (h2, d2) = parts
    assert normalize_content_id(root_headers["Content-ID"]) == normalize_content_id(params["start"])
    assert root_headers["Content-Type"] == 'application/xop+xml; charset=UTF-8; type="application/soap+xml"'
    env = etree.fromstring(root)
    ns = {"env": NS_SOAP12, "wsa": NS_WSA, "xop": NS_XOP, "xdsb": NS_XDSB}
    assert env.findtext("env:Header/wsa:Action", namespaces=ns) == ACTION_ITI43 + "Response"
    assert env.findtext("env:Header/wsa:RelatesTo", namespaces=ns) == "urn:uuid:req-1"
    hrefs = [i.get("href") for i in env.iterfind(".//xop:Include", ns)]
    assert [normalize_content_id(h) for h in hrefs] == ["doc@1", "doc 2"]
    assert h1 == {"Content-Type": "application/pdf", "Content-Transfer-Encoding": "binary", "Content-ID": "<doc@1>"}
    assert d1 == data1
    assert h2["Content-ID"] == "<doc 2>"
    assert d2 == b"".join(chunks2)


def test_mtom_forced_without_attachments():
    app = make_app(lambda r: SoapResponse(retrieve_response([]), ACTION_ITI43 + "Response", mtom=True))
    res = call(app, envelope(RETRIEVE, action=ACTION_ITI43))
    assert res.status == 200
    _, parts = split_multipart(res.content_type, res.body)
    assert len(parts) == 1
    assert etree.fromstring(parts[0][1]).tag == f"{{{NS_SOAP12}}}Envelope"


def test_mtom_request_gets_plain_response_unless_mtom_asked():
    app = make_app(lambda r: SoapResponse(retrieve_response([]), ACTION_ITI43 + "Response"), accept_mtom=True)
    body = multipart([(ROOT_HEADERS, envelope(RETRIEVE, action=ACTION_ITI43))])
    res = call(app, body, content_type=mtom_ct())
    assert res.status == 200
    assert res.content_type.startswith("application/soap+xml")


def test_boundary_is_random_per_response():
    app = make_app(lambda r: SoapResponse(retrieve_response([]), ACTION_ITI43 + "Response", mtom=True))
    a = parse_media_type(call(app, envelope(RETRIEVE, action=ACTION_ITI43)).content_type)[1]["boundary"]
    b = parse_media_type(call(app, envelope(RETRIEVE, action=ACTION_ITI43)).content_type)[1]["boundary"]
    assert a != b
