"""ITI-42 Register Document Set-b at the Document Registry: a node-to-node transaction.

Only a configured Document Repository may register (its mutual-TLS certificate subject in
``registry_trusted_repositories``; the embedded repository registers in-process through
ITI-41 and never comes here). In the ``dmp`` policy the repository forwards the submitter's
XUA assertion (as ITI-41 received it) and the same submit decision applies as for ITI-41.
Anything else: XDSRegistryError, nothing stored, a Security Alert naming the node. Audited
as Import 110107, C (ITI TF-2 3.42.5.1.2) whatever the outcome.
"""
from __future__ import annotations

import logging

from lxml import etree

from audit import messages
from audit.messages import MAJOR_FAILURE, outcome_of_status
from config import Settings
from transactions.services import Authenticate, Services, safely
from transactions.submission import patients_of, refused_references, submission_ids
from xds import rim
from xds.context import Caller
from xds.errors import ErrorCode, ErrorList
from xds.responses import response_status

log = logging.getLogger(__name__)

ANY_NODE = "*"
"""``registry_trusted_repositories`` entry admitting any node (test affinity domains only)."""


def trusted_repositories(settings: Settings) -> frozenset[str]:
    """The certificate subjects ITI-42 is accepted from; ``auto``: any node in an open domain,
    none in the ``dmp`` policy (only the embedded repository, in-process)."""
    configured = [s.strip() for s in settings.registry_trusted_repositories if s.strip()]
    if not configured or configured == ["auto"]:
        return frozenset({ANY_NODE}) if settings.access_policy != "dmp" else frozenset()
    return frozenset(configured)


def is_trusted_node(settings: Settings, caller: Caller) -> bool:
    trusted = trusted_repositories(settings)
    return ANY_NODE in trusted or (caller.node_subject is not None and caller.node_subject in trusted)


def register(services: Services, caller: Caller, authenticate: Authenticate,
             object_list: etree._Element | None) -> ErrorList:
    """Register one SubmitObjectsRequest's RegistryObjectList; the errors (empty: Success)."""
    outcome = MAJOR_FAILURE
    try:
        errors = _register(services, caller, authenticate, object_list)
        outcome = outcome_of_status(response_status(errors))
        return errors
    finally:
        if services.auditor.enabled:
            patient, unique = submission_ids(object_list)
            safely(services.auditor.record, messages.register_import(caller, services.auditor.source_id, outcome,
                                                                     patient, unique))


def _register(services: Services, caller: Caller, authenticate: Authenticate,
              object_list: etree._Element | None) -> ErrorList:
    errors = ErrorList()
    if not is_trusted_node(services.settings, caller):
        node = caller.node_subject or f"an unauthenticated node at {caller.remote_addr or 'an unknown address'}"
        services.policy.alert(caller, f"ITI-42 refused: {node} is not a Document Repository of this registry "
                                      "(registry_trusted_repositories)", "authentication")
        errors.add(ErrorCode.REGISTRY_ERROR, "ITI-42 Register Document Set-b is accepted only from the Document "
                                             "Repositories configured for this registry")
        return errors
    authenticate(caller)
    if object_list is None:
        errors.add(ErrorCode.REGISTRY_METADATA_ERROR, "SubmitObjectsRequest has no rim:RegistryObjectList")
        return errors
    objects = rim.parse_object_list(object_list)
    refused = services.policy.check_submission(caller, patients_of(object_list), "ITI-42", ErrorCode.REGISTRY_ERROR)
    if refused is None:
        refused = refused_references(services.policy, caller, objects)
    if refused is not None:
        return refused
    return services.registry.register(objects)
