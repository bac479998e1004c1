"""SOAP 1.2 calls for the client: plain or MTOM requests, MTOM replies split byte-exactly.

Envelopes come from :func:`xds.soap.client.request_envelope` (WS-Addressing as ITI TF-2 Appendix V
asks), multipart bodies from :mod:`xds.soap.mtom` (the same writer the server answers ITI-43 with)
and replies are split by :class:`xds.soap.mtom.MultipartRequestReader`, the streaming splitter the
server reads ITI-41 with: attachment bytes are never re-encoded, CR/LF at their ends are kept.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests
from lxml import etree

from client.errors import InputError, SoapFaultError, TransportError
from xds.soap.attachments import OutgoingAttachment, normalize_content_id
from xds.soap.client import content_type as plain_content_type
from xds.soap.client import request_envelope
from xds.soap.faults import SoapFault
from xds.soap.mediatype import parse_media_type
from xds.soap.mtom import MultipartRequestReader, mtom_body, mtom_content_type, new_boundary, new_root_content_id
from xds.soap.namespaces import NS_SOAP12, NS_WSSE, NS_XOP
from xds.soap.parsing import parse_xml

SOAP_BODY = "{%s}Body" % NS_SOAP12
SOAP_FAULT = "{%s}Fault" % NS_SOAP12
XOP_INCLUDE = "{%s}Include" % NS_XOP


@dataclass
class TlsOptions:
    """Client certificate and key (PEM) for mutual TLS, and the CA bundle to check the server with."""
    cert: str | None = None
    key: str | None = None
    ca: str | None = None


@dataclass
class Reply:
    http_status: int
    content_type: str
    envelope: etree._Element
    attachments: dict[str, bytes] = field(default_factory=dict)
    """Content-ID (bare) -> bytes, exactly as the MIME part carried them."""

    @property
    def body(self) -> etree._Element:
        body = self.envelope.find(SOAP_BODY)
        child = next((c for c in body if isinstance(c.tag, str)), None) if body is not None else None
        if child is None:
            raise TransportError("the reply has no SOAP Body content")
        return child

    def resolve(self, el: etree._Element) -> bytes:
        """The bytes of an element holding an ``xop:Include`` (or inline base64)."""
        inc = el.find(XOP_INCLUDE)
        if inc is not None:
            cid = normalize_content_id(inc.get("href", ""))
            if cid not in self.attachments:
                raise TransportError(f"the reply refers to MIME part <{cid}> that it does not carry")
            return self.attachments[cid]
        import base64
        return base64.b64decode("".join((el.text or "").split()))


def load_assertion(path: str | Path) -> etree._Element:
    """A ``wsse:Security`` header holding the XUA assertion of ``path`` (or the file's own Security element)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the assertion file {path}: {exc.strerror}") from None
    try:
        root = parse_xml(data)
    except SoapFault as exc:
        raise InputError(f"{path} is not an XML assertion: {exc}") from None
    if root.tag == "{%s}Security" % NS_WSSE:
        return root
    sec = etree.Element("{%s}Security" % NS_WSSE, nsmap={"wsse": NS_WSSE})
    sec.append(root)
    return sec


class Transport:
    """One HTTP session (keep-alive, TLS options) sending SOAP 1.2 requests."""

    def __init__(self, tls: TlsOptions | None = None, assertion: etree._Element | str | Path | None = None,
                 timeout: float = 120.0, session: requests.Session | None = None) -> None:
        self.session = session or requests.Session()
        self.timeout = timeout
        tls = tls or TlsOptions()
        if tls.cert:
            self.session.cert = (tls.cert, tls.key) if tls.key else tls.cert
        self.verify = tls.ca or None
        """The CA bundle of ``--tls-ca``, passed with each request: requests lets REQUESTS_CA_BUNDLE
        or CURL_CA_BUNDLE override a session's ``verify``, not a request's. None: requests' default
        (those variables, else its own bundle)."""
        if assertion is not None and not isinstance(assertion, etree._Element):
            assertion = load_assertion(assertion)
        self.assertion = assertion

    def close(self) -> None:
        self.session.close()

    # ------------------------------------------------------------------ requests
    def encode(self, url: str, action: str, body: etree._Element,
               attachments: Sequence[tuple[str, str, bytes]] = ()) -> tuple[bytes, dict[str, str]]:
        """The HTTP body and headers; with ``attachments`` [(cid, content type, bytes)] an MTOM package."""
        headers = (self.assertion,) if self.assertion is not None else ()
        env = request_envelope(action, url, body, extra_headers=tuple(etree.fromstring(etree.tostring(h))
                                                                       for h in headers))
        data = etree.tostring(env, xml_declaration=True, encoding="UTF-8")
        if not attachments:
            return data, {"Content-Type": plain_content_type(action)}
        boundary, root_cid = new_boundary(), new_root_content_id()
        parts = [OutgoingAttachment.from_bytes(cid, ctype, content) for cid, ctype, content in attachments]
        ctype = mtom_content_type(boundary, root_cid).replace(
            'start-info="application/soap+xml"', f'start-info="application/soap+xml; action=\\"{action}\\""')
        return b"".join(mtom_body(data, parts, boundary, root_cid)), {"Content-Type": ctype}

    def call(self, url: str, action: str, body: etree._Element,
             attachments: Sequence[tuple[str, str, bytes]] = ()) -> Reply:
        """POST and decode; SOAP faults raise :class:`SoapFaultError`, the rest :class:`TransportError`."""
        data, headers = self.encode(url, action, body, attachments)
        try:
            resp = self.session.post(url, data=data, headers=headers, timeout=self.timeout, verify=self.verify)
        except requests.exceptions.SSLError as exc:
            raise TransportError(f"TLS failure talking to {url}: {_reason(exc)}") from None
        except requests.exceptions.ConnectionError as exc:
            raise TransportError(f"cannot connect to {url}: {_reason(exc)} (is the server running?)") from None
        except requests.exceptions.Timeout:
            raise TransportError(f"no answer from {url} within {self.timeout:g} s") from None
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema) as exc:
            raise InputError(f"bad URL {url!r}: {exc}") from None
        except (OSError, requests.RequestException) as exc:
            raise TransportError(f"request to {url} failed: {exc}") from None
        reply = decode_reply(resp.status_code, resp.headers.get("Content-Type", ""), resp.content, url)
        body = reply.body
        if body.tag == SOAP_FAULT:
            code = body.findtext(f"{{{NS_SOAP12}}}Code/{{{NS_SOAP12}}}Value") or "?"
            sub = body.findtext(f"{{{NS_SOAP12}}}Code/{{{NS_SOAP12}}}Subcode/{{{NS_SOAP12}}}Value")
            reason = body.findtext(f"{{{NS_SOAP12}}}Reason/{{{NS_SOAP12}}}Text") or ""
            raise SoapFaultError(code + (f" ({sub})" if sub else ""), reason)
        return reply


