"""The WSGI application serving one SOAP 1.2 endpoint (one path, several operations)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qsl
from wsgiref.util import request_uri

from lxml import etree

from .addressing import WSA_HEADERS, read_addressing, response_headers
from .envelope import check_must_understand, serialize_envelope, split_envelope, version_mismatch
from .faults import SoapFault
from .mediatype import parse_media_type, quote_param
from .messages import XOP_INCLUDE, SoapRequest, SoapResponse
from .mtom import (
    MultipartRequestReader,
    mtom_body,
    mtom_content_type,
    new_boundary,
    new_root_content_id,
)
from .namespaces import NS_WSA, NS_WSDL_SOAP12, NS_WSSE, WSA_FAULT_ACTION, qname
from .parsing import parse_xml, safe_parser

log = logging.getLogger("xds.soap")

READ_CHUNK = 64 * 1024
DEFAULT_MAX_REQUEST_BYTES = 100 * 1024 * 1024
DEFAULT_UNDERSTOOD_HEADERS = WSA_HEADERS
WSSE_SECURITY = qname(NS_WSSE, "Security")

Handler = Callable[[SoapRequest], SoapResponse]


@dataclass
class Operation:
    action: str
    body: str
    handler: Handler
    accept_mtom: bool = False


def _status_line(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Error"


class _Context:
    """What is known about the request so far (for the fault reply)."""

    __slots__ = ("message_id", "request")

    def __init__(self) -> None:
        self.message_id: str | None = None
        self.request: SoapRequest | None = None


class _StreamedBody:
    """A WSGI response iterable that releases the request's attachments on close()."""

    def __init__(self, chunks: Iterator[bytes], on_close: Callable[[], None]) -> None:
        self._chunks = chunks
        self._on_close = on_close

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            self._on_close()


