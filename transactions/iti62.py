"""ITI-62 Remove Metadata at the Document Registry (ITI TF-2 3.62): the one door of every removal
of registry objects.

A Document Administrator node removes DocumentEntries, Folders, SubmissionSets and Associations
with an ``lcm:RemoveObjectsRequest``. In order: the node must be one the registry trusts to write
(the ITI-42 rule: ``registry_trusted_repositories``, a Security Alert otherwise), the XUA assertion
identifies the person, the policy's write rule says which named objects that person may remove
(the author of a document or the patient; a refused object is answered as an unknown one,
``UnresolvedReferenceException``, and is a Security Alert), the registry judges and removes all or
nothing (:mod:`registry.remove`), and the removal is audited (Patient Record 110110, D, ITI TF-2
3.62.5.1) whatever the outcome.
"""
from __future__ import annotations

import logging

from sqlalchemy import Connection

from audit import messages
from audit.messages import MAJOR_FAILURE, outcome_of_status
from registry.remove import RemovalResult, RemovedObject, remove_metadata
from transactions.iti42 import is_trusted_node
from transactions.services import Authenticate, Services, safely
from xds.context import Caller
from xds.errors import ErrorCode, ErrorList
from xds.responses import response_status
from xds.validation.removal import RemovalRequest

log = logging.getLogger(__name__)


def remove(services: Services, caller: Caller, authenticate: Authenticate, request: RemovalRequest,
           *, from_node: bool = True, dry_run: bool = False) -> RemovalResult:
    """Remove the objects ``request`` names; the result's errors (empty: Success).

    ``from_node``: the request came from another node (SOAP), which must be trusted to write; a
    door inside this server (the portal) has identified its caller already. ``dry_run``: judge
    only (nothing removed, nothing audited as a removal)."""
    outcome = MAJOR_FAILURE
    result: RemovalResult | None = None
    try:
        result = _remove(services, caller, authenticate, request, from_node, dry_run)
        outcome = outcome_of_status(response_status(result.errors))
        return result
    finally:
        if services.auditor.enabled and not (dry_run and result is not None and not result.errors.has_errors):
            removed = result.removed if result is not None and result.removed else []
            objects = [(o.uuid, o.kind) for o in removed] or [(u, "") for u in dict.fromkeys(request.object_refs) if u]
            patient = result.patient_id if result is not None else None
            safely(services.auditor.record, messages.remove_metadata(caller, services.auditor.source_id, outcome,
                                                                     patient, objects))


def _remove(services: Services, caller: Caller, authenticate: Authenticate, request: RemovalRequest,
            from_node: bool, dry_run: bool) -> RemovalResult:
    if from_node and not is_trusted_node(services.settings, caller):
        node = caller.node_subject or f"an unauthenticated node at {caller.remote_addr or 'an unknown address'}"
        services.policy.alert(caller, f"ITI-62 refused: {node} is not a node this registry accepts metadata "
                                      "changes from (registry_trusted_repositories)", "authentication")
        errors = ErrorList()
        errors.add(ErrorCode.REGISTRY_ERROR, "ITI-62 Remove Metadata is accepted only from the nodes configured "
                                             "for this registry")
        return RemovalResult(errors)
    authenticate(caller)

    def refuse(conn: Connection, named: dict[str, RemovedObject]) -> set[str]:
        return services.policy.refused_removals(caller, {u: (o.kind, o.patient_id) for u, o in named.items()}, conn)

    return remove_metadata(services.registry, request, refuse if services.policy.is_dmp else None, dry_run)
