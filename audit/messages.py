"""ATNA audit messages: the model (DICOM PS3.15 A.5.1) and one builder per transaction.

Codes come from the "Security Considerations" / "Audit Record Considerations" section of each
transaction in IHE ITI TF-2 (3.18.5.1, 3.41.5.1, 3.42.5.1, 3.43.5.1) and from DICOM PS3.16
(DCM codes). Every message validates against DICOM's schema (``dicom2024d.xsd``, CP-2399): each
ParticipantObjectIdentification carries a ParticipantObjectName or a ParticipantObjectQuery.

Builders are pure: they take the :class:`xds.context.Caller`, what the transaction touched and
its outcome, and return an :class:`AuditEvent`; :meth:`AuditEvent.to_xml` serializes it.
"""
from __future__ import annotations

import base64
import functools
import os
import re
import socket
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from lxml import etree

from audit.fields import Fields, dedupe, normalize_patient
from xds.context import Caller
from xds.soap.namespaces import WSA_ANONYMOUS
from xds.vocabulary import NS_RIM, QUERY_PATIENT_PARAMETERS, q
from xds.xmlsafe import parse_bytes

# -- outcomes: DICOM PS3.15 A.5.1 EventOutcomeIndicator
SUCCESS = 0
MINOR_FAILURE = 4
SERIOUS_FAILURE = 8
MAJOR_FAILURE = 12


def outcome_of_status(status: str) -> int:
    """ebRS RegistryResponse status -> EventOutcomeIndicator (PartialSuccess is a minor failure)."""
    if status.endswith(":Success"):
        return SUCCESS
    if status.endswith(":PartialSuccess"):
        return MINOR_FAILURE
    return SERIOUS_FAILURE


@dataclass(frozen=True)
class Code:
    """A coded value (CodedValueType: csd-code, codeSystemName, originalText)."""
    code: str
    system: str
    text: str


def dcm(code: str, text: str) -> Code:
    return Code(code, "DCM", text)


# EventID (DICOM PS3.16 CID 400-series)
APPLICATION_ACTIVITY = dcm("110100", "Application Activity")
EXPORT = dcm("110106", "Export")
IMPORT = dcm("110107", "Import")
QUERY = dcm("110112", "Query")
SECURITY_ALERT = dcm("110113", "Security Alert")
# EventTypeCode of application activity and security alerts (CID 402, 403)
APPLICATION_START = dcm("110120", "Application Start")
APPLICATION_STOP = dcm("110121", "Application Stop")
NODE_AUTHENTICATION = dcm("110126", "Node Authentication")
EMERGENCY_OVERRIDE = dcm("110127", "Emergency Override Started")
USE_OF_RESTRICTED_FUNCTION = dcm("110132", "Use of Restricted Function")
USER_AUTHENTICATION = dcm("110122", "Login")
# RoleIDCode (CID 402 / 7210)
APPLICATION = dcm("110150", "Application")
APPLICATION_LAUNCHER = dcm("110151", "Application Launcher")
DESTINATION = dcm("110152", "Destination Role ID")
SOURCE = dcm("110153", "Source Role ID")
# EventTypeCode of the XDS transactions (ITI TF-2)
ITI_18 = Code("ITI-18", "IHE Transactions", "Registry Stored Query")
ITI_41 = Code("ITI-41", "IHE Transactions", "Provide and Register Document Set-b")
ITI_42 = Code("ITI-42", "IHE Transactions", "Register Document Set-b")
ITI_43 = Code("ITI-43", "IHE Transactions", "Retrieve Document Set")
ITI_57 = Code("ITI-57", "IHE Transactions", "Update Document Set")
ITI_81 = Code("ITI-81", "IHE Transactions", "Retrieve ATNA Audit Event")
TRANSACTIONS = {c.code: c for c in (ITI_18, ITI_41, ITI_42, ITI_43, ITI_57, ITI_81)}
ITI_62 = Code("ITI-62", "IHE Transactions", "Delete Document Set")
ITI_86 = Code("ITI-86", "IHE Transactions", "Remove Documents")
TRANSACTIONS.update({c.code: c for c in (ITI_62, ITI_86)})
PATIENT_RECORD = dcm("110110", "Patient Record")
ACTION_DELETE = "D"
AUDIT_LOG_USED = dcm("110101", "Audit Log Used")
"""EventID of a read of the audit trail (DICOM PS3.15 A.5.3.2), which RESTful ATNA's ITI-81 audits."""
# ParticipantObjectIDTypeCode
PATIENT_NUMBER = Code("2", "RFC-3881", "Patient Number")
REPORT_NUMBER = Code("9", "RFC-3881", "Report Number")
URI = Code("12", "RFC-3881", "URI")
SUBMISSION_SET = Code("urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd", "IHE XDS Metadata",
                      "submission set classificationNode")
