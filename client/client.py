"""``XdsClient``: a Document Source and Document Consumer over standard XDS.b SOAP.

submit (ITI-41, MTOM), query (ITI-18) and retrieve (ITI-43, MTOM reply split byte-exactly), against
our server or any other vendor's.
"""
from __future__ import annotations

import hashlib
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lxml import etree

from client import queries
from client.errors import InputError, RegistryErrorItem, TransportError, XdsFailure
from client.transport import Reply, TlsOptions, Transport
from xds import rim
from xds.metadata import Association, Author, Code, DocumentEntry, Folder, Submission, SubmissionSet, new_uuid
from xds.soap.namespaces import NS_XOP
from xds.vocabulary import NS_LCM, NS_QUERY, NS_RIM, NS_RS, NS_XDSB, Actions, AssocType, ResponseStatus, Status, q

DEFAULT_REGISTRY_URL = "http://127.0.0.1:8080/registry"
DEFAULT_REPOSITORY_URL = "http://127.0.0.1:8080/repository"
SOURCE_ID = "1.2.250.1.213.1.1.9.1"
"""Our Document Source's sourceId (an OID of the DMP-XDS test arc)."""
CONTENT_TYPE = Code("04", "1.2.250.1.213.2.2", "Hospitalisation")
_seq = itertools.count(1)


def now_dtm() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


def new_oid() -> str:
    """A fresh OID under 2.25 (ITU-T X.667: a UUID as an integer arc)."""
    return f"2.25.{uuid.uuid4().int}"


@dataclass
class Document:
    """One document to submit: its bytes and its DocumentEntry (entry_uuid may be symbolic)."""
    content: bytes
    entry: DocumentEntry
    replaces: list[str] = field(default_factory=list)
    """entryUUIDs (urn:uuid:...) of the documents this one replaces (RPLC)."""
    related: list[tuple[str, str]] = field(default_factory=list)
    """(APND or XFRM association type, parent entryUUID): the other relationships of ITI TF-3 4.2.2."""


@dataclass
class SubmitResult:
    submission_set: SubmissionSet
    documents: list[Document]
    folder: Folder | None
    warnings: list[RegistryErrorItem]


@dataclass
class QueryResult:
    status: str
    documents: list[DocumentEntry] = field(default_factory=list)
    submission_sets: list[SubmissionSet] = field(default_factory=list)
    folders: list[Folder] = field(default_factory=list)
    associations: list[Association] = field(default_factory=list)
    object_refs: list[str] = field(default_factory=list)
    warnings: list[RegistryErrorItem] = field(default_factory=list)
    raw: etree._Element | None = None
    """The AdhocQueryResponse element as received."""


@dataclass
class RetrievedDocument:
    unique_id: str
    repository_unique_id: str
    mime_type: str
    content: bytes
    home_community_id: str | None = None


def registry_errors(response: etree._Element) -> list[RegistryErrorItem]:
    return [RegistryErrorItem(e.get("errorCode", ""), e.get("codeContext", ""), e.get("location", ""),
                              e.get("severity", "")) for e in response.iter(q(NS_RS, "RegistryError"))]


def check_response(response: etree._Element, allow_partial: bool = False) -> list[RegistryErrorItem]:
    """Raise :class:`XdsFailure` unless the status is Success; return the warnings."""
    status = response.get("status", "")
    errors = registry_errors(response)
    if status == ResponseStatus.SUCCESS or (allow_partial and status == ResponseStatus.PARTIAL_SUCCESS):
        return errors
    raise XdsFailure(status or "no status", errors)


def parse_query_response(response: etree._Element) -> QueryResult:
    result = QueryResult(status=response.get("status", ""), warnings=registry_errors(response), raw=response)
    rol = response.find(q(NS_RIM, "RegistryObjectList"))
    if rol is None:
        return result
    objects = rim.parse_object_list(rol)
    sub = Submission.from_objects(objects)
    result.documents, result.submission_sets, result.folders = sub.documents, sub.submission_sets, sub.folders
    result.associations, result.object_refs = sub.associations, sub.object_refs
    return result


