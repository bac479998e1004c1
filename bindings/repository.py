"""SOAP binding of the Document Repository: ``/repository`` (ITI-41, ITI-43 and ITI-86).

Transport only: read the body (documents as MTOM parts or inline base64), call the transaction
module, write the answer (ITI-43 answers MTOM).
"""
from __future__ import annotations

import uuid
from pathlib import Path

from lxml import etree

from bindings.soap import soap_caller, soap_endpoint, xua
from repository.registry_client import RegistryAnswer
from repository.store import ContentRef, DocumentStore
from repository.transactions import DocumentPart, DocumentRequest
from transactions import iti41, iti43, iti86
from transactions.services import Services
from xds.responses import error_list_element, registry_response
from xds.soap import (
    WSSE_SECURITY,
    Operation,
    OutgoingAttachment,
    RefusalHook,
    SoapEndpoint,
    SoapRequest,
    SoapResponse,
    make_xop_include,
)
from xds.vocabulary import NS_LCM, NS_RIM, NS_RMD, NS_RS, NS_XDSB, Actions, q

WSDL = Path(__file__).resolve().parent / "wsdl" / "repository.wsdl"


def _registry_response(answer: RegistryAnswer) -> etree._Element:
    root = etree.Element(q(NS_RS, "RegistryResponse"), nsmap={"rs": NS_RS}, status=answer.status)
    error_list_element(answer.errors, root)
    return root


def _text(el: etree._Element, local: str) -> str | None:
    value = el.findtext(q(NS_XDSB, local))
    return value.strip() if value is not None else None


def provide_request(request: SoapRequest) -> iti41.ProvideRequest:
    """The ITI-41 request: metadata, documents (a SoapFault for base64 that does not decode) and
    the wsse:Security header to forward with the ITI-42."""
    body = request.body

    def documents() -> list[DocumentPart]:
        parts = []
        for el in body.iterchildren(q(NS_XDSB, "Document")):
            attachment = request.binary_content(el)
            parts.append(DocumentPart(el.get("id") or "", attachment.iter_chunks))
        return parts

    security = request.header.find(WSSE_SECURITY) if request.header is not None else None
    return iti41.ProvideRequest(
        body.find(f"{q(NS_LCM, 'SubmitObjectsRequest')}/{q(NS_RIM, 'RegistryObjectList')}"), documents,
        etree.tostring(security) if security is not None else None)


def retrieve_requests(body: etree._Element) -> list[DocumentRequest]:
    return [DocumentRequest(_text(el, "RepositoryUniqueId") or "", _text(el, "DocumentUniqueId") or "",
                            _text(el, "HomeCommunityId"))
            for el in body.iterchildren(q(NS_XDSB, "DocumentRequest"))]


def repository_operations(services: Services) -> list[Operation]:
    def provide(request: SoapRequest) -> SoapResponse:
        answer = iti41.provide_and_register(services, soap_caller(request), xua(services.policy, request),
                                            provide_request(request))
        return SoapResponse(body=_registry_response(answer), action=Actions.PROVIDE_RESPONSE)

    def retrieve(request: SoapRequest) -> SoapResponse:
        result = iti43.retrieve(services, soap_caller(request), xua(services.policy, request),
                                retrieve_requests(request.body))
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
            attachments.append(OutgoingAttachment(cid, row.mime_type, _opener(services.repository.store, row.ref)))
        return SoapResponse(body=root, action=Actions.RETRIEVE_RESPONSE, attachments=attachments, mtom=True)

    return [
        Operation(action=Actions.PROVIDE, body=q(NS_XDSB, "ProvideAndRegisterDocumentSetRequest"),
                  handler=provide, accept_mtom=True),
        Operation(action=Actions.RETRIEVE, body=q(NS_XDSB, "RetrieveDocumentSetRequest"),
                  handler=retrieve, accept_mtom=True),
    ]


def removal_operations(services: Services) -> list[Operation]:
    """ITI-86 Remove Documents (ITI TF-2 3.86.4.1.2): the ``xdsb:DocumentRequest`` elements of an
    ``rmd:RemoveDocumentsRequest``, answered with an ``rs:RegistryResponse`` (3.86.4.2.2)."""
    def remove(request: SoapRequest) -> SoapResponse:
        result = iti86.remove(services, soap_caller(request), xua(services.policy, request),
                              retrieve_requests(request.body))
        return SoapResponse(body=registry_response(result.errors, partial=bool(result.removed)),
                            action=Actions.REMOVE_DOCUMENTS_RESPONSE)

    return [Operation(action=Actions.REMOVE_DOCUMENTS, body=q(NS_RMD, "RemoveDocumentsRequest"), handler=remove)]


def _opener(store: DocumentStore, ref: ContentRef):
    return lambda: store.open(ref)


def repository_endpoint(services: Services, understood_headers: frozenset[str],
                      on_refusal: RefusalHook | None = None) -> SoapEndpoint:
    return soap_endpoint(repository_operations(services) + removal_operations(services), WSDL, services.settings,
                         "/repository", understood_headers, on_refusal)
