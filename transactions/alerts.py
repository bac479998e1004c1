"""Security alerts (DICOM PS3.15 A.5.3.11) of the access layer, written through the auditor.

The policy reports refusals and emergency accesses to an :class:`access.policy.AlertSink`; the
composition root gives it :func:`alert_sink` of the worker's auditor. It never raises: an audit
failure must not change an access decision.
"""
from __future__ import annotations

import logging

from access.policy import AlertSink
from audit import messages
from audit.auditor import AuditorLike
from xds.context import Caller
from xds.soap import EdgeRefusal, RefusalHook

log = logging.getLogger("access")

KINDS: dict[str, messages.Code] = {
    "authentication": messages.NODE_AUTHENTICATION,
    "restricted": messages.USE_OF_RESTRICTED_FUNCTION,
    "emergency": messages.EMERGENCY_OVERRIDE,
    "user": messages.USER_AUTHENTICATION,
}


def security_alert(auditor: AuditorLike, caller: Caller, description: str, kind: str = "restricted",
                   patient_id: str | None = None, success: bool = False) -> None:
    log.info("security alert (%s): %s", kind, description)
    try:
        outcome = messages.SUCCESS if success else messages.MINOR_FAILURE
        auditor.security_alert(caller, description, alert_type=KINDS[kind], outcome=outcome, patient_id=patient_id)
    except Exception:  # noqa: BLE001 - auditing never changes the answer
        log.exception("could not record a security alert")


def alert_sink(auditor: AuditorLike) -> AlertSink:
    """The policy's sink writing to ``auditor``."""
    def sink(caller: Caller, description: str, kind: str = "restricted", patient_id: str | None = None,
             success: bool = False) -> None:
        security_alert(auditor, caller, description, kind, patient_id, success)
    return sink


def edge_refusal_sink(auditor: AuditorLike) -> RefusalHook:
    """The SOAP endpoints' ``on_refusal``: a request refused before any transaction ran (not
    well-formed XML, a DOCTYPE, a missing wsa:Action, SOAP 1.1, a body over the limit) is a
    Security Alert naming the node, as every refused access is (ITI TF-2 3.20.7.3)."""
    def sink(refusal: EdgeRefusal) -> None:
        caller = Caller(remote_addr=refusal.remote_addr, node_subject=refusal.peer_subject,
                        endpoint=refusal.endpoint_url)
        action = f" for {refusal.action}" if refusal.action else ""
        security_alert(auditor, caller, f"SOAP request{action} refused ({refusal.http_status} {refusal.code}): "
                                        f"{refusal.reason}", "authentication")
    return sink
