"""ITI-68 Retrieve Document (MHD 4.2, ITI TF-2 3.68): the bytes of one document, through the
repository and the policy of ITI-43 (:mod:`transactions.iti43`).

The document is asked of this repository by its uniqueId exactly as an ITI-43 DocumentRequest,
and the policy's :meth:`access.policy.AccessPolicy.visible_documents` drops it when the caller may
not see it: the door answers 404 alike for a hidden and for an unknown document. Audited as
Export, ITI-68 (:func:`audit.mhd.retrieve_document`) whatever the outcome.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from audit import mhd
from audit.messages import MAJOR_FAILURE, SUCCESS
from registry import facts as registry_facts
from repository.transactions import DocumentRequest
from transactions.services import Authenticate, Services, safely
from xds.context import Caller


@dataclass
class Document:
    """A document the caller may read: its mimeType, size and a reader of its bytes."""
    unique_id: str
    mime_type: str
    size: int
    patient_id: str | None

    chunks: Iterator[bytes]


def retrieve_document(services: Services, caller: Caller, authenticate: Authenticate, unique_id: str,
                      url: str) -> Document | None:
    """The document ``unique_id`` of this repository, or None (unknown, or not for this caller)."""
    outcome, patient = MAJOR_FAILURE, None
    try:
        authenticate(caller)
        with services.database.quick_read() as conn:
            patient = registry_facts.patient_of_document(conn, unique_id)
        request = DocumentRequest(services.repository.repository_unique_id, unique_id)
        result = services.repository.retrieve([request])
        found = [row for _r, row in result.found]
        if found and unique_id not in services.policy.visible_documents(caller, [unique_id]):
            found = []
        if not found:
            return None
        row = found[0]
        outcome = SUCCESS
        return Document(unique_id, row.mime_type, row.ref.size, patient, iter(services.repository.store.open(row.ref)))
    finally:
        safely(services.auditor.record, mhd.retrieve_document(caller, services.auditor.source_id, outcome, url,
                                                              unique_id, patient))
