"""ITI-41 Provide and Register Document Set-b: the one door of every submission of documents
(SOAP, portal uploads, later FHIR ITI-65/105).

Identify the caller, ask the policy (may submit for these patients; may act on the documents
and folders the associations name), store and register through the repository, audit it
(Import 110107, C at the repository, ITI TF-2 3.41.5.1.2) whatever the outcome. The ITI-42 the
repository sends on the caller's behalf is audited too (:class:`AuditedGateway`).
"""
from __future__ import annotations

import contextvars
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from audit import messages
from audit.auditor import AuditorLike
from audit.messages import MAJOR_FAILURE, outcome_of_status
from repository.registry_client import RegistryAnswer, RegistryGateway
from repository.transactions import DocumentPart
from transactions.services import Authenticate, Services, safely
from transactions.submission import patients_of, refused_references, submission_ids
from xds import rim
from xds.context import Caller
from xds.errors import ErrorCode, ErrorList
from xds.vocabulary import SS, ResponseStatus

log = logging.getLogger(__name__)

current_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("iti41_caller", default=None)
"""The caller of the ITI-41 in progress, for the ITI-42 the repository sends on its behalf."""


@dataclass
class ProvideRequest:
    """What a door received: the RegistryObjectList (None: missing), the documents' bytes (read
    inside the transaction, so that a document that cannot be decoded is audited as the
    transaction's failure), and the submitter's ``wsse:Security`` to forward to a remote registry."""
    object_list: etree._Element | None
    documents: Callable[[], list[DocumentPart]] = list
    security_header: bytes | None = None


def provide_and_register(services: Services, caller: Caller, authenticate: Authenticate,
                         request: ProvideRequest) -> RegistryAnswer:
    outcome = MAJOR_FAILURE
    token = current_caller.set(caller)
    try:
        authenticate(caller)
        answer = _provide(services, caller, request)
        outcome = outcome_of_status(answer.status)
        return answer
    finally:
        current_caller.reset(token)
        if services.auditor.enabled:
            patient, unique = submission_ids(request.object_list)
            safely(services.auditor.record, messages.provide_and_register(caller, services.auditor.source_id,
                                                                          outcome, patient, unique))


def _provide(services: Services, caller: Caller, request: ProvideRequest) -> RegistryAnswer:
    if request.object_list is None:
        errors = ErrorList()
        errors.add(ErrorCode.REPOSITORY_METADATA_ERROR,
                   "ProvideAndRegisterDocumentSetRequest has no lcm:SubmitObjectsRequest/rim:RegistryObjectList")
        return RegistryAnswer(ResponseStatus.FAILURE, errors)
    objects = rim.parse_object_list(request.object_list)
    if not services.settings.remote_registry_url:
        refused = services.policy.check_submission(caller, patients_of(request.object_list))
        if refused is None:
            refused = refused_references(services.policy, caller, objects)
        if refused is not None:
            return RegistryAnswer(ResponseStatus.FAILURE, refused, refused=True)
    # a remote registry holds the record: it decides on the assertion forwarded with the ITI-42
    return services.repository.provide(objects, request.documents(), request.security_header)


class AuditedGateway:
    """The repository's registry gateway, auditing each ITI-42 it sends (Export 110106, R,
    ITI TF-2 3.42.5.1.1) with the ITI-41's caller.

    When the registry is in this process (grouped actors) the registry side is audited too
    (Import 110107, C), as the registry would if the request had come over SOAP.
    """

    def __init__(self, gateway: RegistryGateway, auditor: AuditorLike, registry_url: str, in_process: bool) -> None:
        self.gateway = gateway
        self.auditor = auditor
        self.registry_url = registry_url
        self.in_process = in_process

    def register(self, objects: list[rim.RegistryObject], security_header: bytes | None = None) -> RegistryAnswer:
        answer = self.gateway.register(objects, security_header)
        try:
            self._record(objects, answer)
        except Exception:  # noqa: BLE001 - auditing never fails a transaction
            log.exception("audit: could not record an ITI-42")
        return answer

    def _record(self, objects: list[rim.RegistryObject], answer: RegistryAnswer) -> None:
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
            # No ITI-42 message in process: the import's Source is what our SOAP client would send
            # as wsa:ReplyTo (anonymous), as on a remote registry, and our address.
            inner = dataclasses.replace(caller, reply_to=None, node_subject=None, endpoint=registry_url,
                                        remote_addr=messages.host_of(caller.endpoint) or "127.0.0.1")
            self.auditor.record(messages.register_import(inner, self.auditor.source_id, outcome, patient, unique))

    def registered_hashes(self, unique_ids: list[str]) -> dict[str, str | None] | None:
        return self.gateway.registered_hashes(unique_ids)
