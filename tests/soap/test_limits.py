"""Request size limits and truncated bodies."""

from __future__ import annotations

import gc
import io
import platform
import time
from pathlib import Path

from xds.soap import MessageLimits, Operation, SoapEndpoint, SoapResponse, trim_memory
from xds.soap import endpoint as endpoint_module

from .conftest import (
    ACTION_ITI41,
    ACTION_ITI42,
    NS_LCM,
    NS_XDSB,
    ROOT_HEADERS,
    SUBMIT,
    EndlessInput,
    ShortReads,
    ack_body,
    assert_fault,
    call,
    envelope,
    mtom_ct,
    multipart,
    provide,
)


def small_app(recorder, limit=10_000):
    return SoapEndpoint([Operation(ACTION_ITI42, f"{{{NS_LCM}}}SubmitObjectsRequest", recorder.register,
                                   accept_mtom=True)], None, max_request_bytes=limit)


class Untouchable:
    def read(self, n=-1):
        raise AssertionError("the body must not be read when Content-Length is over the limit")


def test_oversize_by_content_length_is_413_before_reading(recorder):
    app = small_app(recorder)
    res = call(app, b"", content_length=10_001, wsgi_input=Untouchable())
    assert_fault(app, res, "Sender", 413, "maximum size of 10000 bytes")


def test_oversize_while_streaming_without_content_length(recorder):
    app = small_app(recorder)
    endless = EndlessInput()
    res = call(app, b"", content_length=None, wsgi_input=endless)
    assert_fault(app, res, "Sender", 413, "maximum size")
    assert endless.served <= 10_000 + 65536


def test_oversize_mtom_while_streaming_without_content_length(recorder):
    app = small_app(recorder)
    body = multipart([(ROOT_HEADERS, envelope(SUBMIT)),
                      ({"Content-Type": "application/octet-stream", "Content-ID": "<x>"}, b"z" * 20_000)])
    res = call(app, body, content_type=mtom_ct(), content_length=None)
    assert_fault(app, res, "Sender", 413, "maximum size")


def test_request_without_content_length_read_to_end(recorder):
    app = small_app(recorder)
    assert call(app, envelope(SUBMIT), content_length=None).status == 200


def test_truncated_body(recorder):
    app = small_app(recorder)
    body = envelope(SUBMIT)
    res = call(app, body[:100], content_length=len(body))
    assert_fault(app, res, "Sender", 400, "truncated")


def test_truncated_mtom_body(recorder):
    app = small_app(recorder)
    body = multipart([(ROOT_HEADERS, envelope(SUBMIT))])
    res = call(app, body[:-30], content_type=mtom_ct(), content_length=len(body))
    assert_fault(app, res, "Sender", 400, "truncated")


def test_invalid_content_length(recorder):
    app = small_app(recorder)
    res = call(app, envelope(SUBMIT), content_length="abc")
    assert_fault(app, res, "Sender", 400, "invalid Content-Length")


# -- limits per transaction (issue 19, finding 5: bounded memory per request) ----------------

ACTION_ITI18 = "urn:ihe:iti:2007:RegistryStoredQuery"
NS_QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
QUERY_LIMIT = 10_000
ITI41_LIMITS = MessageLimits(20_000, 400_000, 5)


class Sink(list):
    def __call__(self, refusal):
        self.append(refusal)


