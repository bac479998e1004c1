"""Safe XML parsing: no DTD, no entity expansion, no network, no huge trees."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from lxml import etree

from xds.soap.faults import SoapFault
from xds.soap.namespaces import NS_SOAP12, NS_WSA, qname

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
    parser = etree.XMLParser(**_SAFE_OPTIONS)
    parser.resolvers.add(_RefuseExternal())
    return parser


_SAFE_OPTIONS: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "huge_tree": False,
    "load_dtd": False,
    "dtd_validation": False,
    "attribute_defaults": False,
    "remove_blank_text": False,
    "collect_ids": False,
}


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
    _refuse_dtd(root)
    return root


def _refuse_dtd(root: etree._Element) -> None:
    docinfo = root.getroottree().docinfo
    # lxml-stubs' DocInfo lacks doctype
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:  # type: ignore[attr-defined]
        # Reached for encodings the byte scan cannot see (UTF-16 ...).
        raise SoapFault("Sender", "DTDs are not allowed")


_WSA_ACTION = qname(NS_WSA, "Action")
_SOAP12_HEADER = qname(NS_SOAP12, "Header")
_SOAP12_ENVELOPE = qname(NS_SOAP12, "Envelope")


class EnvelopeFeed:
    """Parse an untrusted envelope chunk by chunk, as :func:`parse_xml` does at once.

    The bytes are never joined: the tree grows as they arrive. As soon as the parser has read
    the first wsa:Action of the SOAP 1.2 Header (which precedes the Body, SOAP 1.2 Part 1, 5.1)
    ``on_action`` is called with its text, so that the endpoint can hold the rest of the body to
    that operation's limits while it streams in (issue 19, finding 5).
    """

    def __init__(self, on_action: Callable[[str], None]) -> None:
        self._parser = etree.XMLPullParser(events=("end",), tag=_WSA_ACTION, **_SAFE_OPTIONS)
        self._parser.resolvers.add(_RefuseExternal())
        self._on_action: Callable[[str], None] | None = on_action
        self._prolog: bytearray | None = bytearray()
        self._content = False

    def feed(self, chunk: bytes) -> None:
        if not self._content and chunk.strip():
            self._content = True
        if self._prolog is not None:
            self._prolog += chunk
            match = _ELEMENT_START.search(self._prolog)
            head = self._prolog if match is None else self._prolog[: match.start()]
            if _DOCTYPE in head:
                raise SoapFault("Sender", "DTDs are not allowed")
            if match is not None:
                self._prolog = None
        try:
            self._parser.feed(chunk)
        except etree.XMLSyntaxError as exc:
            raise SoapFault("Sender", f"request is not well-formed XML: {exc}") from None
        self._read_events()

    def _read_events(self) -> None:
        for _event, element in self._parser.read_events():
            if self._on_action is None or not isinstance(element, etree._Element):
                continue
            header = element.getparent()
            if header is None or header.tag != _SOAP12_HEADER:
                continue
            envelope = header.getparent()
            if envelope is None or envelope.tag != _SOAP12_ENVELOPE or envelope.getparent() is not None:
                continue
            on_action, self._on_action = self._on_action, None
            on_action((element.text or "").strip())

    def close(self) -> etree._Element:
        """The parsed root; a Sender fault for an empty, malformed or DTD-carrying document."""
        if not self._content:
            raise SoapFault("Sender", "request is not well-formed XML: empty document")
        try:
            root = self._parser.close()
        except etree.XMLSyntaxError as exc:
            raise SoapFault("Sender", f"request is not well-formed XML: {exc}") from None
        self._read_events()
        _refuse_dtd(root)
        return root


def header_action(root: etree._Element) -> str | None:
    """The text of the first wsa:Action of a SOAP 1.2 envelope's Header, unchecked; None if none."""
    if root.tag != _SOAP12_ENVELOPE:
        return None
    header = root.find(_SOAP12_HEADER)
    action = header.find(_WSA_ACTION) if header is not None else None
    return (action.text or "").strip() or None if action is not None else None