class XdsClient:
    """The client side of XDS.b: ``submit``, ``query``, ``retrieve``.

    >>> client = XdsClient("http://127.0.0.1:8080/registry", "http://127.0.0.1:8080/repository")
    >>> result = client.query("find-documents", patient="...^^^&1.2.250.1.213.1.4.10&ISO^NH")
    """

    def __init__(self, registry_url: str = DEFAULT_REGISTRY_URL, repository_url: str = DEFAULT_REPOSITORY_URL,
                 tls: TlsOptions | None = None, assertion=None, timeout: float = 120.0,
                 source_id: str = SOURCE_ID) -> None:
        self.registry_url = registry_url
        self.repository_url = repository_url
        self.source_id = source_id
        self.transport = Transport(tls=tls, assertion=assertion, timeout=timeout)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> XdsClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ ITI-41
    def build_submission(self, documents: list[Document], submission_set: SubmissionSet | None = None,
                         folder: Folder | None = None) -> tuple[list[rim.RegistryObject], SubmissionSet]:
        """The RegistryObjectList of one submission: entries, submission set, folder, associations."""
        if not documents and folder is None:
            raise InputError("nothing to submit")
        patients = {d.entry.patient_id for d in documents} | ({folder.patient_id} if folder else set())
        if len(patients) != 1 or None in patients:
            raise InputError("one submission set holds the documents of one patient, found "
                             f"{sorted(map(str, patients))}")
        patient = patients.pop()
        ss = submission_set or SubmissionSet(entry_uuid=new_uuid())
        ss.patient_id = ss.patient_id or patient
        ss.unique_id = ss.unique_id or new_oid()
        ss.source_id = ss.source_id or self.source_id
        ss.submission_time = ss.submission_time or now_dtm()
        ss.content_type_code = ss.content_type_code or CONTENT_TYPE
        if not ss.authors:
            first = next((a for d in documents for a in d.entry.authors if a.person or a.institutions), None)
            if first is not None:
                ss.authors = [Author(first.person, list(first.institutions), list(first.roles),
                                     list(first.specialties))]
        objects: list[rim.RegistryObject] = []
        for d in documents:
            d.entry.hash = d.entry.hash or hashlib.sha1(d.content).hexdigest()
            d.entry.size = d.entry.size if d.entry.size is not None else len(d.content)
            objects.append(d.entry.to_rim())
        objects += ss.to_rim()
        if folder is not None:
            folder.unique_id = folder.unique_id or new_oid()
            objects += folder.to_rim()
            objects.append(Association(new_uuid(), AssocType.HAS_MEMBER, ss.entry_uuid, folder.entry_uuid).to_rim())
        for d in documents:
            objects.append(Association(new_uuid(), AssocType.HAS_MEMBER, ss.entry_uuid, d.entry.entry_uuid,
                                       submission_set_status="Original").to_rim())
            if folder is not None:
                objects.append(Association(new_uuid(), AssocType.HAS_MEMBER, folder.entry_uuid,
                                           d.entry.entry_uuid).to_rim())
            for old in d.replaces:
                objects.append(Association(new_uuid(), AssocType.RPLC, d.entry.entry_uuid, old).to_rim())
            for kind, parent in d.related:
                objects.append(Association(new_uuid(), kind, d.entry.entry_uuid, parent).to_rim())
        return objects, ss

    def provide_request(self, documents: list[Document], submission_set: SubmissionSet | None = None,
                        folder: Folder | None = None):
        """The ProvideAndRegisterDocumentSetRequest element, its MTOM parts and the submission set."""
        objects, ss = self.build_submission(documents, submission_set, folder)
        root = etree.Element(q(NS_XDSB, "ProvideAndRegisterDocumentSetRequest"),
                             nsmap={"xdsb": NS_XDSB, "lcm": NS_LCM, "rim": NS_RIM, "xop": NS_XOP})
        root.append(rim.submit_objects_request(objects))
        parts = []
        for i, d in enumerate(documents):
            el = etree.SubElement(root, q(NS_XDSB, "Document"), id=d.entry.entry_uuid)
            cid = f"doc{i}.{uuid.uuid4().hex}@dmp-xds-client"
            etree.SubElement(el, q(NS_XOP, "Include"), href=f"cid:{cid}")
            parts.append((cid, "application/octet-stream", d.content))
        return root, parts, ss

    def submit(self, documents: list[Document], submission_set: SubmissionSet | None = None,
               folder: Folder | None = None) -> SubmitResult:
        """ITI-41 Provide and Register Document Set-b, documents as MTOM parts."""
        body, parts, ss = self.provide_request(documents, submission_set, folder)
        reply = self.transport.call(self.repository_url, Actions.PROVIDE, body, parts)
        warnings = check_response(self._registry_response(reply))
        return SubmitResult(ss, documents, folder, warnings)

    @staticmethod
    def _registry_response(reply: Reply) -> etree._Element:
        body = reply.body
        if body.tag == q(NS_RS, "RegistryResponse"):
            return body
        found = body.find(q(NS_RS, "RegistryResponse"))
        if found is None:
            raise TransportError(f"the answer is {body.tag}, not a RegistryResponse")
        return found

    # ------------------------------------------------------------------ ITI-18
    def query(self, name: str, return_type: str = "LeafClass", **params) -> QueryResult:
        """Run a stored query by friendly name (``find-documents``), TF name or UUID.

        Friendly parameters: patient, status, uuid, unique_id, class_code, type_code, ... (see
        :data:`client.queries.FRIENDLY_PARAMS`); raw ones as ``**{"$XDSDocumentEntryStatus": [...]}``.
        """
        try:
            tf_name = queries.resolve_name(name)
        except KeyError:
            raise InputError(f"unknown stored query {name!r}; known: {', '.join(sorted(queries.BY_FRIENDLY))}") \
                from None
        try:
            slots = queries.build_params(tf_name, params)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        body = queries.adhoc_query_request(tf_name, slots, return_type)
        reply = self.transport.call(self.registry_url, Actions.STORED_QUERY, body)
        response = reply.body
        if response.tag != q(NS_QUERY, "AdhocQueryResponse"):
            raise TransportError(f"the answer is {response.tag}, not an AdhocQueryResponse")
        result = parse_query_response(response)
        result.warnings = check_response(response, allow_partial=True)
        return result

    def find_document(self, unique_id: str) -> DocumentEntry | None:
        """The DocumentEntry registered under ``unique_id``, whatever its status (ITI-18 GetDocuments).

        GetDocuments does not filter on status (ITI TF-2 3.18.4.1.2.3.7.5): a replaced
        (Deprecated) document is found too. Of several versions, the Approved one is returned.
        """
        found = self.query("get-documents", unique_id=unique_id).documents
        found = [e for e in found if e.unique_id == unique_id]
        approved = [e for e in found if e.status == Status.APPROVED]
        return next(iter(approved or found), None)

    # ------------------------------------------------------------------ ITI-43
    def retrieve_many(self, requests: list[tuple[str, str] | tuple[str, str, str]]) -> list[RetrievedDocument]:
        """ITI-43 for [(document uniqueId, repository uniqueId[, home community id])]."""
        root = etree.Element(q(NS_XDSB, "RetrieveDocumentSetRequest"), nsmap={"xdsb": NS_XDSB})
        for r in requests:
            dr = etree.SubElement(root, q(NS_XDSB, "DocumentRequest"))
            if len(r) == 3 and r[2]:
                etree.SubElement(dr, q(NS_XDSB, "HomeCommunityId")).text = r[2]
            etree.SubElement(dr, q(NS_XDSB, "RepositoryUniqueId")).text = r[1]
            etree.SubElement(dr, q(NS_XDSB, "DocumentUniqueId")).text = r[0]
        reply = self.transport.call(self.repository_url, Actions.RETRIEVE, root)
        check_response(self._registry_response(reply), allow_partial=True)
        out = []
        for dr in reply.body.iter(q(NS_XDSB, "DocumentResponse")):
            doc = dr.find(q(NS_XDSB, "Document"))
            out.append(RetrievedDocument(dr.findtext(q(NS_XDSB, "DocumentUniqueId"), ""),
                                         dr.findtext(q(NS_XDSB, "RepositoryUniqueId"), ""),
                                         dr.findtext(q(NS_XDSB, "mimeType"), "application/octet-stream"),
                                         reply.resolve(doc) if doc is not None else b"",
                                         dr.findtext(q(NS_XDSB, "HomeCommunityId"))))
        return out

    def retrieve(self, unique_id: str, repository_id: str, home_community_id: str | None = None
                 ) -> RetrievedDocument:
        """ITI-43 for one document: its bytes (``.content``) and ``.mime_type``."""
        docs = self.retrieve_many([(unique_id, repository_id, home_community_id or "")])
        for d in docs:
            if d.unique_id == unique_id:
                return d
        raise XdsFailure("no document", [RegistryErrorItem("XDSDocumentUniqueIdError",
                                                           f"the repository returned no document {unique_id}")])
