"""XDS.b Document Source and Document Consumer: submit, query, retrieve (``XdsClient``)."""
from client.cda import CdaDocument, document_from_cda
from client.client import Document, QueryResult, RetrievedDocument, SubmitResult, XdsClient
from client.errors import InputError, MissingMetadata, SoapFaultError, TransportError, XdsClientError, XdsFailure
from client.transport import TlsOptions

__all__ = ["CdaDocument", "Document", "InputError", "MissingMetadata", "QueryResult", "RetrievedDocument",
           "SoapFaultError", "SubmitResult", "TlsOptions", "TransportError", "XdsClient", "XdsClientError",
           "XdsFailure", "document_from_cda"]