ACCESS_MODE_SYSTEM = "1.2.250.1.213.1.1.4.248"
"""TRE_R248 (DMP access modes): given as PurposeOfUse when the access is an emergency."""

ACTION_CREATE, ACTION_READ, ACTION_UPDATE, ACTION_EXECUTE = "C", "R", "U", "E"
# ParticipantObjectTypeCode / ParticipantObjectTypeCodeRole (DICOM PS3.15 A.5.3)
PERSON, SYSTEM_OBJECT = "1", "2"
ROLE_PATIENT, ROLE_REPORT, ROLE_SECURITY_RESOURCE, ROLE_JOB, ROLE_QUERY = "1", "3", "13", "20", "24"
SECURITY_AUDIT_LOG = "Security Audit Log"


@dataclass
class Participant:
    """ActiveParticipant (DICOM PS3.15 A.5.1)."""
    user_id: str
    requestor: bool
    alt_user_id: str | None = None
    user_name: str | None = None
    network_id: str | None = None
    roles: list[Code] = field(default_factory=list)

    @property
    def network_type(self) -> str:
        """NetworkAccessPointTypeCode: 2 for an IP address, 1 for a machine name."""
        host = self.network_id or ""
        return "2" if host.replace(".", "").isdigit() or ":" in host else "1"


