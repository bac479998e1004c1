"""Audit at the transport edges: wrap a SOAP operation handler so that every call is recorded.

The wrappers build the :class:`xds.context.Caller` from the request (remote address, endpoint,
wsa:ReplyTo; a transport that knows more, e.g. XUA, leaves its own Caller in
``environ["xds.caller"]``), call the handler, read the outcome from the answer (or a fault: 12)
and hand one :class:`~audit.messages.AuditEvent` to ``auditor.record``.
"""
from __future__ import annotations

import contextvars
import dataclasses
import logging

from lxml import etree

from xds.context import Caller, caller_from_environ
from xds.vocabulary import NS_LCM, NS_QUERY, NS_RIM, NS_RS, NS_XDSB, SS, q

from . import messages
from .messages import MAJOR_FAILURE, DocumentRef, outcome_of_status

log = logging.getLogger(__name__)

CALLER_KEY = "xds.caller"
current_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("audit_caller", default=None)
"""The caller of the ITI-41 in progress, for the ITI-42 the repository sends on its behalf."""
# A transport or access layer that establishes who calls (XUA, TLS) stores its Caller under
# environ["xds.caller"]; the wrappers read it again after the handler ran.


def caller_of(request) -> Caller:
    known = request.environ.get(CALLER_KEY)
    if isinstance(known, Caller):
        caller = known
    else:
        caller = caller_from_environ(request.environ)
        request.environ[CALLER_KEY] = caller
    if caller.reply_to is None and request.reply_to:
        caller.reply_to = request.reply_to
    return caller


def final_caller(request, caller: Caller) -> Caller:
    """The Caller after the handler ran: access control may have replaced it with the XUA identity."""
    known = request.environ.get(CALLER_KEY)
    if isinstance(known, Caller) and known is not caller:
        if known.reply_to is None:
            known.reply_to = caller.reply_to
        return known
    return caller


def submission_ids(object_list: etree._Element | None) -> tuple[str | None, str | None]:
    """(patient id, submission set uniqueId) of a RegistryObjectList, read from its ExternalIdentifiers."""
    patient = unique = None
    if object_list is None:
        return None, None
    for ei in object_list.iter(q(NS_RIM, "ExternalIdentifier")):
        scheme = ei.get("identificationScheme")
        if scheme == SS.PATIENT_ID and patient is None:
            patient = ei.get("value")
        elif scheme == SS.UNIQUE_ID and unique is None:
            unique = ei.get("value")
    return patient, unique


def _status(body: etree._Element | None) -> int:
    if body is None:
        return MAJOR_FAILURE
    rr = body if body.get("status") else body.find(q(NS_RS, "RegistryResponse"))
    return outcome_of_status(rr.get("status", "")) if rr is not None else MAJOR_FAILURE


def _safe(record, *args) -> None:
    """Build and hand over one record; an error here is logged, never the caller's problem."""
    try:
        record(*args)
    except Exception:  # noqa: BLE001 - auditing never fails a transaction
        log.exception("audit: could not record an event")


def _audited(handler, auditor, record, *args, bind_caller: bool = False):
    """Wrap a SOAP handler: run it, then hand ``record`` what happened, then answer or re-raise.

    ``bind_caller`` exposes the Caller to code the handler calls (the repository's ITI-42
    gateway audits the registration with the ITI-41 caller).
    """
    if not auditor.enabled:
        return handler

    def handle(request):
        caller = caller_of(request)
        token = current_caller.set(caller) if bind_caller else None
        try:
            response, exc = _call(handler, request)
        finally:
            if token is not None:
                current_caller.reset(token)
        caller = final_caller(request, caller)
        _safe(record, auditor, caller, request, response, *args)
        if exc is not None:
            raise exc
        return response
    return handle


def _call(handler, request):
    try:
        return handler(request), None
    except BaseException as exc:  # noqa: BLE001 - re-raised by the caller after the audit
        return None, exc


def _register(auditor, caller, request, response) -> None:
    patient, unique = submission_ids(request.body.find(q(NS_RIM, "RegistryObjectList")))
    auditor.record(messages.register_import(caller, auditor.source_id, _status(response.body if response else None),
                                            patient, unique))


