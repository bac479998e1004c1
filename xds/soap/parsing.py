"""Safe XML parsing: no DTD, no entity expansion, no network, no huge trees."""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from xds.soap.faults import SoapFault

_DOCTYPE = b"<!DOCTYPE"
# The start of an element: '<' followed by a name start character.
_ELEMENT_START = re.compile(rb"<[A-Za-z_:\x80-\xff]")


class _RefuseExternal(etree.Resolver):
    """Resolve every external reference to nothing: nothing is ever read."""

    # lxml calls resolve(system_url, public_id, context); lxml-stubs omit the context
    def resolve(self, url: str, pubid: str, context: Any) -> Any:  # type: ignore[override]
        return self.resolve_string("", context, base_url=None)


def safe_parser() -> etree.XMLParser:
    """A new parser configured for untrusted input.

    DOCTYPEs are refused by :func:`parse_xml` (the parser itself only makes
    sure nothing is loaded or expanded).
    """
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        remove_blank_text=False,
        collect_ids=False,
    )
    parser.resolvers.add(_RefuseExternal())
    return parser


def _doctype_in_prolog(data: bytes) -> bool:
    pos = data.find(_DOCTYPE)
    if pos < 0:
        return False
    # A DOCTYPE can only precede the root element; after it, it is just text.
    return _ELEMENT_START.search(data, 0, pos) is None


def parse_xml(data: bytes) -> etree._Element:
    """Parse untrusted bytes; raise ``SoapFault(Sender)`` on anything unsafe or malformed."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("parse_xml expects bytes")
    data = bytes(data)
    if not data.strip():
        raise SoapFault("Sender", "request is not well-formed XML: empty document")
    if _doctype_in_prolog(data):
        raise SoapFault("Sender", "DTDs are not allowed")
    try:
        root = etree.fromstring(data, safe_parser())
    except etree.XMLSyntaxError as exc:
        raise SoapFault("Sender", f"request is not well-formed XML: {exc}") from None
    docinfo = root.getroottree().docinfo
    # lxml-stubs' DocInfo lacks doctype
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:  # type: ignore[union-attr]
        # Reached for encodings the byte scan above cannot see (UTF-16 ...).
        raise SoapFault("Sender", "DTDs are not allowed")
    return root
