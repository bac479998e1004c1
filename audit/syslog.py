"""Syslog framing of audit messages (ITI TF-2 3.20.6; RFC 5424, 5425, 5426).

``<85>1 TIMESTAMP HOST APP PROCID IHE+RFC-3881 - <xml>``: facility 10 (security/authorization),
severity 5 (notice), MSGID ``IHE+RFC-3881``, no structured data. Over TLS each message is
preceded by its length in octets (RFC 5425 section 4.3, octet counting); over UDP one message is
one datagram (RFC 5426 section 3.1).
"""
from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

PRI = 85
MSGID = "IHE+RFC-3881"
APP_NAME = "dmp-xds"
MAX_FRAME = 1024 * 1024
"""Largest message the ARR accepts over TLS; a bigger announced length ends the connection."""

_HEADER = re.compile(rb"<(\d{1,3})>([1-9]\d{0,2}) (\S+) (\S+) (\S+) (\S+) (\S+) ")


class SyslogError(ValueError):
    """Not an RFC 5424 message, or a broken RFC 5425 frame."""


def encode(xml: bytes, hostname: str | None = None, app_name: str = APP_NAME, procid: str | None = None,
           timestamp: datetime | None = None, msgid: str = MSGID) -> bytes:
    """One RFC 5424 message carrying ``xml`` as MSG."""
    ts = (timestamp or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    host = _field(hostname or socket.gethostname(), 255)
    proc = _field(procid or str(os.getpid()), 128)
    header = f"<{PRI}>1 {ts} {host} {_field(app_name, 48)} {proc} {_field(msgid, 32)} - "
    return header.encode("ascii") + xml


def _field(value: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, at most ``limit`` characters (RFC 5424 6.2)."""
    clean = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return clean or "-"


def frame(message: bytes) -> bytes:
    """RFC 5425 octet counting: ``MSG-LEN SP SYSLOG-MSG``."""
    return str(len(message)).encode("ascii") + b" " + message


@dataclass
class SyslogMessage:
    pri: int
    version: int
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    msg: bytes
    """MSG after the structured data (a UTF-8 BOM removed)."""


def parse(data: bytes) -> SyslogMessage:
    """Split an RFC 5424 message (section 6); structured data is skipped, MSG kept as bytes."""
    m = _HEADER.match(data)
    if m is None:
        raise SyslogError("not an RFC 5424 syslog message (HEADER)")
    pri = int(m.group(1))
    if pri > 191:
        raise SyslogError(f"PRI {pri} out of range")
    rest = data[m.end():]
    rest = _skip_structured_data(rest)
    if rest.startswith(b" "):
        rest = rest[1:]
    if rest.startswith(b"\xef\xbb\xbf"):
        rest = rest[3:]
    g = [x.decode("ascii", "replace") for x in m.groups()]
    return SyslogMessage(pri, int(g[1]), g[2], g[3], g[4], g[5], g[6], rest)


def _skip_structured_data(rest: bytes) -> bytes:
    if rest.startswith(b"-"):
        return rest[1:]
    if not rest.startswith(b"["):
        raise SyslogError("structured data must be '-' or start with '['")
    i, n, quoted = 0, len(rest), False
    while i < n:
        c = rest[i:i + 1]
        if quoted:
            if c == b"\\":
                i += 1
            elif c == b'"':
                quoted = False
        elif c == b'"':
            quoted = True
        elif c == b"]":
            if rest[i + 1:i + 2] != b"[":
                return rest[i + 1:]
        i += 1
    raise SyslogError("unterminated structured data")


class FrameReader:
    """Reads RFC 5425 frames from a stream socket (or anything with ``recv``)."""

    def __init__(self, sock, max_frame: int = MAX_FRAME) -> None:
        self.sock = sock
        self.max_frame = max_frame
        self.buffer = bytearray()

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def next(self) -> bytes | None:
        """The next message, None at a clean end of stream; SyslogError on a bad frame."""
        while True:
            sp = self.buffer.find(b" ", 0, 12)
            if sp > 0:
                break
            if len(self.buffer) >= 12 or (self.buffer and not self.buffer[:len(self.buffer)].isdigit()):
                raise SyslogError("RFC 5425 frame must start with MSG-LEN SP")
            if not self._fill():
                if self.buffer:
                    raise SyslogError("stream ended inside a frame header")
                return None
        digits = bytes(self.buffer[:sp])
        if not digits.isdigit() or digits.startswith(b"0"):
            raise SyslogError("RFC 5425 MSG-LEN must be a positive decimal number")
        length = int(digits)
        if length > self.max_frame:
            raise SyslogError(f"frame of {length} octets exceeds the limit of {self.max_frame}")
        end = sp + 1 + length
        while len(self.buffer) < end:
            if not self._fill():
                raise SyslogError("stream ended inside a frame")
        message = bytes(self.buffer[sp + 1:end])
        del self.buffer[:end]
        return message
