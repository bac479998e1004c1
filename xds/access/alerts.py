"""Security alerts of the access layer, through ``services.auditor`` (the audit package).

A thin adapter: when no auditor exists (tests of the policy alone, audit disabled, the audit
package not installed), it logs and does nothing else. It never raises: an audit failure must not
change an access decision.
"""
from __future__ import annotations

import logging

from xds.context import Caller

log = logging.getLogger("xds.access")

KINDS = {
    "authentication": "NODE_AUTHENTICATION",
    "restricted": "USE_OF_RESTRICTED_FUNCTION",
    "emergency": "EMERGENCY_OVERRIDE",
    "user": "USER_AUTHENTICATION",
}


def security_alert(services, caller: Caller, description: str, kind: str = "restricted",
                   patient_id: str | None = None, success: bool = False) -> None:
    log.info("security alert (%s): %s", kind, description)
    auditor = getattr(services, "auditor", None)
    if auditor is None or not hasattr(auditor, "security_alert"):
        return
    try:
        from audit import messages
        alert_type = getattr(messages, KINDS.get(kind, "USE_OF_RESTRICTED_FUNCTION"))
        outcome = messages.SUCCESS if success else messages.MINOR_FAILURE
        auditor.security_alert(caller, description, alert_type=alert_type, outcome=outcome, patient_id=patient_id)
    except Exception:  # noqa: BLE001 - auditing never changes the answer
        log.exception("could not record a security alert")
