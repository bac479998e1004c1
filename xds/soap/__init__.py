"""SOAP 1.2 + WS-Addressing 1.0 + MTOM/XOP transport for the XDS.b actors, as plain WSGI."""

from xds.soap.addressing import AddressingHeaders, new_message_id
from xds.soap.attachments import (
    Attachment,
    OutgoingAttachment,
    cid_url,
    make_xop_include,
    normalize_content_id,
)
from xds.soap.endpoint import DEFAULT_UNDERSTOOD_HEADERS, WSSE_SECURITY, Operation, SoapEndpoint
from xds.soap.faults import SoapFault
from xds.soap.limits import MessageLimits, trim_memory
from xds.soap.messages import SoapRequest, SoapResponse
from xds.soap.namespaces import NS_SOAP11, NS_SOAP12, NS_WSA, NS_XOP, WSA_ANONYMOUS, WSA_FAULT_ACTION
from xds.soap.parsing import parse_xml, safe_parser
from xds.soap.refusals import EdgeRefusal, RefusalHook

__all__ = [
    "NS_SOAP11",
    "NS_SOAP12",
    "NS_WSA",
    "NS_XOP",
    "WSA_ANONYMOUS",
    "WSA_FAULT_ACTION",
    "AddressingHeaders",
    "Attachment",
    "DEFAULT_UNDERSTOOD_HEADERS",
    "EdgeRefusal",
    "MessageLimits",
    "Operation",
    "OutgoingAttachment",
    "RefusalHook",
    "SoapEndpoint",
    "SoapFault",
    "SoapRequest",
    "SoapResponse",
    "WSSE_SECURITY",
    "cid_url",
    "make_xop_include",
    "new_message_id",
    "normalize_content_id",
    "parse_xml",
    "safe_parser",
    "trim_memory",
]
