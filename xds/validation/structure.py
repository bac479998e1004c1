"""Message structure (ITI TF-3 4.1.4, 4.2.1, 4.2.2; ITI TF-2 3.42.4.1.3)."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from xds.metadata import Submission
from xds.rim import XDS_OBJECTS, RegistryObject
from xds.validation.core import (
    ORIGINAL,
    REFERENCE,
    Context,
    Problem,
    all_objects,
    is_folder_package,
    is_submission_set_package,
    is_symbolic,
)
from xds.vocabulary import SUBMISSION_SET_STATUS, AssocType, ObjectType


def registry_object_list_known_elements(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """A RegistryObjectList holds XDS objects only, each with ebRIM content only (TF-3 4.1, 4.2.1;
    ebRIM 3.0 RegistryObjectListType): nothing a Document Source sent is dropped unanswered."""
    for o in sub.objects:
        if o.tag not in XDS_OBJECTS:
            yield Problem(f"RegistryObjectList: element {o.tag}{f' (id {o.id})' if o.id else ''} is not an "
                          f"XDS object ({', '.join(XDS_OBJECTS)}; TF-3 4.1, ebRIM 3.0 type substitution "
                          "by xsi:type included): it would be lost", o.id)
    for o, parent in all_objects(sub):
        for name in o.unknown_children:
            where = f" of {parent.tag} {parent.id}" if parent is not None else ""
            yield Problem(f"{o.tag} {o.id}{where}: child element {name} is not ebRIM 3.0 content of a {o.tag} "
                          "(Slot, Name, Description, VersionInfo, Classification, ExternalIdentifier)", o.id)


def exactly_one_submission_set(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """A submission request holds exactly one SubmissionSet (TF-3 4.1.4; TF-2 3.42.4.1.3)."""
    count = len(ctx.submission_sets)
    if count != 1:
        ids = ", ".join(s.entry_uuid for s, _ in ctx.submission_sets) or "none"
        yield Problem(f"the request holds {count} SubmissionSets ({ids}); exactly one is required "
                      f"(TF-3 4.1.4)", "")


def registry_package_kind(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """Every RegistryPackage is classified as a SubmissionSet or a Folder, not both (TF-3 4.2.1)."""
    for o in sub.objects:
        if o.tag != "RegistryPackage":
            continue
        ss, fol = is_submission_set_package(sub, o), is_folder_package(sub, o)
        if not ss and not fol:
            yield Problem(f"RegistryPackage {o.id}: classificationNode is missing: it is classified neither as "
                          f"a SubmissionSet nor as a Folder (TF-3 4.2.1)", o.id)
        elif ss and fol:
            yield Problem(f"RegistryPackage {o.id}: classificationNode: it is classified both as a SubmissionSet "
                          f"and as a Folder (TF-3 4.2.1)", o.id)


def extrinsic_object_type(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """A DocumentEntry's objectType is the stable or the On-Demand type (TF-3 4.2.3.2, objectType; 4.1.1)."""
    for d, _ in ctx.documents:
        if d.object_type not in (ObjectType.STABLE_DOCUMENT, ObjectType.ON_DEMAND_DOCUMENT):
            yield Problem(f"DocumentEntry {d.entry_uuid}: objectType '{d.object_type}' is neither the stable "
                          f"({ObjectType.STABLE_DOCUMENT}) nor the On-Demand ({ObjectType.ON_DEMAND_DOCUMENT}) "
                          f"DocumentEntry type (TF-3 4.2.3.2, objectType)", d.entry_uuid)


