"""Message-level rules of ITI-57 Update Document Set (ITI TF-2 3.57.4.1.3, XDS Metadata Update).

An Update Document Set carries, besides its SubmissionSet, operations on registered metadata:
new versions of DocumentEntries and Folders (``lid`` naming the logical object, the
SubmissionSet's HasMember to them carrying ``PreviousVersion``), ``UpdateAvailabilityStatus``
associations (``OriginalStatus`` and ``NewStatus`` slots), and new associations to registered
objects. What needs the registry's contents (the latest version, the current status, the
patients of the ends) is checked by ``registry.update``.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from xds.metadata import Association, Submission
from xds.rim import RegistryObject
from xds.validation.core import Context, Problem
from xds.vocabulary import AssocType
from xds.vocabulary import MetadataUpdate as MU

UPDATE_TYPES = (*AssocType.ALL, MU.UPDATE_AVAILABILITY_STATUS, MU.SUBMIT_ASSOCIATION)


def _short(association_type: str) -> str:
    return association_type.rsplit(":", 1)[-1]


def _version_members(sub: Submission, ctx: Context) -> Iterator[tuple[Association, RegistryObject]]:
    """The SubmissionSet's HasMember associations to the DocumentEntries and Folders of the message
    (the new versions), with their RIM object."""
    ss_ids = ctx.submission_set_ids
    versioned = ctx.document_ids | ctx.folder_ids
    for a in sub.associations:
        o = ctx.objects.get(a.entry_uuid)
        if a.association_type == AssocType.HAS_MEMBER and a.source in ss_ids and a.target in versioned \
                and o is not None:
            yield a, o


def propagates(member: RegistryObject) -> bool:
    """AssociationPropagation defaults to yes (ITI TF-2 3.57.4.1.3.1.3.4)."""
    return (member.slot_value(MU.ASSOCIATION_PROPAGATION) or "yes") == "yes"


def update_association_type_known(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """associationType is an XDS type or an operation of Metadata Update (UpdateAvailabilityStatus, SubmitAssociation; ITI TF-3 4.2.2, ITI TF-2 3.57.4.1.3)."""
    for a in sub.associations:
        if a.association_type not in UPDATE_TYPES:
            yield Problem(f"Association {a.entry_uuid}: associationType '{a.association_type}' is neither an XDS "
                          "association type nor a Metadata Update operation (ITI TF-3 4.2.2; ITI TF-2 3.57.4.1.3)",
                          a.entry_uuid)


def no_initial_version(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """Every DocumentEntry and Folder of an update is a new version: a logicalID (lid), a UUID, other than its entryUUID (ITI TF-2 3.57.4.1.3.1)."""
    for label, o in [("DocumentEntry", o) for _, o in ctx.documents] + [("Folder", o) for _, o in ctx.folders]:
        lid = o.get("lid")
        if not lid or lid == o.id:
            yield Problem(f"{label} {o.id}: an Update Document Set carries new versions only; an initial version "
                          "(no lid, or lid equal to its id) is submitted with ITI-41 or ITI-42 "
                          "(ITI TF-2 3.57.4.1.3.1)", o.id)
        elif not lid.startswith("urn:uuid:"):
            yield Problem(f"{label} {o.id}: logicalID '{lid}' is not a UUID; a logicalID is never symbolic "
                          "(ITI TF-3 4.2.3.2.x logicalID)", o.id)


def previous_version_slot(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """The SubmissionSet's HasMember to a new version carries one PreviousVersion, a version number (ITI TF-2 3.57.4.1.3.1.3.3)."""
    for a, o in _version_members(sub, ctx):
        values = o.slot_values(MU.PREVIOUS_VERSION)
        if len(values) != 1 or not values[0].strip().isdigit() or int(values[0]) < 1:
            yield Problem(f"Association {a.entry_uuid}: the HasMember to new version {a.target} must carry one "
                          f"{MU.PREVIOUS_VERSION} slot holding the version number it replaces, got {values} "
                          "(ITI TF-2 3.57.4.1.3.1.3.3)", a.entry_uuid)


