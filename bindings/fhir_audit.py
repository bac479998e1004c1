"""The HTTP door of ITI-81 Retrieve ATNA Audit Event, mounted at ``/audit`` (``server.app.mounts``).

    GET /audit/AuditEvent?date=ge2026-01-01&patient.identifier=...&_count=50   a searchset Bundle
    GET /audit/AuditEvent/{id}                                                 one AuditEvent

It parses the request, names who is calling, calls :mod:`transactions.iti81` (which decides and
audits) and renders FHIR R4: JSON, or XML when ``_format`` (``xml``, ``application/fhir+xml``...)
or else the Accept header asks for it. The Bundle carries ``total`` (every match), a ``self`` link
and, but on the last page, a ``next`` link (``_cursor`` and ``_snapshot``, see :mod:`audit.fhir`).

Who may read: the trail names every patient's accesses, so only auditors.

* a TLS client certificate whose subject (RFC 4514, as ``xds serve`` logs it) is listed in
  ``audit_readers``: the node is the reader;
* ``Authorization: Bearer <token>`` with a token of ``audit_reader_tokens`` (principal name ->
  token), compared as the policy API compares its own (:func:`bindings.policy_api.principal_of`:
  SHA-256 digests, constant time, every token): the principal is the reader, audited by name.

No credential, or a wrong token: 401 with ``WWW-Authenticate: Bearer``; a certificate that is not
an auditor's, or no reader configured at all: 403. Each answer is an ``OperationOutcome`` and each
refusal a Security Alert (in the transaction).
"""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl, urlencode

from lxml import etree

from audit import fhir
from bindings.policy_api import principal_of, principals
from transactions import iti81
from transactions.iti81 import TrailRefused
from transactions.services import Authenticate, Services
from xds.context import Caller, caller_from_environ

log = logging.getLogger(__name__)

FHIR_NS = "http://hl7.org/fhir"
FHIR_JSON = "application/fhir+json"
FHIR_XML = "application/fhir+xml"
REALM = 'Bearer realm="audit"'
_XML_FORMATS = {"xml", "text/xml", "application/xml", FHIR_XML}
_JSON_FORMATS = {"json", "application/json", FHIR_JSON}
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

NOT_CONFIGURED = (
    "ITI-81 is disabled: no auditor is configured. List the auditors' client certificate subjects in "
    "audit_readers (XDS_AUDIT_READERS, subjects separated by ';'), or give each auditor a token in "
    "audit_reader_tokens ([xds.audit_reader_tokens] in the configuration file, or "
    "XDS_AUDIT_READER_TOKENS='{\"auditor\": \"<token>\"}'); restart xds serve, then send "
    "Authorization: Bearer <token>")


class AuditReaders:
    """The auditors ``settings`` names: certificate subjects and bearer tokens. Raises ValueError
    (the server does not start) on a token that is unusable, shared by two auditors, or also a
    token of the policy API (one token, one principal)."""

    def __init__(self, settings) -> None:
        self.subjects = frozenset(s.strip() for s in settings.audit_readers if s.strip())
        self.tokens = principals("", settings.audit_reader_tokens, "audit_reader_tokens")
        api = {digest for _name, digest in principals(settings.access_api_token, settings.access_api_tokens)}
        shared = [name for name, digest in self.tokens if digest in api]
        if shared:
            raise ValueError(f"audit_reader_tokens: the token of {shared[0]} is also a token of the DMP API")

    @property
    def configured(self) -> bool:
        return bool(self.subjects or self.tokens)

    def authenticator(self, environ: dict) -> Authenticate:
        """The ``authenticate`` step of one request: the caller as an auditor, or TrailRefused."""
        header = environ.get("HTTP_AUTHORIZATION", "").strip()

        def authenticate(caller: Caller) -> None:
            if not self.configured:
                raise TrailRefused(NOT_CONFIGURED, 403)
            if header:
                scheme, _, credential = header.partition(" ")
                credential = credential.strip()
                if scheme.lower() != "bearer" or not credential:
                    raise TrailRefused("an auditor's bearer token is required: Authorization: Bearer <token>",
                                       401, REALM)
                principal = principal_of(credential, self.tokens)
                if principal is None:
                    raise TrailRefused("the bearer token is not valid", 401, REALM + ', error="invalid_token"')
                caller.user_id, caller.kind, caller.authenticated = principal, "auditor", True
                return
            if caller.node_subject:
                if caller.node_subject not in self.subjects:
                    raise TrailRefused(f"the client certificate {caller.node_subject!r} is not an auditor's "
                                       "(audit_readers)", 403)
                caller.kind, caller.authenticated = "auditor", True
                return
            raise TrailRefused("reading the audit trail needs an auditor's credential: a client certificate "
                               "listed in audit_readers, or Authorization: Bearer <token>", 401, REALM)
        return authenticate


