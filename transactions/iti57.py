"""ITI-57 Update Document Set at the Document Registry (the Update Responder, ITI TF-2 3.57).

An update is a write: the caller must be allowed to submit for the patients it names (as ITI-42
and ITI-41), and each registered object it changes counts as amended under the policy's write
rule (``access.policy.may_amend``): a new version of an entry or a change of its availabilityStatus
amends that entry, exactly as a replacement does; new associations to registered objects are
judged as ITI-42 judges them. A refused object is answered exactly as one the registry never held
(an unknown logicalID, an unknown entryUUID) and reported to the audit trail as a Security Alert. Audited as
Import 110107, U (ITI TF-2 3.57.5.1.2) whatever the outcome.
"""
from __future__ import annotations

from lxml import etree

from audit import messages
from audit.messages import MAJOR_FAILURE, outcome_of_status
from registry.update import update_document_set
from transactions.services import Authenticate, Services, safely
from transactions.submission import patients_of, submission_ids
from xds import rim
from xds.context import Caller
from xds.errors import ErrorCode, ErrorList
from xds.metadata import Association
from xds.responses import response_status
from xds.vocabulary import AssocType
from xds.vocabulary import MetadataUpdate as MU


def update(services: Services, caller: Caller, authenticate: Authenticate,
           object_list: etree._Element | None) -> ErrorList:
    """Apply one Update Document Set's RegistryObjectList; the errors (empty: Success)."""
    outcome = MAJOR_FAILURE
    try:
        errors = _update(services, caller, authenticate, object_list)
        outcome = outcome_of_status(response_status(errors))
        return errors
    finally:
        if services.auditor.enabled:
            patient, unique = submission_ids(object_list)
            safely(services.auditor.record, messages.update_import(caller, services.auditor.source_id, outcome,
                                                                   patient, unique))


def amended_objects(objects: list[rim.RegistryObject]) -> list[Association]:
    """What an update amends, as the policy's write rules read it: one replacement-like association
    from each new version to the version it follows (its ``lid``, the first version's entryUUID),
    and from the SubmissionSet to each registered target of an UpdateAvailabilityStatus; the
    update's other associations as they are."""
    out: list[Association] = []
    for o in objects:
        if o.tag in ("ExtrinsicObject", "RegistryPackage") and o.get("lid") and o.get("lid") != o.id:
            out.append(Association(o.id + "#version", AssocType.RPLC, o.id, o.get("lid") or ""))
        elif o.tag == "Association":
            a = Association.from_rim(o)
            if a.association_type == MU.UPDATE_AVAILABILITY_STATUS:
                out.append(Association(a.entry_uuid, AssocType.RPLC, a.source, a.target))
            elif a.association_type != MU.SUBMIT_ASSOCIATION:
                out.append(a)
    return out


def _update(services: Services, caller: Caller, authenticate: Authenticate,
            object_list: etree._Element | None) -> ErrorList:
    authenticate(caller)
    errors = ErrorList()
    if object_list is None:
        errors.add(ErrorCode.REGISTRY_METADATA_ERROR, "SubmitObjectsRequest has no rim:RegistryObjectList")
        return errors
    objects = rim.parse_object_list(object_list)
    policy = services.policy
    refused = policy.check_submission(caller, patients_of(object_list), "ITI-57", ErrorCode.REGISTRY_ERROR)
    if refused is not None:
        return refused
    hidden: frozenset[str] = frozenset()
    if policy.is_dmp:
        try:
            amended = amended_objects(objects)
        except Exception:  # noqa: BLE001 - malformed metadata: the registry's validation names it
            amended = []
        in_message = {o.id for o in objects if o.tag != "ObjectRef"}
        # a refused object is judged as one the registry never held (registry.update: hidden)
        hidden = frozenset(ref for _association, ref in policy.refused_references(caller, amended, in_message))
    return update_document_set(services.registry, objects, hidden)
