"""ITI-43 Retrieve Document Set: the one door of every read of document bytes (SOAP, portal,
later FHIR ITI-68).

Identify the caller, fetch from the repository, drop what the policy hides (answered exactly as
an unknown document), audit it (Export 110106, R at the repository, one participant object per
document, ITI TF-2 3.43.5.1.3) whatever the outcome.
"""
from __future__ import annotations

import logging

from audit import messages
from audit.messages import MAJOR_FAILURE, DocumentRef
from repository.transactions import DocumentRequest, RetrieveResult
from transactions.services import Authenticate, Services, safely
from xds.context import Caller
from xds.errors import ErrorCode

log = logging.getLogger(__name__)


def retrieve(services: Services, caller: Caller, authenticate: Authenticate,
             requests: list[DocumentRequest], patient_id: str | None = None) -> RetrieveResult:
    """``patient_id``: the patient, when the door knows it (the portal), for the audit record."""
    outcome = MAJOR_FAILURE
    result: RetrieveResult | None = None
    try:
        authenticate(caller)
        result = _retrieve(services, caller, requests)
        outcome = messages.outcome_of_status(result.status)
        return result
    finally:
        if services.auditor.enabled:
            found = [r for r, _row in result.found] if result is not None else []
            docs = [DocumentRef(r.document_unique_id, r.repository_unique_id, r.home_community_id)
                    for r in (found or requests) if r.document_unique_id]
            safely(services.auditor.record, messages.retrieve(caller, services.auditor.source_id, outcome, docs,
                                                              patient_id))


def _retrieve(services: Services, caller: Caller, requests: list[DocumentRequest]) -> RetrieveResult:
    result = services.repository.retrieve(requests)
    if result.found:
        visible = services.policy.visible_documents(caller, [r.document_unique_id for r, _ in result.found])
        for req, _row in [f for f in result.found if f[0].document_unique_id not in visible]:
            result.errors.add(ErrorCode.DOCUMENT_UNIQUE_ID_ERROR,
                              f"document uniqueId {req.document_unique_id} is not in this repository",
                              req.document_unique_id)
        result.found = [f for f in result.found if f[0].document_unique_id in visible]
    if not requests:
        result.errors.add(ErrorCode.REPOSITORY_ERROR, "RetrieveDocumentSetRequest has no DocumentRequest")
    return result
