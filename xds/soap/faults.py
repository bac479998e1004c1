"""SOAP 1.2 faults: the exception raised anywhere in the stack and its XML form."""

from __future__ import annotations

from collections.abc import Iterable
from copy import deepcopy

from lxml import etree

from xds.soap.namespaces import NS_SOAP12, NS_WSA, NS_XML, qname, split_qname

FAULT_CODES = frozenset({"Sender", "Receiver", "MustUnderstand", "VersionMismatch", "DataEncodingUnknown"})

# Prefixes used when a subcode QName has to be written as "prefix:local".
_KNOWN_PREFIXES = {NS_WSA: "wsa", NS_SOAP12: "env"}


class SoapFault(Exception):
    """A SOAP 1.2 fault.

    ``code`` is one of the SOAP 1.2 fault codes (local name in the envelope
    namespace); ``subcode`` a Clark-notation QName such as
    ``{http://www.w3.org/2005/08/addressing}ActionNotSupported``.

    Keyword-only extras: ``header_blocks`` are put in the fault envelope's
    Header (soap:NotUnderstood, soap:Upgrade); ``http_status`` overrides the
    status of the SOAP 1.2 HTTP binding (used for 413 and 415).
    """

    def __init__(
        self,
        code: str,
        reason: str,
        subcode: str | None = None,
        detail: etree._Element | None = None,
        *,
        header_blocks: Iterable[etree._Element] = (),
        http_status: int | None = None,
    ) -> None:
        if code not in FAULT_CODES:
            raise ValueError(f"unknown SOAP 1.2 fault code {code!r}")
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.subcode = subcode
        self.detail = detail
        self.header_blocks = list(header_blocks)
        self.http_status = http_status

    @property
    def status(self) -> int:
        """HTTP status per SOAP 1.2 Part 2, Table 20 (Sender -> 400, else 500)."""
        if self.http_status is not None:
            return self.http_status
        return 400 if self.code == "Sender" else 500

    def __repr__(self) -> str:
        return f"SoapFault({self.code!r}, {self.reason!r}, subcode={self.subcode!r})"

    def to_element(self) -> etree._Element:
        """The ``env:Fault`` element for the Body of a fault message."""
        fault = etree.Element(qname(NS_SOAP12, "Fault"), nsmap={"env": NS_SOAP12})
        code = etree.SubElement(fault, qname(NS_SOAP12, "Code"))
        etree.SubElement(code, qname(NS_SOAP12, "Value")).text = "env:" + self.code
        if self.subcode:
            ns, local = split_qname(self.subcode)
            if ns:
                prefix = _KNOWN_PREFIXES.get(ns, "sc")
                sub = etree.SubElement(code, qname(NS_SOAP12, "Subcode"), nsmap={prefix: ns})
                text = f"{prefix}:{local}"
            else:
                sub = etree.SubElement(code, qname(NS_SOAP12, "Subcode"))
                text = local
            etree.SubElement(sub, qname(NS_SOAP12, "Value")).text = text
        reason = etree.SubElement(fault, qname(NS_SOAP12, "Reason"))
        text_el = etree.SubElement(reason, qname(NS_SOAP12, "Text"))
        text_el.set(qname(NS_XML, "lang"), "en")
        text_el.text = self.reason
        if self.detail is not None:
            detail = etree.SubElement(fault, qname(NS_SOAP12, "Detail"))
            detail.append(deepcopy(self.detail))
        return fault