class FhirAuditApp:
    """The WSGI app of ``/audit``."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.readers = AuditReaders(services.settings)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET").upper()
        params = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        media = _media_type(environ, params)
        head = method == "HEAD"
        if media is None:
            return self._answer(start_response, 406, fhir.operation_outcome(
                "not-supported", "answers are FHIR JSON or XML: _format=json or _format=xml"), FHIR_JSON, head)
        if path.rstrip("/") != "/AuditEvent" and not path.startswith("/AuditEvent/"):
            return self._answer(start_response, 404, fhir.operation_outcome("not-found", f"no resource at {path}"),
                                media, head)
        if method not in ("GET", "HEAD"):
            return self._answer(start_response, 405, fhir.operation_outcome("not-supported",
                                                                            "ITI-81 is read-only: GET"), media, head)
        caller = caller_from_environ(environ)
        authenticate = self.readers.authenticator(environ)
        base = self._base(environ)
        try:
            if path.startswith("/AuditEvent/"):
                status, doc = self._read(caller, authenticate, path[len("/AuditEvent/"):])
            else:
                status, doc = 200, self._search(caller, authenticate, params, base)
        except TrailRefused as exc:
            code = "login" if exc.status == 401 else "forbidden"
            extra = [("WWW-Authenticate", exc.challenge)] if exc.challenge else []
            return self._answer(start_response, exc.status, fhir.operation_outcome(code, str(exc)), media, head,
                                extra)
        except fhir.BadRequest as exc:
            return self._answer(start_response, 400, fhir.operation_outcome("invalid", str(exc)), media, head)
        except Exception:  # noqa: BLE001 - never leak internals
            log.exception("ITI-81 failure")
            return self._answer(start_response, 500, fhir.operation_outcome("exception", "internal error"), media,
                                head)
        return self._answer(start_response, status, doc, media, head)

    def _read(self, caller: Caller, authenticate: Authenticate, ident: str) -> tuple[int, dict]:
        row = iti81.read(self.services, caller, authenticate, ident)
        event = fhir.audit_event(row) if row is not None else None
        if event is None:
            return 404, fhir.operation_outcome("not-found", f"AuditEvent/{ident[:64]}")
        return 200, event

    def _search(self, caller: Caller, authenticate: Authenticate, params: list[tuple[str, str]], base: str) -> dict:
        page = iti81.search(self.services, caller, authenticate, params)
        links = [("self", f"{base}/AuditEvent?{urlencode(params)}")]
        if page.next_cursor is not None:
            following = [(k, v) for k, v in params if k not in ("_cursor", "_snapshot")]
            following += [("_cursor", str(page.next_cursor)), ("_snapshot", str(page.snapshot))]
            links.append(("next", f"{base}/AuditEvent?{urlencode(following)}"))
        return fhir.bundle(page.rows, base, page.total, links)

    def _base(self, environ: dict) -> str:
        """This service's URL: ``public_url`` + ``/audit``, else the server's own name and port
        (never the client's Host header)."""
        public = self.services.settings.public_url
        if public:
            return public.rstrip("/") + environ.get("SCRIPT_NAME", "")
        return (f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('SERVER_NAME', 'localhost')}:"
                f"{environ.get('SERVER_PORT', '80')}{environ.get('SCRIPT_NAME', '')}")

    @staticmethod
    def _answer(start_response: Callable, status: int, doc: dict, media: str, head: bool,
                extra: list[tuple[str, str]] | None = None) -> list[bytes]:
        body = to_xml(doc) if media == FHIR_XML else json.dumps(doc, ensure_ascii=False).encode()
        phrases = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                   405: "Method Not Allowed", 406: "Not Acceptable", 500: "Internal Server Error"}
        headers = [("Content-Type", f"{media}; charset=utf-8"), ("Content-Length", str(len(body))),
                   ("Cache-Control", "no-store"), *(extra or [])]
        if status == 405:
            headers.append(("Allow", "GET, HEAD"))
        start_response(f"{status} {phrases.get(status, 'Error')}", headers)
        return [] if head else [body]


def _media_type(environ: dict, params: list[tuple[str, str]]) -> str | None:
    """FHIR_JSON or FHIR_XML as ``_format`` (first) or the Accept header asks; None for an
    unsupported ``_format``."""
    asked = [v.split(";")[0].strip().lower() for k, v in params if k == "_format"]
    if asked:
        return FHIR_XML if asked[0] in _XML_FORMATS else FHIR_JSON if asked[0] in _JSON_FORMATS else None
    ranked = []
    for position, item in enumerate(environ.get("HTTP_ACCEPT", "").split(",")):
        kind, *options = [part.strip().lower() for part in item.split(";")]
        weight = 1.0
        for option in options:
            if option.startswith("q="):
                try:
                    weight = float(option[2:])
                except ValueError:
                    weight = 0.0
        if kind and weight > 0:
            ranked.append((-weight, position, kind))
    for _weight, _position, kind in sorted(ranked):
        if kind in _XML_FORMATS:
            return FHIR_XML
        if kind in _JSON_FORMATS or kind in ("*/*", "application/*"):
            return FHIR_JSON
    return FHIR_JSON


def to_xml(resource: dict) -> bytes:
    """A FHIR resource (its JSON form, elements in the definition's order) as FHIR XML: primitives
    as ``value`` attributes, a contained resource inside an element of its type's name."""
    # lxml-stubs type nsmap keys as str; None is lxml's key of the default namespace
    root = etree.Element(f"{{{FHIR_NS}}}{resource['resourceType']}", nsmap={None: FHIR_NS})  # type: ignore[dict-item]
    _fill(root, resource)
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return out


def _fill(parent: etree._Element, obj: dict) -> None:
    for key, value in obj.items():
        if key == "resourceType":
            continue
        for item in value if isinstance(value, list) else [value]:
            el = etree.SubElement(parent, f"{{{FHIR_NS}}}{key}")
            if isinstance(item, dict) and "resourceType" in item:
                _fill(etree.SubElement(el, f"{{{FHIR_NS}}}{item['resourceType']}"), item)
            elif isinstance(item, dict):
                _fill(el, item)
            else:
                text = "true" if item is True else "false" if item is False else str(item)
                el.set("value", _NOT_XML.sub("", text))
