"""ITI-86 Remove Documents at the Document Repository (ITI TF-2 3.86): the one door of every removal
of document bytes.

A Document Administrator asks the repository to delete the bytes of documents (normally after
ITI-62 removed their metadata). In order: the XUA assertion identifies the person; the policy's
write rule says which documents that person may remove (a document the registry still holds: its
author or the patient; one whose metadata is gone: no reader is left to protect), a refused one
being answered exactly as an unknown one (``XDSDocumentUniqueIdError``) and reported as a
Security Alert; the repository removes each allowed document (:mod:`repository.removal`); the
removal is audited (Patient Record 110110, D, ITI TF-2 3.86.5.1) whatever the outcome.
"""
from __future__ import annotations

import logging

from audit import messages
from audit.messages import MAJOR_FAILURE, DocumentRef
from repository.removal import RemoveResult, remove_documents
from repository.transactions import DocumentRequest
from transactions.services import Authenticate, Services, safely
from xds.context import Caller

log = logging.getLogger(__name__)


def remove(services: Services, caller: Caller, authenticate: Authenticate, requests: list[DocumentRequest],
           *, patient_id: str | None = None, dry_run: bool = False) -> RemoveResult:
    """Remove the bytes of the requested documents. ``patient_id``: the patient, when the door knows
    it, for the audit record. ``dry_run``: judge only (nothing removed, nothing audited)."""
    outcome = MAJOR_FAILURE
    result: RemoveResult | None = None
    try:
        authenticate(caller)
        allowed = services.policy.removable_documents(caller, [r.document_unique_id for r in requests])
        result = remove_documents(services.repository, requests, allowed, dry_run)
        outcome = messages.outcome_of_status(result.status)
        return result
    finally:
        if services.auditor.enabled and not (dry_run and result is not None):
            done = result.removed if result is not None and result.removed else requests
            docs = [DocumentRef(r.document_unique_id, r.repository_unique_id, r.home_community_id)
                    for r in done if r.document_unique_id]
            safely(services.auditor.record, messages.remove_documents(caller, services.auditor.source_id, outcome,
                                                                      docs, patient_id))
