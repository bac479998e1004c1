"""ITI-62 Remove Metadata: the rules a ``lcm:RemoveObjectsRequest`` must meet (ITI TF-2 3.62.4.1.2
and 3.62.4.1.3; ebRS 3.0 5.3.3).

A removal is judged on the request and on the registry's state around the objects it names: what
each named object is, and every Association that names one of them or an end of a named
Association. The registry reads that state (:mod:`registry.remove`); the rules here only read it,
one small rule per requirement, each mapped to exactly one error code in :data:`REMOVAL_RULES`.
Nothing is removed unless every rule passes (the transaction is atomic: ITI TF-2 3.62.4.1.3).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from xds.errors import ErrorCode, ErrorList
from xds.metadata import Association
from xds.validation.core import Problem

REMOVABLE_KINDS = frozenset({"document", "submission_set", "folder", "association"})
"""What ITI-62 removes: DocumentEntries, SubmissionSets, Folders and Associations (ITI TF-2 3.62.1)."""

KIND_NAMES = {"document": "DocumentEntry", "submission_set": "SubmissionSet", "folder": "Folder",
              "association": "Association"}


@dataclass
class RemovalRequest:
    """What one RemoveObjectsRequest asks, as parsed by the door (ebRS 3.0 5.3.3)."""
    object_refs: list[str]
    object_ref_list_present: bool = True
    adhoc_query_present: bool = False
    deletion_scope: str | None = None


@dataclass
class RemovalState:
    """The registry's state around the request: the kind of each named object the registry holds
    (``"document"``, ``"submission_set"``, ``"folder"``, ``"association"``), and every Association
    that references a named object or an end of a named Association (source or target)."""
    kinds: dict[str, str] = field(default_factory=dict)
    associations: dict[str, Association] = field(default_factory=dict)

    def referencing(self, uuid: str) -> list[Association]:
        return [a for a in self.associations.values() if uuid in (a.source, a.target)]


RemovalCheck = Callable[[RemovalRequest, RemovalState], Iterable[Problem]]


# -- the message (ITI TF-2 3.62.4.1.2) -------------------------------------------------------------

def object_ref_list_present(req: RemovalRequest, state: RemovalState) -> Iterator[Problem]:
    """The request names its objects in one rim:ObjectRefList of at least one rim:ObjectRef (ITI TF-2 3.62.4.1.2)."""
    if not req.object_ref_list_present or not req.object_refs:
        yield Problem("RemoveObjectsRequest names no object: an ObjectRefList with at least one ObjectRef is "
                      "required (ITI TF-2 3.62.4.1.2)")


def no_adhoc_query(req: RemovalRequest, state: RemovalState) -> Iterator[Problem]:
    """The objects are named by ObjectRef, never selected by an AdhocQuery (ITI TF-2 3.62.4.1.2)."""
    if req.adhoc_query_present:
        yield Problem("RemoveObjectsRequest carries an AdhocQuery; ITI-62 names the objects to remove by "
                      "ObjectRef only (ITI TF-2 3.62.4.1.2)")


def no_deletion_scope(req: RemovalRequest, state: RemovalState) -> Iterator[Problem]:
    """The deletionScope attribute is not specified (ITI TF-2 3.62.4.1.2)."""
    if req.deletion_scope is not None:
        yield Problem(f"RemoveObjectsRequest has deletionScope '{req.deletion_scope}'; ITI-62 does not use "
                      "deletionScope (ITI TF-2 3.62.4.1.2)")


def object_refs_are_uuids(req: RemovalRequest, state: RemovalState) -> Iterator[Problem]:
    """Each ObjectRef id is an entryUUID (urn:uuid:), as every registry object's id is (ITI TF-3 4.1.12.1)."""
    for ref in dict.fromkeys(req.object_refs):
        if not ref.startswith("urn:uuid:"):
            yield Problem(f"ObjectRef '{ref}' is not an entryUUID (urn:uuid:...): only registered objects can be "
                          "removed (ITI TF-3 4.1.12.1)", ref)


