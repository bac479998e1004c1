"""The patient's emergency-access list, checked against the audit chain and restored from it.

The DMP shows the patient every emergency access to her record (break-glass, centre 15). The
policy writes that list (``access_emergency``) and, in the same decision, an Emergency Override
Security Alert that the audit chain seals (:mod:`audit.seal`). The list is therefore derived
content: deleting a row would hide an emergency access from the patient while the chain still
holds it. :func:`check` names such a row; :func:`restore` puts it back. A row whose alert is not
chained yet (the audit process stores with a lag of about a second) is not a problem: only rows
older than the newest chained record by more than :data:`LAG` must have their alert.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select

from access.store import emergency
from audit import fields, history, store
from storage import Database

MATCH = 10.0
"""Seconds between the list's time and the alert's: both are taken in the same decision."""
LAG = 60.0


@dataclass
class ListProblem:
    detail: str
    seq: int | None = None
    """The chained record the list lacks, when that is the problem."""


@dataclass
class _Row:
    id: int
    patient_id: str
    professional_id: str
    mode: str
    at: float


def _rows(database: Database) -> list[_Row]:
    with database.read() as conn:
        return [_Row(int(r.id), r.patient_id, r.professional_id, r.mode, float(r.at))
                for r in conn.execute(select(emergency).order_by(emergency.c.at, emergency.c.id))]


def _same_patient(patient_id: str, chained: frozenset[str]) -> bool:
    """The row names one of the record's patients: as written, or as ``oid|id`` (CX.1 + CX.4)."""
    return patient_id in chained or fields.normalize_patient(patient_id) in chained


def _match(chained: list[history.ChainedEmergency], rows: list[_Row]) -> tuple[list[history.ChainedEmergency],
                                                                                  list[_Row]]:
    """(alerts without their row, rows without their alert), pairing each alert with one row."""
    free = list(rows)
    missing = []
    for c in chained:
        hit = next((r for r in free if _same_patient(r.patient_id, c.patient_ids)
                    and r.professional_id == c.professional_id
                    and r.mode == c.mode and abs(r.at - c.at) <= MATCH), None)
        if hit is None:
            missing.append(c)
        else:
            free.remove(hit)
    return missing, free


def check(access_db: Database, audit_db: Database) -> ListProblem | None:
    """The first disagreement between the emergency-access list and the chain, or None."""
    missing, extra = _match(list(history.chained_emergencies(audit_db)), _rows(access_db))
    if missing:
        c = missing[0]
        patient = min(c.patient_ids, key=len) if c.patient_ids else "?"
        return ListProblem(f"the emergency access of record {c.seq} ({c.mode} by {c.professional_id} to the record "
                           f"of {patient}) is missing from the patient's emergency-access list; "
                           "`xds audit reindex` restores it", c.seq)
    newest = store.last_event_ts(audit_db)
    stale = [r for r in extra if newest is not None and r.at < newest - LAG]
    if stale:
        r = stale[0]
        return ListProblem(f"emergency-access list row {r.id} ({r.mode} by {r.professional_id} to the record of "
                           f"{r.patient_id}) has no Emergency Override record in the chain")
    return None


def restore(access_db: Database, audit_db: Database) -> int:
    """Add back every chained emergency access the list lacks; returns how many."""
    missing, _ = _match(list(history.chained_emergencies(audit_db)), _rows(access_db))
    if not missing:
        return 0
    with access_db.write() as conn:
        conn.execute(insert(emergency), [
            {"patient_id": min(c.patient_ids, key=lambda p: ("|" in p, len(p))), "professional_id": c.professional_id,
             "professional_name": c.professional_name, "organization": c.organization, "mode": c.mode, "at": c.at}
            for c in missing if c.patient_ids])
    return len(missing)
