"""SOAP 1.2 + WS-Addressing 1.0 + MTOM/XOP transport for the XDS.b actors, as plain WSGI."""

from .addressing import AddressingHeaders, new_message_id
from .attachments import (
    Attachment,
    OutgoingAttachment,
    cid_url,
    make_xop_include,
    normalize_content_id,
)
from .endpoint import DEFAULT_UNDERSTOOD_HEADERS, WSSE_SECURITY, Operation, SoapEndpoint
from .faults import SoapFault
from .messages import SoapRequest, SoapResponse
from .namespaces import NS_SOAP11, NS_SOAP12, NS_WSA, NS_XOP, WSA_ANONYMOUS, WSA_FAULT_ACTION
from .parsing import parse_xml, safe_parser

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
    "Operation",
    "OutgoingAttachment",
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
]
