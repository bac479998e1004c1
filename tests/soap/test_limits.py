"""Request size limits and truncated bodies."""

from __future__ import annotations

from xds.soap import Operation, SoapEndpoint

from .conftest import (
    ACTION_ITI42,
    NS_LCM,
    ROOT_HEADERS,
    SUBMIT,
    EndlessInput,
    assert_fault,
    call,
    envelope,
    mtom_ct,
    multipart,
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
