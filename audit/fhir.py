"""ITI-81 Retrieve ATNA Audit Event: ``GET /audit/AuditEvent`` answers a FHIR R4 Bundle (JSON).

IHE ITI TF-2 3.81 (RESTful ATNA): search parameters ``date`` (required, prefixes ge/le/gt/lt/eq),
``patient.identifier``, ``entity.identifier``, ``agent.identifier`` (also ``agent``, ``user``),
``altid``, ``type``, ``subtype``, ``outcome``, ``source``, ``address``; several values of one
parameter separated by commas are alternatives. DICOM -> FHIR mapping after the IHE/HL7 "DICOM
audit message to FHIR AuditEvent" table (FHIR R4 AuditEvent, section 6.4).
"""
from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from audit import fields, store, syslog

DCM = "http://dicom.nema.org/resources/ontology/DCM"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
MAX_COUNT = 1000


class BadRequest(ValueError):
    pass


def _system(name: str | None) -> str | None:
    if name == "DCM":
        return DCM
    return name or None


def _coding(el) -> dict:
    out = {"code": el.get("csd-code") or el.get("code")}
    system = _system(el.get("codeSystemName"))
    if system:
        out["system"] = system
    if el.get("originalText") or el.get("displayName"):
        out["display"] = el.get("displayName") or el.get("originalText")
    return out


def _time(value: str) -> float:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"date value {value!r} is not a FHIR date/dateTime") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _token(value: str) -> str:
    return value.split("|", 1)[1] if "|" in value else value


def parse_query(params: list[tuple[str, str]]) -> store.Query:
    """ITI-81 search parameters -> :class:`audit.store.Query`; BadRequest on misuse."""
    q = store.Query(limit=MAX_COUNT, newest_first=True)
    dates = 0
    for name, raw in params:
        values = [v for v in raw.split(",") if v]
        if name == "date":
            dates += 1
            prefix, value = (raw[:2], raw[2:]) if raw[:2] in ("ge", "le", "gt", "lt", "eq") else ("eq", raw)
            t = _time(value)
            if prefix in ("ge", "gt"):
                q.since = t
            elif prefix in ("le", "lt"):
                q.until = t
            else:
                q.since = q.until = t
        elif name == "patient.identifier":
            q.patient = (q.patient or []) + [_patient(v) for v in values]
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
            q.limit = max(1, min(MAX_COUNT, int(raw)))
        elif name.startswith("_"):
            continue
        else:
            raise BadRequest(f"unsupported search parameter {name!r}")
    if not dates:
        raise BadRequest("the date parameter is required (ITI TF-2 3.81.4.1.2.1)")
    return q


def _patient(value: str) -> str:
    """``system|value`` (system ``urn:oid:...``) -> the ``oid|id`` key; a bare value is a CX."""
    if "|" in value:
        system, ident = value.split("|", 1)
        return f"{system.removeprefix('urn:oid:')}|{ident}"
    return value


