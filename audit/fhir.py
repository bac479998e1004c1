"""ITI-81 Retrieve ATNA Audit Event, the actor's part: the search and the DICOM -> FHIR R4 mapping.

IHE ITI TF-2 3.81 (RESTful ATNA): search parameters ``date`` (required, prefixes ge/le/gt/lt/eq),
``patient.identifier``, ``entity.identifier``, ``agent.identifier`` (also ``agent``, ``user``),
``altid``, ``type``, ``subtype``, ``outcome``, ``source``, ``address``; several values of one
parameter separated by commas are alternatives. A token without a system matches the value in any
system, ``|value`` a value without one (FHIR R4 search 3.1.1.4.9). Paging: ``_count`` (at most
1,000) and the ``_cursor`` and ``_snapshot`` the ``next`` link carries (pages newest first; a
cursor is the seq the next page starts below, the snapshot the newest record when the first page
was answered, so records arriving meanwhile shift no page and change no total). DICOM -> FHIR mapping
after the IHE/HL7 "DICOM audit message to FHIR AuditEvent" table (FHIR R4 AuditEvent, section
6.4), elements in the order of the R4 definitions (FHIR XML needs it); every ``Coding.system`` is
a URI: DICOM's ontology URL, ``urn:ihe:event-type-code`` for IHE transactions (as IHE's MHD and
BALP audit examples write them), ``urn:oid:`` for an OID, a URI as it is, and no system for a
name that is none of these (``RFC-3881``, ``IHE XDS Metadata``: the display keeps the meaning).

Who may read, and the audit of each read, are the transaction's (:mod:`transactions.iti81`); the
HTTP door is :mod:`bindings.fhir_audit`.
"""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from audit import fields, store, syslog

DCM = "http://dicom.nema.org/resources/ontology/DCM"
IHE_EVENT_TYPE = "urn:ihe:event-type-code"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
MAX_COUNT = 1000
DEFAULT_COUNT = 100
SYSTEMS = {"DCM": DCM, "IHE Transactions": IHE_EVENT_TYPE}
"""codeSystemName values of DICOM audit messages -> the FHIR code system URI."""
_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s]+")


class BadRequest(ValueError):
    pass


def code_system(name: str | None) -> str | None:
    """The FHIR ``Coding.system`` of a DICOM codeSystemName: a URI, or None when it names none."""
    if not name:
        return None
    if name in SYSTEMS:
        return SYSTEMS[name]
    if _OID.fullmatch(name):
        return "urn:oid:" + name
    return name if _URI.fullmatch(name) else None


def _coding(el) -> dict:
    out = {}
    system = code_system(el.get("codeSystemName"))
    if system:
        out["system"] = system
    out["code"] = el.get("csd-code") or el.get("code")
    if el.get("originalText") or el.get("displayName"):
        out["display"] = el.get("displayName") or el.get("originalText")
    return out


_PARTIAL = re.compile(r"(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?")


def time_range(value: str) -> tuple[float, float]:
    """The span a FHIR date/dateTime names (a year, a month, a day, a second, or an instant), as
    (first, last) timestamps; BadRequest when it is none."""
    m = _PARTIAL.fullmatch(value)
    try:
        if m:
            year, month, day = int(m[1]), int(m[2] or 1), int(m[3] or 1)
            start = datetime(year, month, day, tzinfo=UTC)
            if m[3]:
                end = start + timedelta(days=1)
            elif m[2]:
                end = start + timedelta(days=calendar.monthrange(year, month)[1])
            else:
                end = datetime(year + 1, 1, 1, tzinfo=UTC)
            return start.timestamp(), end.timestamp() - 1e-6
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"date value {value!r} is not a FHIR date/dateTime") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    t = dt.timestamp()
    return (t, t) if dt.microsecond else (t, t + 1 - 1e-6)


def parse_time(value: str) -> float:
    """The first instant of a FHIR date/dateTime (the portal's date fields)."""
    return time_range(value)[0]