# -- against the registry (ITI TF-2 3.62.4.1.3) ----------------------------------------------------

def objects_in_registry(req: RemovalRequest, state: RemovalState) -> Iterator[Problem]:
    """Every named object is a DocumentEntry, Folder, SubmissionSet or Association of the registry (ITI TF-2 3.62.4.1.3)."""
    for ref in dict.fromkeys(req.object_refs):
        if ref.startswith("urn:uuid:") and state.kinds.get(ref) not in REMOVABLE_KINDS:
            yield Problem(f"ObjectRef {ref} is not a DocumentEntry, Folder, SubmissionSet or Association of this "
                          "registry", ref)


def no_reference_left(req: RemovalRequest, state: RemovalState) -> Iterator[Problem]:
    """No Association that stays references a removed object: it is removed in the same request (ITI TF-2 3.62.4.1.3)."""
    removed = set(req.object_refs)
    for ref in dict.fromkeys(req.object_refs):
        if ref not in state.kinds:
            continue
        staying = sorted(a.entry_uuid for a in state.referencing(ref) if a.entry_uuid not in removed)
        if staying:
            yield Problem(f"{KIND_NAMES.get(state.kinds[ref], 'object')} {ref} is still referenced by "
                          f"Association{'s' if len(staying) > 1 else ''} {', '.join(staying)}, not removed by "
                          "this request", ref)


def no_object_left_unreferenced(req: RemovalRequest, state: RemovalState) -> Iterator[Problem]:
    """An object that stays keeps at least one Association: removing an Association does not leave its source or target unreferenced (ITI TF-2 3.62.4.1.3; a SubmissionSet without members, a DocumentEntry or Folder in no SubmissionSet)."""
    removed = set(req.object_refs)
    reported: set[str] = set()
    for ref in dict.fromkeys(req.object_refs):
        a = state.associations.get(ref)
        if a is None or state.kinds.get(ref) != "association":
            continue
        for end in (a.source, a.target):
            if end in removed or end in reported:
                continue
            if not [x for x in state.referencing(end) if x.entry_uuid not in removed]:
                reported.add(end)
                yield Problem(f"removing Association {ref} would leave {end} without any Association referencing "
                              "it; remove it in the same request or keep one of its Associations", end)


MESSAGE_RULES: list[tuple[RemovalCheck, ErrorCode]] = [
    (object_ref_list_present, ErrorCode.REGISTRY_ERROR),
    (no_adhoc_query, ErrorCode.REGISTRY_ERROR),
    (no_deletion_scope, ErrorCode.REGISTRY_ERROR),
    (object_refs_are_uuids, ErrorCode.UNRESOLVED_REFERENCE),
]
"""Rules on the message alone, checked before the registry is read."""

REGISTRY_RULES: list[tuple[RemovalCheck, ErrorCode]] = [
    (objects_in_registry, ErrorCode.UNRESOLVED_REFERENCE),
    (no_reference_left, ErrorCode.REFERENCES_EXIST),
    (no_object_left_unreferenced, ErrorCode.UNREFERENCED_OBJECT),
]
"""Rules against the registry's state, in the order of ITI TF-2 3.62.4.1.3."""

REMOVAL_RULES = MESSAGE_RULES + REGISTRY_RULES


def _run(rules: list[tuple[RemovalCheck, ErrorCode]], req: RemovalRequest, state: RemovalState) -> ErrorList:
    errors = ErrorList()
    for check, code in rules:
        for p in check(req, state):
            errors.add(code, p.context, p.location)
    return errors


def validate_removal_message(req: RemovalRequest) -> ErrorList:
    """The message rules' problems (empty: the registry may be read)."""
    return _run(MESSAGE_RULES, req, RemovalState())


def validate_removal(req: RemovalRequest, state: RemovalState) -> ErrorList:
    """The registry rules' problems. Unknown objects are reported alone: the reference rules cannot
    judge a request whose objects the registry does not hold."""
    errors = _run(REGISTRY_RULES[:1], req, state)
    return errors if errors.has_errors else _run(REGISTRY_RULES[1:], req, state)