def audit_event(row) -> dict | None:
    """FHIR R4 AuditEvent of a stored record; None for records that are not DICOM audit messages."""
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
    res: dict = {"resourceType": "AuditEvent", "id": str(row.seq), "type": _coding(ei.find("EventID"))}
    subtypes = [_coding(t) for t in ei.iterfind("EventTypeCode")]
    if subtypes:
        res["subtype"] = subtypes
    if ei.get("EventActionCode"):
        res["action"] = ei.get("EventActionCode")
    res["recorded"] = ei.get("EventDateTime")
    if ei.get("EventOutcomeIndicator"):
        res["outcome"] = ei.get("EventOutcomeIndicator")
    if ei.findtext("EventOutcomeDescription"):
        res["outcomeDesc"] = ei.findtext("EventOutcomeDescription")
    pou = [{"coding": [_coding(p)]} for p in ei.iterfind("PurposeOfUse")]
    if pou:
        res["purposeOfEvent"] = pou
    agents = []
    for ap in root.iterfind("ActiveParticipant"):
        a: dict = {"who": {"identifier": {"value": ap.get("UserID")}},
                   "requestor": ap.get("UserIsRequestor") in ("true", "1")}
        if ap.get("AlternativeUserID"):
            a["altId"] = ap.get("AlternativeUserID")
        if ap.get("UserName"):
            a["name"] = ap.get("UserName")
        roles = [{"coding": [_coding(r)]} for r in ap.iterfind("RoleIDCode")]
        if roles:
            a["type" if len(roles) == 1 else "role"] = roles[0] if len(roles) == 1 else roles
        if ap.get("NetworkAccessPointID"):
            a["network"] = {"address": ap.get("NetworkAccessPointID"),
                            "type": ap.get("NetworkAccessPointTypeCode") or "1"}
        agents.append(a)
    res["agent"] = agents
    src = root.find("AuditSourceIdentification")
    if src is not None:
        s: dict = {"observer": {"display": src.get("AuditSourceID")}}
        if src.get("AuditEnterpriseSiteID"):
            s["site"] = src.get("AuditEnterpriseSiteID")
        types = [{"system": SOURCE_TYPE, "code": t.get("csd-code")} for t in src.iterfind("AuditSourceTypeCode")]
        if types:
            s["type"] = types
        res["source"] = s
    entities = []
    for po in root.iterfind("ParticipantObjectIdentification"):
        e: dict = {"what": {"identifier": {"value": po.get("ParticipantObjectID")}}}
        id_type = po.find("ParticipantObjectIDTypeCode")
        if id_type is not None:
            e["what"]["identifier"]["type"] = {"coding": [_coding(id_type)]}
        if po.get("ParticipantObjectTypeCode"):
            e["type"] = {"system": ENTITY_TYPE, "code": po.get("ParticipantObjectTypeCode")}
        if po.get("ParticipantObjectTypeCodeRole"):
            e["role"] = {"system": OBJECT_ROLE, "code": po.get("ParticipantObjectTypeCodeRole")}
        if po.findtext("ParticipantObjectName"):
            e["name"] = po.findtext("ParticipantObjectName")
        if query := po.findtext("ParticipantObjectQuery"):
            e["query"] = query.strip()
        details = [{"type": d.get("type"), "valueBase64Binary": d.get("value")}
                   for d in po.iterfind("ParticipantObjectDetail")]
        if details:
            e["detail"] = details
        entities.append(e)
    if entities:
        res["entity"] = entities
    return res


def bundle(rows, base: str) -> dict:
    entries = []
    for r in rows:
        ev = audit_event(r)
        if ev is not None:
            entries.append({"fullUrl": f"{base}/AuditEvent/{ev['id']}", "resource": ev})
    return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}


def _outcome(status: str, message: str) -> dict:
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": status, "diagnostics": message}]}


class AuditEventApp:
    """WSGI app mounted at ``/audit`` (``server.app.build_services``)."""

    def __init__(self, database) -> None:
        self.database = database

    def __call__(self, environ: dict, start_response):
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        if path.rstrip("/") != "/AuditEvent" and not path.startswith("/AuditEvent/"):
            return self._json(start_response, "404 Not Found", _outcome("not-found", f"no resource at {path}"))
        if method not in ("GET", "HEAD"):
            return self._json(start_response, "405 Method Not Allowed",
                              _outcome("not-supported", "ITI-81 is read-only: GET"))
        base = environ.get("wsgi.url_scheme", "http") + "://" + (environ.get("HTTP_HOST") or "") + \
            environ.get("SCRIPT_NAME", "")
        if path.startswith("/AuditEvent/"):
            seq = path[len("/AuditEvent/"):]
            rows = store.search_seq(self.database, int(seq)) if seq.isdigit() else []
            ev = audit_event(rows[0]) if rows else None
            if ev is None:
                return self._json(start_response, "404 Not Found", _outcome("not-found", f"AuditEvent/{seq}"))
            return self._json(start_response, "200 OK", ev)
        try:
            q = parse_query(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=False))
        except (BadRequest, ValueError) as exc:
            return self._json(start_response, "400 Bad Request", _outcome("invalid", str(exc)))
        return self._json(start_response, "200 OK", bundle(store.search(self.database, q), base))

    @staticmethod
    def _json(start_response, status: str, doc: dict):
        body = json.dumps(doc, ensure_ascii=False).encode()
        start_response(status, [("Content-Type", "application/fhir+json; charset=utf-8"),
                                ("Content-Length", str(len(body)))])
        return [body]


__all__ = ["AuditEventApp", "parse_query", "audit_event", "bundle", "base64"]
