"""Changes to the DMP policy, shared by ``xds dmp`` and the JSON API; every change is audited.

Each change is recorded as a DICOM Security Alert of type 110137 "User Security Attributes
Changed" (the record's state: 110129 "Security Configuration"), outcome success, with the
patient as participant object and the actor (portal user, command line) as the requester.

Reading a record's policy tells who may see the patient's documents and who opened it in an
emergency, so :meth:`PolicyAdmin.read` and :meth:`PolicyAdmin.read_emergency_accesses` (what
the JSON API answers) are audited too: a DICOM "Patient Record" event (110110), action R,
naming the actor and the patient, outcome success or, for a record that does not exist, minor
failure. :meth:`PolicyAdmin.show` and :meth:`PolicyAdmin.emergency_accesses` stay unaudited:
they serve the portal (a patient's own record) and ``xds dmp`` (an operator on the host).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from access.policy import BREAK_GLASS, CENTRE_15
from access.store import AUTHORISED, BLOCKED, AccessStore, RecordPolicy
from audit import messages
from audit.auditor import AuditorLike
from registry import facts as registry_facts
from registry.register import Registry
from storage import Database
from xds.context import Caller

log = logging.getLogger(__name__)


class PolicyError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _audit(auditor: AuditorLike | None, actor: Caller, description: str, patient_id: str,
           configuration: bool = False) -> None:
    log.info("DMP policy change by %s: %s", actor.user_id or actor.remote_addr or "?", description)
    if auditor is None:
        return
    try:
        code = messages.dcm("110129", "Security Configuration") if configuration else \
            messages.dcm("110137", "User Security Attributes Changed")
        auditor.security_alert(actor, description, alert_type=code, outcome=messages.SUCCESS, patient_id=patient_id)
    except Exception:  # noqa: BLE001 - auditing never blocks a change already made
        log.exception("could not audit a DMP policy change")


PATIENT_RECORD = messages.dcm("110110", "Patient Record")
"""DICOM PS3.15 A.5.3 "Patient Record": the event of reading (action R) a patient's record."""

T = TypeVar("T")


def _audit_read(auditor: AuditorLike | None, actor: Caller, description: str, patient_id: str, outcome: int) -> None:
    """A Patient Record event, action R: the requesting node, this server, the actor (the API
    token's principal) and the patient, as every ITI transaction names them."""
    log.info("DMP policy read by %s: %s", actor.user_id or actor.remote_addr or "?", description)
    if auditor is None:
        return
    try:
        auditor.record(messages.AuditEvent(
            PATIENT_RECORD, messages.ACTION_READ, outcome,
            participants=[messages.calling_node(actor, messages.SOURCE),
                          messages.responder(actor, messages.DESTINATION), *messages.human(actor)],
            objects=[messages.patient_object(patient_id)], purpose_of_use=messages.purposes(actor),
            description=description))
    except Exception:  # noqa: BLE001 - auditing never changes the answer
        log.exception("could not audit a DMP policy read")


