"""How the repository reaches its Document Registry: in-process, or ITI-42/ITI-18 over SOAP 1.2.

Both gateways answer :class:`RegistryAnswer` (the registry's status and errors, unchanged) and
can tell which document uniqueIds the registry knows (used by the start-up sweep).
"""
from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Protocol

import requests
from lxml import etree

from registry import facts as registry_facts
from xds import rim
from xds.errors import ErrorCode, ErrorList, RegistryError
from xds.responses import response_status
from xds.soap.namespaces import NS_SOAP12, NS_WSA, WSA_ANONYMOUS
from xds.soap.parsing import safe_parser
from xds.vocabulary import DOC, NS_QUERY, NS_RIM, NS_RS, STORED_QUERIES, Actions, ResponseStatus, Severity, q

log = logging.getLogger(__name__)

GET_DOCUMENTS = STORED_QUERIES["GetDocuments"]
LEAF_CLASS = "LeafClass"


@dataclass
class RegistryAnswer:
    status: str
    errors: ErrorList
    refused: bool = False
    """The access policy refused the submission before anything was stored."""

    @property
    def success(self) -> bool:
        return self.status == ResponseStatus.SUCCESS and not self.errors.has_errors


class RegistryGateway(Protocol):
    def register(self, objects: list[rim.RegistryObject], security_header: bytes | None = None) -> RegistryAnswer:
        """ITI-42 for the metadata of one ITI-41 submission (with the submitter's wsse:Security)."""

    def registered_hashes(self, unique_ids: list[str]) -> dict[str, str | None] | None:
        """uniqueId -> registered hash for the uniqueIds the registry knows; None if it cannot tell now."""


class InProcessRegistry:
    """The registry of this process (``services.registry``)."""

    def __init__(self, registry, database) -> None:
        self.registry = registry
        self.database = database

    def register(self, objects: list[rim.RegistryObject], security_header: bytes | None = None) -> RegistryAnswer:
        """The ITI-41 transaction already identified the submitter and asked the policy."""
        errors = self.registry.register(objects, transaction="ITI-41")
        return RegistryAnswer(response_status(errors), errors)

    def registered_hashes(self, unique_ids: list[str]) -> dict[str, str | None] | None:
        return registered_hashes_in_database(self.database, unique_ids)


def registered_hashes_in_database(database, unique_ids: list[str]) -> dict[str, str | None]:
    """The in-process registry's answer, through its read API (:mod:`registry.facts`)."""
    if not unique_ids:
        return {}
    with database.read() as conn:
        return registry_facts.registered_hashes(conn, unique_ids)


def _envelope(action: str, to: str, body: etree._Element, security_header: bytes | None = None) -> bytes:
    env = etree.Element(q(NS_SOAP12, "Envelope"), nsmap={"s": NS_SOAP12, "wsa": NS_WSA})
    header = etree.SubElement(env, q(NS_SOAP12, "Header"))
    if security_header is not None:
        header.append(etree.fromstring(security_header, safe_parser()))
    a = etree.SubElement(header, q(NS_WSA, "Action"))
    a.set(q(NS_SOAP12, "mustUnderstand"), "1")
    a.text = action
    etree.SubElement(header, q(NS_WSA, "MessageID")).text = f"urn:uuid:{uuid.uuid4()}"
    reply = etree.SubElement(header, q(NS_WSA, "ReplyTo"))
    etree.SubElement(reply, q(NS_WSA, "Address")).text = WSA_ANONYMOUS
    t = etree.SubElement(header, q(NS_WSA, "To"))
    t.set(q(NS_SOAP12, "mustUnderstand"), "1")
    t.text = to
    etree.SubElement(env, q(NS_SOAP12, "Body")).append(body)
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def errors_from_response(response: etree._Element) -> ErrorList:
    errors = ErrorList()
    for e in response.iter(q(NS_RS, "RegistryError")):
        errors.errors.append(RegistryError(e.get("errorCode", ""), e.get("codeContext", ""), e.get("location", ""),
                                           e.get("severity", Severity.ERROR)))
    return errors


class _Unavailable(Exception):
    pass


