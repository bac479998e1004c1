"""MTOM/XOP requests: multipart/related split, xop:Include resolution, inline base64, malformed MIME."""

from __future__ import annotations

import base64
import hashlib
import os
import tracemalloc

from xds.soap import Operation, SoapEndpoint, SoapResponse

from .conftest import (
    ACTION_ITI41,
    NS_XDSB,
    ROOT_HEADERS,
    ShortReads,
    ack_body,
    assert_fault,
    call,
    envelope,
    mtom_ct,
    multipart,
    provide,
)

BOUNDARY = "MIME_b0undary"


def doc_include(doc_id: str, href: str) -> str:
    return (f'<xdsb:Document id="{doc_id}">'
            f'<xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="{href}"/></xdsb:Document>')


def mtom_request(documents: str, parts: list, boundary: str = BOUNDARY, close: bool = True,
                 root_headers: dict | None = None) -> bytes:
    root = envelope(provide(documents), action=ACTION_ITI41)
    return multipart([(root_headers or ROOT_HEADERS, root), *parts], boundary=boundary, close=close)


def tricky_payload() -> bytes:
    """Begins and ends with CRLF, holds near-miss boundary lines and random binary."""
    rnd = os.urandom(200_000)
    near = BOUNDARY.encode()
    return (b"\r\n" + rnd[:1000]
            + b"\r\n--" + near[:-1] + b"X\r\n"  # a fake boundary line (last character differs)
            + b"\r\n--" + near[:-1] + b"\r\n"  # a partial boundary
            + b"\r\n--" + near[:-1]  # a partial boundary with no line end
            + rnd[1000:] + b"\r\n\r\n")


def test_mtom_xop_include_resolved_by_url_escaped_content_id_byte_exact(app, recorder):
    data = tricky_payload()
    assert data.startswith(b"\r\n") and data.endswith(b"\r\n")
    body = mtom_request(
        doc_include("Doc1", "cid:doc%401"),
        [({"Content-Type": "application/octet-stream", "Content-Transfer-Encoding": "binary",
           "Content-ID": "<doc@1>"}, data)],
    )
    res = call(app, body, content_type=mtom_ct())
    assert res.status == 200, res.body
    ((doc_id, att),) = recorder.seen[-1]
    assert doc_id == "Doc1"
    assert att.content_id == "doc@1"
    assert att.content_type == "application/octet-stream"
    assert att.size == len(data)
    assert att.data_copy == data


def test_mtom_byte_exact_with_short_socket_reads(app, recorder):
    data = b"\r\n" + os.urandom(5000) + b"\r\n--" + BOUNDARY.encode() + b"\r\n"[:1] + os.urandom(3000) + b"\r\n"
    body = mtom_request(
        doc_include("Doc1", "cid:doc1"),
        [({"Content-Type": "application/pdf", "Content-ID": "<doc1>"}, data)],
    )
    res = call(app, body, content_type=mtom_ct(), wsgi_input=ShortReads(body, step=13))
    assert res.status == 200, res.body
    ((_, att),) = recorder.seen[-1]
    assert att.data_copy == data


def test_mtom_without_start_uses_first_part_and_tolerates_preamble(app, recorder):
    body = b"preamble text\r\n" + mtom_request(
        doc_include("Doc1", "cid:a"), [({"Content-Type": "text/plain", "Content-ID": "<a>"}, b"hello")]
    ) + b"epilogue"
    res = call(app, body, content_type=mtom_ct(start=None))
    assert res.status == 200, res.body
    assert recorder.seen[-1][0][1].data_copy == b"hello"


def test_mtom_start_part_may_come_after_attachments(app, recorder):
    root = envelope(provide(doc_include("Doc1", "cid:a")), action=ACTION_ITI41)
    body = multipart([({"Content-Type": "text/plain", "Content-ID": "<a>"}, b"first"), (ROOT_HEADERS, root)])
    res = call(app, body, content_type=mtom_ct())
    assert res.status == 200, res.body


