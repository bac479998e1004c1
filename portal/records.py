"""What the portal does with a record: always through the access policy, the actors and the auditor.

The portal is one more door in front of the same transaction modules. A page view that lists
documents is an ITI-18 FindDocuments (:mod:`transactions.iti18`), opening one is an ITI-18
GetDocuments then an ITI-43 retrieve (:mod:`transactions.iti43`), an upload is an ITI-41
(:mod:`transactions.iti41`) with the request objects :class:`client.XdsClient` builds. The
portal user's :class:`xds.context.Caller` comes from the session; the transaction asks the
policy, runs the actor and writes the same audit record a SOAP call gets.

Nothing here decides who sees what: the policy does.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from lxml import etree

from access.policy import READ, DocumentFacts, document_facts
from audit import messages
from client import XdsClient
from registry import facts as registry_facts
from repository.transactions import DocumentPart, DocumentRequest
from transactions import iti18, iti41, iti43
from transactions.alerts import security_alert
from transactions.policy_admin import PolicyAdmin
from transactions.services import Services, already_authenticated
from xds.context import Caller, CodedValue, caller_from_environ
from xds.metadata import Submission
from xds.patient import patient_key, same_patient
from xds.rim import parse_object_list
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


def _chunks_of(content: bytes) -> Callable[[], Iterator[bytes]]:
    """A document's bytes as the repository reads an attachment: one chunk."""
    return lambda: iter([content])


def _slot(parent, name: str, values: list[str]) -> None:
    slot = etree.SubElement(parent, q(NS_RIM, "Slot"), name=name)
    vl = etree.SubElement(slot, q(NS_RIM, "ValueList"))
    for v in values:
        etree.SubElement(vl, q(NS_RIM, "Value")).text = v


