"""SOAP binding of the Document Registry: ``/registry`` (ITI-42, ITI-18 and ITI-57).

Transport only: read the body, call the transaction module, write the answer.
"""
from __future__ import annotations

from pathlib import Path

from lxml import etree

from bindings.soap import soap_caller, soap_endpoint, xua
from registry.query import QueryResult
from transactions import iti18, iti42, iti57, iti62
from transactions.services import Services
from xds.responses import error_list_element, registry_response
from xds.soap import Operation, RefusalHook, SoapEndpoint, SoapRequest, SoapResponse
from xds.validation.removal import RemovalRequest
from xds.vocabulary import NS_LCM, NS_QUERY, NS_RIM, NS_RS, Actions, q

WSDL = Path(__file__).resolve().parent / "wsdl" / "registry.wsdl"


def query_response(result: QueryResult) -> etree._Element:
    root = etree.Element(q(NS_QUERY, "AdhocQueryResponse"), nsmap={"query": NS_QUERY, "rs": NS_RS, "rim": NS_RIM},
                         status=result.status)
    error_list_element(result.errors, root)
    object_list = etree.SubElement(root, q(NS_RIM, "RegistryObjectList"))
    for el in result.objects:
        object_list.append(el)
    return root


def registry_operations(services: Services) -> list[Operation]:
    def register(request: SoapRequest) -> SoapResponse:
        errors = iti42.register(services, soap_caller(request), xua(services.policy, request),
                                request.body.find(q(NS_RIM, "RegistryObjectList")))
        return SoapResponse(body=registry_response(errors), action=Actions.REGISTER_RESPONSE)

    def query(request: SoapRequest) -> SoapResponse:
        # the replay check of the caller's assertion is done with the first read of the record
        result = iti18.stored_query(services, soap_caller(request), xua(services.policy, request, defer_replay=True),
                                    request.body)
        return SoapResponse(body=query_response(result), action=Actions.STORED_QUERY_RESPONSE)

    def update(request: SoapRequest) -> SoapResponse:
        errors = iti57.update(services, soap_caller(request), xua(services.policy, request),
                              request.body.find(q(NS_RIM, "RegistryObjectList")))
        return SoapResponse(body=registry_response(errors), action=Actions.UPDATE_RESPONSE)

    return [Operation(action=Actions.REGISTER, body=q(NS_LCM, "SubmitObjectsRequest"), handler=register),
            Operation(action=Actions.UPDATE, body=q(NS_LCM, "SubmitObjectsRequest"), handler=update),
            Operation(action=Actions.STORED_QUERY, body=q(NS_QUERY, "AdhocQueryRequest"), handler=query)]


def removal_request(body: etree._Element) -> RemovalRequest:
    """The ``lcm:RemoveObjectsRequest`` as the ITI-62 rules read it (ebRS 3.0 5.3.3; ITI TF-2 3.62.4.1.2)."""
    ref_list = body.find(q(NS_RIM, "ObjectRefList"))
    refs = [(el.get("id") or "").strip() for el in ref_list.iterchildren(q(NS_RIM, "ObjectRef"))] \
        if ref_list is not None else []
    query = body.find(q(NS_QUERY, "AdhocQuery"))
    if query is None:
        query = body.find(q(NS_RIM, "AdhocQuery"))
    return RemovalRequest(object_refs=refs, object_ref_list_present=ref_list is not None,
                          adhoc_query_present=query is not None, deletion_scope=body.get("deletionScope"))


def removal_operations(services: Services) -> list[Operation]:
    """ITI-62 Remove Metadata (ITI TF-2 3.62.4.1.2): answered with an ``rs:RegistryResponse``."""
    def remove(request: SoapRequest) -> SoapResponse:
        result = iti62.remove(services, soap_caller(request), xua(services.policy, request),
                              removal_request(request.body))
        return SoapResponse(body=registry_response(result.errors), action=Actions.REMOVE_METADATA_RESPONSE)

    return [Operation(action=Actions.REMOVE_METADATA, body=q(NS_LCM, "RemoveObjectsRequest"), handler=remove)]


def registry_endpoint(services: Services, understood_headers: frozenset[str],
                      on_refusal: RefusalHook | None = None) -> SoapEndpoint:
    return soap_endpoint(registry_operations(services) + removal_operations(services), WSDL, services.settings,
                         "/registry", understood_headers, on_refusal)