def test_inline_base64_document(app, recorder):
    data = os.urandom(3000) + b"\r\n"
    encoded = base64.encodebytes(data).decode()  # with line breaks every 76 characters
    body = envelope(provide(f'<xdsb:Document id="Doc1">{encoded}</xdsb:Document>'), action=ACTION_ITI41)
    res = call(app, body)
    assert res.status == 200, res.body
    ((_doc_id, att),) = recorder.seen[-1]
    assert att.data_copy == data and att.size == len(data)


def test_large_inline_base64_document_is_spooled(app, recorder):
    data = os.urandom(3 * 1024 * 1024)
    body = envelope(provide(f'<xdsb:Document id="Doc1">{base64.b64encode(data).decode()}</xdsb:Document>'),
                    action=ACTION_ITI41)
    res = call(app, body)
    assert res.status == 200, res.body
    ((_, att),) = recorder.seen[-1]
    assert att.was_file_backed and att.data_copy == data


def test_invalid_base64(app):
    for bad in ("not*base64!", "QUJD=QUJD", "QUJDRA"):
        body = envelope(provide(f'<xdsb:Document id="Doc1">{bad}</xdsb:Document>'), action=ACTION_ITI41)
        assert_fault(app, call(app, body), "Sender", 400, "invalid base64")


def test_mtom_missing_part(app):
    body = mtom_request(doc_include("Doc1", "cid:doc1"), [])
    assert_fault(app, call(app, body, content_type=mtom_ct()), "Sender", 400, "MTOM part <doc1> not found")


def test_mtom_wrong_content_id(app):
    body = mtom_request(
        doc_include("Doc1", "cid:doc1"),
        [({"Content-Type": "application/octet-stream", "Content-ID": "<doc2>"}, b"data")],
    )
    assert_fault(app, call(app, body, content_type=mtom_ct()), "Sender", 400,
                 "MIME part <doc2> is not referenced by any xop:Include")


def test_mtom_part_without_content_id(app):
    body = mtom_request(doc_include("Doc1", "cid:doc1"), [({"Content-Type": "application/octet-stream"}, b"x")])
    assert_fault(app, call(app, body, content_type=mtom_ct()), "Sender", 400, "has no Content-ID")


def test_mtom_unclosed_boundary(app):
    body = mtom_request(
        doc_include("Doc1", "cid:doc1"),
        [({"Content-Type": "application/octet-stream", "Content-ID": "<doc1>"}, b"data")],
        close=False,
    )
    assert_fault(app, call(app, body, content_type=mtom_ct()), "Sender", 400, "closing boundary is missing")


def test_mtom_start_part_not_the_envelope(app):
    body = mtom_request(
        doc_include("Doc1", "cid:doc1"),
        [({"Content-Type": "application/octet-stream", "Content-ID": "<doc1>"}, b"data")],
    )
    res = call(app, body, content_type=mtom_ct(start="<doc1>"))
    assert_fault(app, res, "Sender", 400, "start part <doc1> must be application/xop+xml", "application/octet-stream")


def test_mtom_start_part_absent(app):
    body = mtom_request(doc_include("Doc1", "cid:doc1"),
                        [({"Content-Type": "text/plain", "Content-ID": "<doc1>"}, b"x")])
    res = call(app, body, content_type=mtom_ct(start="<elsewhere>"))
    assert_fault(app, res, "Sender", 400, "start part <elsewhere>", "not in the message")


def test_mtom_nested_multipart(app):
    inner = multipart([({"Content-Type": "text/plain", "Content-ID": "<x>"}, b"x")], boundary="inner")
    body = mtom_request(
        doc_include("Doc1", "cid:doc1"),
        [({"Content-Type": 'multipart/related; boundary="inner"', "Content-ID": "<doc1>"}, inner)],
    )
    assert_fault(app, call(app, body, content_type=mtom_ct()), "Sender", 400, "nested multipart")


def test_mtom_missing_boundary_param(app):
    body = mtom_request(doc_include("Doc1", "cid:doc1"), [])
    ct = 'multipart/related; type="application/xop+xml"; start="<root@test>"'
    assert_fault(app, call(app, body, content_type=ct), "Sender", 400, "no boundary parameter")


def test_mtom_body_without_the_announced_boundary(app):
    body = mtom_request(doc_include("Doc1", "cid:doc1"), [], boundary="other")
    res = call(app, body, content_type=mtom_ct())
    assert_fault(app, res, "Sender", 400, "boundary")


