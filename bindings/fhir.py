"""The one FHIR R4 door of the server, mounted at ``/fhir`` (``server.app.mounts``): it names the
caller, then dispatches by resource type.

* ``metadata``: the CapabilityStatement;
* ``DocumentReference``, ``List``, ``Binary``: the MHD Document Responder (:mod:`bindings.fhir_mhd`);
* another resource type (``Patient``: ITI-104) goes to the app registered for it in ``resources``.

Who is calling (IUA, ITI-72): ``Authorization: Bearer <JWT access token>`` verified by
:class:`access.iua.IuaVerifier` and read into the same :class:`xds.context.Caller` as an XUA
assertion. The verification runs inside the transaction (the ``authenticate`` step), so that a
refused token is audited with the transaction, and is reported as a Security Alert; the answer is
401 with ``WWW-Authenticate: Bearer error="invalid_token"`` (RFC 6750 3.1). Without a token the
caller is the node alone, which the DMP policy (``xua_required``) refuses with 401 too.

Answers are FHIR JSON, or XML when ``_format`` or the Accept header asks for it; a Binary is
its bytes with their mimeType, unless FHIR is asked for explicitly.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl, quote

from lxml import etree

from access.iua import IuaRefused, IuaVerifier, build_iua_verifier, fill_caller
from bindings import fhir_mhd
from bindings.fhir_audit import FHIR_JSON, FHIR_NS, FHIR_XML, _media_type
from bindings.fhir_mhd import BadRequest, MhdResponder, outcome
from bindings.fhir_patient import patient_capability
from transactions.alerts import security_alert
from transactions.services import Authenticate, Services
from xds.context import Caller, caller_from_environ

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]
PHRASES = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 406: "Not Acceptable", 413: "Payload Too Large", 500: "Internal Server Error"}
MAX_FORM = 64 * 1024


class FhirApp:
    """The WSGI app of ``/fhir``."""

    def __init__(self, services: Services, resources: dict[str, WSGIApp] | None = None,
                 verifier: IuaVerifier | None = None) -> None:
        self.services = services
        self.mhd = MhdResponder(services)
        self.verifier = verifier or build_iua_verifier(services.settings)
        self.resources = dict(resources or {})
        """Other resource types' apps (``Patient`` -> ITI-104), called with the same environ."""

    # -- who is calling ----------------------------------------------------------------------------
    def authenticator(self, environ: dict, base: str) -> Authenticate:
        header = environ.get("HTTP_AUTHORIZATION", "").strip()
        policy = self.services.policy

        def authenticate(caller: Caller) -> None:
            try:
                if not header:
                    if policy.xua_required:
                        raise IuaRefused("this service requires an IUA access token: Authorization: Bearer <token>",
                                         error=None)
                    return
                scheme, _, token = header.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    raise IuaRefused("the Authorization header is not a bearer token", error="invalid_request",
                                     status=400)
                claims = self.verifier.verify(token.strip(), audience=base)
            except IuaRefused as exc:
                security_alert(self.services.auditor, caller, f"IUA access token refused: {exc.reason}",
                               "authentication")
                raise
            fill_caller(caller, claims)
        return authenticate

    # -- dispatch ----------------------------------------------------------------------------------
    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = (environ.get("PATH_INFO") or "/").strip("/")
        resource, _, rest = path.partition("/")
        if resource in self.resources:
            return self.resources[resource](environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET").upper()
        params = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        media = _media_type(environ, params)
        head = method == "HEAD"
        if media is None:
            return _answer(start_response, 406, outcome("not-supported", "_format is json or xml"), FHIR_JSON, head)
        base = self._base(environ)
        url = base + "/" + path + (f"?{environ['QUERY_STRING']}" if environ.get("QUERY_STRING") else "")
        caller = caller_from_environ(environ)
        authenticate = self.authenticator(environ, base)
        try:
            if method == "POST" and rest == "_search" and resource in ("DocumentReference", "List"):
                params = [*params, *self._form(environ)]
                rest = ""
            elif method not in ("GET", "HEAD"):
                return _answer(start_response, 405, outcome("not-supported", "the Document Responder reads: GET"),
                               media, head, [("Allow", "GET, HEAD")])
            if resource == "metadata" and not rest:
                doc = fhir_mhd.capability_statement(base, bool(self.verifier.keys))
                if "Patient" in self.resources:
                    doc["rest"][0]["resource"].append(patient_capability())
                return _answer(start_response, 200, doc, media, head)
            if resource == "DocumentReference":
                status, body, extra = (self.mhd.read_document(caller, authenticate, rest, base, url) if rest else
                                       self.mhd.search_documents(caller, authenticate, params, base, url))
                return _answer(start_response, status, body, media, head, extra)
            if resource == "List" and not rest:
                status, body, extra = self.mhd.search_lists(caller, authenticate, params, base, url)
                return _answer(start_response, status, body, media, head, extra)
            if resource == "Binary" and rest and "/" not in rest:
                return self._binary(environ, start_response, caller, authenticate, rest, url, params, head)
            return _answer(start_response, 404, outcome("not-found", f"no resource at /fhir/{path[:100]}"), media,
                           head)
        except IuaRefused as exc:
            code = "login" if exc.status == 401 else "invalid"
            return _answer(start_response, exc.status, outcome(code, exc.reason), media, head,
                           [("WWW-Authenticate", exc.challenge)])
        except BadRequest as exc:
            return _answer(start_response, 400, outcome("invalid", str(exc)), media, head)
        except Exception:  # noqa: BLE001 - never leak internals
            log.exception("FHIR failure")
            return _answer(start_response, 500, outcome("exception", "internal error"), media, head)

    def _binary(self, environ: dict, start_response: Callable, caller: Caller, authenticate: Authenticate, rid: str,
                url: str, params: list[tuple[str, str]], head: bool) -> Iterable[bytes]:
        """ITI-68: the bytes, streamed, with their mimeType; a Binary resource when FHIR is asked."""
        asked = [v for k, v in params if k == "_format"] or [a.split(";")[0].strip()
                                                              for a in environ.get("HTTP_ACCEPT", "").split(",")]
        as_fhir = next((m for m in asked if m in (FHIR_JSON, FHIR_XML, "json", "xml")), None)
        media = FHIR_XML if as_fhir in (FHIR_XML, "xml") else FHIR_JSON
        document = self.mhd.retrieve(caller, authenticate, rid, url)
        if document is None:
            return _answer(start_response, 404, outcome("not-found", f"Binary/{rid[:64]} is not known"), media, head)
        if as_fhir:
            return _answer(start_response, 200, fhir_mhd.binary_resource(document), media, head)
        start_response("200 OK", [("Content-Type", document.mime_type), ("Content-Length", str(document.size)),
                                  ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")])
        return [] if head else fhir_mhd.stream(document)

    @staticmethod
    def _form(environ: dict) -> list[tuple[str, str]]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise BadRequest("Content-Length is not a number") from None
        if length > MAX_FORM:
            raise BadRequest(f"a _search form is at most {MAX_FORM} bytes")
        kind = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if length and kind != "application/x-www-form-urlencoded":
            raise BadRequest("POST _search takes application/x-www-form-urlencoded parameters")
        body = environ["wsgi.input"].read(length) if length else b""
        return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)

    def _base(self, environ: dict) -> str:
        """This service's URL: ``public_url`` + ``/fhir``, else the server's own name and port
        (never the client's Host header): the audience an IUA token must name, the links' base."""
        public = self.services.settings.public_url
        script = quote(environ.get("SCRIPT_NAME", ""))
        if public:
            return public.rstrip("/") + script
        return (f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('SERVER_NAME', 'localhost')}:"
                f"{environ.get('SERVER_PORT', '80')}{script}")


def _answer(start_response: Callable, status: int, doc: dict | None, media: str, head: bool,
            extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    body = to_xml(doc) if doc is not None and media == FHIR_XML else json.dumps(doc, ensure_ascii=False).encode()
    headers = [("Content-Type", f"{media}; charset=utf-8"), ("Content-Length", str(len(body))),
               ("Cache-Control", "no-store"), *(extra or [])]
    start_response(f"{status} {PHRASES.get(status, 'Error')}", headers)
    return [] if head else [body]


def to_xml(resource: dict) -> bytes:
    """A FHIR resource (its JSON form, elements in the definition's order) as FHIR XML: primitives
    as ``value`` attributes, ``url`` of an extension and ``id`` of an element as attributes, a
    contained or entry resource inside an element of its type's name (FHIR R4 XML 2.6.2)."""
    root = etree.Element(f"{{{FHIR_NS}}}{resource['resourceType']}", nsmap={None: FHIR_NS})  # type: ignore[dict-item]
    _fill(root, resource, top=True)
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return out


def _fill(parent: etree._Element, obj: dict, top: bool = False) -> None:
    for key, value in obj.items():
        if key == "resourceType" or value is None:
            continue
        if key == "url" and parent.tag.endswith("}extension"):
            parent.set("url", str(value))
            continue
        for item in value if isinstance(value, list) else [value]:
            el = etree.SubElement(parent, f"{{{FHIR_NS}}}{key}")
            if isinstance(item, dict) and "resourceType" in item:
                _fill(etree.SubElement(el, f"{{{FHIR_NS}}}{item['resourceType']}"), item, top=True)
            elif isinstance(item, dict):
                _fill(el, item)
            else:
                el.set("value", "true" if item is True else "false" if item is False else str(item))
