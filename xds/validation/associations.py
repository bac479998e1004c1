"""Associations (ITI TF-3 4.2.2)."""
from __future__ import annotations

from collections.abc import Iterator

from xds.metadata import Submission
from xds.validation.core import Context, Problem, is_symbolic
from xds.vocabulary import ASSOCIATION_DOCUMENTATION, AssocType

DOCUMENT_RELATIONSHIPS = (AssocType.RPLC, AssocType.XFRM, AssocType.APND, AssocType.XFRM_RPLC)


def association_type_known(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """associationType is HasMember or one of the XDS relationship types (TF-3 4.2.2, Table 4.2.2-1)."""
    for a in sub.associations:
        if a.association_type not in AssocType.ALL:
            yield Problem(f"Association {a.entry_uuid}: associationType '{a.association_type}' is not an XDS "
                          f"association type (TF-3 4.2.2)", a.entry_uuid)


def has_member_source(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """A HasMember's sourceObject is the SubmissionSet or a Folder (TF-3 4.2.2.1)."""
    allowed = ctx.submission_set_ids | ctx.folder_ids
    for a in sub.associations:
        if a.association_type != AssocType.HAS_MEMBER or not a.source:
            continue
        in_message = a.source in ctx.objects
        if (in_message or is_symbolic(a.source)) and a.source not in allowed:
            yield Problem(f"Association {a.entry_uuid}: HasMember sourceObject '{a.source}' is neither the "
                          f"SubmissionSet nor a Folder (TF-3 4.2.2.1)", a.entry_uuid)


def relationship_source_is_document_entry(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """A relationship (RPLC, XFRM, APND, XFRM_RPLC, signs, IsSnapshotOf) has a DocumentEntry of this submission as sourceObject (TF-3 4.2.2.2)."""
    docs = ctx.document_ids
    for a in sub.associations:
        if a.is_relationship and a.source not in docs:
            yield Problem(f"Association {a.entry_uuid}: sourceObject '{a.source}' of the "
                          f"{a.association_type.rsplit(':', 1)[-1]} relationship is not a DocumentEntry of this "
                          f"submission (TF-3 4.2.2.2)", a.entry_uuid)


def relationship_targets_existing_entry(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """RPLC, XFRM, APND and XFRM_RPLC target a DocumentEntry already in the registry, so not one of this message (TF-3 4.2.2.2)."""
    for a in sub.associations:
        if a.association_type in DOCUMENT_RELATIONSHIPS and a.target and a.target in ctx.objects:
            yield Problem(f"Association {a.entry_uuid}: targetObject '{a.target}' of the "
                          f"{a.association_type.rsplit(':', 1)[-1]} relationship is an object of this message; it "
                          f"must be a DocumentEntry already in the registry (TF-3 4.2.2.2)", a.entry_uuid)


def association_documentation_placement(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """The associationDocumentation classification appears only on relationship associations (TF-3 4.2.2.2.8)."""
    for o in sub.objects:
        if not any(c.get("classificationScheme") == ASSOCIATION_DOCUMENTATION for c in o.classifications):
            continue
        if o.tag != "Association" or o.get("associationType") not in AssocType.RELATIONSHIPS:
            yield Problem(f"{o.tag} {o.id}: associationDocumentation is only allowed on document relationship "
                          f"associations (TF-3 4.2.2.2.8)", o.id)