def test_mtom_soap11_root_part_is_version_mismatch(app):
    headers = dict(ROOT_HEADERS, **{"Content-Type": 'application/xop+xml; charset=UTF-8; type="text/xml"'})
    body = mtom_request(doc_include("Doc1", "cid:doc1"), [], root_headers=headers)
    assert_fault(app, call(app, body, content_type=mtom_ct()), "VersionMismatch", 500, "SOAP 1.1 is not supported")


def test_mtom_refused_by_operation_without_accept_mtom(app):
    from .conftest import SUBMIT

    body = multipart([(ROOT_HEADERS, envelope(SUBMIT))])
    assert_fault(app, call(app, body, content_type=mtom_ct()), "Sender", 400, "does not accept MTOM")


def test_xop_include_in_plain_request(app):
    body = envelope(provide(doc_include("Doc1", "cid:doc1")), action=ACTION_ITI41)
    assert_fault(app, call(app, body), "Sender", 400, "not MTOM")


class _StreamedMtomBody:
    """wsgi.input producing a large MTOM body on the fly (never whole in memory)."""

    def __init__(self, head: bytes, part_size: int, tail: bytes):
        self._pieces = iter([head, *self._payload(part_size), tail])
        self._pending = b""

    @staticmethod
    def _payload(size: int):
        block = (bytes(range(256)) * 256)  # 64 KiB
        full, rest = divmod(size, len(block))
        for _ in range(full):
            yield block
        yield block[:rest]

    def read(self, n=-1):
        while not self._pending:
            try:
                self._pending = next(self._pieces)
            except StopIteration:
                return b""
        out, self._pending = self._pending[:n], self._pending[n:]
        return out


def test_50mb_mtom_part_is_spooled_to_disk():
    size = 50 * 1024 * 1024
    seen = {}

    def handler(request):
        (doc,) = request.body.findall(f"{{{NS_XDSB}}}Document")
        att = request.binary_content(doc)
        digest = hashlib.sha256()
        with att.open() as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        seen.update(file_backed=att.file_backed, size=att.size, sha=digest.hexdigest(), att=att)
        return SoapResponse(ack_body(), ACTION_ITI41 + "Response")

    app = SoapEndpoint([Operation(ACTION_ITI41, f"{{{NS_XDSB}}}ProvideAndRegisterDocumentSetRequest",
                                  handler, accept_mtom=True)], None)
    head = multipart([(ROOT_HEADERS, envelope(provide(doc_include("Doc1", "cid:big")), action=ACTION_ITI41))],
                     close=False)
    head += f"--{BOUNDARY}\r\nContent-Type: application/pdf\r\nContent-ID: <big>\r\n\r\n".encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    expected = hashlib.sha256()
    for block in _StreamedMtomBody._payload(size):
        expected.update(block)

    tracemalloc.start()
    try:
        res = call(app, b"", content_type=mtom_ct(), content_length=len(head) + size + len(tail),
                   wsgi_input=_StreamedMtomBody(head, size, tail))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.status == 200, res.body
    assert seen["file_backed"] is True
    assert seen["size"] == size
    assert seen["sha"] == expected.hexdigest()
    assert peak < 8 * 1024 * 1024, f"peak Python allocation {peak} bytes grows with the part size"
    # the temporary file is released once the request is over
    assert seen["att"]._file.closed


def test_concurrent_requests_are_independent(app, recorder):
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int):
        data = os.urandom(50_000 + i) + b"\r\n"
        body = mtom_request(doc_include(f"Doc{i}", f"cid:d{i}"),
                            [({"Content-Type": "application/octet-stream", "Content-ID": f"<d{i}>"}, data)])
        if i % 3 == 0:  # interleave bad requests
            body = body[:-40]
        res = call(app, body, content_type=mtom_ct())
        return i, data, res.status

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(40)))
    for i, _, status in results:
        assert status == (400 if i % 3 == 0 else 200)
    received = {doc_id: att.data_copy for seen in recorder.seen for doc_id, att in seen}
    for i, data, status in results:
        if status == 200:
            assert received[f"Doc{i}"] == data
