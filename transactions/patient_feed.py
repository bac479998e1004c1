"""The Patient Identity Feed: the one door of ITI-104 (FHIR, ``bindings.fhir_patient``) and ITI-8
(HL7 v2 over MLLP, ``bindings.mllp``) to the DMP records.

Both bindings parse their message, name the trusted Patient Identity Source that sent it, and
call :func:`add_or_revise` (ITI-8 ADT^A01/A04/A05/A08, ITI TF-2 3.8.4.1; ITI-104 Add or Revise
Patient, PIXm 3.104.4.1) or :func:`merge` (ITI-8 ADT^A40, 3.8.4.2; ITI-104 Resolve Patient
Duplicate, 3.104.4.2). A merge moves, in one database transaction, the subsumed patient's
entries, folders and submission sets (:meth:`registry.register.Registry.merge_patient`) and
access policy (authorisations, blocks, masks, emergency log:
:meth:`access.store.AccessStore.merge_patient`) to the surviving identifier, and keeps the
subsumed record as a link to it (the patient's INS versions).

Every message is audited as the receiver of ITI-8 audits it (ITI TF-2 3.8.5.1.2; PIXm 3.104.5.1
follows it): Patient Record 110110, C / U, and for a merge D for the subsumed patient and U for
the survivor (:func:`audit.messages.patient_feed`); a message refused for its content is
audited too, as a minor failure. A sender that is not a trusted source is refused by the binding
and reported here as a Security Alert (:func:`refused`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from access.store import AccessStore
from audit import messages
from audit.auditor import AuditorLike
from registry.register import PatientIdentity, PatientMerge, PatientRecord, Registry
from transactions.alerts import security_alert
from transactions.services import Services, safely
from xds.context import Caller

log = logging.getLogger(__name__)


class FeedError(ValueError):
    """The message names a patient the registry cannot take (bad id, merged record...): ITI-104
    answers 400/422 with an OperationOutcome, ITI-8 an ACK with AE."""


@dataclass
class PatientFeed:
    """What the feed works with: the registry (its ``patients``) and the auditor; the access
    tables are in the registry's database (one transaction for a merge)."""
    registry: Registry
    auditor: AuditorLike

    @classmethod
    def of(cls, services: Services) -> PatientFeed:
        return cls(services.registry, services.auditor)


@dataclass
class Origin:
    """Who sent the message and how: ``transaction`` ITI-8 or ITI-104; for ITI-8 the sending
    application|facility (MSH-3|MSH-4), receiving application|facility (MSH-5|MSH-6) and the
    message control id (MSH-10), which the audit record names."""
    transaction: str
    sender: str | None = None
    receiver: str | None = None
    control_id: str | None = None


@dataclass
class FeedResult:
    action: str
    """``created``, ``updated`` or ``merged``."""
    record: PatientRecord
    merge: PatientMerge | None = None


def add_or_revise(feed: PatientFeed, caller: Caller, origin: Origin, patient_id: str,
                  identity: PatientIdentity) -> FeedResult:
    """Create the record of ``patient_id`` or revise its demographics; audited. Raises FeedError."""
    try:
        for attempt in (1, 2):
            try:
                with feed.registry.db.write() as conn:
                    action = feed.registry.feed_patient(conn, patient_id, identity)
                    record = feed.registry.patient_record(patient_id, conn)
                break
            except IntegrityError:
                if attempt == 2:
                    raise
                log.info("patient feed: %s created concurrently; revising it", patient_id)
    except ValueError as exc:
        _audit(feed, caller, origin, "refused", patient_id, messages.MINOR_FAILURE, f"{origin.transaction}: {exc}")
        raise FeedError(str(exc)) from exc
    assert record is not None
    _audit(feed, caller, origin, action, patient_id, messages.SUCCESS,
           f"{origin.transaction}: patient record {action}")
    return FeedResult(action, record)


def merge(feed: PatientFeed, caller: Caller, origin: Origin, merged_id: str, surviving_id: str,
          merged_identity: PatientIdentity | None = None,
          surviving_identity: PatientIdentity | None = None) -> FeedResult:
    """Merge the record of ``merged_id`` into the one of ``surviving_id`` with its access policy,
    revising the survivor's demographics when the message gives them (ADT^A40's PID); audited
    for both patients. Raises FeedError."""
    try:
        with feed.registry.db.write() as conn:
            if surviving_identity is not None and not _merged(feed.registry.patient_record(surviving_id, conn)):
                feed.registry.feed_patient(conn, surviving_id, surviving_identity)
            done = feed.registry.merge_patient(conn, merged_id, surviving_id, merged_identity)
            policy = 0 if done.already else AccessStore.merge_patient(conn, merged_id, surviving_id)
            record = feed.registry.patient_record(surviving_id, conn)
    except ValueError as exc:
        _audit(feed, caller, origin, "merged", merged_id, messages.MINOR_FAILURE, f"{origin.transaction}: {exc}")
        raise FeedError(str(exc)) from exc
    assert record is not None
    what = (f"{origin.transaction}: patient {done.merged} merged into {done.surviving}"
            + (" (already merged)" if done.already else
               f": {done.documents} documents, {done.folders} folders, {done.submission_sets} submission sets, "
               f"{policy} access decisions moved"))
    log.info("%s", what)
    _audit(feed, caller, origin, "merged", merged_id, messages.SUCCESS, what)
    _audit(feed, caller, origin, "updated", surviving_id, messages.SUCCESS, what)
    return FeedResult("merged", record, done)


def refused(feed: PatientFeed, caller: Caller, transaction: str, reason: str, kind: str = "authentication") -> None:
    """A message from a sender that is not a trusted Patient Identity Source: a Security Alert
    (ITI TF-2 3.20.7.3: every refused access), ``kind`` ``authentication`` (no or unknown
    credential) or ``restricted`` (a known node that is no source)."""
    where = caller.remote_addr or "an unknown address"
    security_alert(feed.auditor, caller, f"{transaction} Patient Identity Feed from {where} refused: {reason}", kind)


def _merged(record: PatientRecord | None) -> bool:
    return record is not None and record.state == "merged"


def _audit(feed: PatientFeed, caller: Caller, origin: Origin, action: str, patient_id: str, outcome: int,
           description: str) -> None:
    if feed.auditor.enabled:
        safely(feed.auditor.record, messages.patient_feed(
            caller, feed.auditor.source_id, outcome, origin.transaction, action, patient_id, origin.sender,
            origin.receiver, origin.control_id, description))
