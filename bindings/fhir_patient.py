"""The HTTP door of ITI-104 Patient Identity Feed FHIR (IHE PIXm, ITI TF-2 3.104), mounted at ``/fhir``.

    GET    /fhir/metadata                                   the CapabilityStatement (3.104.4.1.3)
    PUT    /fhir/Patient?identifier=urn:oid:OID|value       Add or Revise Patient (3.104.4.1), and
                                                            Resolve Patient Duplicate (3.104.4.2)
                                                            when the Patient has a ``replaced-by`` link
    POST   /fhir/Patient                                    create (FHIR create; its INS identifier)
    DELETE /fhir/Patient?identifier=...                     400 not-supported (3.104.4.3.4)

The Patient Identity Source sends a Patient (FHIR R4, JSON or XML) by conditional update on its
identifier in the patient identification domain: ``urn:oid:OID|value`` is the CX
``value^^^&OID&ISO`` the registry keys (ITI TF-3 4.2.3.1.7). The Patient must carry that
identifier. A Patient with a link of type ``replaced-by`` to the surviving identifier is the
duplicate being merged into it: its entries and access policy move to the survivor
(:func:`transactions.patient_feed.merge`). Answers follow FHIR's conditional update: 201 with a
Location for a record created, 200 otherwise, with the record as a Patient; errors are an
OperationOutcome (400 malformed, 422 a patient the registry cannot take).

Who may feed (3.104.5: only the Patient Identity Source of the domain changes its patients):

* a TLS client certificate whose subject is listed in ``patient_feed_sources``;
* ``Authorization: Bearer <token>`` with a token of ``patient_feed_tokens`` (source name -> token,
  compared as :func:`bindings.policy_api.principal_of` does).

No credential or a wrong token: 401 with ``WWW-Authenticate: Bearer``; a certificate that is no
source's, or no source configured: 403. Each refusal is an OperationOutcome and a Security Alert.
"""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from lxml import etree

from audit import fhir
from bindings.fhir_audit import FHIR_JSON, FHIR_NS, FHIR_XML, _media_type, to_xml
from bindings.policy_api import principal_of, principals
from registry.register import PatientIdentity, PatientRecord
from transactions import patient_feed
from transactions.patient_feed import FeedError, Origin, PatientFeed
from transactions.services import Services
from xds.context import Caller, caller_from_environ
from xds.hl7v2 import is_oid
from xds.patient import INS_AUTHORITIES, patient_key
from xds.xmlsafe import UnsafeXML, parse_bytes

log = logging.getLogger(__name__)

REALM = 'Bearer realm="patient-feed"'
MAX_BODY = 1024 * 1024
GENDERS = ("male", "female", "other", "unknown")
_DATE_RE = re.compile(r"^[0-9]{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01]))?)?$")
_ID_RE = re.compile(r"[^A-Za-z0-9.-]")
_PHRASES = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 406: "Not Acceptable", 413: "Content Too Large",
            415: "Unsupported Media Type", 422: "Unprocessable Entity", 500: "Internal Server Error"}


