"""The MHD Document Responder (MHD 4.2) under ``/fhir``: ITI-67 ``DocumentReference``, ITI-66
``List``, ITI-68 ``Binary`` and the CapabilityStatement (``metadata``).

Transport only: the search parameters are read into the stored queries' terms (ITI TF-2
3.67.4.1.2.1, 3.66.4.1.2.1), the transaction modules (:mod:`transactions.iti67`, ``iti66``,
``iti68``) decide, run and audit, and the answers are rendered by :mod:`bindings.fhir_mapping`.

Search parameters (GET, or POST ``_search`` with a form body):

* DocumentReference: ``patient`` (``Patient/<oid>-<id>``), ``patient.identifier``
  (``urn:oid:<oid>|<id>``, or ``<id>`` in ``fhir_patient_oid``, or a whole CX), ``status``
  (current, superseded, entered-in-error), ``creation`` and ``date`` (creationTime), ``period``
  (service start/stop), PDSm ``period-start`` / ``period-end``, ``type``, ``category``, ``event``,
  ``facility``, ``setting``, ``format``, ``security-label`` (tokens ``system|code``: the
  stored queries match a code in its scheme), ``author.given`` / ``author.family``, ``related``
  (a referenceIdList value: FindDocumentsByReferenceId), ``identifier`` and ``_id``;
* List: ``patient`` / ``patient.identifier``, ``code`` (submissionset, folder), ``status``,
  ``date``, ``designationType``, ``sourceId``, ``source.given`` / ``source.family``,
  ``identifier`` and ``_id``;
* both: ``_count`` (default 100, at most 1000) and ``_offset``; the Bundle carries ``total`` and
  the ``self`` and ``next`` links.

An unknown or malformed parameter is a 400 OperationOutcome naming it; a patient the caller may
not access 403, a patient without a record 404 (ITI TF-2 3.67.4.2.3).
"""
from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterable, Iterator
from urllib.parse import unquote, urlencode

from bindings import fhir_mapping as mapping
from bindings.fhir_audit import FHIR_JSON, FHIR_XML
from transactions import iti66, iti67, iti68
from transactions.iti66 import ListSearch
from transactions.iti67 import FindRequest
from transactions.services import Authenticate, Services
from xds.context import Caller
from xds.errors import ErrorList

DEFAULT_COUNT, MAX_COUNT = 100, 1000
CODE_PARAMS = {"type": "$XDSDocumentEntryTypeCode", "category": "$XDSDocumentEntryClassCode",
               "event": "$XDSDocumentEntryEventCodeList", "facility": "$XDSDocumentEntryHealthcareFacilityTypeCode",
               "setting": "$XDSDocumentEntryPracticeSettingCode", "format": "$XDSDocumentEntryFormatCode",
               "security-label": "$XDSDocumentEntryConfidentialityCode"}
AND_PARAMS = {"event", "security-label"}
"""Codes the stored query ANDs slot by slot (ITI TF-2 3.18.4.1.2.3.5): each occurrence is a slot."""
DOCUMENT_PARAMS = {"patient", "patient.identifier", "status", "creation", "date", "period", "period-start",
                   "period-end", "author.given", "author.family", "related", "identifier", "_id", *CODE_PARAMS}
LIST_PARAMS = {"patient", "patient.identifier", "code", "status", "date", "designationType", "sourceId",
               "source.given", "source.family", "identifier", "_id"}
COMMON = {"_count", "_offset", "_format"}


class BadRequest(ValueError):
    """A search the Document Responder cannot run: 400 with an OperationOutcome."""


def outcome(code: str, text: str, severity: str = "error") -> dict:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": severity, "code": code, "diagnostics": text}]}


# ----------------------------------------------------------------------------- parameters

def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _slot(values: Iterable[str]) -> list[str]:
    return ["(" + ",".join(_quote(v) for v in values) + ")"]


def _token(raw: str, name: str) -> tuple[str | None, str]:
    system, sep, code = raw.partition("|")
    if not sep:
        return None, raw
    return (system or None), code


