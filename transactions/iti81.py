"""ITI-81 Retrieve ATNA Audit Event: the one door of every read of the audit trail (FHIR
``GET /audit/AuditEvent``, the portal's auditor desk: its searches, record views and CSV exports).

Identify the caller (``authenticate``: an auditor's client certificate or bearer token at the FHIR
door, an auditor's session at the portal), ask whether it may read what the read names
(:func:`access.trail.may_read_trail`), search or fetch (:mod:`audit.fhir`, :mod:`audit.store`),
and audit the read: DICOM "Audit Log Used" (110101), R, event type ITI-81 (RESTful ATNA, ITI TF-2
3.81.5.1), naming the reader, this server, the trail with the search as asked, and each patient the
search or the record names (:func:`audit.messages.audit_log_used`). A search the actor refuses
(400) is audited too, as a minor failure. A caller without the right is refused with
:class:`TrailRefused` (401 without a valid credential, 403 otherwise), audited as a Security Alert.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Row

from access.trail import may_read_trail
from audit import fhir, messages, store
from transactions.alerts import security_alert
from transactions.services import Authenticate, Services, safely
from xds.context import Caller

log = logging.getLogger(__name__)

TRAIL = "urn:dmp-xds:audit-trail"
"""The trail's URI in an audit record when the door gave no URL."""


class TrailRefused(Exception):
    """The caller may not read the trail: ``status`` 401 (no valid credential; ``challenge`` is the
    WWW-Authenticate to send) or 403."""

    def __init__(self, message: str, status: int = 403, challenge: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.challenge = challenge


def search(services: Services, caller: Caller, authenticate: Authenticate, params: list[tuple[str, str]], *,
           require_date: bool = True, max_count: int = fhir.MAX_COUNT, what: str = "search") -> fhir.Page:
    """One page of the records an ITI-81 search (``params``, FHIR syntax) matches, for ``caller``.

    ``require_date``: ITI-81's rule (the portal's desk may search all dates); ``max_count``: the
    largest page (the portal's CSV export takes more); ``what``: the kind of read, in the audit
    record's description. Raises :class:`TrailRefused` or :class:`audit.fhir.BadRequest`."""
    text = urlencode(params)
    authenticate_and_check = _admission(services, caller, authenticate)
    try:
        query = fhir.parse_query(params, require_date=require_date, max_count=max_count)
    except fhir.BadRequest as exc:
        authenticate_and_check([], text)
        _audit(services, caller, messages.MINOR_FAILURE, text, [], f"audit trail {what} refused: {exc}")
        raise
    patients = fhir.named_patients(query)
    authenticate_and_check(patients, text)
    outcome = messages.MAJOR_FAILURE
    try:
        page = fhir.search_page(services.database, query)
        outcome = messages.SUCCESS
        return page
    finally:
        _audit(services, caller, outcome, text, patients, f"audit trail {what} by {_reader(caller)}")


def read(services: Services, caller: Caller, authenticate: Authenticate, seq: int | str,
         what: str = "record read") -> Row[Any] | None:
    """One stored record (a row of :data:`audit.store.records`), or None when there is none (an id
    that is no seq included: the caller is admitted, and the read audited, all the same)."""
    admit = _admission(services, caller, authenticate)
    known = isinstance(seq, int) or seq.isdigit()
    rows = store.search_seq(services.database, int(seq)) if known else []
    patients = patients_of(rows[0]) if rows else []
    admit(patients, f"AuditEvent/{str(seq)[:64]}")
    _audit(services, caller, messages.SUCCESS if rows else messages.MINOR_FAILURE, None, patients,
           f"audit {what}: record {str(seq)[:64]}{'' if rows else ' (none)'} by {_reader(caller)}")
    row: Row[Any] | None = rows[0] if rows else None
    return row


def patients_of(row: Row[Any]) -> list[str]:
    """The patients a stored record names (its index keys), as CX where the key gives the authority."""
    try:
        keys = [value for kind, value in json.loads(row.keys) if kind == "patient"]
    except (TypeError, ValueError):
        return []
    return list(dict.fromkeys(fhir.named_patients(store.Query(patient=keys))))


def _admission(services: Services, caller: Caller, authenticate: Authenticate) -> Callable[[list[str], str], None]:
    """``check(patients, asked)``: authenticate once, then apply the rule to what a read names;
    a refusal is a Security Alert, then :class:`TrailRefused`."""
    state = {"authenticated": False}

    def check(patients: list[str], asked: str) -> None:
        try:
            if not state["authenticated"]:
                authenticate(caller)
                state["authenticated"] = True
            refusal = may_read_trail(caller, patients)
            if refusal is not None:
                raise TrailRefused(refusal, 403)
        except TrailRefused as exc:
            where = caller.remote_addr or "an unknown address"
            security_alert(services.auditor, caller, f"ITI-81: read of the audit trail ({asked[:200]}) from {where} "
                                                     f"refused: {exc}", "user" if exc.status == 401 else "restricted",
                           patients[0] if patients else None)
            raise
    return check


def _reader(caller: Caller) -> str:
    return caller.user_id or caller.node_subject or caller.remote_addr or "an unknown reader"


def _audit(services: Services, caller: Caller, outcome: int, query: str | None, patients: list[str],
           description: str) -> None:
    log.info("audit trail read: %s", description)
    if services.auditor.enabled:
        safely(services.auditor.record, messages.audit_log_used(caller, services.auditor.source_id, outcome,
                                                                caller.endpoint or TRAIL, query, patients,
                                                                description))
