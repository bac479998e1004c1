"""SOAP binding of the Document Registry: ``/registry`` (ITI-42 now, ITI-18 beside it).

Transport only: read the body, hand it to :class:`registry.register.Registry`, write the answer.
"""
from __future__ import annotations

import logging
from pathlib import Path

from xds import rim
from xds.errors import ErrorCode, ErrorList
from xds.responses import registry_response
from xds.soap import Operation, SoapEndpoint, SoapRequest, SoapResponse
from xds.vocabulary import Actions, NS_LCM, NS_QUERY, NS_RIM, q

from .register import Registry

log = logging.getLogger(__name__)

WSDL = Path(__file__).resolve().parent.parent / "wsdl" / "registry.wsdl"


def register_handler(registry: Registry):
    def handle(request: SoapRequest) -> SoapResponse:
        object_list = request.body.find(q(NS_RIM, "RegistryObjectList"))
        if object_list is None:
            errors = ErrorList()
            errors.add(ErrorCode.REGISTRY_METADATA_ERROR, "SubmitObjectsRequest has no rim:RegistryObjectList")
        else:
            errors = registry.register(rim.parse_object_list(object_list))
        return SoapResponse(body=registry_response(errors), action=Actions.REGISTER_RESPONSE)
    return handle


def registry_operations(registry: Registry, extra: list[Operation] | None = None, auditor=None) -> list[Operation]:
    handler = register_handler(registry)
    if auditor is not None:
        from audit.edges import audited_register
        handler = audited_register(handler, auditor)
    ops = [Operation(action=Actions.REGISTER, body=q(NS_LCM, "SubmitObjectsRequest"), handler=handler)]
    return ops + list(extra or [])


def registry_endpoint(registry: Registry, max_request_bytes: int, extra: list[Operation] | None = None,
                      auditor=None) -> SoapEndpoint:
    return SoapEndpoint(registry_operations(registry, extra, auditor), wsdl_path=WSDL,
                        max_request_bytes=max_request_bytes)


__all__ = ["registry_endpoint", "registry_operations", "NS_QUERY"]