def association_propagation_value(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """AssociationPropagation, when given, is one value, yes or no (ITI TF-2 3.57.4.1.3.1.3.4)."""
    for a in sub.associations:
        o = ctx.objects.get(a.entry_uuid)
        if o is None or not any(s.name == MU.ASSOCIATION_PROPAGATION for s in o.slots):
            continue
        values = o.slot_values(MU.ASSOCIATION_PROPAGATION)
        if len(values) != 1 or values[0] not in MU.PROPAGATION_VALUES:
            yield Problem(f"Association {a.entry_uuid}: {MU.ASSOCIATION_PROPAGATION} must be one value, 'yes' or "
                          f"'no', got {values} (ITI TF-2 3.57.4.1.3.1.3.4)", a.entry_uuid)


def update_status_slots(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """An UpdateAvailabilityStatus comes from the SubmissionSet and carries only one OriginalStatus and one different NewStatus, each Approved or Deprecated (ITI TF-2 3.57.4.1.3.3.2)."""
    for a in sub.associations:
        o = ctx.objects.get(a.entry_uuid)
        if a.association_type != MU.UPDATE_AVAILABILITY_STATUS or o is None:
            continue
        if a.source not in ctx.submission_set_ids:
            yield Problem(f"Association {a.entry_uuid}: the sourceObject of an UpdateAvailabilityStatus is the "
                          "SubmissionSet (ITI TF-2 3.57.4.1.3.3.2)", a.entry_uuid)
        for extra in sorted({s.name for s in o.slots} - {MU.ORIGINAL_STATUS, MU.NEW_STATUS}):
            yield Problem(f"Association {a.entry_uuid}: slot '{extra}' has no meaning on an UpdateAvailabilityStatus, "
                          f"which carries {MU.ORIGINAL_STATUS} and {MU.NEW_STATUS} only (ITI TF-2 3.57.4.1.3.3.2)",
                          a.entry_uuid)
        original, new = o.slot_values(MU.ORIGINAL_STATUS), o.slot_values(MU.NEW_STATUS)
        for name, values in ((MU.ORIGINAL_STATUS, original), (MU.NEW_STATUS, new)):
            if len(values) != 1 or values[0] not in MU.STATUSES:
                yield Problem(f"Association {a.entry_uuid}: UpdateAvailabilityStatus needs one {name} slot, "
                              f"Approved or Deprecated, got {values} (ITI TF-2 3.57.4.1.3.3.2)", a.entry_uuid)
        if len(original) == 1 and original == new:
            yield Problem(f"Association {a.entry_uuid}: {MU.ORIGINAL_STATUS} and {MU.NEW_STATUS} are both "
                          f"'{original[0]}': the operation changes nothing (ITI TF-2 3.57.4.1.3.3.2)", a.entry_uuid)


def one_update_per_logical_object(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """One transaction creates at most one new version of a logical object (ITI TF-2 3.57.4.1.3.1)."""
    lids = Counter(o.get("lid") for _, o in ctx.documents + ctx.folders if o.get("lid"))
    for lid, n in sorted(lids.items()):
        if n > 1:
            yield Problem(f"{n} new versions of logical object {lid} in one Update Document Set; one transaction "
                          "updates a logical object once (ITI TF-2 3.57.4.1.3.1)", lid or "")


def no_propagation_with_submitted_association(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """A new version whose associations propagate is not also the end of an association of the same update: the submitter does one or the other (ITI TF-2 3.57.4.1.3.1.1, CP-ITI-1029)."""
    propagating = {a.target for a, o in _version_members(sub, ctx) if propagates(o)}
    for a in sub.associations:
        if a.association_type in (MU.UPDATE_AVAILABILITY_STATUS, MU.SUBMIT_ASSOCIATION) \
                or a.source in ctx.submission_set_ids:
            continue
        for end in (a.source, a.target):
            if end in propagating:
                yield Problem(f"Association {a.entry_uuid}: {_short(a.association_type)} names new version {end}, "
                              f"whose associations the registry propagates ({MU.ASSOCIATION_PROPAGATION} yes); "
                              "send it with AssociationPropagation 'no' (ITI TF-2 3.57.4.1.3.1.1)", a.entry_uuid)
