"""MTOM/XOP: streaming split of multipart/related requests and streaming build of responses."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable, Iterator

from lxml import etree
from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import MultipartParser

from xds.soap.attachments import Attachment, AttachmentWriter, OutgoingAttachment, normalize_content_id
from xds.soap.faults import SoapFault
from xds.soap.limits import RequestBudget
from xds.soap.mediatype import parse_media_type, quote_param
from xds.soap.namespaces import NS_XOP, qname
from xds.soap.parsing import header_action, parse_xml

XOP_MEDIA_TYPE = "application/xop+xml"
SOAP12_MEDIA_TYPE = "application/soap+xml"
ROOT_MEDIA_TYPES = frozenset({XOP_MEDIA_TYPE, SOAP12_MEDIA_TYPE})
_ACCEPTED_ENCODINGS = frozenset({"", "binary", "8bit", "7bit"})
_MAX_PREAMBLE = 64 * 1024
_MAX_HEADERS_PER_PART = 32
_XOP_INCLUDE = qname(NS_XOP, "Include")


def _fault(reason: str) -> SoapFault:
    return SoapFault("Sender", reason)


def check_root_media_type(media_type: str, params: dict[str, str], where: str) -> None:
    """The root part must carry a SOAP 1.2 envelope."""
    if media_type not in ROOT_MEDIA_TYPES:
        raise _fault(f"{where} must be application/xop+xml, found {media_type or 'no Content-Type'}")
    inner = params.get("type", SOAP12_MEDIA_TYPE) if media_type == XOP_MEDIA_TYPE else SOAP12_MEDIA_TYPE
    inner_type, _ = parse_media_type(inner)
    if inner_type == "text/xml":
        raise SoapFault("VersionMismatch", "SOAP 1.1 is not supported; XDS.b requires SOAP 1.2")


class MultipartRequestReader:
    """Feed the body of a ``multipart/related`` request chunk by chunk.

    Parts are written to :class:`AttachmentWriter` s as they stream in (large
    ones land in temporary files). :meth:`close` checks the message was
    complete and returns ``(root, attachments)``.

    With a ``budget`` (a server reading a request) every part and byte is counted against it
    as it arrives, the root part is parsed as soon as it is complete (:attr:`envelope`) and its
    wsa:Action narrows the budget to that operation's limits; and every other part must be the
    content of an xop:Include of the envelope. XOP 1.0 (3.1, 4.1) makes the parts of a package
    the extracted content of its xop:Include elements: a part nothing references is no part of
    the SOAP message (the XMLP WG resolved issue 440 so: each part except the root referenced
    exactly once) and is refused rather than stored, parsed or kept; when the root comes first,
    as MTOM senders write it, at the first such part's headers.
    """

    def __init__(self, content_type_params: dict[str, str], budget: RequestBudget | None = None) -> None:
        boundary = content_type_params.get("boundary")
        if not boundary:
            raise _fault("multipart/related Content-Type has no boundary parameter")
        if len(boundary) > 70:
            raise _fault("MIME boundary is longer than 70 characters")
        start = content_type_params.get("start")
        self._start = normalize_content_id(start) if start else None
        self._delimiter = b"--" + boundary.encode("latin-1", "replace")
        try:
            self._parser = MultipartParser(
                self._delimiter[2:],
                callbacks={
                    "on_part_begin": self._on_part_begin,
                    "on_header_field": self._on_header_field,
                    "on_header_value": self._on_header_value,
                    "on_header_end": self._on_header_end,
                    "on_headers_finished": self._on_headers_finished,
                    "on_part_data": self._on_part_data,
                    "on_part_end": self._on_part_end,
                    "on_end": self._on_end,
                },
                max_header_count=_MAX_HEADERS_PER_PART,
            )
        except FormParserError as exc:
            raise _fault(f"bad MIME boundary: {exc}") from None
        self._preamble: bytearray | None = bytearray()
        self._ended = False
        self._part_index = -1
        self._headers: dict[str, str] = {}
        self._field = bytearray()
        self._value = bytearray()
        self._writer: AttachmentWriter | None = None
        self._part_cid: str | None = None
        self._part_type = ""
        self._part_is_root = False
        self._root: Attachment | None = None
        self._budget = budget
        self._referenced: set[str] | None = None
        self.envelope: etree._Element | None = None
        self.attachments: dict[str, Attachment] = {}

    # -- feeding -------------------------------------------------------
    def write(self, chunk: bytes) -> None:
        if self._ended:
            return  # epilogue
        if self._preamble is not None:
            chunk = self._skip_preamble(chunk)
            if not chunk:
                return
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise _fault(f"malformed MIME multipart body: {exc}") from None

    def _skip_preamble(self, chunk: bytes) -> bytes:
        assert self._preamble is not None
        self._preamble += chunk
        buf = self._preamble
        if buf.startswith(self._delimiter):
            pos = 0
        else:
            pos = buf.find(b"\r\n" + self._delimiter)
            if pos >= 0:
                pos += 2
        if pos < 0:
            if len(buf) > _MAX_PREAMBLE:
                raise _fault("MIME multipart body does not start with the boundary named in Content-Type")
            return b""
        self._preamble = None
        return bytes(buf[pos:])

    def close(self) -> tuple[Attachment, dict[str, Attachment]]:
        if not self._ended:
            self.discard()
            if self._part_index < 0:
                raise _fault("MIME multipart body holds no part with the boundary named in Content-Type")
            raise _fault("MIME multipart body is not closed: the closing boundary is missing (truncated message?)")
        if self._root is None:
            self.discard()
            if self._start:
                raise _fault(f"start part <{self._start}> named in Content-Type is not in the message")
            raise _fault("MIME multipart body has no root part")
        return self._root, self.attachments

    def _parse_root(self, root: Attachment) -> None:
        """Parse the XOP document, take its operation's limits, check the parts read before it."""
        assert self._budget is not None
        self.envelope = parse_xml(root.read())
        self._referenced = {normalize_content_id(include.get("href") or "")
                            for include in self.envelope.iter(_XOP_INCLUDE)}
        self._budget.announce(header_action(self.envelope))
        for cid in self.attachments:
            self._check_referenced(cid)

    def _check_referenced(self, cid: str) -> None:
        if self._referenced is not None and cid not in self._referenced:
            raise _fault(f"MIME part <{cid}> is not referenced by any xop:Include of the SOAP envelope "
                         "(XOP 1.0, 4.1: every part but the root is the content of an xop:Include)")

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.discard()
            self._writer = None
        for att in self.attachments.values():
            att.close()
        if self._root is not None:
            self._root.close()

    # -- python-multipart callbacks -----------------------------------
    def _on_part_begin(self) -> None:
        self._part_index += 1
        if self._budget is not None:
            self._budget.add_part()
        self._headers = {}
        self._field = bytearray()
        self._value = bytearray()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        name = self._field.decode("latin-1").strip().lower()
        self._headers[name] = self._value.decode("latin-1").strip()
        self._field = bytearray()
        self._value = bytearray()

    def _on_headers_finished(self) -> None:
        headers = self._headers
        media_type, params = parse_media_type(headers.get("content-type"))
        if media_type.startswith("multipart/"):
            raise _fault(f"nested multipart parts are not supported (part {self._part_index + 1} is {media_type})")
        encoding = headers.get("content-transfer-encoding", "").strip().lower()
        if encoding not in _ACCEPTED_ENCODINGS:
            raise _fault(f"Content-Transfer-Encoding {encoding!r} is not supported; MTOM parts must be binary")
        raw_cid = headers.get("content-id")
        cid = normalize_content_id(raw_cid) if raw_cid else None
        if self._start is not None:
            is_root = cid == self._start
        else:
            is_root = self._part_index == 0
        if is_root:
            where = f"start part <{cid}>" if self._start else "the first (root) MIME part"
            check_root_media_type(media_type, params, where)
        else:
            if not cid:
                raise _fault(f"MIME part {self._part_index + 1} has no Content-ID")
            if cid in self.attachments:
                raise _fault(f"duplicate Content-ID <{cid}> in MIME parts")
            self._check_referenced(cid)
        self._part_cid = cid
        self._part_type = headers.get("content-type", "application/octet-stream")
        self._part_is_root = is_root
        self._writer = AttachmentWriter()

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._writer is not None:
            if self._budget is not None:
                if self._part_is_root:
                    self._budget.add_envelope(end - start)
                else:
                    self._budget.add_attachment(end - start)
            self._writer.write(data[start:end])

    def _on_part_end(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            raise _fault(f"MIME part {self._part_index + 1} has no header/body separator")
        part = writer.finish(self._part_cid or "", self._part_type, self._headers)
        if self._part_is_root:
            if self._root is not None:
                part.close()
                raise _fault("more than one root part in MIME multipart body")
            self._root = part
            if self._budget is not None:
                self._parse_root(part)
        else:
            self.attachments[self._part_cid or ""] = part

    def _on_end(self) -> None:
        self._ended = True


# ---------------------------------------------------------------------------
# Responses


def new_boundary() -> str:
    return "MIMEBoundary_" + secrets.token_hex(16)


def new_root_content_id() -> str:
    return f"root.message.{uuid.uuid4().hex}@dmp-xds"


def mtom_content_type(boundary: str, root_cid: str) -> str:
    return (
        f"multipart/related; boundary={boundary}; type=\"{XOP_MEDIA_TYPE}\"; "
        f"start={quote_param('<' + root_cid + '>')}; start-info=\"{SOAP12_MEDIA_TYPE}\""
    )


def _header_text(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("line break in a MIME header value")
    return value


def mtom_body(
    envelope: bytes, attachments: Iterable[OutgoingAttachment], boundary: str, root_cid: str
) -> Iterator[bytes]:
    """The multipart/related body, chunk by chunk; attachment bytes are written unchanged."""
    delimiter = b"--" + boundary.encode("ascii")
    yield (
        delimiter
        + b"\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"application/soap+xml\""
        + b"\r\nContent-Transfer-Encoding: binary"
        + b"\r\nContent-ID: <" + _header_text(root_cid).encode("ascii") + b">\r\n\r\n"
    )
    yield envelope
    for att in attachments:
        yield (
            b"\r\n" + delimiter
            + b"\r\nContent-Type: " + _header_text(att.content_type).encode("latin-1")
            + b"\r\nContent-Transfer-Encoding: binary"
            + b"\r\nContent-ID: <" + _header_text(att.content_id).encode("latin-1") + b">\r\n\r\n"
        )
        for chunk in att.stream():
            if chunk:
                yield bytes(chunk)
    yield b"\r\n" + delimiter + b"--\r\n"