@dataclass
class ParticipantObject:
    """ParticipantObjectIdentification (DICOM PS3.15 A.5.1, A.5.3)."""
    object_id: str
    type_code: str
    role: str
    id_type: Code
    name: str | None = None
    query: bytes | None = None
    """The query, serialized (see :func:`stored_query`)."""
    details: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class AuditEvent:
    """One audit message: what happened, who took part, which source, which objects."""
    event_id: Code
    action: str
    outcome: int
    event_types: list[Code] = field(default_factory=list)
    participants: list[Participant] = field(default_factory=list)
    objects: list[ParticipantObject] = field(default_factory=list)
    source_id: str = ""
    site_id: str | None = None
    purpose_of_use: list[Code] = field(default_factory=list)
    description: str | None = None
    time: datetime = field(default_factory=lambda: datetime.now(UTC))

    def index_fields(self):
        """The ARR's indexed fields, straight from the model: what :func:`audit.fields.fields_of`
        reads from :meth:`to_xml` (tested equal), without parsing the XML again."""
        keys = [("subtype", c.code) for c in self.event_types]
        for p in self.participants:
            keys += [(k, v) for k, v in (("user", p.user_id), ("altid", p.alt_user_id), ("address", p.network_id))
                     if v]
        for o in self.objects:
            if not o.object_id:
                continue
            if o.type_code == PERSON and o.role == ROLE_PATIENT:
                keys.append(("patient", o.object_id))
                norm = normalize_patient(o.object_id)
                if norm and norm != o.object_id:
                    keys.append(("patient", norm))
            else:
                keys.append(("object", o.object_id))
        ts = datetime.fromisoformat(self.time.isoformat(timespec="milliseconds")).timestamp()
        return Fields("ok", ts, self.event_id.code, self.action,
                      self.event_types[0].code if self.event_types else None, self.outcome,
                      self.source_id or "unknown", " ".join(c.code for c in self.purpose_of_use) or None,
                      dedupe(keys))

    def to_xml(self) -> bytes:
        """The AuditMessage element, in the order of DICOM PS3.15 A.5.1 (schema sequence).

        Written as text rather than through an lxml tree: three times cheaper, and this runs for
        every transaction (benchmarks/audit.py). Values are escaped by :func:`_a`.
        """
        out = ['<?xml version="1.0" encoding="UTF-8"?>\n<AuditMessage><EventIdentification EventActionCode=',
               _a(self.action), " EventDateTime=", _a(self.time.isoformat(timespec="milliseconds")),
               " EventOutcomeIndicator=", _a(str(self.outcome)), ">", _code("EventID", self.event_id)]
        out += [_code("EventTypeCode", c) for c in self.event_types]
        if self.description:
            out.append(f"<EventOutcomeDescription>{_t(self.description)}</EventOutcomeDescription>")
        out += [_code("PurposeOfUse", c) for c in self.purpose_of_use]
        out.append("</EventIdentification>")
        for p in self.participants:
            out += ["<ActiveParticipant UserID=", _a(p.user_id)]
            if p.alt_user_id:
                out += [" AlternativeUserID=", _a(p.alt_user_id)]
            if p.user_name:
                out += [" UserName=", _a(p.user_name)]
            out.append(' UserIsRequestor="true"' if p.requestor else ' UserIsRequestor="false"')
            if p.network_id:
                out += [" NetworkAccessPointID=", _a(p.network_id), " NetworkAccessPointTypeCode=",
                        _a(p.network_type)]
            if p.roles:
                out += [">", *(_code("RoleIDCode", c) for c in p.roles), "</ActiveParticipant>"]
            else:
                out.append("/>")
        out += ["<AuditSourceIdentification AuditSourceID=", _a(self.source_id or "unknown")]
        if self.site_id:
            out += [" AuditEnterpriseSiteID=", _a(self.site_id)]
        out.append('><AuditSourceTypeCode csd-code="4" codeSystemName="DCM" originalText="Application Server Process"/>'
                   "</AuditSourceIdentification>")
        for o in self.objects:
            out += ["<ParticipantObjectIdentification ParticipantObjectID=", _a(o.object_id),
                    " ParticipantObjectTypeCode=", _a(o.type_code), " ParticipantObjectTypeCodeRole=", _a(o.role),
                    ">", _code("ParticipantObjectIDTypeCode", o.id_type)]
            if o.query is not None:
                out += ["<ParticipantObjectQuery>", base64.b64encode(o.query).decode(), "</ParticipantObjectQuery>"]
            else:
                out += ["<ParticipantObjectName>", _t(o.name or o.object_id), "</ParticipantObjectName>"]
            for kind, value in o.details:
                out += ["<ParticipantObjectDetail type=", _a(kind), ' value="', base64.b64encode(value).decode(), '"/>']
            out.append("</ParticipantObjectIdentification>")
        out.append("</AuditMessage>")
        return "".join(out).encode("utf-8")


_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTR = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;",
                       "\r": "&#13;"})


def _t(value: str) -> str:
    """Element text: characters XML 1.0 cannot carry dropped, markup escaped."""
    return _NOT_XML.sub("", value).translate(_TEXT)


def _a(value: str) -> str:
    """A quoted attribute value (XML 1.0 section 3.3.3: whitespace kept as character references)."""
    return '"' + _NOT_XML.sub("", value).translate(_ATTR) + '"'


@functools.lru_cache(maxsize=4096)
def _code(tag: str, c: Code) -> str:
    """A coded element; cached, since nearly every code of a message is one of the TF's constants
    (EventID, EventTypeCode, RoleIDCode...) and escaping them was a third of :meth:`to_xml`."""
    return f"<{tag} csd-code={_a(c.code)} codeSystemName={_a(c.system)} originalText={_a(c.text)}/>"


# -- participants ---------------------------------------------------------------------------