def object_id_present(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """Every registry object carries an id (ebRIM 3.0 2.5.2: id is required; TF-3 4.2.3.1.5)."""
    for o, parent in all_objects(sub):
        if not o.id:
            where = f" of {parent.tag} {parent.id}" if parent is not None else ""
            yield Problem(f"{o.tag}{where}: id is missing (ebRIM 3.0 2.5.2; TF-3 4.2.3.1.5)",
                          parent.id if parent is not None else "")


def object_ids_unique(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """Object ids (entryUUIDs or symbolic ids) are unique within the message (TF-3 4.2.3.1.5)."""
    counts = Counter(o.id for o, _ in all_objects(sub) if o.id)
    for oid, n in counts.items():
        if n > 1:
            yield Problem(f"id '{oid}' is used by {n} objects of the message; ids must be unique "
                          f"(TF-3 4.2.3.1.5)", oid)


def association_references_resolve(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """A symbolic sourceObject/targetObject names an object of the message (TF-3 4.2.3.1.5)."""
    ids = {o.id for o, _ in all_objects(sub)}
    for a in sub.associations:
        for attr, ref in (("sourceObject", a.source), ("targetObject", a.target)):
            if not ref:
                yield Problem(f"Association {a.entry_uuid}: {attr} is missing (ebRIM 3.0 2.6.2)", a.entry_uuid)
            elif is_symbolic(ref) and ref not in ids:
                yield Problem(f"Association {a.entry_uuid}: {attr} '{ref}' is a symbolic id that names no object "
                              f"of the message (TF-3 4.2.3.1.5)", a.entry_uuid)


def submission_set_has_member(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """Each DocumentEntry and Folder of the message is a HasMember target of the SubmissionSet (TF-3 4.2.2.1.1, 4.2.2.1.2)."""
    ss = ctx.submission_set
    if ss is None:
        return
    linked = {a.target for a in sub.associations
              if a.association_type == AssocType.HAS_MEMBER and a.source == ss.entry_uuid}
    for label, kind, ids in (("DocumentEntry", "4.2.2.1.2", ctx.document_ids), ("Folder", "4.2.2.1.1", ctx.folder_ids)):
        for oid in sorted(ids - linked):
            yield Problem(f"{label} {oid}: no HasMember association links SubmissionSet {ss.entry_uuid} to it "
                          f"(TF-3 {kind})", oid)


def submission_set_status(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """SubmissionSet-to-DocumentEntry HasMember carries one SubmissionSetStatus, Original or Reference (TF-3 4.2.2.1.2)."""
    ss_ids = ctx.submission_set_ids
    docs = ctx.document_ids
    for a, o in ((a, ctx.objects.get(a.entry_uuid)) for a in sub.associations):
        if a.association_type != AssocType.HAS_MEMBER or a.source not in ss_ids or o is None:
            continue
        values = o.slot_values(SUBMISSION_SET_STATUS)
        if a.target not in docs and not values:
            continue  # SubmissionSet -> Folder or -> Association: no status slot
        if len(values) != 1 or values[0] not in (ORIGINAL, REFERENCE):
            yield Problem(f"Association {a.entry_uuid}: {SUBMISSION_SET_STATUS} must have exactly one value, "
                          f"'{ORIGINAL}' or '{REFERENCE}', got {values} (TF-3 4.2.2.1.2)", a.entry_uuid)
        elif values[0] == ORIGINAL and a.target not in docs:
            yield Problem(f"Association {a.entry_uuid}: {SUBMISSION_SET_STATUS} is '{ORIGINAL}' but targetObject "
                          f"'{a.target}' is not a DocumentEntry of this submission (TF-3 4.2.2.1.2)", a.entry_uuid)


def classified_object_is_parent(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """A nested Classification classifies its parent; a nested ExternalIdentifier identifies it (ebRIM 3.0 4.3, 2.11)."""
    for o in sub.objects:
        for c in o.classifications:
            if c.get("classifiedObject") != o.id:
                yield Problem(f"{o.tag} {o.id}: Classification {c.id} has {_reference(c, 'classifiedObject')}, "
                              f"not its parent '{o.id}' (ebRIM 3.0 4.3.1)", o.id)
        for e in o.external_identifiers:
            if e.get("registryObject") != o.id:
                yield Problem(f"{o.tag} {o.id}: ExternalIdentifier {e.id} has {_reference(e, 'registryObject')}, "
                              f"not its parent '{o.id}' (ebRIM 3.0 2.11.1)", o.id)
    ids = {o.id for o in sub.objects}
    for c in sub.objects:
        if c.tag == "Classification":
            target = c.get("classifiedObject") or ""
            if not target or (is_symbolic(target) and target not in ids):
                yield Problem(f"Classification {c.id}: classifiedObject '{target}' names no object of the "
                              f"message (ebRIM 3.0 4.3.1)", c.id)


def _reference(o: RegistryObject, attribute: str) -> str:
    value = o.get(attribute)
    return f"no {attribute} attribute (it is required)" if value is None else f"{attribute} '{value}'"
