"""Message-level validation of XDS metadata in a SubmitObjectsRequest.

ITI TF-3 4.1 and 4.2 (metadata), ITI TF-2 3.42.4.1.3 (Register Document Set-b) and 3.41.4.1.3
(Provide and Register Document Set-b). One small rule per requirement, each mapped to exactly one
XDS error code (TF-3 table 4.2.4.1-2); :data:`RULES` reads like the specification.

What this module cannot know is left to the registry: whether a patient is known
(XDSUnknownPatientId), whether a uniqueId or an association target already exists
(XDSDuplicateUniqueIdInRegistry, UnresolvedReferenceException), whether a replaced entry is
Approved. Folder ``lastUpdateTime`` has no rule: the registry sets it and overwrites any value a
Document Source sent (TF-3 4.2.3.4, lastUpdateTime; NIST XDS Toolkit test 12323 ``has_time``
expects such a submission to succeed).
"""
from __future__ import annotations

from xds.errors import ErrorCode, ErrorList
from xds.metadata import Submission
from xds.validation import associations as A
from xds.validation import cardinality as C
from xds.validation import consistency as X
from xds.validation import formats as F
from xds.validation import structure as S
from xds.validation import update as U
from xds.validation.core import SUBMISSIONS, TRANSACTIONS, UPDATE, Check, Context, Problem, Rule
from xds.validation.required import required_rules
from xds.validation.valuesets import ValueSets

__all__ = ["validate_submission", "ValueSets", "RULES", "Rule", "Problem", "Context"]

META = ErrorCode.REGISTRY_METADATA_ERROR


def _rule(check: Check, code: ErrorCode = META, transactions: tuple[str, ...] = TRANSACTIONS) -> Rule:
    return Rule(check.__name__, code, check, transactions)


RULES: list[Rule] = [
    # structure of the message (TF-3 4.1.4, 4.2.1, 4.2.2)
    _rule(S.registry_object_list_known_elements),
    _rule(S.exactly_one_submission_set),
    _rule(S.registry_package_kind),
    _rule(S.extrinsic_object_type),
    _rule(S.object_id_present),
    _rule(S.object_ids_unique),
    _rule(S.association_references_resolve),
    _rule(S.submission_set_has_member),
    _rule(S.submission_set_status),
    _rule(S.classified_object_is_parent),
    # required attributes (TF-3 Tables 4.3.1-1 to 4.3.1-3, XDS columns)
    *required_rules(),
    # cardinalities
    _rule(C.single_valued_codes),
    _rule(C.single_valued_slots),
    _rule(C.document_entry_uri),
    _rule(C.single_localized_string),
    _rule(C.duplicate_slot_names),
    _rule(C.external_identifier_once),
    # value formats
    _rule(F.document_entry_times),
    _rule(F.document_entry_service_time_order),
    _rule(F.document_entry_hash),
    _rule(F.document_entry_size),
    _rule(F.document_entry_language_code),
    _rule(F.document_entry_mime_type),
    _rule(F.patient_id_format),
    _rule(F.patient_id_ins),
    _rule(F.document_entry_source_patient_id),
    _rule(F.document_entry_source_patient_info),
    _rule(F.document_entry_unique_id),
    _rule(F.document_entry_repository_unique_id),
    _rule(F.document_entry_legal_authenticator),
    _rule(F.document_entry_reference_id_list),
    _rule(F.author_person_or_institution),
    _rule(F.author_person_single),
    _rule(F.author_values),
    _rule(F.code_classification),
    _rule(F.submission_set_unique_id),
    _rule(F.submission_set_source_id),
    _rule(F.submission_set_submission_time),
    _rule(F.submission_set_intended_recipient),
    _rule(F.folder_unique_id),
    # associations (TF-3 4.2.2)
    _rule(A.association_type_known, transactions=SUBMISSIONS),
    _rule(A.has_member_source),
    _rule(A.relationship_source_is_document_entry, transactions=SUBMISSIONS),
    _rule(A.relationship_targets_existing_entry),
    _rule(A.association_documentation_placement),
    # across the submission
    _rule(X.duplicate_unique_id_in_message, ErrorCode.REGISTRY_DUPLICATE_UNIQUE_ID_IN_MESSAGE),
    _rule(X.repository_duplicate_unique_id_in_message, ErrorCode.REPOSITORY_DUPLICATE_UNIQUE_ID_IN_MESSAGE,
          ("ITI-41",)),
    _rule(X.patient_id_matches_submission_set, ErrorCode.PATIENT_ID_DOES_NOT_MATCH),
    _rule(X.code_in_value_set),
    _rule(X.limited_metadata_not_accepted),
    # Update Document Set (ITI TF-2 3.57.4.1.3)
    _rule(U.update_association_type_known, transactions=(UPDATE,)),
    _rule(U.no_initial_version, ErrorCode.METADATA_UPDATE_ERROR, (UPDATE,)),
    _rule(U.previous_version_slot, ErrorCode.METADATA_UPDATE_OPERATION_ERROR, (UPDATE,)),
    _rule(U.association_propagation_value, ErrorCode.METADATA_UPDATE_OPERATION_ERROR, (UPDATE,)),
    _rule(U.update_status_slots, ErrorCode.METADATA_UPDATE_OPERATION_ERROR, (UPDATE,)),
    _rule(U.one_update_per_logical_object, ErrorCode.METADATA_UPDATE_OPERATION_ERROR, (UPDATE,)),
    _rule(U.no_propagation_with_submitted_association, ErrorCode.METADATA_UPDATE_OPERATION_ERROR, (UPDATE,)),
]


def validate_submission(sub: Submission, *, transaction: str = "ITI-42",
                        value_sets: ValueSets | None = None) -> ErrorList:
    """Every problem of ``sub`` as one ``rs:RegistryError`` each, in rule order (empty when valid).

    ``transaction`` is ``"ITI-42"`` (Register: hash, size and repositoryUniqueId required on stable
    DocumentEntries), ``"ITI-41"`` (Provide and Register: the repository computes them) or
    ``"ITI-57"`` (Update Document Set: new versions are complete entries, as in ITI-42).
    """
    if transaction not in TRANSACTIONS:
        raise ValueError(f"transaction must be one of {TRANSACTIONS}, not {transaction!r}")
    ctx = Context.build(sub, transaction, value_sets)
    errors = ErrorList()
    for rule in RULES:
        if transaction in rule.transactions:
            for problem in rule.check(sub, ctx):
                errors.add(rule.code, problem.context, problem.location)
    return errors
