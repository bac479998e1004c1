"""Binary parts: incoming attachments (in memory or spooled to disk) and outgoing ones."""

from __future__ import annotations

import binascii
import io
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import quote, unquote

from lxml import etree

from xds.soap.faults import SoapFault
from xds.soap.namespaces import NS_XOP, qname

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

SPOOL_THRESHOLD = 1024 * 1024  # parts above 1 MiB live in a temporary file
CHUNK_SIZE = 64 * 1024

_WHITESPACE = str.maketrans("", "", " \t\r\n")


def normalize_content_id(value: str) -> str:
    """Content-ID header value or ``cid:`` URL -> the bare id (RFC 2392).

    Strips surrounding ``<>``, a ``cid:`` prefix, and URL-unquotes.
    """
    v = value.strip()
    if v.startswith("<") and v.endswith(">"):
        v = v[1:-1].strip()
    if v[:4].lower() == "cid:":
        v = v[4:]
    return unquote(v)


def cid_url(content_id: str) -> str:
    """The ``cid:`` URL naming a Content-ID (percent-encoding what must be)."""
    return "cid:" + quote(content_id, safe="@!$&'()*+,;=:-._~")


def make_xop_include(content_id: str) -> etree._Element:
    """An ``xop:Include`` element referring to ``content_id``."""
    el = etree.Element(qname(NS_XOP, "Include"), nsmap={"xop": NS_XOP})
    el.set("href", cid_url(content_id))
    return el


class _PositionalReader(io.RawIOBase):
    """An independent reader over a file descriptor (os.pread: no shared offset)."""

    def __init__(self, owner: BinaryIO, size: int) -> None:
        self._owner = owner  # keeps the file (and its descriptor) alive
        self._fd = owner.fileno()
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer)
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            return 0
        data = os.pread(self._fd, want, self._pos)
        n = len(data)
        view[:n] = data
        self._pos += n
        return n


class Attachment:
    """One MIME part, or one decoded inline base64 value.

    Small parts are held as bytes; parts over 1 MiB are in an anonymous
    temporary file (``file_backed`` is then True). ``open()`` gives an
    independent binary reader positioned at the start each time.
    Attachments of a request are closed when the request is finished.
    """

    def __init__(
        self,
        content_id: str,
        content_type: str,
        *,
        data: bytes | None = None,
        file: BinaryIO | None = None,
        size: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if (data is None) == (file is None):
            raise ValueError("give exactly one of data or file")
        self.content_id = content_id
        self.content_type = content_type
        self.headers = dict(headers or {})
        self._data = data
        self._file = file
        self.size = len(data) if data is not None else int(size or 0)

    @property
    def file_backed(self) -> bool:
        return self._file is not None

    def open(self) -> BinaryIO:
        if self._data is not None:
            return io.BytesIO(self._data)
        if self._file is None or self._file.closed:
            raise ValueError(f"attachment {self.content_id!r} is closed")
        return io.BufferedReader(_PositionalReader(self._file, self.size), CHUNK_SIZE)

    def read(self) -> bytes:
        if self._data is not None:
            return self._data
        with self.open() as fh:
            return fh.read()

    def iter_chunks(self, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        with self.open() as fh:
            while chunk := fh.read(chunk_size):
                yield chunk

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __repr__(self) -> str:
        where = "file" if self.file_backed else "memory"
        return f"<Attachment {self.content_id!r} {self.content_type!r} {self.size} bytes in {where}>"


class AttachmentWriter:
    """Accumulates the bytes of one part, moving them to a temporary file past the threshold."""

    def __init__(self, threshold: int = SPOOL_THRESHOLD) -> None:
        self._threshold = threshold
        self._buffer = bytearray()
        self._file: BinaryIO | None = None
        self.size = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if self._file is not None:
            self._file.write(data)
            return
        self._buffer += data
        if len(self._buffer) > self._threshold:
            self._file = tempfile.TemporaryFile(prefix="xds-part-")
            self._file.write(self._buffer)
            self._buffer = bytearray()

    def finish(self, content_id: str, content_type: str, headers: dict[str, str] | None = None) -> Attachment:
        if self._file is not None:
            self._file.flush()
            return Attachment(content_id, content_type, file=self._file, size=self.size, headers=headers)
        return Attachment(content_id, content_type, data=bytes(self._buffer), headers=headers)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
        self._buffer = bytearray()


def decode_base64_text(text: str, content_id: str = "", content_type: str = "application/octet-stream") -> Attachment:
    """Decode an inline base64 value chunk by chunk into an :class:`Attachment`.

    Whitespace is ignored; any other character outside the base64 alphabet,
    misplaced padding or a bad length is a Sender fault.
    """
    writer = AttachmentWriter()
    carry = ""
    padded = False
    step = CHUNK_SIZE
    try:
        for start in range(0, len(text), step):
            piece = carry + text[start : start + step].translate(_WHITESPACE)
            usable = len(piece) - len(piece) % 4
            carry = piece[usable:]
            if not usable:
                continue
            if padded:
                raise ValueError("data after padding")
            block = piece[:usable]
            writer.write(binascii.a2b_base64(block, strict_mode=True))
            padded = block.endswith("=")
        if carry:
            if padded:
                raise ValueError("data after padding")
            raise ValueError("length is not a multiple of 4")
    except (binascii.Error, ValueError) as exc:
        writer.discard()
        raise SoapFault("Sender", f"invalid base64 content: {exc}") from None
    return writer.finish(content_id, content_type)


@dataclass
class OutgoingAttachment:
    """A part of an MTOM response; ``stream()`` yields its bytes in chunks."""

    content_id: str
    content_type: str
    stream: Callable[[], Iterable[bytes]]

    @classmethod
    def from_bytes(cls, content_id: str, content_type: str, data: bytes) -> OutgoingAttachment:
        data = bytes(data)
        return cls(content_id, content_type, lambda: (data,))

    @classmethod
    def from_file(cls, content_id: str, content_type: str, path: str | os.PathLike[str]) -> OutgoingAttachment:
        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as fh:
                while chunk := fh.read(CHUNK_SIZE):
                    yield chunk

        return cls(content_id, content_type, chunks)

    @classmethod
    def from_attachment(cls, content_id: str, attachment: Attachment) -> OutgoingAttachment:
        return cls(content_id, attachment.content_type, attachment.iter_chunks)
