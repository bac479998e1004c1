"""One XML parser configuration for everything that reads bytes we did not write ourselves.

No DTD, no entity expansion, no network, no huge trees (DESIGN.md section 3, point 2).
"""
from __future__ import annotations

from lxml import etree


def safe_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False,
                           dtd_validation=False, remove_comments=False)


class UnsafeXML(ValueError):
    pass


def parse_bytes(data: bytes) -> etree._Element:
    """Parse ``data`` or raise ``UnsafeXML``/``etree.XMLSyntaxError``; a DOCTYPE is always refused."""
    root = etree.fromstring(data, safe_parser())
    if root.getroottree().docinfo.doctype:  # type: ignore[union-attr]  # lxml-stubs' DocInfo lacks doctype
        raise UnsafeXML("DTDs are not allowed")
    return root
