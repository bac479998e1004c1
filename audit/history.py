"""Who accessed this patient's record, when, how: the patient-facing access history (DMP).

Read from the Audit Record Repository (:mod:`audit.store`): every record naming the patient
(ParticipantObject type 1 role 1, DICOM PS3.15 A.5.3), newest first, reduced to what a patient
understands. Emergency accesses (TRE_R248 ``bris_de_glace``, ``centre_15``, or an Emergency
Override security event) are flagged: the DMP shows every one of them to the patient.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from audit import fields, messages, store, syslog
from xds.patient import same_patient

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


# -- the patient's readable history (issue 23) -------------------------------------------------------

_ITI_42_EXPORT = messages.EXPORT.code
"""ITI-42 recorded by a Document Repository as the Source (ITI TF-2 3.42.5.1.1): the registration
step of a document the same repository also records as ITI-41, internal to one submission."""
_ADDING = {messages.ITI_41.code, messages.ITI_42.code}


@dataclass
class HistoryEntry:
    """One audit record naming the patient, with what a patient-facing page needs to say it in words.

    ``kind`` is what happened: ``search`` (ITI-18), ``retrieve`` (ITI-43), ``add`` (ITI-41/42),
    ``emergency`` (DICOM 110127 Emergency Override), ``refused`` (a Security Alert with a failure
    outcome), ``trail`` (110101 Audit Log Used), ``record`` (110110 Patient Record read), ``policy``
    (110137 / 110129: who may see what changed), ``login`` (110122), else ``other``."""
    seq: int
    time: datetime | None
    kind: str
    transaction: str | None
    outcome: int | None
    emergency: bool
    person_id: str | None
    person_name: str | None
    role_code: str | None
    role_text: str | None
    organization: str | None
    system: str | None
    """The calling system's name (the host of its wsa:ReplyTo or its TLS subject), never an IP
    address: a bare address means nothing to a patient and identifies a machine, not a person."""
    documents: list[str]
    submission_sets: list[str]
    reason: str | None
    """An emergency access's stated reason (the PurposeOfUse text the professional gave)."""
    description: str | None
    own: bool
    """The patient's own action (her portal, her page views)."""
    technical: bool
    """A step no person took as such (the repository's ITI-42 registration of an ITI-41 it also
    records): hidden from the patient by default, as her own actions are."""


@dataclass
class HistoryPage:
    entries: list[HistoryEntry]
    older: int | None
    """The cursor of the next (older) page: records before this seq; None at the first access."""
    scanned: int


_IP = re.compile(r"^[0-9.]+$|^[0-9a-fA-F:]*:[0-9a-fA-F:.]*$|^\[.*\]$")
_REASON = re.compile(r"reason: (.+)$", re.S)


def _system_name(ap) -> str | None:
    """A calling system as a patient may read it: its host name, never an address."""
    for value in (ap.get("UserID"), ap.get("AlternativeUserID")):
        if not value or "anonymous" in value or value == "unknown":
            continue
        host = urlsplit(value).hostname if "://" in value else value
        if host and not _IP.match(host) and host not in ("localhost",):
            return host
    return None