class CountingInput(io.RawIOBase):
    """A body served in chunks, counting what the endpoint read; ``then`` follows ``head`` forever."""

    def __init__(self, head: bytes, then: bytes | None = None):
        self._head = io.BytesIO(head)
        self._then = then
        self.served = 0

    def readable(self):
        return True

    def read(self, n=-1):
        n = 65536 if n is None or n < 0 else n
        data = self._head.read(n)
        if not data and self._then is not None:
            data = (self._then * (n // len(self._then) + 1))[:n]
        self.served += len(data)
        return data


def limited_app(recorder, sink=None, trim_after_bytes=None):
    def query(request):
        recorder.seen.append(request)
        return SoapResponse(ack_body(), ACTION_ITI18 + "Response")

    return SoapEndpoint(
        [Operation(ACTION_ITI42, f"{{{NS_LCM}}}SubmitObjectsRequest", recorder.register),
         Operation(ACTION_ITI18, f"{{{NS_QUERY}}}AdhocQueryRequest", query),
         Operation(ACTION_ITI41, f"{{{NS_XDSB}}}ProvideAndRegisterDocumentSetRequest", recorder.provide,
                   accept_mtom=True)],
        None, max_request_bytes=1_000_000, on_refusal=sink, trim_after_bytes=trim_after_bytes,
        limits={ACTION_ITI18: MessageLimits(QUERY_LIMIT), ACTION_ITI42: MessageLimits(200_000),
                ACTION_ITI41: ITI41_LIMITS})


def query_envelope(padding: int = 0) -> bytes:
    return envelope(f'<query:AdhocQueryRequest xmlns:query="{NS_QUERY}">{"<x/>" * padding}'
                    f"</query:AdhocQueryRequest>", action=ACTION_ITI18)


def soap_ct(action: str) -> str:
    return f'application/soap+xml; charset=UTF-8; action="{action}"'


def test_iti18_content_length_over_its_limit_is_413_before_the_body_is_read(recorder):
    sink = Sink()
    app = limited_app(recorder, sink)
    res = call(app, b"", content_type=soap_ct(ACTION_ITI18), content_length=50_000_000, wsgi_input=Untouchable())
    assert_fault(app, res, "Sender", 413, f"maximum size of {QUERY_LIMIT} bytes for {ACTION_ITI18}",
                 "Content-Length 50000000")
    assert [(r.http_status, r.code) for r in sink] == [(413, "Sender")]


def test_content_length_over_every_operation_limit_is_413_before_the_body_is_read(recorder):
    app = limited_app(recorder)
    res = call(app, b"", content_length=200_001, wsgi_input=Untouchable())
    assert_fault(app, res, "Sender", 413, "maximum size of 200000 bytes")


def test_iti18_streamed_without_length_is_refused_once_its_wsa_action_is_read(recorder):
    sink = Sink()
    app = limited_app(recorder, sink)
    head = query_envelope().split(b"</query:AdhocQueryRequest>")[0]
    body = CountingInput(head, then=b"<x/>")
    res = call(app, b"", content_length=None, wsgi_input=body)
    assert_fault(app, res, "Sender", 413, f"maximum size of {QUERY_LIMIT} bytes for {ACTION_ITI18}")
    assert body.served <= QUERY_LIMIT + 65536
    assert sink[0].action == ACTION_ITI18 and sink[0].http_status == 413


def test_iti18_with_a_length_under_the_endpoint_limit_is_refused_after_its_first_chunk(recorder):
    app = limited_app(recorder)
    data = query_envelope(padding=40_000)
    body = CountingInput(data)
    res = call(app, b"", content_length=len(data), wsgi_input=body)
    assert_fault(app, res, "Sender", 413, f"for {ACTION_ITI18}")
    assert body.served == 65536 < len(data)


def test_iti18_within_its_limit_is_served(recorder):
    app = limited_app(recorder)
    assert call(app, query_envelope(padding=100), content_type=soap_ct(ACTION_ITI18)).status == 200
    assert len(recorder.seen) == 1


def test_envelope_wsa_action_replaces_a_wider_content_type_hint(recorder):
    app = limited_app(recorder)
    data = query_envelope(padding=5_000)
    assert QUERY_LIMIT < len(data) < 200_000
    res = call(app, data, content_type=soap_ct(ACTION_ITI42), content_length=None)
    assert_fault(app, res, "Sender", 413, f"maximum size of {QUERY_LIMIT} bytes for {ACTION_ITI18}")


def test_doctype_split_across_reads_is_refused(recorder):
    app = limited_app(recorder)
    data = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]>' + envelope(SUBMIT).split(b"?>", 1)[1]
    res = call(app, b"", content_length=len(data), wsgi_input=ShortReads(data, step=3))
    assert_fault(app, res, "Sender", 400, "DTDs are not allowed")


def iti41_mtom(parts: list, includes: list[str]) -> bytes:
    docs = "".join(f'<xdsb:Document id="D{i}"><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" '
                   f'href="cid:{cid}"/></xdsb:Document>' for i, cid in enumerate(includes))
    return multipart([(ROOT_HEADERS, envelope(provide(docs), action=ACTION_ITI41)), *parts])


def part(cid: str, data: bytes = b"doc") -> tuple[dict[str, str], bytes]:
    return {"Content-Type": "application/octet-stream", "Content-ID": f"<{cid}>"}, data


def test_iti41_with_documents_within_its_limits_is_served(recorder):
    app = limited_app(recorder)
    body = iti41_mtom([part(f"d{i}", b"z" * 90_000) for i in range(4)], [f"d{i}" for i in range(4)])
    res = call(app, body, content_type=mtom_ct())
    assert res.status == 200, res.body
    assert [len(att.data_copy) for _, att in recorder.seen[-1]] == [90_000] * 4


def test_iti41_with_too_many_mime_parts_is_refused_while_streaming(recorder):
    sink = Sink()
    app = limited_app(recorder, sink)
    body = iti41_mtom([part(f"d{i}", b"") for i in range(10)], [f"d{i}" for i in range(10)])
    empty = b"--MIME_b0undary\r\nContent-ID: <e>\r\n\r\n\r\n"
    body = body.removesuffix(b"--MIME_b0undary--\r\n") + empty * 1_500_000 + b"--MIME_b0undary--\r\n"
    stream = CountingInput(body)
    started = time.monotonic()
    res = call(app, b"", content_type=mtom_ct(), content_length=None, wsgi_input=stream)
    elapsed = time.monotonic() - started
    assert_fault(app, res, "Sender", 413, f"more than {ITI41_LIMITS.parts} parts")
    assert stream.served < len(body) and elapsed < 2
    assert sink[0].http_status == 413 and sink[0].action == ACTION_ITI41


def test_iti41_envelope_over_the_metadata_limit_is_413_while_streaming(recorder):
    app = limited_app(recorder)
    root = envelope(provide("<x/>" * 10_000), action=ACTION_ITI41)
    body = multipart([(ROOT_HEADERS, root)])
    stream = CountingInput(body)
    res = call(app, b"", content_type=mtom_ct(), content_length=len(body), wsgi_input=stream)
    assert_fault(app, res, "Sender", 413, f"root MIME part) exceeds the maximum size of {ITI41_LIMITS.envelope_bytes}")


def test_iti41_attachments_over_their_limit_are_413(recorder):
    app = limited_app(recorder)
    body = iti41_mtom([part("d0", b"z" * 210_000), part("d1", b"z" * 210_000)], ["d0", "d1"])
    res = call(app, body, content_type=mtom_ct())
    assert_fault(app, res, "Sender", 413, "MIME attachments exceed the maximum size of 400000 bytes")


def test_iti42_refuses_mime_attachments(recorder):
    app = limited_app(recorder)
    root = envelope(SUBMIT.replace("/>", '><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" '
                                         'href="cid:d0"/></lcm:SubmitObjectsRequest>'))
    body = multipart([(ROOT_HEADERS, root), part("d0", b"zz")])
    res = call(app, body, content_type=mtom_ct())
    assert_fault(app, res, "Sender", 413, f"more than 1 parts for {ACTION_ITI42}")


def test_unreferenced_mtom_part_beside_a_valid_document_is_refused_at_its_headers(recorder):
    sink = Sink()
    app = limited_app(recorder, sink)
    body = iti41_mtom([part("d0"), part("stray", b"s" * 100_000)], ["d0"])
    stream = CountingInput(body)
    res = call(app, b"", content_type=mtom_ct(), content_length=len(body), wsgi_input=stream)
    assert recorder.seen == [] and stream.served < len(body)
    assert_fault(app, res, "Sender", 400, "MIME part <stray> is not referenced by any xop:Include")
    assert sink[0].http_status == 400 and "not referenced" in sink[0].reason


def test_unreferenced_mtom_part_before_the_root_is_refused(recorder):
    app = limited_app(recorder)
    root = envelope(provide('<xdsb:Document id="D0"><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" '
                            'href="cid:d0"/></xdsb:Document>'), action=ACTION_ITI41)
    body = multipart([part("stray"), part("d0"), (ROOT_HEADERS, root)])
    res = call(app, body, content_type=mtom_ct())
    assert_fault(app, res, "Sender", 400, "MIME part <stray> is not referenced")


def test_memory_is_trimmed_after_a_request_over_the_threshold(recorder, monkeypatch):
    trims = []
    monkeypatch.setattr(endpoint_module, "trim_memory", lambda: trims.append(1) or True)
    app = limited_app(recorder, trim_after_bytes=50_000)
    assert call(app, query_envelope(padding=10)).status == 200
    assert trims == []
    big = envelope(SUBMIT.replace("/>", ">" + "<x/>" * 20_000 + "</lcm:SubmitObjectsRequest>"))
    assert call(app, big).status == 200
    assert trims == [1]
    res = call(app, b"", content_length=None, wsgi_input=CountingInput(big[:2000], then=b"<x/>"))
    assert res.status == 413 and trims == [1, 1]


def test_trim_memory_calls_the_c_library():
    assert trim_memory() is (platform.libc_ver()[0] == "glibc")


def test_refused_envelope_frees_its_partial_tree_without_the_garbage_collector(recorder):
    """A refused 1 MB query of empty elements builds ~32 MB of tree: freed when refused, not at
    the next collection (lxml's XMLPullParser kept it in a reference cycle)."""
    def rss_mb() -> float:
        return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 1024

    app = limited_app(recorder)
    app.limits[ACTION_ITI18] = MessageLimits(1024 * 1024)
    head = query_envelope().split(b"</query:AdhocQueryRequest>")[0]
    gc.disable()
    try:
        call(app, b"", content_length=None, wsgi_input=CountingInput(head, then=b"<x/>"))
        before = rss_mb()
        for _ in range(4):
            res = call(app, b"", content_length=None, wsgi_input=CountingInput(head, then=b"<x/>"))
            assert res.status == 413
        assert rss_mb() - before < 16
    finally:
        gc.enable()
