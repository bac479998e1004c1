"""What every SOAP binding shares: the transport's Caller of a request, how XUA fills it, and
how an endpoint is built."""
from __future__ import annotations

from pathlib import Path

from access.policy import CALLER_KEY, AccessPolicy
from config import Settings
from transactions.services import Authenticate
from xds.context import Caller, caller_from_environ
from xds.soap import MessageLimits, Operation, RefusalHook, SoapEndpoint, SoapRequest
from xds.vocabulary import Actions


def soap_caller(request: SoapRequest) -> Caller:
    """The calling node as HTTP and WS-Addressing tell it (address, TLS subject, wsa:ReplyTo)."""
    caller = caller_from_environ(request.environ)
    caller.reply_to = request.reply_to
    request.environ[CALLER_KEY] = caller
    return caller


def xua(policy: AccessPolicy, request: SoapRequest, defer_replay: bool = False) -> Authenticate:
    """Authenticate the request's caller from its XUA assertion (ITI-40), as the policy requires."""
    def authenticate(caller: Caller) -> None:
        policy.identify(request, defer_replay=defer_replay)
    return authenticate


def transaction_limits(settings: Settings, operations: list[Operation]) -> dict[str, MessageLimits]:
    """What each transaction may send (issue 19, finding 5: bounded memory per request).

    Queries and retrievals carry no documents: one envelope, no attachment. ITI-41 carries its
    metadata in the envelope and its documents in MIME parts (ITI TF-2b 3.41.4.1.2, MTOM/XOP),
    bounded apart. Every other operation of a binding (ITI-42, ITI-57) sends metadata only.
    """
    metadata = MessageLimits(min(settings.max_iti42_metadata_bytes, settings.max_request_bytes))
    known = {
        Actions.STORED_QUERY: MessageLimits(settings.max_iti18_request_bytes),
        Actions.RETRIEVE: MessageLimits(settings.max_iti43_request_bytes),
        Actions.PROVIDE: MessageLimits(min(settings.max_iti41_metadata_bytes, settings.max_request_bytes),
                                       settings.max_request_bytes, settings.max_mime_parts),
    }
    return {op.action: known.get(op.action, metadata) for op in operations}


def soap_endpoint(operations: list[Operation], wsdl: Path, settings: Settings, path: str,
                  understood_headers: frozenset[str], on_refusal: RefusalHook | None) -> SoapEndpoint:
    """One SOAP endpoint at ``path`` with the server's bounds (each transaction's limits, the heap
    trimmed after large requests), the headers it processes, its refusal reports and, when
    configured, the public URL its WSDL names (never the Host header)."""
    public_url = settings.public_url.rstrip("/") + path if settings.public_url else None
    return SoapEndpoint(operations, wsdl_path=wsdl, max_request_bytes=settings.max_request_bytes,
                        understood_headers=understood_headers, on_refusal=on_refusal, public_url=public_url,
                        limits=transaction_limits(settings, operations),
                        trim_after_bytes=settings.memory_trim_bytes or None)