def query_element(query_id: str, params: dict[str, list[list[str]]], return_type: str = "LeafClass") -> etree._Element:
    """The AdhocQueryRequest a SOAP consumer would send (for the audit record's query object)."""
    root = etree.Element(q(NS_QUERY, "AdhocQueryRequest"), nsmap={"query": NS_QUERY, "rim": NS_RIM})
    etree.SubElement(root, q(NS_QUERY, "ResponseOption"), returnType=return_type, returnComposedObjects="true")
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
    """The portal's gateway to the record (one per worker process): every action is a call of
    the same transaction module a SOAP request calls."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings
        self.database = services.database
        self.auditor = services.auditor
        self.policy = services.policy
        self.admin = PolicyAdmin(services.database, services.auditor)

    def _record(self, event: messages.AuditEvent) -> None:
        self.auditor.record(event)

    def alert(self, caller: Caller, description: str, kind: str = "restricted", patient_id: str | None = None,
              success: bool = False) -> None:
        security_alert(self.auditor, caller, description, kind, patient_id, success)

    # -- ITI-18 ------------------------------------------------------------------------------------
    def _query(self, caller: Caller, query_id: str, params: dict, patient_id: str | None):
        result = iti18.stored_query(self.services, caller, already_authenticated, query_element(query_id, params))
        if not result.ok:
            raise Refused("; ".join(e.context for e in result.errors.errors) or "access refused")
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
        docs = [d for d in docs if same_patient(d.patient_id, patient_id)]
        docs.sort(key=lambda d: (d.creation_time or "", d.unique_id or ""), reverse=True)
        return docs

    def documents_page(self, caller: Caller, patient_id: str, *, type_code: str | None = None,
                       created_from: str | None = None, created_to: str | None = None, page: int = 1,
                       size: int = 20) -> DocumentsPage:
        """One page of the patient's documents the caller may see, newest first, each filter in a query.

        Two ITI-18 stored queries, the door every read goes through: FindDocuments answered as ObjectRefs (the
        policy lets through the entries the caller may see, and no entry's metadata is read, ITI TF-2
        3.18.4.1.2.1), then GetDocuments of the page's entries only, as LeafClass. Between them the registry
        filters by type, sorts and pages the visible entries (:func:`registry.facts.entries_page`), and the
        facts of the page are read in one statement (:meth:`page_facts`)."""
        params: dict[str, list[list[str]]] = {
            "$XDSDocumentEntryPatientId": [[_quoted(patient_id)]],
            "$XDSDocumentEntryStatus": [[f"('{APPROVED}','{DEPRECATED}')"]],
        }
        if created_from:
            params["$XDSDocumentEntryCreationTimeFrom"] = [[created_from]]
        if created_to:
            params["$XDSDocumentEntryCreationTimeTo"] = [[created_to]]
        result = iti18.stored_query(self.services, caller, already_authenticated,
                                    query_element(FIND_DOCUMENTS, params, "ObjectRef"))
        if not result.ok:
            raise Refused("; ".join(e.context for e in result.errors.errors) or "access refused")
        visible = [u for u, kind, owner in zip(result.ids, result.kinds, result.patients)
                   if kind == "document" and same_patient(owner, patient_id)]
        with self.database.read() as conn:
            found = registry_facts.entries_page(conn, visible, type_code=type_code, offset=(page - 1) * size,
                                                limit=size)
            pages = max(1, -(-found.total // size))
            if page > pages:
                page = pages
                found = registry_facts.entries_page(conn, visible, type_code=type_code, offset=(page - 1) * size,
                                                    limit=size)
        docs = []
        if found.uuids:
            got = self._query(caller, GET_DOCUMENTS,
                              {"$XDSDocumentEntryEntryUUID": [["(" + ",".join(_quoted(u) for u in found.uuids) + ")"]]},
                              patient_id)
            by_uuid = {d.entry_uuid: d for d in got}
            docs = [by_uuid[u] for u in found.uuids if u in by_uuid]
        return DocumentsPage(docs, found.total, page, pages, found.type_codes,
                             self.page_facts([d.unique_id for d in docs], patient_id))

    def page_facts(self, unique_ids: list[str], patient_id: str) -> dict[str, DocumentFacts]:
        """The policy's DocumentFacts of a page's documents: their entries' facts in one statement and the
        patient's decisions in one more, whatever the page's length (one read per row before issue 23)."""
        if not unique_ids:
            return {}
        with self.database.read() as conn:
            docs = document_facts(conn, unique_ids=unique_ids)
            record = self.policy.store.record(patient_key(patient_id), conn)
        out = {}
        for facts in docs.values():
            state = record.documents.get(facts.unique_id)
            out[facts.unique_id] = dataclasses.replace(facts, state=state) if state is not None else facts
        return out

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
        with self.database.read() as conn:
            return registry_facts.patient_of_document(conn, unique_id)

    # -- ITI-43 ------------------------------------------------------------------------------------
    def retrieve(self, caller: Caller, entry) -> Retrieved:
        rid = entry.repository_unique_id or self.settings.repository_unique_id
        result = iti43.retrieve(self.services, caller, already_authenticated, [DocumentRequest(rid, entry.unique_id)],
                                entry.patient_id)
        if not result.found:
            raise Refused("document not available")
        _req, row = result.found[0]
        content = b"".join(self.services.repository.store.open(row.ref))
        return Retrieved(entry.unique_id, entry.patient_id, row.mime_type, content)

    # -- ITI-41 ------------------------------------------------------------------------------------
    def provide(self, caller: Caller, documents) -> str:
        """Submit ``documents`` (client Documents) as one submission set; its uniqueId."""
        client = XdsClient()
        try:
            body, _parts, ss = client.provide_request(documents)
        finally:
            client.close()
        object_list = body.find(f".//{q(NS_RIM, 'RegistryObjectList')}")
        contents = {d.entry.entry_uuid: d.content for d in documents}
        doc_parts = [DocumentPart(el_id, _chunks_of(c)) for el_id, c in contents.items()]
        answer = iti41.provide_and_register(self.services, caller, already_authenticated,
                                            iti41.ProvideRequest(object_list, lambda: doc_parts))
        if messages.outcome_of_status(answer.status) != messages.SUCCESS:
            if answer.refused:
                raise Refused("submission refused by the access policy")
            details = "; ".join(f"{e.code}: {e.context}" for e in answer.errors)
            raise SubmissionFailed(details or answer.status)
        return ss.unique_id

    # -- facts for the pages -------------------------------------------------------------------------
    def facts(self, unique_id: str):
        """The policy's DocumentFacts of a document (authors, confidentiality, mask / disclosure state)."""
        with self.database.read() as conn:
            docs = document_facts(conn, unique_ids=[unique_id])
            facts = next(iter(docs.values()), None)
            if facts is None:
                return None
            state = self.policy.store.record(facts.patient_id, conn).documents.get(unique_id)
        return dataclasses.replace(facts, state=state) if state is not None else facts

    def history_labels(self, caller: Caller, patient_id: str, entries) -> dict[str, registry_facts.DocumentLabel]:
        """Title and date of the documents an access history page names (ITI-43 objects, the documents of an
        added submission set, filled into each entry's ``documents``), kept only for those the caller may
        see under the policy (:meth:`access.policy.Decision.sees`): a history never names a document kept
        from its reader. Three reads, whatever the page's length."""
        uids = {u for e in entries for u in e.documents}
        sets = {u for e in entries if e.kind == "add" for u in e.submission_sets}
        if not uids and not sets:
            return {}
        with self.database.read() as conn:
            members = registry_facts.set_documents(conn, sets) if sets else {}
            for e in entries:
                for set_uid in e.submission_sets:
                    e.documents.extend(members.get(set_uid, []))
            uids |= {u for docs in members.values() for u in docs}
            labels = registry_facts.document_labels(conn, uids)
            facts = document_facts(conn, unique_ids=list(labels))
            decision = self.policy.decide(caller, patient_id, READ, conn)
        visible = {f.unique_id for f in facts.values() if decision.sees(f)}
        return {u: label for u, label in labels.items() if u in visible}

    def audit_log_used(self, caller: Caller, patient_id: str | None, description: str) -> None:
        """DICOM 110101 Audit Log Used: a person read the audit trail (access history, auditor's desk)."""
        ev = messages.AuditEvent(messages.dcm("110101", "Audit Log Used"), messages.ACTION_READ, messages.SUCCESS,
                                 participants=[messages.requester(caller, messages.SOURCE)] + messages.human(caller),
                                 source_id=self.auditor.source_id, description=description)
        if patient_id:
            ev.objects.append(messages.patient_object(patient_id))
        self._record(ev)


class SubmissionFailed(Exception):
    pass


@dataclass
class DocumentsPage:
    docs: list
    """The page's DocumentEntries, newest first."""
    total: int
    page: int
    pages: int
    type_codes: list[str]
    """Every typeCode key (``code^^scheme``) among the visible documents, each once."""
    facts: dict[str, DocumentFacts]


def _documents(objects) -> list:
    if not objects:
        return []
    holder = etree.Element(q(NS_RIM, "RegistryObjectList"), nsmap={"rim": NS_RIM})
    for el in objects:
        holder.append(_copy(el))
    return Submission.from_objects(parse_object_list(holder)).documents


def _copy(el):
    return copy.deepcopy(el)