def parse_query(params: list[tuple[str, str]], require_date: bool = True, max_count: int = MAX_COUNT) -> store.Query:
    """ITI-81 search parameters -> :class:`audit.store.Query` (newest first, one page of at most
    ``max_count``); BadRequest on misuse. ``_format`` and the other result parameters are the
    door's; unknown ones are refused."""
    q = store.Query(limit=min(DEFAULT_COUNT, max_count), newest_first=True)
    dates = 0
    for name, raw in params:
        values = [v for v in raw.split(",") if v]
        if name == "date":
            dates += 1
            _date(q, raw)
        elif name == "patient.identifier":
            for v in values:
                _patient(q, v)
        elif name == "entity.identifier":
            q.entity = (q.entity or []) + [_token(v) for v in values]
        elif name in ("agent", "agent.identifier", "user", "agent-name"):
            q.user = (q.user or []) + [_token(v) for v in values]
        elif name == "altid":
            q.altid = (q.altid or []) + values
        elif name == "type":
            q.event = (q.event or []) + [_token(v) for v in values]
        elif name == "subtype":
            q.subtype = (q.subtype or []) + [_token(v) for v in values]
        elif name == "outcome":
            try:
                q.outcome = (q.outcome or []) + [int(_token(v)) for v in values]
            except ValueError:
                raise BadRequest("outcome must be 0, 4, 8 or 12") from None
        elif name in ("source", "source.identifier"):
            q.source = (q.source or []) + [_token(v) for v in values]
        elif name == "address":
            q.address = (q.address or []) + values
        elif name == "_count":
            q.limit = max(0, min(max_count, _integer(name, raw)))
        elif name == "_cursor":
            q.before = _integer(name, raw)
        elif name == "_snapshot":
            q.through = _integer(name, raw)
        elif name.startswith("_"):
            continue
        else:
            raise BadRequest(f"unsupported search parameter {name!r}")
    if require_date and not dates:
        raise BadRequest("the date parameter is required (ITI TF-2 3.81.4.1.2.1)")
    return q