class Refused(Exception):
    def __init__(self, message: str, status: int, challenge: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.challenge = challenge


class BadPatient(ValueError):
    """The request or its Patient is not what ITI-104 sends: 400 with an OperationOutcome."""


@dataclass
class FeedSources:
    """The trusted Patient Identity Sources ``settings`` names (certificate subjects, tokens).
    Raises ValueError (the server does not start) on an unusable token."""
    subjects: frozenset[str]
    tokens: list[tuple[str, bytes]]

    @classmethod
    def of(cls, settings: Any) -> FeedSources:
        return cls(frozenset(s.strip() for s in settings.patient_feed_sources if s.strip()),
                   principals("", settings.patient_feed_tokens, "patient_feed_tokens"))

    def authenticate(self, caller: Caller, authorization: str) -> None:
        """Name ``caller`` as a trusted source, or raise Refused (401/403)."""
        if not (self.subjects or self.tokens):
            raise Refused("the Patient Identity Feed is disabled: no source is configured (patient_feed_sources, "
                          "patient_feed_tokens)", 403)
        if authorization:
            scheme, _, credential = authorization.partition(" ")
            credential = credential.strip()
            if scheme.lower() != "bearer" or not credential:
                raise Refused("a Patient Identity Source's bearer token is required: Authorization: Bearer <token>",
                              401, REALM)
            source = principal_of(credential, self.tokens)
            if source is None:
                raise Refused("the bearer token is not valid", 401, REALM + ', error="invalid_token"')
            caller.user_id, caller.kind, caller.authenticated = source, "patient-identity-source", True
            return
        if caller.node_subject:
            if caller.node_subject not in self.subjects:
                raise Refused(f"the client certificate {caller.node_subject!r} is not a Patient Identity Source's "
                              "(patient_feed_sources)", 403)
            caller.kind, caller.authenticated = "patient-identity-source", True
            return
        raise Refused("the Patient Identity Feed needs a source's credential: a client certificate listed in "
                      "patient_feed_sources, or Authorization: Bearer <token>", 401, REALM)


class FhirPatientApp:
    """The WSGI app of ``/fhir``."""

    def __init__(self, services: Services) -> None:
        self.feed = PatientFeed.of(services)
        self.sources = FeedSources.of(services.settings)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = (environ.get("PATH_INFO") or "/").rstrip("/")
        method = environ.get("REQUEST_METHOD", "GET").upper()
        params = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        media = _media_type(environ, params) or FHIR_JSON
        if path == "/metadata":
            if method != "GET":
                return _answer(start_response, 405, _outcome("not-supported", "GET /metadata"), media, "GET")
            return _answer(start_response, 200, capability_statement(), media)
        if path != "/Patient":
            return _answer(start_response, 404, _outcome("not-found", f"no resource at {path[:100]}"), media)
        if method not in ("PUT", "POST", "DELETE"):
            return _answer(start_response, 405, _outcome("not-supported", "ITI-104: PUT Patient?identifier=..."),
                           media, "PUT, POST, DELETE")
        caller = caller_from_environ(environ)
        try:
            self.sources.authenticate(caller, environ.get("HTTP_AUTHORIZATION", "").strip())
        except Refused as exc:
            patient_feed.refused(self.feed, caller, "ITI-104", str(exc),
                                 "authentication" if exc.status == 401 else "restricted")
            extra = [("WWW-Authenticate", exc.challenge)] if exc.challenge else []
            code = "login" if exc.status == 401 else "forbidden"
            return _answer(start_response, exc.status, _outcome(code, str(exc)), media, extra=extra)
        if method == "DELETE":
            return _answer(start_response, 400, _outcome("not-supported", "Remove Patient is not supported"), media)
        try:
            status, body, extra = self._feed(environ, method, params, caller)
        except BadPatient as exc:
            return _answer(start_response, 400, _outcome("invalid", str(exc)), media)
        except FeedError as exc:
            return _answer(start_response, 422, _outcome("processing", str(exc)), media)
        except Exception:  # noqa: BLE001 - never leak internals
            log.exception("ITI-104 failure")
            return _answer(start_response, 500, _outcome("exception", "internal error"), media)
        return _answer(start_response, status, body, media, extra=extra)

    def _feed(self, environ: dict, method: str, params: list[tuple[str, str]],
              caller: Caller) -> tuple[int, dict, list[tuple[str, str]]]:
        patient = read_patient(environ)
        identifiers = [cx_of(i, "Patient.identifier") for i in patient.get("identifier") or []
                       if isinstance(i, dict) and str(i.get("system", "")).startswith("urn:oid:")]
        if method == "PUT":
            asked = [v for k, v in params if k == "identifier"]
            if len(asked) != 1 or "|" not in asked[0]:
                raise BadPatient("ITI-104 is a conditional update on the patient's identifier: "
                                 "PUT Patient?identifier=urn:oid:<assigning authority OID>|<value>")
            system, _, value = asked[0].partition("|")
            patient_id = cx_of({"system": system, "value": value}, "the identifier parameter")
            if patient_key(patient_id) not in {patient_key(i) for i in identifiers}:
                raise BadPatient(f"the Patient does not carry the identifier {asked[0]} it is updated on "
                                 "(ITI TF-2 3.104.4.1.2.1)")
        else:
            patient_id = _identifier_of_create(identifiers)
        identity = identity_of(patient)
        replaced_by = [link for link in patient.get("link") or []
                       if isinstance(link, dict) and link.get("type") == "replaced-by"]
        origin = Origin("ITI-104")
        if replaced_by:
            if len(replaced_by) != 1:
                raise BadPatient("a duplicate is replaced by one surviving patient: one link of type replaced-by")
            other = replaced_by[0].get("other") or {}
            surviving = cx_of(other.get("identifier") or {}, "Patient.link.other.identifier")
            result = patient_feed.merge(self.feed, caller, origin, patient_id, surviving, merged_identity=identity)
            return 200, patient_resource(result.record), []
        result = patient_feed.add_or_revise(self.feed, caller, origin, patient_id, identity)
        if result.action == "created":
            return 201, patient_resource(result.record), [("Location", f"Patient/{resource_id(result.record)}")]
        return 200, patient_resource(result.record), []


def _identifier_of_create(identifiers: list[str]) -> str:
    """The record a create names: its INS identifier, else its one identifier in an OID domain."""
    ins = [i for i in identifiers if i.split("^")[3].split("&")[1] in INS_AUTHORITIES]
    chosen = ins or identifiers
    if len(chosen) != 1:
        raise BadPatient("the Patient must carry one identifier in an assigning authority urn:oid:<OID> "
                         "(the INS, when it has several)")
    return chosen[0]


def read_patient(environ: dict) -> dict[str, Any]:
    """The request's Patient, as FHIR JSON's shape (XML read into it). Raises BadPatient."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BadPatient("Content-Length is not a number") from None
    if length > MAX_BODY:
        raise BadPatient(f"the Patient is over {MAX_BODY} bytes")
    raw = environ["wsgi.input"].read(length) if length > 0 else b""
    kind = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    try:
        if kind in (FHIR_XML, "application/xml", "text/xml") or raw.lstrip()[:1] == b"<":
            return _patient_from_xml(parse_bytes(raw))
        resource = json.loads(raw)
    except (ValueError, UnsafeXML, etree.XMLSyntaxError) as exc:
        raise BadPatient(f"the body is not a FHIR Patient in JSON or XML: {exc}") from None
    if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
        raise BadPatient("the body must be a Patient resource")
    return resource


def _patient_from_xml(root: etree._Element) -> dict[str, Any]:
    if root.tag != f"{{{FHIR_NS}}}Patient":
        raise BadPatient("the body must be a Patient resource (http://hl7.org/fhir)")

    def value(el: etree._Element | None, name: str) -> str | None:
        child = el.find(f"{{{FHIR_NS}}}{name}") if el is not None else None
        return child.get("value") if child is not None else None

    def identifier(el: etree._Element | None) -> dict[str, Any]:
        return {"system": value(el, "system"), "value": value(el, "value")}

    f = f"{{{FHIR_NS}}}"
    names = [{"use": value(n, "use"), "family": value(n, "family"),
              "given": [g.get("value") for g in n.findall(f + "given")]} for n in root.findall(f + "name")]
    links = [{"type": value(link, "type"), "other": {"identifier": identifier(link.find(f"{f}other/{f}identifier"))}}
             for link in root.findall(f + "link")]
    active = value(root, "active")
    return {"resourceType": "Patient", "identifier": [identifier(i) for i in root.findall(f + "identifier")],
            "active": None if active is None else active == "true", "name": names,
            "gender": value(root, "gender"), "birthDate": value(root, "birthDate"), "link": links}


def cx_of(identifier: dict[str, Any], where: str) -> str:
    """The CX ``value^^^&OID&ISO`` of a FHIR Identifier ``urn:oid:OID`` / ``value``. Raises BadPatient."""
    system, value = str(identifier.get("system") or ""), str(identifier.get("value") or "")
    oid = system.removeprefix("urn:oid:")
    if not system.startswith("urn:oid:") or not is_oid(oid):
        raise BadPatient(f"{where}: the system must be the assigning authority as urn:oid:<OID>, not {system!r}")
    if not value or any(c in value for c in "^&~\\|"):
        raise BadPatient(f"{where}: the value must be an identifier without HL7 separators, not {value!r}")
    return f"{value}^^^&{oid}&ISO"


def identity_of(patient: dict[str, Any]) -> PatientIdentity:
    """Demographics of a Patient: its official (else first) name, birthDate, gender. Raises BadPatient."""
    names = [n for n in patient.get("name") or [] if isinstance(n, dict)]
    name = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    given = " ".join(str(g) for g in name.get("given") or [] if g) or None
    birth, gender = patient.get("birthDate"), patient.get("gender")
    if birth is not None and not (isinstance(birth, str) and _DATE_RE.match(birth)):
        raise BadPatient(f"Patient.birthDate {birth!r} is not a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD)")
    if gender is not None and gender not in GENDERS:
        raise BadPatient(f"Patient.gender {gender!r} is not one of {', '.join(GENDERS)}")
    return PatientIdentity(name.get("family") or None, given, birth, gender)


def resource_id(record: PatientRecord) -> str:
    """The Patient's logical id: its identifier and authority (``OID-value``, FHIR id characters)."""
    value, _, rest = record.patient_id.partition("^^^&")
    return _ID_RE.sub("-", f"{rest.split('&')[0]}-{value}")[:64]


def patient_resource(record: PatientRecord) -> dict[str, Any]:
    """The record as a Patient (active unless merged or closed; a merged one links its survivor)."""
    value, _, rest = record.patient_id.partition("^^^&")
    out: dict[str, Any] = {"resourceType": "Patient", "id": resource_id(record),
                           "identifier": [{"system": "urn:oid:" + rest.split("&")[0], "value": value}],
                           "active": record.state == "open"}
    who = record.identity
    if who.family_name or who.given_name:
        name: dict[str, Any] = {"use": "official"}
        if who.family_name:
            name["family"] = who.family_name
        if who.given_name:
            name["given"] = who.given_name.split(" ")
        out["name"] = [name]
    if who.sex:
        out["gender"] = who.sex
    if who.birth_date:
        out["birthDate"] = who.birth_date
    if record.replaced_by:
        survivor, _, authority = record.replaced_by.partition("^^^&")
        out["link"] = [{"other": {"identifier": {"system": "urn:oid:" + authority.split("&")[0], "value": survivor}},
                        "type": "replaced-by"}]
    return out


def patient_capability() -> dict[str, Any]:
    """The Patient entry of a CapabilityStatement's ``rest.resource``: what the Patient Identifier
    Cross-reference Manager role offers (3.104.4.1.3: conditional update on Patient; Remove
    Patient is not supported). The ``/fhir`` door's own statement (``bindings.fhir``) lists it."""
    return {"type": "Patient",
            "supportedProfile": ["https://profiles.ihe.net/ITI/PIXm/StructureDefinition/IHE.PIXm.Patient"],
            "interaction": [{"code": "update"}, {"code": "create"}],
            "conditionalCreate": False, "conditionalUpdate": True, "conditionalDelete": "not-supported",
            "searchParam": [{"name": "identifier", "type": "token"}]}


def capability_statement() -> dict[str, Any]:
    """This app's CapabilityStatement, when it is mounted alone."""
    return {"resourceType": "CapabilityStatement", "status": "active", "date": "2026-12-03", "kind": "instance",
            "fhirVersion": "4.0.1", "format": [FHIR_JSON, FHIR_XML],
            "implementation": {"description": "DMP-XDS Patient Identity Feed FHIR (ITI-104)"},
            "rest": [{"mode": "server", "resource": [patient_capability()]}]}


def _outcome(code: str, message: str) -> dict:
    return fhir.operation_outcome(code, message)


def _answer(start_response: Callable, status: int, doc: dict, media: str, allow: str | None = None,
            extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    body = to_xml(doc) if media == FHIR_XML else json.dumps(doc, ensure_ascii=False).encode()
    headers = [("Content-Type", f"{media}; charset=utf-8"), ("Content-Length", str(len(body))),
               ("Cache-Control", "no-store"), *(extra or [])]
    if allow:
        headers.append(("Allow", allow))
    start_response(f"{status} {_PHRASES.get(status, 'Error')}", headers)
    return [body]