class SoapRegistry:
    """A remote registry: ITI-42 (and ITI-18 GetDocuments for the sweep) at ``url``."""

    def __init__(self, url: str, timeout: float = 30.0, connect_timeout: float = 5.0,
                 client_cert: tuple[str, str] | None = None, ca: str | None = None) -> None:
        """``client_cert``: (certificate, key) PEM files this node presents (the secure node's
        identity that the registry's ``registry_trusted_repositories`` lists); ``ca``: the CA
        bundle to check the registry's certificate with (default: the system's)."""
        self.url = url
        self.timeout = (connect_timeout, timeout)
        self.client_cert = client_cert
        self.verify: str | bool = ca or True
        self._local = threading.local()

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
        return s

    def _call(self, action: str, body: etree._Element, security_header: bytes | None = None) -> etree._Element:
        data = _envelope(action, self.url, body, security_header)
        headers = {"Content-Type": f'application/soap+xml; charset=UTF-8; action="{action}"'}
        try:
            # per request: requests lets REQUESTS_CA_BUNDLE override a session's verify
            res = self._session().post(self.url, data=data, headers=headers, timeout=self.timeout,
                                       cert=self.client_cert, verify=self.verify)
        except requests.RequestException as exc:
            raise _Unavailable(f"registry {self.url} not reachable: {exc.__class__.__name__}: {exc}") from None
        try:
            env = etree.fromstring(res.content, safe_parser())
        except etree.XMLSyntaxError:
            raise _Unavailable(f"registry {self.url} answered HTTP {res.status_code} without a SOAP envelope") from None
        body_el = env.find(q(NS_SOAP12, "Body"))
        child = None if body_el is None else next((c for c in body_el if isinstance(c.tag, str)), None)
        if child is None:
            raise _Unavailable(f"registry {self.url} answered an empty SOAP body (HTTP {res.status_code})")
        if child.tag == q(NS_SOAP12, "Fault"):
            reason = child.findtext(f"{{{NS_SOAP12}}}Reason/{{{NS_SOAP12}}}Text") or "no reason"
            raise _Unavailable(f"registry {self.url} answered a SOAP fault: {reason}")
        return child

    def register(self, objects: list[rim.RegistryObject], security_header: bytes | None = None) -> RegistryAnswer:
        try:
            response = self._call(Actions.REGISTER, rim.submit_objects_request(objects), security_header)
        except _Unavailable as exc:
            errors = ErrorList()
            errors.add(ErrorCode.REGISTRY_NOT_AVAILABLE, str(exc))
            return RegistryAnswer(ResponseStatus.FAILURE, errors)
        if response.tag != q(NS_RS, "RegistryResponse"):
            errors = ErrorList()
            errors.add(ErrorCode.REGISTRY_ERROR, f"registry answered {response.tag}, not rs:RegistryResponse")
            return RegistryAnswer(ResponseStatus.FAILURE, errors)
        return RegistryAnswer(response.get("status", ResponseStatus.FAILURE), errors_from_response(response))

    def registered_hashes(self, unique_ids: list[str]) -> dict[str, str | None] | None:
        if not unique_ids:
            return {}
        body = etree.Element(q(NS_QUERY, "AdhocQueryRequest"), nsmap={"query": NS_QUERY, "rim": NS_RIM})
        etree.SubElement(body, q(NS_QUERY, "ResponseOption"), returnType=LEAF_CLASS, returnComposedObjects="true")
        aq = etree.SubElement(body, q(NS_RIM, "AdhocQuery"), id=GET_DOCUMENTS)
        slot = etree.SubElement(aq, q(NS_RIM, "Slot"), name="$XDSDocumentEntryUniqueId")
        vl = etree.SubElement(slot, q(NS_RIM, "ValueList"))
        etree.SubElement(vl, q(NS_RIM, "Value")).text = "(" + ",".join(f"'{u}'" for u in unique_ids) + ")"
        try:
            response = self._call(Actions.STORED_QUERY, body)
        except _Unavailable as exc:
            log.warning("sweep: %s", exc)
            return None
        if response.get("status") != ResponseStatus.SUCCESS:
            log.warning("sweep: GetDocuments answered %s", response.get("status"))
            return None
        found: dict[str, str | None] = {}
        for eo in response.iter(q(NS_RIM, "ExtrinsicObject")):
            o = rim.parse_object(eo)
            uid = next((e.get("value") for e in o.external_identifiers
                        if e.get("identificationScheme") == DOC.UNIQUE_ID), None)
            if uid:
                found[uid] = (o.slot_value("hash") or "").lower() or None
        return found
