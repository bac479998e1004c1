"""What every SOAP binding shares: the transport's Caller of a request and how XUA fills it."""
from __future__ import annotations

from access.policy import CALLER_KEY, AccessPolicy
from transactions.services import Authenticate
from xds.context import Caller, caller_from_environ
from xds.soap import SoapRequest


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
