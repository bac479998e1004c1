"""What the SOAP edge tells the audit trail about a request it refused before any handler ran.

IHE ITI TF-2 3.20 (ATNA) wants security-relevant events recorded, and a refused request is
one: a malformed envelope, an entity-laden DOCTYPE or an oversized body is how a probe or an
attack looks from here. The handlers audit what they answer; everything the endpoint refuses
on its own is handed to the ``on_refusal`` hook of :class:`~xds.soap.endpoint.SoapEndpoint`
as one :class:`EdgeRefusal`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from xds.soap.faults import SoapFault


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class EdgeRefusal:
    """One request the SOAP endpoint answered with a fault before any handler ran.

    Fields map onto an audit record as follows (``xds.context.Caller`` names in brackets):
    ``remote_addr`` [remote_addr] and ``peer_subject`` [node_subject] are the Source
    participant, ``endpoint_url`` [endpoint] the Destination; ``code``, ``subcode`` and
    ``reason`` are the SOAP 1.2 fault sent back (SOAP 1.2 Part 1, 5.4), ``http_status``
    its HTTP status (SOAP 1.2 Part 2, Table 20, or 413/415); ``action`` and ``message_id`` are
    the wsa:Action and wsa:MessageID the envelope carried, when it was parsed far enough to
    read them (WS-Addressing 1.0 SOAP Binding, 6), even if they were then refused.

    Every text the peer controls (reason, action, message id, subject) is cut to
    :attr:`MAX_TEXT` characters: a hostile request must not be able to bloat the trail.
    The values are raw otherwise; a sink that writes them to a text log goes through
    :mod:`xds.logsafe`.
    """

    MAX_TEXT: ClassVar[int] = 1024

    code: str
    """SOAP 1.2 fault code: Sender, Receiver, MustUnderstand, VersionMismatch, DataEncodingUnknown."""
    subcode: str | None
    """Clark-notation QName, e.g. ``{http://www.w3.org/2005/08/addressing}ActionNotSupported``."""
    reason: str
    """The fault's reason text, as sent to the peer."""
    http_status: int
    """400, 413, 415 or 500."""
    action: str | None
    """The request's wsa:Action, if the envelope was read far enough."""
    message_id: str | None
    """The request's wsa:MessageID, if the envelope was read far enough."""
    remote_addr: str | None
    """``REMOTE_ADDR`` of the WSGI environ: the network peer."""
    peer_subject: str | None
    """``xds.peer_subject``: the subject of the verified TLS client certificate, if any."""
    endpoint_url: str | None
    """The endpoint's own URL (``public_url``, else built from the server's name): never the Host header."""

    @classmethod
    def from_fault(
        cls,
        fault: SoapFault,
        *,
        action: str | None,
        message_id: str | None,
        remote_addr: str | None,
        peer_subject: str | None,
        endpoint_url: str | None,
    ) -> EdgeRefusal:
        """The refusal that ``fault`` answers, with the peer-controlled texts bounded."""
        limit = cls.MAX_TEXT
        return cls(
            code=fault.code,
            subcode=None if fault.subcode is None else _clip(fault.subcode, limit),
            reason=_clip(fault.reason, limit),
            http_status=fault.status,
            action=None if action is None else _clip(action, limit),
            message_id=None if message_id is None else _clip(message_id, limit),
            remote_addr=remote_addr,
            peer_subject=None if peer_subject is None else _clip(peer_subject, limit),
            endpoint_url=endpoint_url,
        )


RefusalHook = Callable[[EdgeRefusal], None]
"""The type of ``SoapEndpoint(on_refusal=...)``."""