def audited_register(handler, auditor):
    """ITI-42 at the Document Registry: Import (110107), C."""
    return _audited(handler, auditor, _register)


def _query(auditor, caller, request, response, home_community_id) -> None:
    outcome = _status(response.body if response else None)
    auditor.record_facts("iti18", caller, outcome, etree.tostring(request.body, encoding="UTF-8"), home_community_id)


def audited_query(handler, auditor, home_community_id: str | None = None):
    """ITI-18 at the Document Registry: Query (110112), E, the AdhocQueryRequest as the query object
    (:func:`audit.messages.stored_query_of_request`, built by the audit process)."""
    return _audited(handler, auditor, _query, home_community_id)


def _provide(auditor, caller, request, response) -> None:
    object_list = request.body.find(f"{q(NS_LCM, 'SubmitObjectsRequest')}/{q(NS_RIM, 'RegistryObjectList')}")
    patient, unique = submission_ids(object_list)
    auditor.record(messages.provide_and_register(caller, auditor.source_id,
                                                 _status(response.body if response else None), patient, unique))


def audited_provide(handler, auditor):
    """ITI-41 at the Document Repository: Import (110107), C."""
    return _audited(handler, auditor, _provide, bind_caller=True)


def _retrieve(auditor, caller, request, response) -> None:
    outcome = MAJOR_FAILURE
    docs: list[DocumentRef] = []
    if response is not None:
        outcome = _status(response.body)
        docs = _documents(response.body.iterchildren(q(NS_XDSB, "DocumentResponse")))
    if not docs:
        docs = _documents(request.body.iterchildren(q(NS_XDSB, "DocumentRequest")))
    auditor.record(messages.retrieve(caller, auditor.source_id, outcome, docs))


def audited_retrieve(handler, auditor):
    """ITI-43 at the Document Repository: Export (110106), R, one object per document."""
    return _audited(handler, auditor, _retrieve)


def _documents(elements) -> list[DocumentRef]:
    out = []
    for el in elements:
        uid = (el.findtext(q(NS_XDSB, "DocumentUniqueId")) or "").strip()
        if uid:
            out.append(DocumentRef(uid, (el.findtext(q(NS_XDSB, "RepositoryUniqueId")) or "").strip(),
                                   (el.findtext(q(NS_XDSB, "HomeCommunityId")) or "").strip() or None))
    return out


class AuditedGateway:
    """The repository's registry gateway, auditing each ITI-42 it sends (Export 110106, R).

    When the registry is in this process (grouped actors) the registry side is audited too
    (Import 110107, C), as the registry would if the request had come over SOAP.
    """

    def __init__(self, gateway, auditor, registry_url: str, in_process: bool) -> None:
        self.gateway = gateway
        self.auditor = auditor
        self.registry_url = registry_url
        self.in_process = in_process

    def register(self, objects):
        answer = self.gateway.register(objects)
        _safe(self._record, objects, answer)
        return answer

    def _record(self, objects, answer) -> None:
        caller = current_caller.get() or Caller()
        patient = unique = None
        for o in objects:
            for ei in o.external_identifiers:
                if ei.get("identificationScheme") == SS.PATIENT_ID:
                    patient = ei.get("value")
                elif ei.get("identificationScheme") == SS.UNIQUE_ID:
                    unique = ei.get("value")
        outcome = outcome_of_status(answer.status)
        registry_url = self.registry_url
        if self.in_process and caller.endpoint and caller.endpoint.endswith("/repository"):
            registry_url = caller.endpoint[:-len("/repository")] + "/registry"
        self.auditor.record(messages.register_export(caller, self.auditor.source_id, registry_url, outcome,
                                                     patient, unique))
        if self.in_process:
            inner = dataclasses.replace(caller, reply_to=caller.endpoint, endpoint=registry_url,
                                        remote_addr=messages._host(caller.endpoint) or "127.0.0.1")
            self.auditor.record(messages.register_import(inner, self.auditor.source_id, outcome, patient, unique))

    def registered_hashes(self, unique_ids):
        return self.gateway.registered_hashes(unique_ids)


__all__ = ["audited_register", "audited_query", "audited_provide", "audited_retrieve", "AuditedGateway",
           "caller_of", "current_caller", "NS_QUERY"]