class PolicyAdmin:
    """The operations the patient (through the portal) or an operator performs on a record."""

    def __init__(self, database: Database, auditor: AuditorLike | None = None) -> None:
        self.database = database
        self.store = AccessStore(database)
        self.registry = Registry(database)
        self.auditor = auditor

    # -- helpers -----------------------------------------------------------------------------------
    def _record(self, patient_id: str, must_exist: bool = True) -> RecordPolicy:
        record = self.store.record(patient_id)
        if must_exist and record.state is None:
            raise PolicyError(f"patient {patient_id} has no DMP record", 404)
        return record

    def _document_patient(self, unique_id: str) -> str:
        with self.database.read() as conn:
            pid = registry_facts.patient_of_document(conn, unique_id)
        if pid is None:
            raise PolicyError(f"no document with uniqueId {unique_id}", 404)
        return str(pid)

    # -- reads ---------------------------------------------------------------------------------------
    def show(self, patient_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self._record(patient_id).as_dict()
        out["emergency_accesses"] = self.store.emergency_accesses(patient_id)
        return out

    def emergency_accesses(self, patient_id: str) -> list[dict[str, Any]]:
        self._record(patient_id)
        return self.store.emergency_accesses(patient_id)

    def read(self, actor: Caller, patient_id: str) -> dict[str, Any]:
        """:meth:`show`, audited as ``actor`` reading the record (also when it does not exist)."""
        return self._audited(actor, patient_id, f"DMP policy of {patient_id} read", self.show)

    def read_emergency_accesses(self, actor: Caller, patient_id: str) -> list[dict[str, Any]]:
        """:meth:`emergency_accesses`, audited as ``actor`` reading the record."""
        return self._audited(actor, patient_id, f"emergency accesses to the DMP record of {patient_id} read",
                             self.emergency_accesses)

    def _audited(self, actor: Caller, patient_id: str, description: str, read: Callable[[str], T]) -> T:
        try:
            out = read(patient_id)
        except PolicyError as exc:
            _audit_read(self.auditor, actor, f"{description}: {exc}", patient_id, messages.MINOR_FAILURE)
            raise
        _audit_read(self.auditor, actor, description, patient_id, messages.SUCCESS)
        return out

    # -- changes -------------------------------------------------------------------------------------
    def create(self, actor: Caller, patient_id: str) -> bool:
        try:
            created = self.registry.add_patient(patient_id)
        except ValueError as exc:
            raise PolicyError(str(exc)) from None
        if created:
            _audit(self.auditor, actor, f"DMP record of {patient_id} created with consent", patient_id, True)
        return created

    def set_state(self, actor: Caller, patient_id: str, state: str) -> None:
        if state not in ("open", "closed"):
            raise PolicyError("state must be open or closed")
        self._record(patient_id)
        self.registry.set_patient_state(patient_id, state)
        _audit(self.auditor, actor, f"DMP record of {patient_id} {'reopened' if state == 'open' else 'closed'}",
               patient_id, True)

    def set_professional(self, actor: Caller, patient_id: str, professional_id: str, status: str | None) -> None:
        if status not in (AUTHORISED, BLOCKED, None):
            raise PolicyError("status must be authorised or blocked")
        professional_id = (professional_id or "").strip()
        if not professional_id:
            raise PolicyError("professional_id is required")
        self._record(patient_id)
        self.store.set_professional(patient_id, professional_id, status)
        what = {AUTHORISED: "authorised", BLOCKED: "blocked", None: "removed from the authorised and blocked lists"}
        _audit(self.auditor, actor, f"professional {professional_id} {what[status]} on the record of {patient_id}",
               patient_id)

    def set_treating_physician(self, actor: Caller, patient_id: str, professional_id: str | None) -> None:
        self._record(patient_id)
        self.store.set_treating_physician(patient_id, (professional_id or "").strip() or None)
        _audit(self.auditor, actor, f"treating physician of {patient_id} set to {professional_id or 'nobody'}",
               patient_id)

    def set_emergency(self, actor: Caller, patient_id: str, mode: str, allowed: bool) -> None:
        if mode not in (BREAK_GLASS, CENTRE_15):
            raise PolicyError("mode must be bris_de_glace or centre_15")
        self._record(patient_id)
        self.store.set_emergency(patient_id, mode, allowed)
        _audit(self.auditor, actor, f"{mode} access to the record of {patient_id} "
                                    f"{'allowed' if allowed else 'opposed by the patient'}", patient_id)

    def mask(self, actor: Caller, unique_id: str, masked: bool | None) -> str:
        """Mask (True) or unmask (False) a document to professionals; None: as its confidentialityCode."""
        pid = self._document_patient(unique_id)
        self.store.set_document(unique_id, pid, masked=masked)
        state = {True: "masked to professionals", False: "unmasked", None: "as registered"}[masked]
        _audit(self.auditor, actor, f"document {unique_id} of {pid} {state}", pid)
        return pid

    def disclose(self, actor: Caller, unique_id: str, disclosed: bool = True) -> str:
        """The professional discloses a document registered invisible to the patient / representatives."""
        pid = self._document_patient(unique_id)
        self.store.set_document(unique_id, pid, disclosed=disclosed)
        what = "disclosed to" if disclosed else "hidden again from"
        _audit(self.auditor, actor, f"document {unique_id} of {pid} {what} the patient", pid)
        return pid