def patient_of(params: list[tuple[str, str]], settings) -> str:
    """The patient CX of a search: ``patient`` or ``patient.identifier`` (exactly one)."""
    given = [(k, v) for k, v in params if k in ("patient", "patient.identifier")]
    if len(given) != 1 or "," in given[0][1]:
        raise BadRequest("a search names exactly one patient: patient=Patient/<id> or patient.identifier="
                         "<system>|<value> (MHD ITI TF-2 3.67.4.1.2.1)")
    name, value = given[0]
    if name == "patient":
        rid = value.rstrip("/").rsplit("/", 1)[-1]
        cx = mapping.patient_cx(rid)
        if cx is None:
            raise BadRequest(f"patient={value}: not a Patient of this server (Patient/<assigning authority OID>-<id>)")
        return cx
    system, ident = _token(value, name)
    if not ident:
        raise BadRequest("patient.identifier has no value")
    if system is None:
        return ident if "^" in ident else f"{ident}^^^&{settings.fhir_patient_oid}&ISO"
    if not system.startswith(mapping.OID_PREFIX):
        raise BadRequest(f"patient.identifier system {system}: an assigning authority is urn:oid:<oid>")
    return f"{ident}^^^&{system[len(mapping.OID_PREFIX):]}&ISO"


def _period(value: str) -> tuple[str, str, str]:
    """(prefix, start DTM, end DTM exclusive) of a date search value (FHIR R4 search 3.1.1.4.2)."""
    prefix, text = (value[:2], value[2:]) if value[:2].isalpha() else ("eq", value)
    try:
        start = mapping.dtm_of(text)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    size = len(start)
    moment = dt.datetime.strptime(start + "0101000000"[size - 4:], "%Y%m%d%H%M%S")
    if size == 4:
        end = moment.replace(year=moment.year + 1)
    elif size == 6:
        end = (moment.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    else:
        end = moment + {8: dt.timedelta(days=1), 12: dt.timedelta(minutes=1), 14: dt.timedelta(seconds=1)}[size]
    return prefix, start, end.strftime("%Y%m%d%H%M%S")[:size]


def _bounds(values: list[str], name: str) -> tuple[str | None, str | None]:
    """(From, To) of the stored query's time range for the date parameters ``values``."""
    low: str | None = None
    high: str | None = None
    for value in values:
        prefix, start, end = _period(value)
        lows = {"eq": start, "ge": start, "gt": end, "sa": end}
        highs = {"eq": end, "le": end, "lt": start, "eb": start}
        if prefix not in lows and prefix not in highs:
            raise BadRequest(f"{name}={value}: the prefix {prefix} is not supported (eq, ge, gt, le, lt, sa, eb)")
        if prefix in lows:
            low = max(low or lows[prefix], lows[prefix])
        if prefix in highs:
            high = min(high or highs[prefix], highs[prefix])
    return low, high


def _time_params(out: dict[str, list[list[str]]], values: list[str], name: str, low_param: str,
                 high_param: str) -> None:
    low, high = _bounds(values, name)
    if low:
        out.setdefault(low_param, []).append([low])
    if high:
        out.setdefault(high_param, []).append([high])


def _codes(raw: str, name: str) -> list[str]:
    codes = []
    for item in raw.split(","):
        system, code = _token(item, name)
        if not system or not code:
            raise BadRequest(f"{name}={raw}: a code is searched in its system: {name}=<system>|<code>")
        codes.append(f"{code}^^{mapping.xds_scheme(system)}")
    return codes


def _identifiers(params: list[tuple[str, str]]) -> set[str]:
    out: set[str] = set()
    for name, raw in params:
        for item in raw.split(","):
            if name == "_id":
                out |= {item, f"urn:uuid:{item}"}
                continue
            _system, value = _token(item, name)
            for prefix in ("urn:oid:", ""):
                if value.startswith(prefix):
                    out.add(value[len(prefix):])
            out.add(value)
    return out


def _names(params: list[tuple[str, str]], given: str, family: str) -> list[str]:
    """XCN LIKE patterns (the stored query's % and _) of an author's given and family names."""
    patterns = []
    for name, raw in params:
        for value in raw.split(","):
            if "%" in value or "_" in value:
                raise BadRequest(f"{name}={value}: a name holds no % or _")
            patterns.append(f"%^{value}^%" if name == family else f"%^%^{value}^%")
    return patterns


def _check_names(params: list[tuple[str, str]], known: set[str]) -> None:
    for name, _value in params:
        if name not in known and name not in COMMON:
            raise BadRequest(f"search parameter {name!r} is not supported here (see /fhir/metadata)")


def document_search(params: list[tuple[str, str]], url: str, settings) -> FindRequest:
    """An ITI-67 search as a FindDocuments (or FindDocumentsByReferenceId)."""
    _check_names(params, DOCUMENT_PARAMS)
    patient = patient_of(params, settings)
    out: dict[str, list[list[str]]] = {"$XDSDocumentEntryPatientId": [[_quote(patient)]]}
    statuses = [s for k, v in params if k == "status" for s in v.split(",")]
    if not statuses:
        raise BadRequest("status is required (MHD ITI TF-2 3.67.4.1.2.1): status=current")
    xds_statuses: list[str] = []
    for status in statuses:
        code = _token(status, "status")[1]
        if code not in mapping.XDS_STATUS:
            raise BadRequest(f"status={status}: current, superseded or entered-in-error")
        xds_statuses += mapping.XDS_STATUS[code]
    request = FindRequest("FindDocuments", out, url, patient, nothing=not xds_statuses)
    out["$XDSDocumentEntryStatus"] = [_slot(dict.fromkeys(xds_statuses) or [mapping.APPROVED])]
    for name, param in CODE_PARAMS.items():
        occurrences = [_codes(raw, name) for k, raw in params if k == name]
        if name in AND_PARAMS:
            out.update({param: [_slot(codes) for codes in occurrences]} if occurrences else {})
        elif occurrences:  # one code per entry: two occurrences (AND) keep the codes both name
            common = [c for c in occurrences[0] if all(c in other for other in occurrences[1:])]
            request.nothing = request.nothing or not common
            out[param] = [_slot(common or occurrences[0])]
    dates = [v for k, v in params if k in ("creation", "date")]
    if dates:
        _time_params(out, dates, "creation", "$XDSDocumentEntryCreationTimeFrom", "$XDSDocumentEntryCreationTimeTo")
    for name, (low_param, high_param) in (
            ("period-start", ("$XDSDocumentEntryServiceStartTimeFrom", "$XDSDocumentEntryServiceStartTimeTo")),
            ("period-end", ("$XDSDocumentEntryServiceStopTimeFrom", "$XDSDocumentEntryServiceStopTimeTo"))):
        values = [v for k, v in params if k == name]
        if values:
            _time_params(out, values, name, low_param, high_param)
    periods = [v for k, v in params if k == "period"]
    if periods:
        low, high = _bounds(periods, "period")
        if low:  # the act ended at or after the start of the period searched
            out["$XDSDocumentEntryServiceStopTimeFrom"] = [[low]]
        if high:  # and began before its end
            out["$XDSDocumentEntryServiceStartTimeTo"] = [[high]]
    authors = _names([(k, v) for k, v in params if k in ("author.given", "author.family")],
                     "author.given", "author.family")
    if authors:
        out["$XDSDocumentEntryAuthorPerson"] = [_slot(authors)]
    related = [r for k, v in params if k == "related" for r in v.split(",")]
    if related:
        request.query = "FindDocumentsByReferenceId"
        out["$XDSDocumentEntryReferenceIdList"] = [_slot(related)]
    request.identifiers = _identifiers([(k, v) for k, v in params if k in ("identifier", "_id")])
    return request


def list_search(params: list[tuple[str, str]], url: str, settings) -> ListSearch:
    """An ITI-66 search as a FindSubmissionSets and/or a FindFolders."""
    _check_names(params, LIST_PARAMS)
    patient = patient_of(params, settings)
    kinds = {_token(c, "code")[1] for k, v in params if k == "code" for c in v.split(",")}
    if kinds - {"submissionset", "folder"}:
        raise BadRequest("code is submissionset or folder")
    if any(k in ("sourceId", "source.given", "source.family") for k, _v in params):
        kinds = (kinds or {"submissionset"}) & {"submissionset"}
    kinds = kinds or {"submissionset", "folder"}
    statuses = [_token(s, "status")[1] for k, v in params if k == "status" for s in v.split(",")]
    if any(s != "current" for s in statuses):
        raise BadRequest("status: a List of the registry is current")
    dates = [v for k, v in params if k == "date"]
    designations = [c for k, v in params if k == "designationType" for c in [_codes(v, "designationType")]]
    queries: dict[str, dict[str, list[list[str]]]] = {}
    status = [_slot([mapping.APPROVED])]
    if "submissionset" in kinds:
        ss: dict[str, list[list[str]]] = {"$XDSSubmissionSetPatientId": [[_quote(patient)]],
                                          "$XDSSubmissionSetStatus": status}
        if dates:
            _time_params(ss, dates, "date", "$XDSSubmissionSetSubmissionTimeFrom", "$XDSSubmissionSetSubmissionTimeTo")
        if designations:
            ss["$XDSSubmissionSetContentType"] = [_slot([c for codes in designations for c in codes])]
        sources = [_token(s, "sourceId")[1].removeprefix("urn:oid:") for k, v in params if k == "sourceId"
                   for s in v.split(",")]
        if sources:
            ss["$XDSSubmissionSetSourceId"] = [_slot(sources)]
        authors = _names([(k, v) for k, v in params if k in ("source.given", "source.family")],
                         "source.given", "source.family")
        if len(authors) > 1:
            raise BadRequest("FindSubmissionSets takes one author pattern: one source.given or source.family")
        if authors:
            ss["$XDSSubmissionSetAuthorPerson"] = [[_quote(authors[0])]]
        queries["FindSubmissionSets"] = ss
    if "folder" in kinds:
        folder: dict[str, list[list[str]]] = {"$XDSFolderPatientId": [[_quote(patient)]], "$XDSFolderStatus": status}
        if dates:
            _time_params(folder, dates, "date", "$XDSFolderLastUpdateTimeFrom", "$XDSFolderLastUpdateTimeTo")
        for codes in designations:
            folder.setdefault("$XDSFolderCodeList", []).append(_slot(codes))
        queries["FindFolders"] = folder
    return ListSearch(queries, url, patient, _identifiers([(k, v) for k, v in params if k in ("identifier", "_id")]))


def paging(params: list[tuple[str, str]]) -> tuple[int, int]:
    def number(name: str, default: int) -> int:
        values = [v for k, v in params if k == name]
        if not values:
            return default
        if len(values) > 1 or not values[-1].isdigit():
            raise BadRequest(f"{name} is one non-negative integer")
        return int(values[-1])
    return min(number("_count", DEFAULT_COUNT), MAX_COUNT), number("_offset", 0)


def bundle(resources: list[dict], base: str, path: str, params: list[tuple[str, str]]) -> dict:
    """A searchset page of ``resources`` (every match, in order): total, self and next links."""
    count, offset = paging(params)
    page = resources[offset:offset + count]
    kept = [(k, v) for k, v in params if k not in ("_offset",)]
    links = [{"relation": "self", "url": f"{base}/{path}?{urlencode(params)}"}]
    if offset + count < len(resources):
        following = urlencode([*kept, ("_offset", str(offset + count))])
        links.append({"relation": "next", "url": f"{base}/{path}?{following}"})
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources), "link": links,
            "entry": [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                      for r in page]}