def host_of(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


SERVED_BY: ContextVar[str | None] = ContextVar("served_by", default=None)
"""The process that served the transaction, when the event is built elsewhere: the audit process
builds ITI-18 events from the facts a worker queued (audit.compact), and the application's
AlternativeUserID must be the worker's process id (DICOM PS3.15 A.5.3: the process that acted),
so that a forwarded copy and the chained one say the same."""


def process_id() -> str:
    return SERVED_BY.get() or str(os.getpid())


def requester(caller: Caller, role: Code) -> Participant:
    """The SOAP requester of ITI-18/41/42 (Source) or ITI-43 (Destination): UserID is "the content
    of the <wsa:ReplyTo/> element" (ITI TF-2 3.18.5.1, 3.41.5.1, 3.42.5.1, 3.43.5.1), the
    anonymous URI when the request has none; its network address in NetworkAccessPointID. The
    TLS subject of an authenticated node, which the TF leaves unspecialized, is kept as its
    AlternativeUserID."""
    return Participant(caller.reply_to or WSA_ANONYMOUS, True, alt_user_id=caller.node_subject,
                       network_id=caller.remote_addr, roles=[role])


def calling_node(caller: Caller, role: Code) -> Participant:
    """The calling system of a request without WS-Addressing (ITI-81, the DMP API, security
    alerts): its wsa:ReplyTo when it named one, else its TLS subject, else its address."""
    reply = caller.reply_to if caller.reply_to and "anonymous" not in caller.reply_to else None
    user = reply or caller.node_subject or caller.remote_addr or "unknown"
    return Participant(user, True, network_id=caller.remote_addr, roles=[role])


def responder(caller: Caller, role: Code) -> Participant:
    """This actor: its endpoint URL, our process id as AlternativeUserID."""
    endpoint = caller.endpoint or "urn:dmp-xds"
    return Participant(endpoint, False, alt_user_id=process_id(), network_id=host_of(caller.endpoint), roles=[role])


def human(caller: Caller) -> list[Participant]:
    """The human requestor, when the caller's identity is known (XUA, portal)."""
    if not caller.user_id:
        return []
    roles = [Code(r.code, r.scheme or "unknown", r.display or r.code) for r in caller.roles]
    # AlternativeUserID carries the organisation the person acts for (DMP: the structure's id).
    return [Participant(caller.user_id, True, alt_user_id=caller.organization_id or caller.organization,
                        user_name=caller.user_name, roles=roles)]


def purposes(caller: Caller) -> list[Code]:
    out = [Code(p.code, p.scheme or "unknown", p.display or p.code) for p in caller.purpose_of_use]
    if caller.is_emergency:
        out.append(Code(caller.access_mode, ACCESS_MODE_SYSTEM, caller.access_mode))
    return out


def patient_object(patient_id: str) -> ParticipantObject:
    return ParticipantObject(patient_id, PERSON, ROLE_PATIENT, PATIENT_NUMBER, name=patient_id)


def submission_set_object(unique_id: str) -> ParticipantObject:
    return ParticipantObject(unique_id, SYSTEM_OBJECT, ROLE_JOB, SUBMISSION_SET, name=unique_id)


def _base(caller: Caller, source_id: str, event_id: Code, action: str, outcome: int, event_type: Code,
          participants: list[Participant], description: str | None = None) -> AuditEvent:
    return AuditEvent(event_id=event_id, action=action, outcome=outcome, event_types=[event_type],
                      participants=participants + human(caller), source_id=source_id,
                      purpose_of_use=purposes(caller), description=description)


# -- one builder per transaction ---------------------------------------------------------------

def provide_and_register(caller: Caller, source_id: str, outcome: int, patient_id: str | None,
                         submission_set_uid: str | None, description: str | None = None) -> AuditEvent:
    """ITI-41 at the Document Repository (ITI TF-2 3.41.5.1.2): Import, C."""
    ev = _base(caller, source_id, IMPORT, ACTION_CREATE, outcome, ITI_41,
               [requester(caller, SOURCE), responder(caller, DESTINATION)], description)
    ev.objects = _patient_and_set(patient_id, submission_set_uid)
    return ev


def register_export(caller: Caller, source_id: str, registry_url: str, outcome: int, patient_id: str | None,
                    submission_set_uid: str | None, description: str | None = None) -> AuditEvent:
    """ITI-42 at the Document Repository (ITI TF-2 3.42.5.1.1): Export, R; we are the Source (UserID:
    the wsa:ReplyTo we sent), the registry's endpoint URI the Destination."""
    # Our SOAP client sends wsa:ReplyTo anonymous (xds.soap.client): its content is our UserID.
    src = Participant(WSA_ANONYMOUS, True, alt_user_id=process_id(), network_id=host_of(caller.endpoint),
                      roles=[SOURCE])
    dst = Participant(registry_url, False, network_id=host_of(registry_url), roles=[DESTINATION])
    ev = _base(caller, source_id, EXPORT, ACTION_READ, outcome, ITI_42, [src, dst], description)
    ev.objects = _patient_and_set(patient_id, submission_set_uid)
    return ev


def register_import(caller: Caller, source_id: str, outcome: int, patient_id: str | None,
                    submission_set_uid: str | None, description: str | None = None) -> AuditEvent:
    """ITI-42 at the Document Registry (ITI TF-2 3.42.5.1.2): Import, C."""
    ev = _base(caller, source_id, IMPORT, ACTION_CREATE, outcome, ITI_42,
               [requester(caller, SOURCE), responder(caller, DESTINATION)], description)
    ev.objects = _patient_and_set(patient_id, submission_set_uid)
    return ev


def update_import(caller: Caller, source_id: str, outcome: int, patient_id: str | None,
                  submission_set_uid: str | None, description: str | None = None) -> AuditEvent:
    """ITI-57 at the Document Registry, the Update Responder (ITI TF-2 3.57.5.1.2): Import, U;
    the Document Administrator as Source, the registry as Destination, the patient and the
    SubmissionSet as objects."""
    ev = _base(caller, source_id, IMPORT, ACTION_UPDATE, outcome, ITI_57,
               [requester(caller, SOURCE), responder(caller, DESTINATION)], description)
    ev.objects = _patient_and_set(patient_id, submission_set_uid)
    return ev


def update_export(caller: Caller, source_id: str, registry_url: str, outcome: int, patient_id: str | None,
                  submission_set_uid: str | None, description: str | None = None) -> AuditEvent:
    """ITI-57 at the Document Administrator, the Update Initiator (ITI TF-2 3.57.5.1.1): Export, U;
    this node as Source, the registry as Destination."""
    src = Participant(WSA_ANONYMOUS, True, alt_user_id=process_id(), network_id=host_of(caller.endpoint),
                      roles=[SOURCE])
    dst = Participant(registry_url, False, network_id=host_of(registry_url), roles=[DESTINATION])
    ev = _base(caller, source_id, EXPORT, ACTION_UPDATE, outcome, ITI_57, [src, dst], description)
    ev.objects = _patient_and_set(patient_id, submission_set_uid)
    return ev


def stored_query(caller: Caller, source_id: str, outcome: int, query_id: str, request: bytes | etree._Element,
                 patient_id: str | None, home_community_id: str | None = None,
                 description: str | None = None) -> AuditEvent:
    """ITI-18 at the Document Registry (ITI TF-2 3.18.5.1.2): Query, E; the AdhocQueryRequest in base64.

    An element is serialized here, on the request's thread (~3 µs), and the event keeps no lxml
    object: an event holding the request's element kept its whole parsed envelope alive until the
    audit writer thread had encoded the batch, and that cost each audited ITI-18 ~40 µs of worker
    CPU more than the serialization (benchmarks/audit.py, issue 5).
    """
    if isinstance(request, etree._Element):
        request = etree.tostring(request, encoding="UTF-8")
    ev = _base(caller, source_id, QUERY, ACTION_EXECUTE, outcome, ITI_18,
               [requester(caller, SOURCE), responder(caller, DESTINATION)], description)
    if patient_id:
        ev.objects.append(patient_object(patient_id))
    details = [("QueryEncoding", b"UTF-8")]
    if home_community_id:
        details.append(("urn:ihe:iti:xca:2010:homeCommunityId", home_community_id.encode()))
    ev.objects.append(ParticipantObject(query_id or "unknown", SYSTEM_OBJECT, ROLE_QUERY, ITI_18, query=request,
                                        details=details))
    return ev


def stored_query_of_request(caller: Caller, source_id: str, outcome: int, request: bytes,
                            home_community_id: str | None = None) -> AuditEvent:
    """:func:`stored_query` from the serialized AdhocQueryRequest alone: its AdhocQuery id and
    its patient parameter are read here.

    The audit process calls this for the rows a worker queued as facts (``audit.compact``), so
    that the worker's share of auditing an ITI-18 is a serialization and a short JSON dump.
    """
    query_id, patient = "", None
    try:
        adhoc = parse_bytes(request).find(q(NS_RIM, "AdhocQuery"))
    except (etree.XMLSyntaxError, ValueError):
        adhoc = None
    if adhoc is not None:
        query_id = adhoc.get("id", "")
        for slot in adhoc.iterchildren(q(NS_RIM, "Slot")):
            if slot.get("name") in QUERY_PATIENT_PARAMETERS:
                value = slot.findtext(f"{q(NS_RIM, 'ValueList')}/{q(NS_RIM, 'Value')}") or ""
                patient = value.strip().strip("(").strip(")").strip().strip("'") or None
                break
    return stored_query(caller, source_id, outcome, query_id, request, patient, home_community_id)


@dataclass
class DocumentRef:
    unique_id: str
    repository_unique_id: str
    home_community_id: str | None = None


def document_object(d: DocumentRef) -> ParticipantObject:
    """A document as ITI-43 and ITI-86 name it (ITI TF-2 3.43.5.1.3): its uniqueId, with the
    Repository Unique Id and, when known, the homeCommunityID as details."""
    details = [("Repository Unique Id", d.repository_unique_id.encode())]
    if d.home_community_id:
        details.append(("ihe:homeCommunityID", d.home_community_id.encode()))
    return ParticipantObject(d.unique_id, SYSTEM_OBJECT, ROLE_REPORT, REPORT_NUMBER, name=d.unique_id,
                             details=details)


def retrieve(caller: Caller, source_id: str, outcome: int, documents: list[DocumentRef],
             patient_id: str | None = None, description: str | None = None) -> AuditEvent:
    """ITI-43 at the Document Repository (ITI TF-2 3.43.5.1.3): Export, R; one object per document."""
    src = responder(caller, SOURCE)
    src.requestor = False
    dst = requester(caller, DESTINATION)
    ev = _base(caller, source_id, EXPORT, ACTION_READ, outcome, ITI_43, [src, dst], description)
    if patient_id:
        ev.objects.append(patient_object(patient_id))
    ev.objects += [document_object(d) for d in documents]
    return ev


def remove_metadata(caller: Caller, source_id: str, outcome: int, patient_id: str | None,
                    objects: list[tuple[str, str]], description: str | None = None) -> AuditEvent:
    """ITI-62 at the Document Registry (ITI TF-2 3.62.5.1): Patient Record 110110, D; the patient and
    one object per removed (or, on failure, named) registry object: ``(entryUUID, kind)``, a
    SubmissionSet identified as such, the others as reports by their entryUUID."""
    ev = _base(caller, source_id, PATIENT_RECORD, ACTION_DELETE, outcome, ITI_62,
               [requester(caller, SOURCE), responder(caller, DESTINATION)], description)
    if patient_id:
        ev.objects.append(patient_object(patient_id))
    for uuid, kind in objects:
        id_type = SUBMISSION_SET if kind == "submission_set" else REPORT_NUMBER
        ev.objects.append(ParticipantObject(uuid, SYSTEM_OBJECT, ROLE_REPORT, id_type, name=uuid))
    return ev


def remove_documents(caller: Caller, source_id: str, outcome: int, documents: list[DocumentRef],
                     patient_id: str | None = None, description: str | None = None) -> AuditEvent:
    """ITI-86 at the Document Repository (ITI TF-2 3.86.5.1): Patient Record 110110, D; one object
    per document, as ITI-43 names them (uniqueId, Repository Unique Id, homeCommunityID)."""
    ev = _base(caller, source_id, PATIENT_RECORD, ACTION_DELETE, outcome, ITI_86,
               [requester(caller, SOURCE), responder(caller, DESTINATION)], description)
    if patient_id:
        ev.objects.append(patient_object(patient_id))
    ev.objects += [document_object(d) for d in documents]
    return ev


def application_activity(source_id: str, start: bool, application: str = "xds serve") -> AuditEvent:
    """Application Start / Stop (DICOM PS3.15 A.5.3.1, ITI TF-2 3.20.4.1.1.1 'Application Activity')."""
    app = Participant(application, False, alt_user_id=process_id(), network_id=socket.gethostname(),
                      roles=[APPLICATION])
    return AuditEvent(APPLICATION_ACTIVITY, ACTION_EXECUTE, SUCCESS,
                      [APPLICATION_START if start else APPLICATION_STOP], [app], source_id=source_id)


def security_alert(caller: Caller, source_id: str, description: str, alert_type: Code = USE_OF_RESTRICTED_FUNCTION,
                   outcome: int = MINOR_FAILURE, patient_id: str | None = None) -> AuditEvent:
    """Security Alert (DICOM PS3.15 A.5.3.11): authentication failures and refused accesses."""
    reporter = responder(caller, APPLICATION)
    reporter.requestor = False
    ev = _base(caller, source_id, SECURITY_ALERT, ACTION_EXECUTE, outcome, alert_type,
               [reporter, calling_node(caller, SOURCE)], description)
    if caller.endpoint:
        ev.objects.append(ParticipantObject(caller.endpoint, SYSTEM_OBJECT, "13",
                                            Code("12", "RFC-3881", "URI"), name=caller.endpoint))
    if patient_id:
        ev.objects.append(patient_object(patient_id))
    return ev


def audit_log_used(caller: Caller, source_id: str, outcome: int, log_uri: str, query: str | None = None,
                   patient_ids: list[str] | None = None, description: str | None = None) -> AuditEvent:
    """A read of the audit trail: ITI-81 at the Audit Record Repository (RESTful ATNA, ITI TF-2
    3.81.5.1), DICOM PS3.15 A.5.3.2 "Audit Log Used", R, event type ITI-81.

    The reader's node (Source) and, when known, the person or principal (human requestor); this
    server (Destination); the trail (system object, role 13 Security Resource, its URI) with the
    search as asked in ParticipantObjectQuery, else named "Security Audit Log"; one Patient object
    per patient the search or the record names, so that a patient's access history shows who read
    her part of the trail."""
    ev = _base(caller, source_id, AUDIT_LOG_USED, ACTION_READ, outcome, ITI_81,
               [calling_node(caller, SOURCE), responder(caller, DESTINATION)], description)
    for patient_id in dict.fromkeys(patient_ids or []):
        ev.objects.append(patient_object(patient_id))
    log = ParticipantObject(log_uri, SYSTEM_OBJECT, ROLE_SECURITY_RESOURCE, URI, name=SECURITY_AUDIT_LOG)
    if query:
        log.query = query.encode("utf-8")
    ev.objects.append(log)
    return ev


def _patient_and_set(patient_id: str | None, submission_set_uid: str | None) -> list[ParticipantObject]:
    out = []
    if patient_id:
        out.append(patient_object(patient_id))
    if submission_set_uid:
        out.append(submission_set_object(submission_set_uid))
    return out


# -- Patient Identity Feed (ITI-8, ITI-104) ------------------------------------------------------

PATIENT_RECORD_EVENT = dcm("110110", "Patient Record")
ITI_8 = Code("ITI-8", "IHE Transactions", "Patient Identity Feed")
ITI_104 = Code("ITI-104", "IHE Transactions", "Patient Identity Feed FHIR")
FEED_TRANSACTIONS = {c.code: c for c in (ITI_8, ITI_104)}
FEED_ACTIONS = {"created": "C", "updated": "U", "merged": "D", "refused": "U"}
"""EventActionCode of each feed outcome: a record created (C), revised or the survivor of a merge
(U), the subsumed record of a merge (D)."""


def patient_feed(caller: Caller, source_id: str, outcome: int, transaction: str, action: str, patient_id: str,
                 sender: str | None = None, receiver: str | None = None, message_control_id: str | None = None,
                 description: str | None = None) -> AuditEvent:
    """Patient Identity Feed at the registry, the receiver (ITI TF-2 3.8.5.1.2 for ITI-8, PIXm
    3.104.5.1.2 for ITI-104, which follows it): Patient Record 110110, C for a record created, U
    for one revised, D for the subsumed patient of a merge (audited with the survivor's U).

    The Patient Identity Source (Source role): for ITI-8 its sending application and facility,
    MSH-3|MSH-4 (``sender``), else the calling node; this registry (Destination): MSH-5|MSH-6
    (``receiver``) or its endpoint. The patient, with the message control id MSH-10 as a
    ParticipantObjectDetail for ITI-8."""
    source = calling_node(caller, SOURCE)
    if sender:
        source.user_id = sender
    destination = responder(caller, DESTINATION)
    if receiver:
        destination.user_id = receiver
    ev = _base(caller, source_id, PATIENT_RECORD_EVENT, FEED_ACTIONS.get(action, action), outcome,
               FEED_TRANSACTIONS[transaction], [source, destination], description)
    patient = patient_object(patient_id)
    if message_control_id:
        patient.details.append(("MSH-10", message_control_id.encode()))
    ev.objects.append(patient)
    return ev
