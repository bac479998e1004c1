"""Rules across the objects of one submission: uniqueness, patient, value sets, limitedMetadata."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from xds.metadata import Submission
from xds.patient import same_patient
from xds.validation.core import Context, Problem, classification_nodes, code_pairs
from xds.vocabulary import DOC, FOL, SS

LIMITED = {"DocumentEntry": DOC.LIMITED_METADATA, "SubmissionSet": SS.LIMITED_METADATA,
           "Folder": FOL.LIMITED_METADATA}
VALUE_SET_SCHEMES = {
    "classCode": ("DocumentEntry", DOC.CLASS_CODE), "typeCode": ("DocumentEntry", DOC.TYPE_CODE),
    "formatCode": ("DocumentEntry", DOC.FORMAT_CODE),
    "healthcareFacilityTypeCode": ("DocumentEntry", DOC.HEALTHCARE_FACILITY_TYPE_CODE),
    "practiceSettingCode": ("DocumentEntry", DOC.PRACTICE_SETTING_CODE),
    "confidentialityCode": ("DocumentEntry", DOC.CONFIDENTIALITY_CODE),
    "eventCodeList": ("DocumentEntry", DOC.EVENT_CODE),
    "contentTypeCode": ("SubmissionSet", SS.CONTENT_TYPE_CODE), "folderCodeList": ("Folder", FOL.CODE_LIST),
}


def _unique_ids(ctx: Context) -> dict[str, list[str]]:
    """uniqueId -> labels of the entries carrying it."""
    seen: dict[str, list[str]] = defaultdict(list)
    for label, entry, _ in ctx.entries():
        if entry.unique_id:
            seen[entry.unique_id].append(label)
    return seen


def duplicate_unique_id_in_message(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """No two entries of the message share a uniqueId (TF-2 3.42.4.1.3: XDSRegistryDuplicateUniqueIdInMessage).

    In Provide and Register (ITI-41) two DocumentEntries sharing a uniqueId are reported by the
    repository rule instead; a clash involving the SubmissionSet or a Folder stays here.
    """
    for uid, labels in _unique_ids(ctx).items():
        if len(labels) < 2:
            continue
        if ctx.transaction == "ITI-41" and all(lb.startswith("DocumentEntry ") for lb in labels):
            continue
        yield Problem(f"uniqueId '{uid}' is used by {', '.join(labels)} (TF-2 3.42.4.1.3)",
                      labels[1].split(" ", 1)[1])


def repository_duplicate_unique_id_in_message(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """No two DocumentEntries of a Provide and Register share a uniqueId (TF-2 3.41.4.1.3: XDSRepositoryDuplicateUniqueIdInMessage)."""
    for uid, labels in _unique_ids(ctx).items():
        docs = [lb for lb in labels if lb.startswith("DocumentEntry ")]
        if len(docs) > 1:
            yield Problem(f"uniqueId '{uid}' is used by {', '.join(docs)} (TF-2 3.41.4.1.3)",
                          docs[1].split(" ", 1)[1])


def patient_id_matches_submission_set(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """Every DocumentEntry and Folder has the SubmissionSet's patientId (TF-2 3.42.4.1.3: XDSPatientIdDoesNotMatch);
    one patient is CX.1 in CX.4, whatever CX.5 says (TF-3 4.2.3.1.7, :func:`xds.patient.patient_key`)."""
    ss = ctx.submission_set
    if ss is None or not ss.patient_id:
        return
    for label, entry, _ in ctx.entries():
        if label.startswith("SubmissionSet ") or not entry.patient_id:
            continue
        if not same_patient(entry.patient_id, ss.patient_id):
            yield Problem(f"{label}: patientId '{entry.patient_id}' differs from the patientId '{ss.patient_id}' of "
                          f"SubmissionSet {ss.entry_uuid} (TF-2 3.42.4.1.3)", entry.entry_uuid)


def code_in_value_set(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """Codes belong to the affinity domain's value sets where configured (TF-3 4.2.3.1.2; TF-1 10.4.4.1 affinity domain)."""
    if ctx.value_sets is None:
        return
    for attribute, (kind, scheme) in VALUE_SET_SCHEMES.items():
        if not ctx.value_sets.checks(attribute):
            continue
        for label, _, o in ctx.entries():
            if label.split()[0] != kind:
                continue
            for code, coding_scheme in code_pairs(o, scheme):
                if not ctx.value_sets.allows(attribute, code, coding_scheme):
                    yield Problem(f"{label}: {attribute} code '{code}' of codingScheme '{coding_scheme}' is not in "
                                  f"the affinity domain's {attribute} value set (TF-3 4.2.3.1.2)", o.id)


def limited_metadata_not_accepted(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """An XDS registry does not accept limited metadata (TF-3 4.1.1; limitedMetadata is for XDR/XDM Metadata-Limited sources)."""
    for label, _, o in ctx.entries():
        if LIMITED[label.split()[0]] in classification_nodes(sub, o):
            yield Problem(f"{label}: limitedMetadata is flagged; an XDS Document Registry accepts only complete "
                          f"metadata (TF-3 4.1.1)", o.id)
