"""Indexed fields of a received audit message (ITI TF-2 3.20.7: the ARR keeps what it receives).

Any RFC 5424 message is accepted. When its MSG is a DICOM AuditMessage the ARR indexes event id
and type, time, outcome, user ids, patient ids, object ids, source, purpose of use. A message cut
short (a UDP datagram truncated on the way, ITI TF-2 3.20.6.3) is repaired by closing the open
elements with lxml's recovering parser; the raw bytes are kept unchanged either way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from lxml import etree

from audit import syslog

OK, REPAIRED, NOT_AUDIT, INVALID = "ok", "repaired", "not-audit", "invalid"

_STRICT = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)
_RECOVER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False, recover=True)


@dataclass
class Fields:
    status: str
    event_ts: float | None = None
    event_id: str | None = None
    event_action: str | None = None
    event_type: str | None = None
    outcome: int | None = None
    source_id: str | None = None
    purpose: str | None = None
    keys: list[tuple[str, str]] = field(default_factory=list)
    """(kind, value): user, altid, address, patient, object, subtype."""


def _time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def parse_audit_xml(msg: bytes) -> tuple[etree._Element | None, str]:
    """(AuditMessage root or None, status)."""
    try:
        msg.decode("utf-8")
    except UnicodeDecodeError:
        return None, INVALID
    start = msg.find(b"<")
    if start < 0:
        return None, NOT_AUDIT
    body = msg[start:]
    try:
        root = etree.fromstring(body, _STRICT)
        status = OK
    except etree.XMLSyntaxError:
        try:
            root = etree.fromstring(body, _RECOVER)
        except etree.XMLSyntaxError:
            root = None
        if root is None:
            return None, NOT_AUDIT
        status = REPAIRED
    if etree.QName(root).localname != "AuditMessage":
        return None, NOT_AUDIT
    return root, status


def extract(message: bytes) -> Fields:
    """Indexed fields of a whole syslog message; raises syslog.SyslogError for non-syslog input."""
    parsed = syslog.parse(message)
    root, status = parse_audit_xml(parsed.msg)
    if root is None:
        return Fields(status)
    return fields_of(root, status)


def fields_of(root: etree._Element, status: str = OK) -> Fields:
    f = Fields(status)
    keys: list[tuple[str, str]] = []
    ei = root.find("EventIdentification")
    if ei is not None:
        f.event_ts = _time(ei.get("EventDateTime"))
        f.event_action = ei.get("EventActionCode")
        try:
            f.outcome = int(ei.get("EventOutcomeIndicator", ""))
        except ValueError:
            f.outcome = None
        eid = ei.find("EventID")
        if eid is not None:
            f.event_id = eid.get("csd-code") or eid.get("code")
        types = [t.get("csd-code") or t.get("code") or "" for t in ei.iterfind("EventTypeCode")]
        if types:
            f.event_type = types[0]
        keys += [("subtype", t) for t in types if t]
        pou = [p.get("csd-code") or p.get("code") or "" for p in ei.iterfind("PurposeOfUse")]
        f.purpose = " ".join(p for p in pou if p) or None
    for ap in root.iterfind("ActiveParticipant"):
        for kind, attr in (("user", "UserID"), ("altid", "AlternativeUserID"), ("address", "NetworkAccessPointID")):
            if value := ap.get(attr):
                keys.append((kind, value))
    src = root.find("AuditSourceIdentification")
    if src is not None:
        f.source_id = src.get("AuditSourceID")
    for po in root.iterfind("ParticipantObjectIdentification"):
        oid = po.get("ParticipantObjectID")
        if not oid:
            continue
        if po.get("ParticipantObjectTypeCode") == "1" and po.get("ParticipantObjectTypeCodeRole") == "1":
            keys.append(("patient", oid))
            norm = normalize_patient(oid)
            if norm and norm != oid:
                keys.append(("patient", norm))
        else:
            keys.append(("object", oid))
    f.keys = dedupe(keys)
    return f


def dedupe(keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: set = set()
    out = []
    for k, v in keys:
        item = (k, v[:255])
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def of_message(message: bytes) -> Fields:
    """The fields of a stored message, or the ``invalid`` status when it is not RFC 5424."""
    try:
        return extract(message)
    except syslog.SyslogError:
        return Fields(INVALID)


def to_json(f: Fields) -> str:
    import json
    return json.dumps([f.status, f.event_ts, f.event_id, f.event_action, f.event_type, f.outcome, f.source_id,
                       f.purpose, f.keys], separators=(",", ":"), ensure_ascii=False)


def from_json(text: str) -> Fields:
    import json
    v = json.loads(text)
    status, event_ts, event_id, event_action, event_type, outcome, source_id, purpose = v[:8]
    return Fields(status, event_ts, event_id, event_action, event_type, outcome, source_id, purpose,
                  keys=[tuple(k) for k in v[8]])


def normalize_patient(value: str) -> str | None:
    """CX ``id^^^&oid&ISO`` -> ``oid|id`` (the FHIR token form ITI-81 searches with)."""
    parts = value.split("^")
    if len(parts) >= 4:
        authority = parts[3].split("&")
        if len(authority) >= 2 and authority[1]:
            return f"{authority[1]}|{parts[0]}"
    return None