def _integer(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None


def _date(q: store.Query, raw: str) -> None:
    """One ``date`` parameter: its prefix applied to the span its value names; several narrow."""
    prefix, value = (raw[:2], raw[2:]) if raw[:2] in ("ge", "le", "gt", "lt", "eq") else ("eq", raw)
    first, last = time_range(value)
    since = {"ge": first, "gt": last + 1e-6, "eq": first}.get(prefix)
    until = {"le": last, "lt": first - 1e-6, "eq": last}.get(prefix)
    if since is not None:
        q.since = since if q.since is None else max(q.since, since)
    if until is not None:
        q.until = until if q.until is None else min(q.until, until)


def _token(value: str) -> str:
    return value.split("|", 1)[1] if "|" in value else value


def _patient(q: store.Query, value: str) -> None:
    """One alternative of ``patient.identifier``: ``system|id`` (``urn:oid:`` systems) is the
    ``oid|id`` key, ``|id`` an id without a system, a bare id any system's, a CX itself."""
    if "|" in value:
        system, ident = value.split("|", 1)
        key = f"{system.removeprefix('urn:oid:')}|{ident}" if system else ident
        q.patient = (q.patient or []) + [key]
    elif "^" in value:
        q.patient = (q.patient or []) + [value]
    else:
        q.patient_any = (q.patient_any or []) + [value]


def named_patients(q: store.Query) -> list[str]:
    """The patients a search names, as CX where it gives the authority (``id^^^&oid&ISO``): the
    patients its audit record names."""
    out = []
    for key in (q.patient or []) + (q.patient_any or []):
        oid, sep, ident = key.rpartition("|")
        out.append(f"{ident}^^^&{oid}&ISO" if sep and _OID.fullmatch(oid) else key)
    return out


def _instant(value: str | None) -> str | None:
    """EventDateTime as a FHIR ``instant`` (seconds and a time zone required); None if unreadable."""
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.isoformat(timespec="milliseconds")


def _agent(ap) -> dict:
    """One ActiveParticipant as ``AuditEvent.agent`` (R4 order: type, role, who, altId, name,
    requestor, network)."""
    a: dict = {}
    roles = [{"coding": [_coding(r)]} for r in ap.iterfind("RoleIDCode")]
    if len(roles) == 1:
        a["type"] = roles[0]
    elif roles:
        a["role"] = roles
    user = ap.get("UserID")
    a["who"] = {"identifier": {"value": user}} if user else {"display": "unknown"}
    if ap.get("AlternativeUserID"):
        a["altId"] = ap.get("AlternativeUserID")
    if ap.get("UserName"):
        a["name"] = ap.get("UserName")
    a["requestor"] = ap.get("UserIsRequestor") in ("true", "1")
    if ap.get("NetworkAccessPointID"):
        a["network"] = {"address": ap.get("NetworkAccessPointID"),
                        "type": ap.get("NetworkAccessPointTypeCode") or "1"}
    return a


def _entity(po) -> dict:
    """One ParticipantObjectIdentification as ``AuditEvent.entity`` (R4 order: what, type, role,
    name, query, detail)."""
    identifier: dict = {}
    id_type = po.find("ParticipantObjectIDTypeCode")
    if id_type is not None:
        identifier["type"] = {"coding": [_coding(id_type)]}
    if po.get("ParticipantObjectID"):
        identifier["value"] = po.get("ParticipantObjectID")
    e: dict = {"what": {"identifier": identifier}}
    if po.get("ParticipantObjectTypeCode"):
        e["type"] = {"system": ENTITY_TYPE, "code": po.get("ParticipantObjectTypeCode")}
    if po.get("ParticipantObjectTypeCodeRole"):
        e["role"] = {"system": OBJECT_ROLE, "code": po.get("ParticipantObjectTypeCodeRole")}
    if name := po.findtext("ParticipantObjectName"):
        e["name"] = name
    if query := po.findtext("ParticipantObjectQuery"):
        e["query"] = "".join(query.split())
    details = [{"type": d.get("type"), "valueBase64Binary": d.get("value")}
               for d in po.iterfind("ParticipantObjectDetail") if d.get("type") and d.get("value")]
    if details:
        e["detail"] = details
    return e


def audit_event(row) -> dict | None:
    """FHIR R4 AuditEvent of a stored record (elements in the R4 order); None for records that are
    not DICOM audit messages."""
    try:
        msg = syslog.parse(bytes(row.raw)).msg
    except syslog.SyslogError:
        return None
    root, _status = fields.parse_audit_xml(msg)
    if root is None:
        return None
    ei = root.find("EventIdentification")
    if ei is None or ei.find("EventID") is None:
        return None
    recorded = _instant(ei.get("EventDateTime"))
    if recorded is None and row.event_ts is not None:
        recorded = datetime.fromtimestamp(row.event_ts, UTC).isoformat(timespec="milliseconds")
    res: dict = {"resourceType": "AuditEvent", "id": str(row.seq), "type": _coding(ei.find("EventID"))}
    subtypes = [_coding(t) for t in ei.iterfind("EventTypeCode")]
    if subtypes:
        res["subtype"] = subtypes
    if ei.get("EventActionCode"):
        res["action"] = ei.get("EventActionCode")
    res["recorded"] = recorded
    if ei.get("EventOutcomeIndicator"):
        res["outcome"] = ei.get("EventOutcomeIndicator")
    if description := ei.findtext("EventOutcomeDescription"):
        res["outcomeDesc"] = description
    pou = [{"coding": [_coding(p)]} for p in ei.iterfind("PurposeOfUse")]
    if pou:
        res["purposeOfEvent"] = pou
    res["agent"] = [_agent(ap) for ap in root.iterfind("ActiveParticipant")]
    src = root.find("AuditSourceIdentification")
    source: dict = {}
    if src is not None and src.get("AuditEnterpriseSiteID"):
        source["site"] = src.get("AuditEnterpriseSiteID")
    source["observer"] = {"display": (src.get("AuditSourceID") if src is not None else None) or "unknown"}
    types = [{"system": SOURCE_TYPE, "code": t.get("csd-code") or t.get("code")}
             for t in (src.iterfind("AuditSourceTypeCode") if src is not None else ())]
    if types:
        source["type"] = types
    res["source"] = source
    entities = [_entity(po) for po in root.iterfind("ParticipantObjectIdentification")]
    if entities:
        res["entity"] = entities
    return res


@dataclass
class Page:
    """One page of a search, newest first: the rows, how many match in all, and the parameters of
    the next page (``_cursor``, ``_snapshot``; None on the last)."""
    rows: list
    total: int
    next_cursor: int | None
    snapshot: int | None = None


def search_page(database, q: store.Query) -> Page:
    """The page ``q`` asks for, with ``Bundle.total`` and the next page's cursor. The first page
    fixes the snapshot (the newest matching record then), which the next pages carry."""
    if q.through is None:
        newest = store.search(database, replace(q, limit=1, before=None))
        q = replace(q, through=newest[0].seq if newest else 0)
    limit = q.limit
    rows = store.search(database, replace(q, limit=limit + 1)) if limit else []
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, store.count_matching(database, q), rows[-1].seq if more and rows else None, q.through)


def bundle(rows, base: str, total: int | None = None, links: list[tuple[str, str]] | None = None) -> dict:
    """A searchset Bundle of ``rows``: ``base`` is the ITI-81 service URL (``.../audit``), ``links``
    (relation, url) pairs such as self and next."""
    entries = []
    for r in rows:
        ev = audit_event(r)
        if ev is not None:
            entries.append({"fullUrl": f"{base}/AuditEvent/{ev['id']}", "resource": ev,
                            "search": {"mode": "match"}})
    out: dict = {"resourceType": "Bundle", "type": "searchset", "total": len(entries) if total is None else total}
    if links:
        out["link"] = [{"relation": rel, "url": url} for rel, url in links]
    if entries:
        out["entry"] = entries
    return out


def operation_outcome(code: str, message: str) -> dict:
    """An OperationOutcome with one error issue (``code``: FHIR issue-type)."""
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": message}]}


__all__ = ["parse_query", "audit_event", "bundle", "search_page", "operation_outcome", "named_patients",
           "code_system", "parse_time", "time_range"]
