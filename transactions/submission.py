"""What ITI-41 and ITI-42 ask of the policy before anything is stored: may this caller submit
for these patients, and act on the registered objects the submission's associations name."""
from __future__ import annotations

from lxml import etree

from access.policy import AccessPolicy
from registry.register import unresolved_reference
from xds import rim
from xds.context import Caller
from xds.errors import ErrorList
from xds.metadata import Association
from xds.vocabulary import DOC, FOL, NS_RIM, SS, q

PATIENT_ID_SCHEMES = frozenset({DOC.PATIENT_ID, SS.PATIENT_ID, FOL.PATIENT_ID})
"""The ExternalIdentifier schemes of the patientId of DocumentEntries, SubmissionSets and
Folders (ITI TF-3 4.2.3.2.16, 4.2.3.3.7, 4.2.3.4.4)."""
SUBMISSION_SET_UNIQUE_ID = SS.UNIQUE_ID


def patients_of(object_list: etree._Element) -> set[str]:
    """The patients a submission is for (patientId of its DocumentEntries, SubmissionSet, Folders)."""
    return {el.get("value") or "" for el in object_list.iter(q(NS_RIM, "ExternalIdentifier"))
            if el.get("identificationScheme") in PATIENT_ID_SCHEMES and el.get("value")}


def submission_ids(object_list: etree._Element | None) -> tuple[str | None, str | None]:
    """(patient id, SubmissionSet uniqueId) of a RegistryObjectList, for the audit record."""
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


def refused_references(policy: AccessPolicy, caller: Caller, objects: list[rim.RegistryObject]) -> ErrorList | None:
    """UnresolvedReferenceException for each registered object the submission's associations act
    on and the caller may not (the policy's write rules), worded as the registry words an unknown
    entryUUID; None when there is none. Metadata the registry will refuse anyway is left to it."""
    if not policy.is_dmp:
        return None
    try:
        associations = [Association.from_rim(o) for o in objects if o.tag == "Association"]
    except Exception:  # noqa: BLE001 - malformed metadata: the registry's validation names it
        return None
    in_message = {o.id for o in objects if o.tag != "ObjectRef"}
    refused = policy.refused_references(caller, associations, in_message)
    if not refused:
        return None
    errors = ErrorList()
    for association, ref in refused:
        unresolved_reference(errors, association, ref)
    return errors
