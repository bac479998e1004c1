"""The WSGI application serving one SOAP 1.2 endpoint (one path, several operations)."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from copy import deepcopy
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qsl, quote, urlsplit
from wsgiref.types import StartResponse, WSGIEnvironment

from lxml import etree

from xds.soap.addressing import WSA_HEADERS, claimed_addressing, read_addressing, response_headers
from xds.soap.attachments import Attachment
from xds.soap.envelope import check_must_understand, serialize_envelope, split_envelope, version_mismatch
from xds.soap.faults import SoapFault
from xds.soap.limits import MessageLimits, RequestBudget, trim_memory
from xds.soap.mediatype import parse_media_type, quote_param
from xds.soap.messages import XOP_INCLUDE, SoapRequest, SoapResponse
from xds.soap.mtom import (
    MultipartRequestReader,
    mtom_body,
    mtom_content_type,
    new_boundary,
    new_root_content_id,
)
from xds.soap.namespaces import NS_WSA, NS_WSDL_SOAP12, NS_WSSE, WSA_FAULT_ACTION, qname
from xds.soap.parsing import EnvelopeFeed, safe_parser
from xds.soap.refusals import EdgeRefusal, RefusalHook

log = logging.getLogger("xds.soap")

READ_CHUNK = 64 * 1024
DEFAULT_MAX_REQUEST_BYTES = 100 * 1024 * 1024
DEFAULT_MAX_MIME_PARTS = 1000
DEFAULT_UNDERSTOOD_HEADERS = WSA_HEADERS
WSSE_SECURITY = qname(NS_WSSE, "Security")

Handler = Callable[[SoapRequest], SoapResponse]

_DEFAULT_PORTS = {"http": "80", "https": "443"}
# RFC 1123 host names and dotted IPv4 addresses: nothing that could end the authority of a URL.
_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")
_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f-\x9f]")


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


def _check_public_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL that can stand as a WSDL soap12:address as it is."""
    parts = urlsplit(url)
    try:
        valid_port = parts.port != 0
    except ValueError:
        valid_port = False
    if (
        not valid_port
        or parts.scheme not in _DEFAULT_PORTS
        or not parts.hostname
        or parts.username is not None
        or "?" in url
        or "#" in url
        or _URL_UNSAFE.search(url)
    ):
        raise ValueError(
            f"public_url {url!r} must be an absolute http:// or https:// URL without user info, query or fragment"
        )
    return url