class SoapEndpoint:
    """A WSGI application for one SOAP 1.2 endpoint.

    Dispatches POSTed envelopes on (wsa:Action, body element) to the
    operations' handlers and serves the WSDL at ``?wsdl``. Holds no mutable
    state after construction: safe for threaded workers.
    """

    def __init__(
        self,
        operations: list[Operation],
        wsdl_path: str | os.PathLike | None = None,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        understood_headers: set[str] | frozenset[str] | None = None,
    ) -> None:
        self._operations: dict[str, dict[str, Operation]] = {}
        for op in operations:
            by_body = self._operations.setdefault(op.action, {})
            if op.body in by_body:
                raise ValueError(f"duplicate operation for action {op.action} and body {op.body}")
            by_body[op.body] = op
        self.max_request_bytes = int(max_request_bytes)
        self.understood_headers = frozenset(
            DEFAULT_UNDERSTOOD_HEADERS if understood_headers is None else understood_headers
        )
        self._wsdl: etree._Element | None = None
        if wsdl_path is not None:
            with open(wsdl_path, "rb") as fh:
                self._wsdl = etree.fromstring(fh.read(), safe_parser())

    # -- WSGI -----------------------------------------------------------
    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if method in ("GET", "HEAD"):
            return self._get(environ, start_response, head=method == "HEAD")
        if method != "POST":
            body = b"This endpoint accepts SOAP 1.2 POST requests (and GET ?wsdl).\n"
            start_response(
                _status_line(405),
                [("Content-Type", "text/plain; charset=UTF-8"), ("Allow", "GET, HEAD, POST"),
                 ("Content-Length", str(len(body)))],
            )
            return [body]
        return self._post(environ, start_response)

    def _get(self, environ: dict, start_response, head: bool) -> Iterable[bytes]:
        query = {k.lower() for k, _ in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)}
        if "wsdl" in query and self._wsdl is not None:
            body = self._wsdl_for(environ)
            start_response(_status_line(200), [("Content-Type", "text/xml; charset=UTF-8"),
                                               ("Content-Length", str(len(body)))])
            return [] if head else [body]
        if "wsdl" in query:
            body = b"No WSDL is published for this endpoint.\n"
            status = 404
        else:
            body = b"This is a SOAP 1.2 endpoint: send SOAP requests with POST, or GET ?wsdl for its WSDL.\n"
            status = 405
        start_response(_status_line(status), [("Content-Type", "text/plain; charset=UTF-8"),
                                              ("Allow", "GET, HEAD, POST"), ("Content-Length", str(len(body)))])
        return [] if head else [body]

    def _wsdl_for(self, environ: dict) -> bytes:
        """The WSDL with every soap12:address pointing at the URL it was fetched from."""
        assert self._wsdl is not None
        from copy import deepcopy

        wsdl = deepcopy(self._wsdl)
        location = request_uri(environ, include_query=False)
        for address in wsdl.iter(qname(NS_WSDL_SOAP12, "address")):
            address.set("location", location)
        return etree.tostring(wsdl, xml_declaration=True, encoding="UTF-8")

    # -- POST -----------------------------------------------------------
    def _post(self, environ: dict, start_response) -> Iterable[bytes]:
        ctx = _Context()
        try:
            request = self._read_request(environ, ctx)
            operation = self._dispatch(request)
            response = self._invoke(operation, request)
            return self._reply(start_response, request, response)
        except SoapFault as fault:
            if ctx.request is not None:
                ctx.request.close()
            return self._fault_reply(start_response, fault, ctx.message_id)
        except Exception:  # noqa: BLE001 - never leak internals to the peer
            log.exception("SOAP endpoint failure")
            if ctx.request is not None:
                ctx.request.close()
            return self._fault_reply(start_response, SoapFault("Receiver", "internal error"), ctx.message_id)

    def _body_chunks(self, environ: dict) -> Iterator[bytes]:
        """The request body in chunks, bounded by Content-Length and max_request_bytes."""
        raw = (environ.get("CONTENT_LENGTH") or "").strip()
        length: int | None = None
        if raw:
            try:
                length = int(raw)
                if length < 0:
                    raise ValueError
            except ValueError:
                raise SoapFault("Sender", f"invalid Content-Length {raw!r}") from None
        limit = self.max_request_bytes
        too_big = SoapFault("Sender", f"request exceeds the maximum size of {limit} bytes", http_status=413)
        if length is not None and length > limit:
            raise too_big
        stream = environ["wsgi.input"]
        remaining = length
        total = 0
        while remaining is None or remaining > 0:
            want = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
            chunk = stream.read(want)
            if not chunk:
                if remaining:
                    raise SoapFault(
                        "Sender", f"request body truncated: {remaining} of {length} announced bytes missing"
                    )
                break
            total += len(chunk)
            if total > limit:
                raise too_big
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk

    def _read_request(self, environ: dict, ctx: _Context) -> SoapRequest:
        media_type, params = parse_media_type(environ.get("CONTENT_TYPE"))
        attachments = {}
        if media_type == "application/soap+xml":
            data = b"".join(self._body_chunks(environ))
            root = parse_xml(data)
            del data
            mtom = False
        elif media_type == "multipart/related":
            mtom = True
            root, attachments = self._read_multipart(environ, params)
        elif media_type == "text/xml":
            raise version_mismatch()
        else:
            shown = media_type or "no Content-Type"
            raise SoapFault(
                "Sender",
                f"unsupported media type {shown}: send application/soap+xml or MTOM multipart/related",
                http_status=415,
            )
        try:
            header, body = split_envelope(root)
            check_must_understand(header, self.understood_headers)
            addressing = read_addressing(header)
        except SoapFault:
            for att in attachments.values():
                att.close()
            raise
        ctx.message_id = addressing.message_id
        request = SoapRequest(
            envelope=root,
            header=header,
            body=body,
            action=addressing.action,
            message_id=addressing.message_id,
            reply_to=addressing.reply_to,
            attachments=attachments,
            environ=environ,
            mtom=mtom,
        )
        ctx.request = request
        return request

    def _read_multipart(self, environ: dict, params: dict[str, str]):
        start_info = params.get("start-info")
        if start_info and parse_media_type(start_info)[0] == "text/xml":
            raise version_mismatch()
        related_type = parse_media_type(params.get("type", "application/xop+xml"))[0]
        if related_type not in ("application/xop+xml", "application/soap+xml"):
            raise SoapFault(
                "Sender", f"multipart/related type {related_type!r} is not supported; expected application/xop+xml"
            )
        reader = MultipartRequestReader(params)
        try:
            for chunk in self._body_chunks(environ):
                reader.write(chunk)
        except BaseException:
            reader.discard()
            raise
        root_part, attachments = reader.close()
        try:
            root = parse_xml(root_part.read())
        except SoapFault:
            reader.discard()
            raise
        finally:
            root_part.close()
        return root, attachments

    def _dispatch(self, request: SoapRequest) -> Operation:
        by_body = self._operations.get(request.action)
        if by_body is None:
            detail = etree.Element(qname(NS_WSA, "ProblemAction"), nsmap={"wsa": NS_WSA})
            etree.SubElement(detail, qname(NS_WSA, "Action")).text = request.action
            raise SoapFault(
                "Sender",
                f"action {request.action} is not supported by this endpoint",
                subcode=qname(NS_WSA, "ActionNotSupported"),
                detail=detail,
            )
        operation = by_body.get(request.body.tag)
        if operation is None:
            expected = " or ".join(sorted(by_body))
            raise SoapFault(
                "Sender",
                f"action {request.action} expects body element {expected}, found {request.body.tag}",
            )
        includes = list(request.body.iter(XOP_INCLUDE))
        if request.mtom and not operation.accept_mtom:
            raise SoapFault("Sender", f"action {request.action} does not accept MTOM/XOP requests")
        if includes and not request.mtom:
            raise SoapFault("Sender", "xop:Include found in a request that is not MTOM/XOP (multipart/related)")
        for include in includes:
            request.resolve_include(include)  # every reference must name a part
        return operation

    def _invoke(self, operation: Operation, request: SoapRequest) -> SoapResponse:
        try:
            response = operation.handler(request)
        except SoapFault:
            raise
        except Exception:
            log.exception("handler for %s raised", operation.action)
            raise SoapFault("Receiver", "internal error") from None
        if not isinstance(response, SoapResponse):
            log.error("handler for %s returned %r, not a SoapResponse", operation.action, type(response))
            raise SoapFault("Receiver", "internal error")
        return response

    # -- replies ----------------------------------------------------------
    def _reply(self, start_response, request: SoapRequest, response: SoapResponse) -> Iterable[bytes]:
        try:
            envelope = serialize_envelope(response.body, response_headers(response.action, request.message_id))
        except Exception:
            log.exception("could not serialize the response to %s", request.action)
            raise SoapFault("Receiver", "internal error") from None
        if not (response.mtom or response.attachments):
            request.close()
            ctype = f"application/soap+xml; charset=UTF-8; action={quote_param(response.action)}"
            start_response(_status_line(200), [("Content-Type", ctype), ("Content-Length", str(len(envelope)))])
            return [envelope]
        boundary = new_boundary()
        root_cid = new_root_content_id()
        chunks = mtom_body(envelope, list(response.attachments), boundary, root_cid)
        start_response(_status_line(200), [("Content-Type", mtom_content_type(boundary, root_cid))])
        return _StreamedBody(chunks, request.close)

    def _fault_reply(self, start_response, fault: SoapFault, relates_to: str | None) -> Iterable[bytes]:
        blocks = response_headers(WSA_FAULT_ACTION, relates_to) + list(fault.header_blocks)
        envelope = serialize_envelope(fault.to_element(), blocks)
        ctype = f"application/soap+xml; charset=UTF-8; action={quote_param(WSA_FAULT_ACTION)}"
        start_response(
            _status_line(fault.status), [("Content-Type", ctype), ("Content-Length", str(len(envelope)))]
        )
        return [envelope]
