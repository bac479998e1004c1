"""The message-level rules of ITI-57 Update Document Set (xds/validation/update.py), one test per
rule, named after it, each proving its one error code (ITI TF-2 3.57.4.1.3)."""
from __future__ import annotations

import dataclasses

from tests.support.metadata import document_entry, draft, fresh_oid, fresh_patient
from xds.metadata import Association, Submission, new_uuid
from xds.rim import Slot
from xds.validation import validate_submission
from xds.vocabulary import AssocType, Status
from xds.vocabulary import MetadataUpdate as MU

RULE_NAMES = ("update_association_type_known", "no_initial_version", "previous_version_slot",
              "association_propagation_value", "update_status_slots", "one_update_per_logical_object",
              "no_propagation_with_submitted_association")


def update(*, versions: int = 1, slots: list[Slot] | None = None, lid: str | None = None):
    patient = fresh_patient()
    d = draft(patient, documents=0)
    previous = document_entry(patient, new_uuid())
    for i in range(versions):
        d.add_document(dataclasses.replace(previous, entry_uuid=new_uuid(),
                                           unique_id=previous.unique_id if i == 0 else fresh_oid(),
                                           logical_id=lid if lid is not None else previous.entry_uuid))
        d.associations[-1].extra_slots = list(slots) if slots is not None else [Slot(MU.PREVIOUS_VERSION, ["1"])]
    return d


def codes(d) -> set[str]:
    return {e.code for e in validate_submission(Submission.from_objects(d.objects()), transaction="ITI-57")}


def test_a_valid_new_version_passes():
    assert codes(update()) == set()


def test_update_association_type_known():
    d = update()
    d.relate("urn:example:NotAType", new_uuid(), new_uuid())
    assert codes(d) == {"XDSRegistryMetadataError"}


def test_no_initial_version():
    assert codes(update(lid="")) == {"XDSMetadataUpdateError"}


def test_previous_version_slot():
    assert codes(update(slots=[])) == {"XDSMetadataUpdateOperationError"}
    assert codes(update(slots=[Slot(MU.PREVIOUS_VERSION, ["one"])])) == {"XDSMetadataUpdateOperationError"}


def test_association_propagation_value():
    bad = [Slot(MU.PREVIOUS_VERSION, ["1"]), Slot(MU.ASSOCIATION_PROPAGATION, ["maybe"])]
    assert codes(update(slots=bad)) == {"XDSMetadataUpdateOperationError"}


def test_update_status_slots():
    d = update(versions=0)
    target = new_uuid()
    for extra in ([Slot(MU.ORIGINAL_STATUS, [Status.APPROVED])],
                  [Slot(MU.ORIGINAL_STATUS, [Status.APPROVED]), Slot(MU.NEW_STATUS, [Status.APPROVED])],
                  [Slot(MU.ORIGINAL_STATUS, [Status.APPROVED]), Slot(MU.NEW_STATUS, [Status.DEPRECATED]),
                   Slot(MU.PREVIOUS_VERSION, ["1"])]):
        d.associations = [Association(new_uuid(), MU.UPDATE_AVAILABILITY_STATUS, d.submission_set.entry_uuid, target,
                                      extra_slots=extra)]
        assert codes(d) == {"XDSMetadataUpdateOperationError"}, extra


def test_one_update_per_logical_object():
    assert codes(update(versions=2)) == {"XDSMetadataUpdateOperationError"}


def test_no_propagation_with_submitted_association():
    d = update()
    a = d.relate(AssocType.APND, d.documents[0].entry_uuid, new_uuid())
    d.associations.append(Association(new_uuid(), AssocType.HAS_MEMBER, d.submission_set.entry_uuid, a.entry_uuid))
    assert codes(d) == {"XDSMetadataUpdateOperationError"}
    d.associations[0].extra_slots.append(Slot(MU.ASSOCIATION_PROPAGATION, ["no"]))
    assert codes(d) == set()
