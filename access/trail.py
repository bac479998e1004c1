"""Who may read the audit trail (ITI-81 and the portal's auditor desk, :mod:`transactions.iti81`).

The trail names every patient's accesses, every professional, every emergency access: an auditor
reads all of it; a patient only the records that name her (her access history), asked for by her
own identifier with its assigning authority. Anyone else reads none of it.
"""
from __future__ import annotations

from audit.fields import normalize_patient
from xds.context import Caller

AUDITOR = "auditor"
PATIENT = "patient"


def _key(patient_id: str) -> str:
    """``oid|id`` for a CX with an authority, the value itself otherwise."""
    return normalize_patient(patient_id) or patient_id


def may_read_trail(caller: Caller, patient_ids: list[str]) -> str | None:
    """None when ``caller`` may read the records a read names (``patient_ids``: the patients its
    search or its record names); else why not, for the security alert."""
    if not caller.authenticated:
        return "the caller is not authenticated"
    if caller.kind == AUDITOR:
        return None
    if caller.kind == PATIENT and caller.user_id and patient_ids:
        own = _key(caller.user_id)
        if "|" in own and all(_key(p) == own for p in patient_ids):
            return None
        return "a patient reads only the records of her own identifier"
    who = caller.user_id or caller.node_subject or caller.remote_addr or "an unknown caller"
    return f"{who} is not an auditor"
