"""SOAP binding of the Document Repository: ``/repository`` (ITI-41 and ITI-43).

Transport only: read the body, hand it to :class:`repository.transactions.Repository`, write
the answer. ``xds serve`` calls :func:`startup` once before the workers fork (schema migration
and crash sweep); each worker builds its endpoint with :func:`repository_endpoint`.
"""
from __future__ import annotations

import logging
import uuid
from pathlib import Path

from lxml import etree

from xds import rim
from xds.errors import ErrorCode, ErrorList
from xds.responses import error_list_element
from xds.soap import Operation, OutgoingAttachment, SoapEndpoint, SoapRequest, SoapResponse, make_xop_include
from xds.vocabulary import NS_LCM, NS_RIM, NS_RS, NS_XDSB, Actions, ResponseStatus, q

from .index import DocumentIndex, migrate
from .recovery import SweepReport, sweep
from .registry_client import InProcessRegistry, RegistryAnswer, RegistryGateway, SoapRegistry
from .store import DocumentStore, FileSystemStore
from .transactions import DocumentPart, DocumentRequest, Repository

log = logging.getLogger(__name__)

WSDL = Path(__file__).resolve().parent.parent / "wsdl" / "repository.wsdl"
REGISTRY_TIMEOUT = 30.0


def _registry_response(answer: RegistryAnswer) -> etree._Element:
    root = etree.Element(q(NS_RS, "RegistryResponse"), nsmap={"rs": NS_RS}, status=answer.status)
    error_list_element(answer.errors, root)
    return root


def provide_handler(repository: Repository, access=None):
    def handle(request: SoapRequest) -> SoapResponse:
        body = request.body
        caller = access.identify(request) if access is not None else None
        object_list = body.find(f"{q(NS_LCM, 'SubmitObjectsRequest')}/{q(NS_RIM, 'RegistryObjectList')}")
        if object_list is None:
            errors = ErrorList()
            errors.add(ErrorCode.REPOSITORY_METADATA_ERROR,
                       "ProvideAndRegisterDocumentSetRequest has no lcm:SubmitObjectsRequest/rim:RegistryObjectList")
            answer = RegistryAnswer(ResponseStatus.FAILURE, errors)
        else:
            parts = []
            for el in body.iterchildren(q(NS_XDSB, "Document")):
                attachment = request.binary_content(el)  # a SoapFault for base64 that does not decode
                parts.append(DocumentPart(el.get("id") or "", attachment.iter_chunks))
            objects = rim.parse_object_list(object_list)
            refused = access.check_submission(caller, _patients(object_list)) if access is not None else None
            answer = RegistryAnswer(ResponseStatus.FAILURE, refused) if refused is not None else \
                repository.provide(objects, parts)
        return SoapResponse(body=_registry_response(answer), action=Actions.PROVIDE_RESPONSE)
    return handle


def _text(el: etree._Element, local: str) -> str | None:
    value = el.findtext(q(NS_XDSB, local))
    return value.strip() if value is not None else None


_PATIENT_ID_SCHEMES = {"urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427", "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446",
                       "urn:uuid:f64ffdf0-4b97-4e06-b79f-a44b1f8b1c0d"}


def _patients(object_list: etree._Element) -> set[str]:
    """The patients a submission is for (patientId of its DocumentEntries, SubmissionSet, Folders)."""
    return {el.get("value") for el in object_list.iter(q(NS_RIM, "ExternalIdentifier"))
            if el.get("identificationScheme") in _PATIENT_ID_SCHEMES and el.get("value")}


def _hide(result, visible: set[str]) -> None:
    """Documents the caller may not see answer exactly as unknown documents (ITI-43, DMP policy)."""
    for req, _row in [f for f in result.found if f[0].document_unique_id not in visible]:
        result.errors.add(ErrorCode.DOCUMENT_UNIQUE_ID_ERROR,
                          f"document uniqueId {req.document_unique_id} is not in this repository",
                          req.document_unique_id)
    result.found = [f for f in result.found if f[0].document_unique_id in visible]