def history_entry(row, patient_id: str) -> HistoryEntry | None:
    """A :class:`HistoryEntry` of one audit row (None when the record cannot be read)."""
    try:
        root, _ = fields.parse_audit_xml(syslog.parse(bytes(row.raw)).msg)
    except syslog.SyslogError:
        return None
    if root is None:
        return None
    ei = root.find("EventIdentification")
    event_id = ei.find("EventID") if ei is not None else None
    eid = event_id.get("csd-code") if event_id is not None else row.event_id
    types = [t.get("csd-code") for t in ei.iterfind("EventTypeCode")] if ei is not None else []
    person = system = None
    for ap in root.iterfind("ActiveParticipant"):
        if ap.get("UserIsRequestor") not in ("true", "1"):
            continue
        roles = [r.get("csd-code") for r in ap.iterfind("RoleIDCode")]
        if roles and all(r in _SYSTEM_ROLES for r in roles):
            system = system if system is not None else ap
        elif person is None:
            person = ap
    role_code = role_text = None
    if person is not None:
        role = person.find("RoleIDCode")
        if role is not None:
            role_code, role_text = role.get("csd-code"), role.get("originalText")
    purposes = ei.findall("PurposeOfUse") if ei is not None else []
    modes = set((row.purpose or "").split()) & _EMERGENCY
    emergency = bool(modes) or messages.EMERGENCY_OVERRIDE.code in types
    description = ei.findtext("EventOutcomeDescription") if ei is not None else None
    reason = next((p.get("originalText") for p in purposes
                   if p.get("codeSystemName") != messages.ACCESS_MODE_SYSTEM and p.get("originalText")
                   and p.get("originalText") != p.get("csd-code")), None)
    if reason is None and emergency and description:
        found = _REASON.search(description)
        reason = found.group(1).strip() if found else None
    documents, sets = [], []
    for po in root.iterfind("ParticipantObjectIdentification"):
        id_type = po.find("ParticipantObjectIDTypeCode")
        code = id_type.get("csd-code") if id_type is not None else None
        if code == messages.REPORT_NUMBER.code and po.get("ParticipantObjectTypeCodeRole") == messages.ROLE_REPORT:
            documents.append(po.get("ParticipantObjectID") or "")
        elif code == messages.SUBMISSION_SET.code:
            sets.append(po.get("ParticipantObjectID") or "")
    transaction = next((t for t in types if t and t.startswith("ITI-")), None)
    if transaction == messages.ITI_18.code:
        kind = "search"
    elif transaction == messages.ITI_43.code:
        kind = "retrieve"
    elif transaction in _ADDING:
        kind = "add"
    elif messages.EMERGENCY_OVERRIDE.code in types:
        kind = "emergency"
    elif eid == messages.AUDIT_LOG_USED.code:
        kind = "trail"
    elif eid == "110110":
        kind = "record"
    elif types and types[0] in ("110137", "110129"):
        kind = "policy"
    elif messages.USER_AUTHENTICATION.code in types:
        kind = "login"
    elif eid == messages.SECURITY_ALERT.code and row.outcome not in (None, messages.SUCCESS):
        kind = "refused"
    else:
        kind = "other"
    person_id = person.get("UserID") if person is not None else None
    own = person_id is not None and (same_patient(person_id, patient_id) or role_code == "PATIENT")
    technical = transaction == messages.ITI_42.code and eid == _ITI_42_EXPORT
    when = datetime.fromtimestamp(row.event_ts, UTC) if row.event_ts is not None else None
    return HistoryEntry(int(row.seq), when, kind, transaction, row.outcome, emergency, person_id,
                        person.get("UserName") if person is not None else None, role_code, role_text,
                        person.get("AlternativeUserID") if person is not None else None,
                        _system_name(system) if system is not None else None, documents, sets, reason, description,
                        own, technical)


def _registered_by_provide(database, entries: list[HistoryEntry]) -> set[str]:
    """The submission sets among ``entries``' ITI-42 records that an ITI-41 record also names: one
    submission, told once (the registry's ITI-42 Import of a repository's ITI-41)."""
    sets = sorted({s for e in entries if e.transaction == messages.ITI_42.code for s in e.submission_sets})
    if not sets:
        return set()
    rows = store.search(database, store.Query(entity=sets, event=[messages.ITI_41.code], limit=len(sets) * 4))
    found: set[str] = set()
    for row in rows:
        found.update(v for k, v in json.loads(row.keys) if k == "object")
    return found & set(sets)


def history_page(database, patient_id: str, *, before: int | None = None, limit: int = 20,
                 professional: str | None = None, emergency_only: bool = False, since: float | None = None,
                 until: float | None = None, everything: bool = False, batch: int = 0,
                 max_scan: int = 5000) -> HistoryPage:
    """One page of the patient's access history, newest first, from record ``before`` (exclusive).

    The period and the professional are criteria of the store's query; the patient's own actions
    and technical steps are left out unless ``everything``, and ``emergency_only`` keeps emergency
    accesses. Rows are read in batches until the page is full or ``max_scan`` rows were read: the
    page's ``older`` cursor always moves, so paging reaches the first access whatever the filters. The
    first batch is twice the page (each row is an XML record to read), each next one twice the last.
    """
    batch = batch or 2 * limit
    keys = [patient_id]
    norm = fields.normalize_patient(patient_id)
    if norm:
        keys.append(norm)
    out: list[HistoryEntry] = []
    cursor, scanned = before, 0
    while len(out) < limit and scanned < max_scan:
        rows = store.search(database, store.Query(patient=keys, user=[professional] if professional else None,
                                                  since=since, until=until, before=cursor, limit=batch,
                                                  newest_first=True))
        if not rows:
            return HistoryPage(out, None, scanned)
        parsed = {e.seq: e for e in (history_entry(r, patient_id) for r in rows) if e is not None}
        same = set() if everything else _registered_by_provide(database, list(parsed.values()))
        for row in rows:
            scanned += 1
            cursor = int(row.seq)
            entry = parsed.get(cursor)
            if entry is None or (emergency_only and not entry.emergency):
                continue
            if not everything and (entry.own or entry.technical or (entry.transaction == messages.ITI_42.code
                                                                   and set(entry.submission_sets) & same)):
                continue
            out.append(entry)
            if len(out) == limit:
                break
        if len(rows) < batch and len(out) < limit and cursor == int(rows[-1].seq):
            return HistoryPage(out, None, scanned)
        batch = min(batch * 2, 1000)
    return HistoryPage(out, cursor, scanned)
