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
_SOAP12_BODY = qname(NS_SOAP12, "Body")
_SOAP12_ENVELOPE = qname(NS_SOAP12, "Envelope")


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode("utf-8")


class _ActionSniffer:
    """A parser target (no tree) that finds the text of the first wsa:Action of a SOAP 1.2 Header."""

    def __init__(self) -> None:
        self.path: list[str] = []
        self.text: list[str] = []
        self.action: str | None = None
        self.done = False

    def start(self, tag: str | bytes, attrib: dict[str | bytes, str | bytes]) -> None:
        self.path.append(_text(tag))
        if self.path == [_SOAP12_ENVELOPE, _SOAP12_BODY]:
            self.done = True

    def end(self, tag: str | bytes) -> None:
        if self.path == [_SOAP12_ENVELOPE, _SOAP12_HEADER, _WSA_ACTION]:
            self.action = "".join(self.text).strip()
            self.done = True
        self.path.pop()

    def data(self, data: str | bytes) -> None:
        if self.path == [_SOAP12_ENVELOPE, _SOAP12_HEADER, _WSA_ACTION]:
            self.text.append(_text(data))

    def comment(self, text: str | bytes) -> None:
        return None

    def close(self) -> None:
        return None


class EnvelopeFeed:
    """Parse an untrusted envelope chunk by chunk, as :func:`parse_xml` does at once.

    The bytes are never joined: the tree grows as they arrive. As soon as the first wsa:Action of
    the SOAP 1.2 Header (which precedes the Body, SOAP 1.2 Part 1, 5.1) has been read,
    ``on_action`` is called with its text, so that the endpoint can hold the rest of the body to
    that operation's limits while it streams in (issue 19, finding 5). The Header is read by a
    second, tree-less parser (lxml's XMLPullParser would do it in one pass but keeps its tree in a
    reference cycle, freed only by the garbage collector: 32 MB per refused 1 MB query).
    """

    def __init__(self, on_action: Callable[[str], None]) -> None:
        self._parser = safe_parser()
        self._target: _ActionSniffer | None = _ActionSniffer()
        self._sniffer: etree.XMLParser | None = etree.XMLParser(target=self._target, **_SAFE_OPTIONS)
        self._sniffer.resolvers.add(_RefuseExternal())
        self._on_action = on_action
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
            self.discard()
            raise SoapFault("Sender", f"request is not well-formed XML: {exc}") from None
        self._sniff(chunk)

    def _sniff(self, chunk: bytes) -> None:
        if self._sniffer is None or self._target is None:
            return
        try:
            self._sniffer.feed(chunk)
        except etree.XMLSyntaxError:
            self._target.done = True  # the main parser reports what is wrong
        if self._target.done:
            action = self._target.action
            self._stop_sniffing()
            if action:
                self._on_action(action)

    def _stop_sniffing(self) -> None:
        sniffer, self._sniffer, self._target = self._sniffer, None, None
        if sniffer is not None:
            try:
                sniffer.close()
            except etree.XMLSyntaxError:
                pass

    def discard(self) -> None:
        """End an unfinished parse and free its partial tree at once (a refused request)."""
        self._stop_sniffing()
        try:
            self._parser.close()
        except etree.XMLSyntaxError:
            pass

    def close(self) -> etree._Element:
        """The parsed root; a Sender fault for an empty, malformed or DTD-carrying document."""
        self._stop_sniffing()
        if not self._content:
            self.discard()
            raise SoapFault("Sender", "request is not well-formed XML: empty document")
        try:
            root = self._parser.close()
        except etree.XMLSyntaxError as exc:
            raise SoapFault("Sender", f"request is not well-formed XML: {exc}") from None
        _refuse_dtd(root)
        return root


def header_action(root: etree._Element) -> str | None:
    """The text of the first wsa:Action of a SOAP 1.2 envelope's Header, unchecked; None if none."""
    if root.tag != _SOAP12_ENVELOPE:
        return None
    header = root.find(_SOAP12_HEADER)
    action = header.find(_WSA_ACTION) if header is not None else None
    return (action.text or "").strip() or None if action is not None else None