def retrieve_handler(repository: Repository, access=None):
    def handle(request: SoapRequest) -> SoapResponse:
        caller = access.identify(request) if access is not None else None
        requests = [DocumentRequest(_text(el, "RepositoryUniqueId") or "", _text(el, "DocumentUniqueId") or "",
                                    _text(el, "HomeCommunityId"))
                    for el in request.body.iterchildren(q(NS_XDSB, "DocumentRequest"))]
        result = repository.retrieve(requests)
        if access is not None and result.found:
            _hide(result, access.visible_documents(caller, [r.document_unique_id for r, _ in result.found]))
        if not requests:
            result.errors.add(ErrorCode.REPOSITORY_ERROR, "RetrieveDocumentSetRequest has no DocumentRequest")
        root = etree.Element(q(NS_XDSB, "RetrieveDocumentSetResponse"), nsmap={"xdsb": NS_XDSB, "rs": NS_RS})
        rr = etree.SubElement(root, q(NS_RS, "RegistryResponse"), status=result.status)
        error_list_element(result.errors, rr)
        attachments = []
        for i, (req, row) in enumerate(result.found):
            dr = etree.SubElement(root, q(NS_XDSB, "DocumentResponse"))
            if req.home_community_id:
                etree.SubElement(dr, q(NS_XDSB, "HomeCommunityId")).text = req.home_community_id
            etree.SubElement(dr, q(NS_XDSB, "RepositoryUniqueId")).text = req.repository_unique_id
            etree.SubElement(dr, q(NS_XDSB, "DocumentUniqueId")).text = req.document_unique_id
            etree.SubElement(dr, q(NS_XDSB, "mimeType")).text = row.mime_type
            cid = f"doc{i}.{uuid.uuid4().hex}@dmp-xds"
            etree.SubElement(dr, q(NS_XDSB, "Document")).append(make_xop_include(cid))
            attachments.append(OutgoingAttachment(cid, row.mime_type, _opener(repository.store, row.ref)))
        return SoapResponse(body=root, action=Actions.RETRIEVE_RESPONSE, attachments=attachments, mtom=True)
    return handle


def _opener(store: DocumentStore, ref):
    return lambda: store.open(ref)


def repository_operations(repository: Repository, auditor=None, access=None) -> list[Operation]:
    provide, retrieve = provide_handler(repository, access), retrieve_handler(repository, access)
    if auditor is not None:
        from audit.edges import audited_provide, audited_retrieve
        provide, retrieve = audited_provide(provide, auditor), audited_retrieve(retrieve, auditor)
    return [
        Operation(action=Actions.PROVIDE, body=q(NS_XDSB, "ProvideAndRegisterDocumentSetRequest"),
                  handler=provide, accept_mtom=True),
        Operation(action=Actions.RETRIEVE, body=q(NS_XDSB, "RetrieveDocumentSetRequest"),
                  handler=retrieve, accept_mtom=True),
    ]


def registry_gateway(settings, database, registry=None) -> RegistryGateway:
    if settings.registry_url:
        return SoapRegistry(settings.registry_url, timeout=REGISTRY_TIMEOUT)
    return InProcessRegistry(registry, database)


def build_repository(services) -> Repository:
    settings = services.settings
    store = FileSystemStore(settings.documents_dir)
    _ensure_schema(services.database, store)
    gateway = registry_gateway(settings, services.database, services.registry)
    auditor = getattr(services, "auditor", None)
    if auditor is not None and auditor.enabled:
        from audit.edges import AuditedGateway
        gateway = AuditedGateway(gateway, auditor, settings.registry_url or "in-process",
                                 in_process=not settings.registry_url)
    return Repository(store, DocumentIndex(services.database), gateway, settings.repository_unique_id)


def repository_endpoint(services) -> SoapEndpoint:
    """The ``/repository`` WSGI app (``xds.app.build_services`` mounts it)."""
    repository = build_repository(services)
    return SoapEndpoint(repository_operations(repository, getattr(services, "auditor", None),
                                              getattr(services, "access", None)), wsdl_path=WSDL,
                        max_request_bytes=services.settings.max_request_bytes)


def _ensure_schema(database, store: FileSystemStore) -> None:
    """Migrate if ``startup`` has not (one worker at a time on this host; idempotent)."""
    import fcntl
    import os
    fd = os.open(store.locks / "migrate.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        migrate(database)
    finally:
        os.close(fd)


def startup(settings, older_than: float = 0.0) -> SweepReport:
    """Run once in ``xds serve`` before the workers start: migrate the repository tables, then sweep."""
    from registry.store.db import Database

    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    database = Database(settings.effective_database_url())
    try:
        store = FileSystemStore(settings.documents_dir)
        _ensure_schema(database, store)
        gateway = registry_gateway(settings, database)
        return sweep(store, DocumentIndex(database), gateway, older_than=older_than)
    finally:
        database.dispose()
