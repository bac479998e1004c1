"""ITI-62 Remove Metadata, the rules of :mod:`xds.validation.removal` one by one (ITI TF-2 3.62.4.1.2
and 3.62.4.1.3), on a registry state given by hand: each rule is named after the requirement and
maps to exactly one error code."""
from __future__ import annotations

from xds.metadata import Association
from xds.validation.removal import (
    REMOVAL_RULES,
    RemovalRequest,
    RemovalState,
    validate_removal,
    validate_removal_message,
)
from xds.vocabulary import AssocType

SS, DOC, HM = "urn:uuid:55555555-0000-0000-0000-000000000001", "urn:uuid:d0c00000-0000-0000-0000-000000000001", \
    "urn:uuid:a5500000-0000-0000-0000-000000000001"


def state() -> RemovalState:
    return RemovalState(kinds={SS: "submission_set", DOC: "document", HM: "association"},
                        associations={HM: Association(HM, AssocType.HAS_MEMBER, SS, DOC)})


def codes(errors) -> list[str]:
    return [e.code for e in errors if e.is_error]


def test_every_rule_maps_to_one_error_code():
    assert {check.__name__ for check, _ in REMOVAL_RULES} == {
        "object_ref_list_present", "no_adhoc_query", "no_deletion_scope", "object_refs_are_uuids",
        "objects_in_registry", "no_reference_left", "no_object_left_unreferenced"}
    assert all(check.__doc__ and "ITI TF" in check.__doc__ for check, _ in REMOVAL_RULES)


def test_object_ref_list_present():
    assert codes(validate_removal_message(RemovalRequest([], object_ref_list_present=False))) == ["XDSRegistryError"]
    assert codes(validate_removal_message(RemovalRequest([]))) == ["XDSRegistryError"]


def test_no_adhoc_query():
    assert codes(validate_removal_message(RemovalRequest([DOC], adhoc_query_present=True))) == ["XDSRegistryError"]


def test_no_deletion_scope():
    req = RemovalRequest([DOC], deletion_scope="urn:oasis:names:tc:ebxml-regrep:DeletionScopeType:DeleteAll")
    assert codes(validate_removal_message(req)) == ["XDSRegistryError"]


def test_object_refs_are_uuids():
    assert codes(validate_removal_message(RemovalRequest(["Document01"]))) == ["UnresolvedReferenceException"]


def test_objects_in_registry():
    assert codes(validate_removal(RemovalRequest([DOC, "urn:uuid:0"]), state())) == ["UnresolvedReferenceException"]


def test_no_reference_left():
    errors = validate_removal(RemovalRequest([SS]), state())
    assert codes(errors) == ["ReferencesExistException"]
    assert HM in errors.errors[0].context


def test_no_object_left_unreferenced():
    errors = validate_removal(RemovalRequest([DOC, HM]), state())
    assert codes(errors) == ["XDSUnreferencedObjectException"]
    assert errors.errors[0].location == SS


def test_whole_submission_passes():
    assert codes(validate_removal(RemovalRequest([SS, DOC, HM]), state())) == []
