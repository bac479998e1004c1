"""Who accessed this patient's record, when, how: the patient-facing access history (DMP).

Read from the Audit Record Repository (:mod:`audit.store`): every record naming the patient
(ParticipantObject type 1 role 1, DICOM PS3.15 A.5.3), newest first, reduced to what a patient
understands. Emergency accesses (TRE_R248 ``bris_de_glace``, ``centre_15``, or an Emergency
Override security event) are flagged: the DMP shows every one of them to the patient.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from audit import fields, messages, store, syslog

_SYSTEM_ROLES = {messages.SOURCE.code, messages.DESTINATION.code, messages.APPLICATION.code,
                 messages.APPLICATION_LAUNCHER.code}
_EMERGENCY = {"bris_de_glace", "centre_15"}


@dataclass
class AccessEntry:
    time: datetime | None
    user: str | None
    """The person (XUA subject / portal login), else the calling system."""
    role: str | None
    organization: str | None
    event: str
    """The transaction (e.g. ``ITI-18 Registry Stored Query``) or the DICOM event."""
    outcome: int | None
    emergency: bool
    user_name: str | None = None


def access_history(database, patient_id: str, limit: int = 500) -> list[AccessEntry]:
    """Accesses to ``patient_id`` (a CX, or ``oid|id``), newest first."""
    keys = [patient_id]
    norm = fields.normalize_patient(patient_id)
    if norm:
        keys.append(norm)
    out = []
    for row in store.search(database, store.Query(patient=keys, limit=limit, newest_first=True)):
        entry = _entry(row)
        if entry is not None:
            out.append(entry)
    return out


@dataclass(frozen=True)
class ChainedEmergency:
    """An emergency access as the chain holds it: the policy's Emergency Override alert."""
    seq: int
    patient_ids: frozenset[str]
    professional_id: str
    professional_name: str | None
    organization: str | None
    mode: str
    at: float


def chained_emergencies(database) -> Iterator[ChainedEmergency]:
    """Every granted emergency access the chain records (Security Alert 110113 of type 110127
    Emergency Override, outcome 0, purpose of use ``bris_de_glace`` or ``centre_15``): what the
    patient's emergency-access list is derived from, so that ``xds audit verify`` can check it."""
    for row in store.search_event_type(database, messages.EMERGENCY_OVERRIDE.code):
        modes = sorted(set((row.purpose or "").split()) & _EMERGENCY)
        entry = _entry(row)
        if row.outcome != messages.SUCCESS or not modes or entry is None or not entry.user \
                or row.event_ts is None:
            continue
        patients = frozenset(v for k, v in json.loads(row.keys) if k == "patient")
        yield ChainedEmergency(int(row.seq), patients, entry.user, entry.user_name, entry.organization, modes[0],
                               float(row.event_ts))


def _entry(row) -> AccessEntry | None:
    try:
        root, _ = fields.parse_audit_xml(syslog.parse(bytes(row.raw)).msg)
    except syslog.SyslogError:
        return None
    if root is None:
        return None
    ei = root.find("EventIdentification")
    types = list(ei.iterfind("EventTypeCode")) if ei is not None else []
    event = " ".join(filter(None, (types[0].get("csd-code"), types[0].get("originalText")))) if types else \
        (row.event_id or "")
    person = system = None
    for ap in root.iterfind("ActiveParticipant"):
        roles = [r.get("csd-code") for r in ap.iterfind("RoleIDCode")]
        if ap.get("UserIsRequestor") not in ("true", "1"):
            continue
        if roles and all(r in _SYSTEM_ROLES for r in roles):
            system = system or ap
        else:
            person = person or ap
    who = person if person is not None else system
    role = None
    if person is not None:
        codes = [r.get("originalText") or r.get("csd-code") for r in person.iterfind("RoleIDCode")]
        role = ", ".join(c for c in codes if c) or None
    purposes = set((row.purpose or "").split())
    emergency = bool(purposes & _EMERGENCY) or any(t.get("csd-code") == messages.EMERGENCY_OVERRIDE.code
                                                  for t in types)
    when = datetime.fromtimestamp(row.event_ts).astimezone() if row.event_ts is not None else None
    return AccessEntry(when, who.get("UserID") if who is not None else None, role,
                       person.get("AlternativeUserID") if person is not None else None, event, row.outcome,
                       emergency, person.get("UserName") if person is not None else None)
