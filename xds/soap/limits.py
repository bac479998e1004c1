"""Bounded memory per request: what each transaction may send, and how much of it was read.

A SOAP endpoint serves several transactions on one URL (``/registry``: ITI-18, ITI-42, ITI-57;
``/repository``: ITI-41, ITI-43) whose reasonable sizes differ by orders of magnitude: a stored
query fits in a few kilobytes, a submission's metadata in megabytes, its documents in hundreds of
megabytes. One size for all let a 95 MB ITI-18 cost 1.3 GB of RSS (issue 19, finding 5). Each
operation therefore has its own :class:`MessageLimits`, applied as soon as the request says which
operation it is, and the endpoint's widest limits until then.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

from xds.soap.faults import SoapFault

MIME_PART_OVERHEAD = 4 * 1024
"""Bytes of boundary and part headers allowed per MIME part on top of its content."""


@dataclass(frozen=True)
class MessageLimits:
    """What one operation may receive.

    ``envelope_bytes`` bounds the SOAP envelope: the whole body of an ``application/soap+xml``
    request, the root part (the XOP document) of an MTOM one. ``attachment_bytes`` bounds the
    sum of the other MIME parts (the documents of ITI-41, 0 for a transaction that carries none),
    ``parts`` the number of MIME parts, the root included (XOP 1.0, 4.1).
    """

    envelope_bytes: int
    attachment_bytes: int = 0
    parts: int = 1

    def body_bytes(self, mtom: bool) -> int:
        """The largest HTTP body these limits allow: the envelope, or every part with its framing."""
        if not mtom:
            return self.envelope_bytes
        return self.envelope_bytes + self.attachment_bytes + self.parts * MIME_PART_OVERHEAD

    @staticmethod
    def widest(limits: list[MessageLimits]) -> MessageLimits:
        """Limits no narrower than any of ``limits``: what a request may use before it names its operation."""
        return MessageLimits(max(lim.envelope_bytes for lim in limits),
                             max(lim.attachment_bytes for lim in limits),
                             max(lim.parts for lim in limits))


def too_large(reason: str) -> SoapFault:
    """The refusal of a request over a limit: a Sender fault with HTTP 413 (RFC 9110, 15.5.14)."""
    return SoapFault("Sender", reason, http_status=413)


class RequestBudget:
    """The limits of one request while it is read, narrowed once its wsa:Action is known.

    ``by_action`` holds each operation's limits, ``default`` the endpoint's widest; ``cap`` is
    the endpoint's absolute bound on the body (``max_request_bytes``) whatever the operation.
    Counters are fed by the reader; each ``add_*`` raises the 413 fault as soon as a bound is
    passed, so a request is refused after at most one read chunk past its limit.
    """

    def __init__(self, by_action: dict[str, MessageLimits], default: MessageLimits, cap: int, mtom: bool) -> None:
        self._by_action = by_action
        self._cap = cap
        self._mtom = mtom
        self.limits = default
        self.action: str | None = None
        self.body = 0
        self.envelope = 0
        self.attachments = 0
        self.parts = 0

    @property
    def body_limit(self) -> int:
        return min(self._cap, self.limits.body_bytes(self._mtom))

    def _named(self) -> str:
        return f" for {self.action}" if self.action else ""

    def announce(self, action: str | None) -> None:
        """Take the operation's limits for ``action`` (the Content-Type's or the envelope's wsa:Action).

        An action the endpoint does not serve keeps the limits as they are: the dispatch refuses it.
        The envelope's wsa:Action replaces the Content-Type's hint (SOAP 1.2 Part 2, 7.1.4).
        Checks again what was already read against the narrower limits.
        """
        if not action or action not in self._by_action:
            return
        self.action = action
        self.limits = self._by_action[action]
        self.add_body(0)
        self.add_envelope(0)
        self.add_attachment(0)
        if self.parts > self.limits.parts:
            self._too_many_parts()

    def check_length(self, length: int) -> None:
        """Refuse a Content-Length over the limit before a byte of the body is read."""
        if length > self.body_limit:
            raise too_large(f"request exceeds the maximum size of {self.body_limit} bytes{self._named()}"
                            f" (Content-Length {length})")

    def add_body(self, n: int) -> None:
        self.body += n
        if self.body > self.body_limit:
            raise too_large(f"request exceeds the maximum size of {self.body_limit} bytes{self._named()}")

    def add_envelope(self, n: int) -> None:
        self.envelope += n
        if self._mtom and self.envelope > self.limits.envelope_bytes:
            raise too_large(f"SOAP envelope (the root MIME part) exceeds the maximum size of "
                            f"{self.limits.envelope_bytes} bytes{self._named()}")

    def add_attachment(self, n: int) -> None:
        self.attachments += n
        if self.attachments > self.limits.attachment_bytes:
            raise too_large(f"MIME attachments exceed the maximum size of {self.limits.attachment_bytes} bytes"
                            f"{self._named()}")

    def add_part(self) -> None:
        self.parts += 1
        if self.parts > self.limits.parts:
            self._too_many_parts()

    def _too_many_parts(self) -> None:
        raise too_large(f"MIME multipart body holds more than {self.limits.parts} parts{self._named()}")


def trim_memory() -> bool:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim(0)``, every arena).

    Parsing a large envelope allocates many small blocks (libxml2 nodes, Python objects); once
    freed they stay in the process's heap, so a worker that served one large request kept its
    peak RSS for good. False where the C library has no ``malloc_trim`` (musl, macOS).
    """
    try:
        malloc_trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    malloc_trim(0)
    return True
