"""ITI-67 Find Document References (MHD 4.2, ITI TF-2 3.67): the FHIR door of the same stored
query engine and the same policy as ITI-18.

A search is a FindDocuments (or, with ``related``, a FindDocumentsByReferenceId) of the patient,
with the parameters MHD maps onto the stored query's (ITI TF-2 3.67.4.1.2.1), run as
:func:`transactions.iti18.stored_query` runs it: identify the caller, the policy refuses a patient
the caller may not access and drops the entries the caller may not see, then the query; audited
(Query, ITI-67: :func:`audit.mhd.find`) whatever the outcome. A read of one DocumentReference is
a GetDocuments by entryUUID through the same steps, so a hidden entry answers as an unknown one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from access.policy import Decision
from audit import mhd
from audit.messages import MAJOR_FAILURE, outcome_of_status
from registry.query import QueryResult, run_stored_query
from transactions.services import Authenticate, Services, safely
from xds.context import Caller
from xds.errors import ErrorCode, ErrorList
from xds.metadata import DocumentEntry
from xds.rim import parse_object
from xds.vocabulary import STORED_QUERIES, ResponseStatus


@dataclass
class FindRequest:
    """A search in XDS terms: the stored query and its parameters (one list of ``rim:Value``
    texts per Slot, as ITI-18 receives them), and what the stored query cannot say."""
    query: str
    params: dict[str, list[list[str]]]
    url: str
    """The search as the consumer sent it, for the audit record."""
    patient_id: str | None = None
    nothing: bool = False
    """A search no object can match (``status=entered-in-error``: XDS has no such status)."""
    identifiers: set[str] = field(default_factory=set)
    """``identifier``: entryUUIDs or uniqueIds, any of which an entry must carry."""


@dataclass
class Found:
    """The entries the caller may see, in the registry's order, or the errors (a refused or an
    unknown patient)."""
    entries: list[DocumentEntry] = field(default_factory=list)
    errors: ErrorList = field(default_factory=ErrorList)

    @property
    def ok(self) -> bool:
        return not self.errors.has_errors


def find_document_references(services: Services, caller: Caller, authenticate: Authenticate,
                             request: FindRequest) -> Found:
    """Answer one ITI-67 search for ``caller``; audited in every case, a refusal raised by
    ``authenticate`` included (outcome 12)."""
    outcome = MAJOR_FAILURE
    try:
        authenticate(caller)
        found = Found()
        if not request.nothing:
            result = answer(services, caller, STORED_QUERIES[request.query], request.params)
            found = Found(_entries(result), result.errors)
        if request.identifiers:
            found.entries = [e for e in found.entries
                             if e.entry_uuid in request.identifiers or e.unique_id in request.identifiers]
        outcome = outcome_of_status(ResponseStatus.SUCCESS if found.ok else ResponseStatus.FAILURE)
        return found
    finally:
        safely(services.auditor.record, mhd.find(caller, services.auditor.source_id, outcome, "ITI-67", request.url,
                                                 request.patient_id))


def read_document_reference(services: Services, caller: Caller, authenticate: Authenticate, entry_uuid: str,
                            url: str) -> DocumentEntry | None:
    """``GET DocumentReference/{id}``: the entry, or None when it does not exist or the caller may
    not see it (the two answer alike). Audited as an ITI-67 search by ``_id``."""
    outcome, patient = MAJOR_FAILURE, None
    try:
        authenticate(caller)
        result = answer(services, caller, STORED_QUERIES["GetDocuments"],
                        {"$XDSDocumentEntryEntryUUID": [[f"('{entry_uuid}')"]]})
        entries = _entries(result)
        outcome = outcome_of_status(result.status)
        if entries:
            patient = entries[0].patient_id
        return entries[0] if entries else None
    finally:
        safely(services.auditor.record, mhd.find(caller, services.auditor.source_id, outcome, "ITI-67", url,
                                                 patient))


def answer(services: Services, caller: Caller, query_id: str, params: dict[str, list[list[str]]]) -> QueryResult:
    """One stored query for ``caller`` with the policy's steps of ITI-18, in its order: the
    patient's record read with FindDocuments where it can be, the refusal of a patient the caller
    may not access, the Get* parameters naming hidden objects concealed, the answer filtered."""
    policy = services.policy
    if not policy.is_dmp:
        policy.settle(caller)
        return run_stored_query(services.database, query_id, params, "LeafClass", services.settings)
    decisions: dict[str, Decision] = {}
    with services.database.quick_read() as conn:
        result = record = None
        carried = policy.record_expression(caller, query_id, params, conn)
        if carried is not None:
            result = run_stored_query(conn, query_id, params, "LeafClass", services.settings, entry_facts=True,
                                      also=carried)
            record = policy.record_of_value(params, result.also)
        refused = policy.check_query(caller, params, decisions, conn, record)
        if refused is not None:
            return QueryResult(errors=refused)
        if result is None:
            params = policy.conceal(caller, params, conn, decisions)
            result = run_stored_query(conn, query_id, params, "LeafClass", services.settings, entry_facts=True)
        if result.ok:
            policy.filter_query(caller, result, decisions, conn)
    return result


def _entries(result: QueryResult) -> list[DocumentEntry]:
    return [DocumentEntry.from_rim(parse_object(el)) for el, kind in zip(result.objects, result.kinds)
            if kind == "document"]


def unknown_patient(errors: ErrorList) -> bool:
    """Whether a refusal is the registry's "unknown patient" (no record: ITI-67's 404)."""
    return any(e.code == ErrorCode.UNKNOWN_PATIENT_ID.value for e in errors.errors)


def refused(errors: ErrorList) -> bool:
    """Whether the errors are the policy's refusal of the patient (ITI-67's 403)."""
    return any(e.context.startswith("access refused") for e in errors.errors)
