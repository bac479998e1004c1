"""What the portal does with a record: always through the access policy, the actors and the auditor.

The portal is one more transport in front of the same actors. A page view that lists documents is
an ITI-18 FindDocuments, opening one is an ITI-18 GetDocuments then an ITI-43 retrieve, an upload
is an ITI-41 with the request objects :class:`xds.client.XdsClient` builds. Each one:

1. asks :class:`xds.access.policy.AccessPolicy` (``check_query`` / ``filter_query`` /
   ``visible_documents`` / ``check_submission``) with the portal user's :class:`xds.context.Caller`;
2. runs the actor (``registry.query.run_stored_query``, ``Repository.retrieve`` / ``provide``);
3. records the same ATNA message a SOAP call records (:mod:`audit.messages`), with that Caller.

Nothing here decides who sees what: the policy does.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from lxml import etree

from xds.context import Caller, CodedValue
from xds.vocabulary import NS_QUERY, NS_RIM, q

log = logging.getLogger(__name__)

FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
GET_DOCUMENTS = "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
ROLE_SYSTEM = "1.2.250.1.213.1.1.4.6"


class Refused(Exception):
    """The policy said no (or the object does not exist: the two answer alike)."""


@dataclass
class Retrieved:
    unique_id: str
    patient_id: str
    mime_type: str
    content: bytes


def make_caller(user, environ: dict, *, access_mode: str = "normal", reason: str | None = None) -> Caller:
    """The Caller of a portal request: the logged-in person, as XUA would describe them."""
    from xds.context import caller_from_environ
    caller = caller_from_environ(environ)
    caller.reply_to = caller.endpoint
    caller.authenticated = True
    caller.user_name = user.display_name or user.login
    caller.organization = user.organization
    if user.role == "patient":
        caller.kind, caller.user_id = "patient", user.patient_id
        caller.roles = [CodedValue("PATIENT", ROLE_SYSTEM, "Patient")]
    elif user.role == "professional":
        caller.kind, caller.user_id = "professional", user.professional_id
        caller.roles = [CodedValue(user.profession or "PS", ROLE_SYSTEM, user.profession or "Professionnel de santé")]
        caller.access_mode = access_mode
        if reason:
            caller.purpose_of_use = [CodedValue("EMERGENCY", "portal", reason[:200])]
    else:
        caller.kind, caller.user_id = "auditor", user.login
        caller.roles = [CodedValue("AUDITOR", "portal", "Auditeur")]
    return caller


def _slot(parent, name: str, values: list[str]) -> None:
    slot = etree.SubElement(parent, q(NS_RIM, "Slot"), name=name)
    vl = etree.SubElement(slot, q(NS_RIM, "ValueList"))
    for v in values:
        etree.SubElement(vl, q(NS_RIM, "Value")).text = v


def query_element(query_id: str, params: dict[str, list[list[str]]]) -> etree._Element:
    """The AdhocQueryRequest a SOAP consumer would send (for the audit record's query object)."""
    root = etree.Element(q(NS_QUERY, "AdhocQueryRequest"), nsmap={"query": NS_QUERY, "rim": NS_RIM})
    etree.SubElement(root, q(NS_QUERY, "ResponseOption"), returnType="LeafClass", returnComposedObjects="true")
    query = etree.SubElement(root, q(NS_RIM, "AdhocQuery"), id=query_id)
    for name, slots in params.items():
        for values in slots:
            _slot(query, name, values)
    return root


def _quoted(value: str) -> str:
    if "'" in value or "\n" in value:
        raise Refused("invalid identifier")
    return f"'{value}'"


class Records:
    """The portal's gateway to the record (one per worker process)."""

    def __init__(self, services) -> None:
        from repository.service import build_repository
        from xds.access.admin import PolicyAdmin
        from xds.access.policy import AccessPolicy
        self.services = services
        self.settings = services.settings
        self.database = services.database
        self.auditor = services.auditor
        self.policy = services.access or AccessPolicy(services.settings, services.database, services=services)
        self.repository = build_repository(services)
        self.admin = PolicyAdmin(services.database, services.auditor)

    # -- audit -------------------------------------------------------------------------------------
    def _record(self, event) -> None:
        if self.auditor is not None:
            self.auditor.record(event)

    def alert(self, caller: Caller, description: str, kind: str = "restricted", patient_id: str | None = None,
              success: bool = False) -> None:
        from xds.access.alerts import security_alert
        security_alert(self.services, caller, description, kind, patient_id, success)

    # -- ITI-18 ------------------------------------------------------------------------------------
    def _query(self, caller: Caller, query_id: str, params: dict, patient_id: str | None):
        from audit import messages
        from registry.query import run_stored_query
        decisions: dict = {}
        refused = self.policy.check_query(caller, params, decisions)
        if refused is not None:
            self._record(messages.stored_query(caller, self.auditor.source_id, messages.SERIOUS_FAILURE, query_id,
                                               query_element(query_id, params), patient_id))
            raise Refused("; ".join(e.context for e in refused.errors) or "access refused")
        result = run_stored_query(self.database, query_id, params, "LeafClass", self.settings)
        if result.ok:
            self.policy.filter_query(caller, result, decisions)
        outcome = messages.outcome_of_status(result.status)
        self._record(messages.stored_query(caller, self.auditor.source_id, outcome, query_id,
                                           query_element(query_id, params), patient_id))
        if not result.ok:
            raise Refused("query failed")
        return _documents(result.objects)

    def find_documents(self, caller: Caller, patient_id: str, type_code: str | None = None,
                       created_from: str | None = None, created_to: str | None = None):
        """The patient's documents the caller may see, newest first (DocumentEntry list)."""
        params: dict[str, list[list[str]]] = {
            "$XDSDocumentEntryPatientId": [[_quoted(patient_id)]],
            "$XDSDocumentEntryStatus": [[f"('{APPROVED}','{DEPRECATED}')"]],
        }
        if type_code:
            params["$XDSDocumentEntryTypeCode"] = [[f"({_quoted(type_code)})"]]
        if created_from:
            params["$XDSDocumentEntryCreationTimeFrom"] = [[created_from]]
        if created_to:
            params["$XDSDocumentEntryCreationTimeTo"] = [[created_to]]
        docs = self._query(caller, FIND_DOCUMENTS, params, patient_id)
        docs = [d for d in docs if d.patient_id == patient_id]
        docs.sort(key=lambda d: (d.creation_time or "", d.unique_id or ""), reverse=True)
        return docs

    def document(self, caller: Caller, unique_id: str):
        """The DocumentEntry of ``unique_id`` if the caller may see it; Refused otherwise (or unknown)."""
        docs = self._query(caller, GET_DOCUMENTS, {"$XDSDocumentEntryUniqueId": [[f"({_quoted(unique_id)})"]]},
                           None)
        for d in docs:
            if d.unique_id == unique_id:
                return d
        raise Refused("no such document")

    def document_patient(self, unique_id: str) -> str | None:
        """The patient a document belongs to (to pick the caller's access mode; the policy then decides)."""
        from sqlalchemy import select

        from registry.store.schema import document_entries as de
        with self.database.read() as conn:
            return conn.execute(select(de.c.patient_id).where(de.c.unique_id == unique_id).limit(1)).scalar()

    # -- ITI-43 ------------------------------------------------------------------------------------
    def retrieve(self, caller: Caller, entry) -> Retrieved:
        from audit import messages
        from repository.transactions import DocumentRequest
        rid = entry.repository_unique_id or self.settings.repository_unique_id
        result = self.repository.retrieve([DocumentRequest(rid, entry.unique_id)])
        visible = self.policy.visible_documents(caller, [r.document_unique_id for r, _ in result.found]) \
            if result.found else set()
        found = [(r, row) for r, row in result.found if r.document_unique_id in visible]
        outcome = messages.SUCCESS if found else messages.SERIOUS_FAILURE
        self._record(messages.retrieve(caller, self.auditor.source_id, outcome,
                                       [messages.DocumentRef(entry.unique_id, rid)], entry.patient_id))
        if not found:
            raise Refused("document not available")
        req, row = found[0]
        content = b"".join(self.repository.store.open(row.ref))
        return Retrieved(entry.unique_id, entry.patient_id, row.mime_type, content)

    # -- ITI-41 ------------------------------------------------------------------------------------
    def provide(self, caller: Caller, documents) -> str:
        """Submit ``documents`` (xds.client Documents) as one submission set; its uniqueId."""
        from audit import messages
        from audit.edges import current_caller
        from repository.transactions import DocumentPart
        from xds.client import XdsClient
        from xds.rim import parse_object_list
        client = XdsClient()
        try:
            body, parts, ss = client.provide_request(documents)
        finally:
            client.close()
        object_list = body.find(f".//{q(NS_RIM, 'RegistryObjectList')}")
        objects = parse_object_list(object_list)
        contents = {d.entry.entry_uuid: d.content for d in documents}
        doc_parts = [DocumentPart(el_id, (lambda c=c: iter([c]))) for el_id, c in contents.items()]
        patients = {d.entry.patient_id for d in documents}
        refused = self.policy.check_submission(caller, patients)
        if refused is not None:
            self._record(messages.provide_and_register(caller, self.auditor.source_id, messages.SERIOUS_FAILURE,
                                                       ss.patient_id, ss.unique_id))
            raise Refused("submission refused by the access policy")
        token = current_caller.set(caller)
        try:
            answer = self.repository.provide(objects, doc_parts)
        finally:
            current_caller.reset(token)
        outcome = messages.outcome_of_status(answer.status)
        self._record(messages.provide_and_register(caller, self.auditor.source_id, outcome, ss.patient_id,
                                                   ss.unique_id))
        if outcome != messages.SUCCESS:
            details = "; ".join(f"{e.code}: {e.context}" for e in answer.errors)
            raise SubmissionFailed(details or answer.status)
        return ss.unique_id

    # -- facts for the pages -------------------------------------------------------------------------
    def facts(self, unique_id: str):
        """The policy's DocumentFacts of a document (authors, confidentiality, mask / disclosure state)."""
        from xds.access.policy import document_facts
        with self.database.read() as conn:
            docs = document_facts(conn, unique_ids=[unique_id])
        return next(iter(docs.values()), None)

    def audit_log_used(self, caller: Caller, patient_id: str | None, description: str) -> None:
        """DICOM 110101 Audit Log Used: a person read the audit trail (access history, auditor's desk)."""
        from audit import messages
        ev = messages.AuditEvent(messages.dcm("110101", "Audit Log Used"), messages.ACTION_READ, messages.SUCCESS,
                                 participants=[messages.requester(caller, messages.SOURCE)] + messages.human(caller),
                                 source_id=self.auditor.source_id if self.auditor is not None else "",
                                 description=description)
        if patient_id:
            ev.objects.append(messages.patient_object(patient_id))
        self._record(ev)


class SubmissionFailed(Exception):
    pass


def _documents(objects) -> list:
    from xds.metadata import Submission
    from xds.rim import parse_object_list
    if not objects:
        return []
    holder = etree.Element(q(NS_RIM, "RegistryObjectList"), nsmap={"rim": NS_RIM})
    for el in objects:
        holder.append(_copy(el))
    return Submission.from_objects(parse_object_list(holder)).documents


def _copy(el):
    import copy
    return copy.deepcopy(el)

