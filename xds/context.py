"""Who is calling: the identity a transport establishes and every actor, audit record and
access decision reads.

The transport fills it (TLS client certificate, XUA SAML assertion of ITI-40, portal log-in);
the actors never look at HTTP or SOAP headers themselves.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CodedValue:
    code: str
    scheme: str = ""
    display: str = ""


@dataclass
class Caller:
    """The calling node and, when known, the person behind it (ITI TF-2 3.40, DICOM PS3.15 A.5)."""
    remote_addr: str | None = None
    """Network address of the calling node."""
    node_subject: str | None = None
    """Subject of the TLS client certificate: the secure node's identity (ATNA)."""
    endpoint: str | None = None
    """The URL the request was sent to (audit Destination participant)."""
    reply_to: str | None = None
    """wsa:ReplyTo / wsa:From address of the requester (audit Source participant)."""
    user_id: str | None = None
    """The person: XUA subject NameID (the professional's national id, e.g. RPPS), or a portal login."""
    user_name: str | None = None
    roles: list[CodedValue] = field(default_factory=list)
    organization: str | None = None
    organization_id: str | None = None
    purpose_of_use: list[CodedValue] = field(default_factory=list)
    patient_id: str | None = None
    """resource-id of the XUA assertion: the patient the access is for."""
    access_mode: str = "normal"
    """TRE_R248: ``normal``, ``bris_de_glace`` (break-glass) or ``centre_15`` (emergency call centre)."""
    kind: str = "node"
    """``node`` (system), ``professional``, ``patient``, ``auditor``."""
    authenticated: bool = False
    pending_assertion: tuple[str, float] | None = None
    """(ID, NotOnOrAfter) of a verified XUA assertion whose replay check the access policy still
    owes: it is done with the first read of the patient's record (one statement)."""

    @property
    def is_emergency(self) -> bool:
        return self.access_mode in ("bris_de_glace", "centre_15")


def caller_from_environ(environ: dict[str, Any]) -> Caller:
    """What the HTTP layer alone tells: address, TLS peer and the URL called.

    The URL is the server's own (PEP 3333 SERVER_NAME and SERVER_PORT), never the Host header,
    which the client writes: it becomes the audit record's Destination participant."""
    scheme = environ.get("wsgi.url_scheme", "http")
    host = f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    return Caller(remote_addr=environ.get("REMOTE_ADDR"), node_subject=environ.get("xds.peer_subject"),
                  endpoint=f"{scheme}://{host}{path}")
