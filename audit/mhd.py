"""Audit messages of the MHD Document Responder (ITI-66, ITI-67, ITI-68), DICOM PS3.15 A.5, written
in the same chain as the XDS transactions' (:mod:`audit.messages`) and so read back by ITI-81.

MHD 4.2 "Security Considerations" of each transaction (ITI TF-2 3.66.5, 3.67.5, 3.68.5) asks for
the IHE BasicAudit "PatientQuery" event for the two searches and "PatientRead" for the retrieve.
Their DICOM form is the one the XDS transactions use for the same acts:

* ITI-66 / ITI-67: Query (110112), action E, event type ITI-66 "Find Document Lists" / ITI-67
  "Find Document References"; the Document Consumer (Source, requestor) and this responder
  (Destination); the patient; the search as sent (the request URL with its query string) in
  ParticipantObjectQuery, ParticipantObjectIDTypeCode the transaction;
* ITI-68: Export (110106), action R, event type ITI-68 "Retrieve Document"; this responder
  (Source), the Document Consumer (Destination, requestor); the patient; the document as a
  report (type 2, role 3) named by its URI (RFC-3881 "12").

The separate module keeps the builders of the FHIR doors apart from the SOAP ones; the codes and
the participants are those of :mod:`audit.messages`.
"""
from __future__ import annotations

from audit.messages import (
    ACTION_EXECUTE,
    ACTION_READ,
    DESTINATION,
    EXPORT,
    QUERY,
    REPORT_NUMBER,
    ROLE_QUERY,
    ROLE_REPORT,
    SOURCE,
    SYSTEM_OBJECT,
    URI,
    AuditEvent,
    Code,
    ParticipantObject,
    calling_node,
    human,
    patient_object,
    purposes,
    responder,
)
from xds.context import Caller

ITI_66 = Code("ITI-66", "IHE Transactions", "Find Document Lists")
ITI_67 = Code("ITI-67", "IHE Transactions", "Find Document References")
ITI_68 = Code("ITI-68", "IHE Transactions", "Retrieve Document")
SEARCHES = {"ITI-66": ITI_66, "ITI-67": ITI_67}


def find(caller: Caller, source_id: str, outcome: int, transaction: str, search_url: str,
         patient_id: str | None, description: str | None = None) -> AuditEvent:
    """ITI-66 or ITI-67 at the Document Responder: Query, E, the search URL as the query."""
    event_type = SEARCHES[transaction]
    participants = [calling_node(caller, SOURCE), responder(caller, DESTINATION), *human(caller)]
    ev = AuditEvent(event_id=QUERY, action=ACTION_EXECUTE, outcome=outcome, event_types=[event_type],
                    participants=participants, source_id=source_id, purpose_of_use=purposes(caller),
                    description=description)
    if patient_id:
        ev.objects.append(patient_object(patient_id))
    ev.objects.append(ParticipantObject(transaction, SYSTEM_OBJECT, ROLE_QUERY, event_type,
                                        query=search_url.encode("utf-8"), details=[("QueryEncoding", b"UTF-8")]))
    return ev


def retrieve_document(caller: Caller, source_id: str, outcome: int, document_url: str, unique_id: str | None,
                      patient_id: str | None, description: str | None = None) -> AuditEvent:
    """ITI-68 at the Document Responder: Export, R; the document by its URI, its uniqueId as a
    detail so that a search by document finds the retrieve as it finds an ITI-43."""
    source = responder(caller, SOURCE)
    destination = calling_node(caller, DESTINATION)
    participants = [source, destination, *human(caller)]
    ev = AuditEvent(event_id=EXPORT, action=ACTION_READ, outcome=outcome, event_types=[ITI_68],
                    participants=participants, source_id=source_id, purpose_of_use=purposes(caller),
                    description=description)
    if patient_id:
        ev.objects.append(patient_object(patient_id))
    details = [("DocumentUniqueId", unique_id.encode())] if unique_id else []
    ev.objects.append(ParticipantObject(document_url, SYSTEM_OBJECT, ROLE_REPORT, URI, name=unique_id or document_url,
                                        details=details))
    if unique_id:
        ev.objects.append(ParticipantObject(unique_id, SYSTEM_OBJECT, ROLE_REPORT, REPORT_NUMBER, name=unique_id))
    return ev
