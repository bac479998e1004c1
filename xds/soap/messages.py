"""The request and response objects handed to and returned by operation handlers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from xds.soap.attachments import Attachment, OutgoingAttachment, decode_base64_text, normalize_content_id
from xds.soap.faults import SoapFault
from xds.soap.namespaces import NS_XMIME, NS_XOP, qname

XOP_INCLUDE = qname(NS_XOP, "Include")
XMIME_CONTENT_TYPE = qname(NS_XMIME, "contentType")


@dataclass
class SoapRequest:
    envelope: etree._Element
    header: etree._Element | None
    body: etree._Element
    action: str
    message_id: str | None
    reply_to: str | None
    attachments: dict[str, Attachment]
    environ: dict[str, Any]
    mtom: bool = False
    _decoded: list[Attachment] = field(default_factory=list, repr=False, compare=False)

    def binary_content(self, element: etree._Element) -> Attachment:
        """The bytes an element carries: the MTOM part its xop:Include names, or its inline base64 text."""
        include = element.find(XOP_INCLUDE)
        if include is not None:
            return self.resolve_include(include)
        content_type = element.get(XMIME_CONTENT_TYPE) or "application/octet-stream"
        attachment = decode_base64_text(element.text or "", element.get("id") or "", content_type)
        self._decoded.append(attachment)
        return attachment

    def resolve_include(self, include: etree._Element) -> Attachment:
        href = include.get("href")
        if not href:
            raise SoapFault("Sender", "xop:Include has no href attribute")
        if not href.strip().lower().startswith("cid:"):
            raise SoapFault("Sender", f"xop:Include href {href!r} is not a cid: URL")
        cid = normalize_content_id(href)
        attachment = self.attachments.get(cid)
        if attachment is None:
            raise SoapFault("Sender", f"MTOM part <{cid}> not found")
        return attachment

    def close(self) -> None:
        """Release the attachments (temporary files)."""
        for attachment in [*self.attachments.values(), *self._decoded]:
            attachment.close()


@dataclass
class SoapResponse:
    body: etree._Element
    action: str
    attachments: list[OutgoingAttachment] = field(default_factory=list)
    mtom: bool = False