# ----------------------------------------------------------------------------- the handlers

Answer = tuple[int, dict | None, list[tuple[str, str]]]


class MhdResponder:
    """The Document Responder's handlers, for :class:`bindings.fhir.FhirApp`."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def search_documents(self, caller: Caller, authenticate: Authenticate, params: list[tuple[str, str]],
                         base: str, url: str) -> Answer:
        request = document_search(params, url, self.services.settings)
        paging(params)
        found = iti67.find_document_references(self.services, caller, authenticate, request)
        if not found.ok:
            return _refused(found.errors)
        resources = [mapping.document_reference(e, base) for e in found.entries]
        return 200, bundle(resources, base, "DocumentReference", params), []

    def read_document(self, caller: Caller, authenticate: Authenticate, rid: str, base: str, url: str) -> Answer:
        entry = iti67.read_document_reference(self.services, caller, authenticate, f"urn:uuid:{rid}", url)
        if entry is None:
            return 404, outcome("not-found", f"DocumentReference/{rid[:64]} is not known"), []
        return 200, mapping.document_reference(entry, base), []

    def search_lists(self, caller: Caller, authenticate: Authenticate, params: list[tuple[str, str]], base: str,
                     url: str) -> Answer:
        search = list_search(params, url, self.services.settings)
        paging(params)
        found = iti66.find_document_lists(self.services, caller, authenticate, search)
        if not found.ok:
            return _refused(found.errors)
        resources = [mapping.submission_set_list(s, found.members.get(s.entry_uuid, []))
                     for s in found.submission_sets]
        resources += [mapping.folder_list(f, found.members.get(f.entry_uuid, [])) for f in found.folders]
        return 200, bundle(resources, base, "List", params), []

    def retrieve(self, caller: Caller, authenticate: Authenticate, rid: str, url: str) -> iti68.Document | None:
        return iti68.retrieve_document(self.services, caller, authenticate, unquote(rid), url)


def binary_resource(document: iti68.Document) -> dict:
    """The Binary resource of a document, when the consumer asks for FHIR rather than the bytes."""
    data = b"".join(document.chunks)
    out = {"resourceType": "Binary", "id": document.unique_id, "contentType": document.mime_type,
           "data": base64.b64encode(data).decode()}
    if not mapping.FHIR_ID.match(document.unique_id):
        del out["id"]
    return out


def _refused(errors: ErrorList) -> Answer:
    text = "; ".join(e.context for e in errors.errors) or "refused"
    if iti67.unknown_patient(errors):
        return 404, outcome("not-found", text), []
    if iti67.refused(errors):
        return 403, outcome("forbidden", text), []
    return 400, outcome("invalid", text), []


def capability_statement(base: str, iua: bool) -> dict:
    """The Document Responder's CapabilityStatement (MHD IHE.MHD.DocumentResponder, what this
    server implements of it)."""
    def params(names: Iterable[tuple[str, str]]) -> list[dict]:
        return [{"name": n, "type": t} for n, t in names]
    documents = params([("_id", "token"), ("patient", "reference"), ("patient.identifier", "token"),
                        ("status", "token"), ("creation", "date"), ("date", "date"), ("period", "date"),
                        ("period-start", "date"), ("period-end", "date"), ("type", "token"),
                        ("category", "token"), ("event", "token"), ("facility", "token"), ("setting", "token"),
                        ("format", "token"), ("security-label", "token"), ("author.given", "string"),
                        ("author.family", "string"), ("related", "reference"), ("identifier", "token")])
    lists = params([("_id", "token"), ("patient", "reference"), ("patient.identifier", "token"), ("code", "token"),
                    ("status", "token"), ("date", "date"), ("designationType", "token"), ("sourceId", "token"),
                    ("source.given", "string"), ("source.family", "string"), ("identifier", "token")])
    security: dict = {"cors": False, "description": "IUA (ITI-72) bearer access tokens (RS256/ES256) from the "
                                                    "configured issuers; TLS client certificates (ATNA)"}
    if iua:
        security["service"] = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                            "code": "OAuth"}]}]
    return {
        "resourceType": "CapabilityStatement", "status": "active", "date": "2026-12-01", "kind": "instance",
        "instantiates": [f"{mapping.MHD}/CapabilityStatement/IHE.MHD.DocumentResponder"],
        "software": {"name": "DMP-XDS"}, "implementation": {"description": "DMP-XDS MHD Document Responder",
                                                            "url": base},
        "fhirVersion": "4.0.1", "format": [FHIR_XML, FHIR_JSON, "xml", "json"],
        "rest": [{"mode": "server", "security": security, "resource": [
            {"type": "DocumentReference", "profile": mapping.PROFILE_DOCUMENT_REFERENCE,
             "interaction": [{"code": "read"}, {"code": "search-type"}], "searchParam": documents},
            {"type": "List", "interaction": [{"code": "search-type"}], "searchParam": lists},
            {"type": "Binary", "interaction": [{"code": "read"}]},
        ]}],
    }


def stream(document: iti68.Document) -> Iterator[bytes]:
    yield from document.chunks


def dumps(doc: dict) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()