def _server_url(environ: WSGIEnvironment) -> str:
    """The endpoint's URL as the server names itself (PEP 3333 SERVER_NAME, SERVER_PORT, SCRIPT_NAME).

    Never the Host header: that one is the client's to write. Raises ``ValueError`` when
    the server's own values cannot form a URL (a server that derives SERVER_NAME from Host,
    as gunicorn does on a UNIX socket, may pass a client's text through).
    """
    scheme = environ.get("wsgi.url_scheme")
    name = environ.get("SERVER_NAME")
    port = environ.get("SERVER_PORT") or ""
    if scheme not in _DEFAULT_PORTS or not isinstance(name, str) or not isinstance(port, str):
        raise ValueError("wsgi.url_scheme, SERVER_NAME or SERVER_PORT missing")
    if _HOST_NAME.fullmatch(name):
        host = name
    else:
        address = ipaddress.IPv6Address(name.removeprefix("[").removesuffix("]"))
        if address.scope_id:
            raise ValueError(f"SERVER_NAME {name!r} has a zone index")
        host = f"[{address}]"
    if port and not _PORT.fullmatch(port):
        raise ValueError(f"SERVER_PORT {port!r} is not a port number")
    authority = host if port in ("", _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    script_name = environ.get("SCRIPT_NAME") or "/"
    if not isinstance(script_name, str):
        raise ValueError("SCRIPT_NAME is not a string")
    return f"{scheme}://{authority}{quote(script_name, safe='/;=,', encoding='latin-1')}"


def _environ_text(environ: WSGIEnvironment, key: str) -> str | None:
    value = environ.get(key)
    return value if isinstance(value, str) and value else None


class _Context:
    """What is known about the request so far: for the fault reply and for the refusal report.

    ``action`` and ``message_id`` are what the envelope claims as soon as it is parsed (the
    refusal report wants them even when the addressing headers are then refused);
    ``relates_to`` is the MessageID once WS-Addressing validated it (the fault reply's
    wsa:RelatesTo, WS-Addressing 1.0 Core 3.4).
    """

    __slots__ = ("action", "budget", "message_id", "relates_to", "request")

    def __init__(self) -> None:
        self.budget: RequestBudget | None = None
        self.action: str | None = None
        self.message_id: str | None = None
        self.relates_to: str | None = None
        self.request: SoapRequest | None = None


class _StreamedBody:
    """A WSGI response iterable that releases the request's attachments on close().

    With ``trim``, the C heap is trimmed once the request is released (the server calls close()
    after the last byte is sent): the request's tree is freed by then, its pages can go back.
    """

    def __init__(self, chunks: Iterable[bytes], on_close: Callable[[], None] | None, trim: bool = False) -> None:
        self._chunks: Iterable[bytes] | None = chunks
        self._on_close = on_close
        self._trim = trim

    def __iter__(self) -> Iterator[bytes]:
        assert self._chunks is not None
        return iter(self._chunks)

    def close(self) -> None:
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            on_close, self._on_close, self._chunks = self._on_close, None, None
            if on_close is not None:
                on_close()
            del on_close
            if self._trim:
                trim_memory()


class SoapEndpoint:
    """A WSGI application for one SOAP 1.2 endpoint.

    Dispatches POSTed envelopes on (wsa:Action, body element) to the
    operations' handlers and serves the WSDL at ``?wsdl``. Holds no mutable
    state after construction: safe for threaded workers.

    Hooks for the composition root (both optional, default None):

    ``on_refusal``
        Called with one :class:`~xds.soap.refusals.EdgeRefusal` for every POST the endpoint
        answers with a fault before any handler ran: not well-formed XML, a DOCTYPE, a SOAP
        1.1 envelope or media type (VersionMismatch), a missing, duplicated or unknown
        wsa:Action, a non-anonymous wsa:ReplyTo, a body element no operation takes, a
        mustUnderstand header block not understood, an unsupported media type (415), a body
        over ``max_request_bytes`` or over its operation's ``limits`` (413, announced by
        Content-Length or found while streaming), too many MIME parts (413), a MIME part no
        xop:Include references, a truncated body, a bad MTOM package, and a failure while reading
        (Receiver "internal error", e.g. the client went away). Exactly once per refused
        request, after the fault is decided and before it is sent. Never for a fault a
        handler raises or for a handler's crash: the handlers audit their own answers.
        GET requests (``?wsdl``, 404, 405) are not SOAP messages and are not reported.
        The hook runs on the request's thread; an exception in it is logged and the
        answer stays the same (an audit failure must not change what the peer is told).
        Wire it to the ATNA auditor (IHE ITI TF-2 3.20), e.g. as a security alert.

    ``public_url``
        The absolute http(s) URL clients must use for this endpoint (as published
        behind a reverse proxy or a TLS terminator). When set, it is every soap12:address
        of the served WSDL and the ``endpoint_url`` of the refusals. When not set, the URL
        is built from the server's own SERVER_NAME, SERVER_PORT, ``wsgi.url_scheme`` and
        SCRIPT_NAME (the mount point), never from the Host header: the WSDL is what
        clients trust for where to send documents, and an address echoed from Host is a
        host header injection (OWASP WSTG-INPV-17). Set it in production.

    ``limits``
        :class:`~xds.soap.limits.MessageLimits` by wsa:Action: the envelope's bytes, the MIME
        attachments' bytes and the MIME part count each operation accepts. An operation not
        named takes ``max_request_bytes`` for its envelope and for its attachments and
        :data:`DEFAULT_MAX_MIME_PARTS` parts. Until a request names its operation (the
        ``action`` parameter of its Content-Type, SOAP 1.2 Part 2 7.1.4, then its envelope's
        wsa:Action, read while the body streams in) the widest of the endpoint's operations
        apply; ``max_request_bytes`` bounds every body whatever its operation. A Content-Length
        over the limit is refused before the body is read.

    ``trim_after_bytes``
        After a request whose body was at least this large, the C heap is trimmed
        (:func:`~xds.soap.limits.trim_memory`) once the request is released, so that a worker
        does not keep the peak RSS of its largest request. None: never.
    """

    def __init__(
        self,
        operations: list[Operation],
        wsdl_path: str | os.PathLike[str] | None = None,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        understood_headers: set[str] | frozenset[str] | None = None,
        on_refusal: RefusalHook | None = None,
        public_url: str | None = None,
        limits: Mapping[str, MessageLimits] | None = None,
        trim_after_bytes: int | None = None,
    ) -> None:
        self._operations: dict[str, dict[str, Operation]] = {}
        for op in operations:
            by_body = self._operations.setdefault(op.action, {})
            if op.body in by_body:
                raise ValueError(f"duplicate operation for action {op.action} and body {op.body}")
            by_body[op.body] = op
        self.max_request_bytes = int(max_request_bytes)
        fallback = MessageLimits(self.max_request_bytes, self.max_request_bytes, DEFAULT_MAX_MIME_PARTS)
        self.limits = {action: (limits or {}).get(action, fallback) for action in self._operations}
        self._widest = MessageLimits.widest(list(self.limits.values())) if self.limits else fallback
        self.trim_after_bytes = trim_after_bytes
        self.understood_headers = frozenset(
            DEFAULT_UNDERSTOOD_HEADERS if understood_headers is None else understood_headers
        )
        self._on_refusal = on_refusal
        self.public_url = None if public_url is None else _check_public_url(public_url)
        self._wsdl: etree._Element | None = None
        if wsdl_path is not None:
            with open(wsdl_path, "rb") as fh:
                self._wsdl = etree.fromstring(fh.read(), safe_parser())

    # -- WSGI -----------------------------------------------------------
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
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

    def _get(self, environ: WSGIEnvironment, start_response: StartResponse, head: bool) -> Iterable[bytes]:
        query = {k.lower() for k, _ in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)}
        if "wsdl" in query and self._wsdl is not None:
            location = self._endpoint_url(environ)
            if location is not None:
                body = self._wsdl_for(location)
                start_response(_status_line(200), [("Content-Type", "text/xml; charset=UTF-8"),
                                                   ("Content-Length", str(len(body)))])
                return [] if head else [body]
            body = b"This endpoint cannot tell its own address: its public_url must be configured.\n"
            status = 500
        elif "wsdl" in query:
            body = b"No WSDL is published for this endpoint.\n"
            status = 404
        else:
            body = b"This is a SOAP 1.2 endpoint: send SOAP requests with POST, or GET ?wsdl for its WSDL.\n"
            status = 405
        start_response(_status_line(status), [("Content-Type", "text/plain; charset=UTF-8"),
                                              ("Allow", "GET, HEAD, POST"), ("Content-Length", str(len(body)))])
        return [] if head else [body]

    def _endpoint_url(self, environ: WSGIEnvironment) -> str | None:
        """``public_url``, else the URL the server names itself by; None if that is unusable."""
        if self.public_url is not None:
            return self.public_url
        try:
            return _server_url(environ)
        except ValueError as exc:
            log.error("cannot build this endpoint's URL from the WSGI environ (set public_url): %s", exc)
            return None

    def _wsdl_for(self, location: str) -> bytes:
        """The WSDL with every soap12:address set to ``location`` (WSDL 1.1 SOAP 1.2 binding, 3.8)."""
        assert self._wsdl is not None
        wsdl = deepcopy(self._wsdl)
        for address in wsdl.iter(qname(NS_WSDL_SOAP12, "address")):
            address.set("location", location)
        result: bytes = etree.tostring(wsdl, xml_declaration=True, encoding="UTF-8")
        return result

    # -- POST -----------------------------------------------------------
    def _post(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        ctx = _Context()
        answer = self._answer(environ, start_response, ctx)
        budget = ctx.budget
        del ctx  # holds the request: its tree must be freed before a trim
        if self.trim_after_bytes is None or budget is None or budget.body < self.trim_after_bytes:
            return answer
        if isinstance(answer, _StreamedBody):
            answer._trim = True
            return answer
        return _StreamedBody(answer, None, trim=True)

    def _answer(self, environ: WSGIEnvironment, start_response: StartResponse, ctx: _Context) -> Iterable[bytes]:
        try:
            request = self._read_request(environ, ctx)
            operation = self._dispatch(request)
        except SoapFault as fault:
            return self._refuse(environ, start_response, fault, ctx)
        except Exception:  # noqa: BLE001 - never leak internals to the peer
            log.exception("SOAP endpoint failure while reading the request")
            return self._refuse(environ, start_response, SoapFault("Receiver", "internal error"), ctx)
        try:
            response = self._invoke(operation, request)
            return self._reply(start_response, request, response)
        except SoapFault as fault:
            request.close()
            return self._fault_reply(start_response, fault, ctx.relates_to)
        except Exception:  # noqa: BLE001 - never leak internals to the peer
            log.exception("SOAP endpoint failure")
            request.close()
            return self._fault_reply(start_response, SoapFault("Receiver", "internal error"), ctx.relates_to)

    def _refuse(
        self, environ: WSGIEnvironment, start_response: StartResponse, fault: SoapFault, ctx: _Context
    ) -> Iterable[bytes]:
        """Answer a request refused before any handler ran, and report it to ``on_refusal``."""
        if ctx.request is not None:
            ctx.request.close()
        self._report(environ, fault, ctx)
        return self._fault_reply(start_response, fault, ctx.relates_to)

    def _report(self, environ: WSGIEnvironment, fault: SoapFault, ctx: _Context) -> None:
        if self._on_refusal is None:
            return
        try:
            refusal = EdgeRefusal.from_fault(
                fault,
                action=ctx.action or (ctx.budget.action if ctx.budget is not None else None),
                message_id=ctx.message_id,
                remote_addr=_environ_text(environ, "REMOTE_ADDR"),
                peer_subject=_environ_text(environ, "xds.peer_subject"),
                endpoint_url=self._endpoint_url(environ),
            )
            self._on_refusal(refusal)
        except Exception:  # noqa: BLE001 - an audit failure never changes the answer
            log.exception("the on_refusal hook failed: the refusal is answered, maybe not audited")

    def _budget(self, ctx: _Context, mtom: bool, hinted_action: str | None) -> RequestBudget:
        budget = RequestBudget(self.limits, self._widest, self.max_request_bytes, mtom)
        budget.announce(hinted_action)
        ctx.budget = budget
        return budget

    def _body_chunks(self, environ: WSGIEnvironment, budget: RequestBudget) -> Iterator[bytes]:
        """The request body in chunks, bounded by Content-Length and the request's budget."""
        raw = (environ.get("CONTENT_LENGTH") or "").strip()
        length: int | None = None
        if raw:
            try:
                length = int(raw)
                if length < 0:
                    raise ValueError
            except ValueError:
                raise SoapFault("Sender", f"invalid Content-Length {raw!r}") from None
        if length is not None:
            budget.check_length(length)
        stream = environ["wsgi.input"]
        remaining = length
        while remaining is None or remaining > 0:
            want = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
            chunk = stream.read(want)
            if not chunk:
                if remaining:
                    raise SoapFault(
                        "Sender", f"request body truncated: {remaining} of {length} announced bytes missing"
                    )
                break
            budget.add_body(len(chunk))
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk

    def _read_request(self, environ: WSGIEnvironment, ctx: _Context) -> SoapRequest:
        media_type, params = parse_media_type(environ.get("CONTENT_TYPE"))
        attachments: dict[str, Attachment] = {}
        if media_type == "application/soap+xml":
            budget = self._budget(ctx, False, params.get("action"))
            feed = EnvelopeFeed(lambda action: self._announced(ctx, budget, action))
            try:
                for chunk in self._body_chunks(environ, budget):
                    feed.feed(chunk)
            except BaseException:
                feed.discard()
                raise
            root = feed.close()
            mtom = False
        elif media_type == "multipart/related":
            mtom = True
            root, attachments = self._read_multipart(environ, params, ctx)
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
            ctx.action, ctx.message_id = claimed_addressing(header)
            check_must_understand(header, self.understood_headers)
            addressing = read_addressing(header)
        except SoapFault:
            for att in attachments.values():
                att.close()
            raise
        ctx.action = addressing.action
        ctx.message_id = ctx.relates_to = addressing.message_id
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

    @staticmethod
    def _announced(ctx: _Context, budget: RequestBudget, action: str) -> None:
        ctx.action = action
        budget.announce(action)

    def _read_multipart(
        self, environ: WSGIEnvironment, params: dict[str, str], ctx: _Context
    ) -> tuple[etree._Element, dict[str, Attachment]]:
        start_info = params.get("start-info")
        if start_info and parse_media_type(start_info)[0] == "text/xml":
            raise version_mismatch()
        related_type = parse_media_type(params.get("type", "application/xop+xml"))[0]
        if related_type not in ("application/xop+xml", "application/soap+xml"):
            raise SoapFault(
                "Sender", f"multipart/related type {related_type!r} is not supported; expected application/xop+xml"
            )
        hinted = params.get("action")
        if not hinted and start_info:
            hinted = parse_media_type(start_info)[1].get("action")
        budget = self._budget(ctx, True, hinted)
        reader = MultipartRequestReader(params, budget)
        try:
            for chunk in self._body_chunks(environ, budget):
                reader.write(chunk)
        except BaseException:
            reader.discard()
            raise
        root_part, attachments = reader.close()
        root_part.close()
        assert reader.envelope is not None
        return reader.envelope, attachments

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
    def _reply(
        self, start_response: StartResponse, request: SoapRequest, response: SoapResponse
    ) -> Iterable[bytes]:
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

    def _fault_reply(
        self, start_response: StartResponse, fault: SoapFault, relates_to: str | None
    ) -> Iterable[bytes]:
        blocks = response_headers(WSA_FAULT_ACTION, relates_to) + list(fault.header_blocks)
        envelope = serialize_envelope(fault.to_element(), blocks)
        ctype = f"application/soap+xml; charset=UTF-8; action={quote_param(WSA_FAULT_ACTION)}"
        start_response(
            _status_line(fault.status), [("Content-Type", ctype), ("Content-Length", str(len(envelope)))]
        )
        return [envelope]