def _reason(exc: Exception) -> str:
    """The innermost cause of a requests/urllib3 error, shortened."""
    inner = exc
    while inner.args and isinstance(inner.args[0], Exception):
        inner = inner.args[0]
    text = str(getattr(inner, "reason", None) or inner)
    return text.split(": ", 1)[-1] if "Max retries" in text else text


def split_multipart(data: bytes, content_type: str) -> tuple[bytes, str, dict[str, bytes]]:
    """A multipart/related body -> (root part bytes, root content type, {content id: bytes})."""
    media, params = parse_media_type(content_type)
    if media != "multipart/related":
        raise ValueError(f"not multipart/related: {content_type}")
    reader = MultipartRequestReader(params)
    reader.write(data)
    root, attachments = reader.close()
    try:
        return root.read(), root.content_type, {cid: a.read() for cid, a in attachments.items()}
    finally:
        reader.discard()


def decode_reply(status: int, content_type: str, data: bytes, url: str = "") -> Reply:
    media, _ = parse_media_type(content_type)
    try:
        if media == "multipart/related":
            root, _, attachments = split_multipart(data, content_type)
            env = parse_xml(root)
        elif media in ("application/soap+xml", "text/xml", "application/xml"):
            env, attachments = parse_xml(data), {}
        else:
            snippet = data[:200].decode("utf-8", "replace").strip()
            raise TransportError(f"{url or 'the server'} answered HTTP {status} with {media or 'no content type'}, "
                                 f"not SOAP: {snippet!r}")
    except SoapFault as exc:
        raise TransportError(f"{url or 'the server'} answered HTTP {status} with a malformed SOAP reply: "
                             f"{exc.reason if hasattr(exc, 'reason') else exc}") from None
    if env.tag != "{%s}Envelope" % NS_SOAP12:
        raise TransportError(f"{url or 'the server'} answered HTTP {status} without a SOAP 1.2 Envelope")
    return Reply(status, content_type, env, attachments)
