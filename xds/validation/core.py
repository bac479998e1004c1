"""What every rule shares: the Rule record, the per-call Context and small RIM helpers.

A rule is a plain function ``check(sub, ctx)`` yielding :class:`Problem` values; the rule list in
:mod:`xds.validation` attaches one XDS error code to each (ITI TF-3 table 4.2.4.1-2).
Nothing here holds state between calls: the Context is built for one submission.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from xds.errors import ErrorCode
from xds.metadata import CODING_SCHEME, DocumentEntry, Folder, Submission, SubmissionSet
from xds.rim import RegistryObject
from xds.vocabulary import FOL, SS

if TYPE_CHECKING:  # pragma: no cover
    from xds.validation.valuesets import ValueSets

SUBMISSIONS = ("ITI-41", "ITI-42")
"""Transactions that submit first versions (Provide and Register, Register)."""
UPDATE = "ITI-57"
"""Update Document Set (ITI TF-2 3.57): new versions, status changes and associations to registered objects."""
TRANSACTIONS = (*SUBMISSIONS, UPDATE)
ORIGINAL = "Original"
REFERENCE = "Reference"


class Problem(NamedTuple):
    """One finding: the ``codeContext`` text and the ``location`` (the object id)."""
    context: str
    location: str = ""


Check = Callable[[Submission, "Context"], Iterable[Problem]]


@dataclass(frozen=True)
class Rule:
    """One validation rule, mapped to exactly one XDS error code."""
    name: str
    code: ErrorCode
    check: Check
    transactions: tuple[str, ...] = TRANSACTIONS

    @property
    def doc(self) -> str:
        return (self.check.__doc__ or "").strip()


@dataclass
class Context:
    """Lookups over one submission, built once per ``validate_submission`` call."""
    transaction: str
    value_sets: ValueSets | None
    objects: dict[str, RegistryObject]
    """Top-level objects by id (the first one when an id is duplicated)."""
    documents: list[tuple[DocumentEntry, RegistryObject]] = field(default_factory=list)
    submission_sets: list[tuple[SubmissionSet, RegistryObject]] = field(default_factory=list)
    folders: list[tuple[Folder, RegistryObject]] = field(default_factory=list)

    @classmethod
    def build(cls, sub: Submission, transaction: str = "ITI-42",
              value_sets: ValueSets | None = None) -> Context:
        objects: dict[str, RegistryObject] = {}
        for o in sub.objects:
            if o.tag != "ObjectRef":  # a reference to a registry object, not part of the submission
                objects.setdefault(o.id, o)
        ctx = cls(transaction, value_sets, objects)
        ctx.documents = list(zip(sub.documents, _in_order(sub.objects, "ExtrinsicObject",
                                                          [d.entry_uuid for d in sub.documents])))
        ctx.submission_sets = list(zip(sub.submission_sets, _in_order(sub.objects, "RegistryPackage",
                                                                      [s.entry_uuid for s in sub.submission_sets])))
        ctx.folders = list(zip(sub.folders, _in_order(sub.objects, "RegistryPackage",
                                                      [f.entry_uuid for f in sub.folders])))
        return ctx

    @property
    def submission_set(self) -> SubmissionSet | None:
        return self.submission_sets[0][0] if len(self.submission_sets) == 1 else None

    @property
    def document_ids(self) -> set[str]:
        return {d.entry_uuid for d, _ in self.documents}

    @property
    def folder_ids(self) -> set[str]:
        return {f.entry_uuid for f, _ in self.folders}

    @property
    def submission_set_ids(self) -> set[str]:
        return {s.entry_uuid for s, _ in self.submission_sets}

    def entries(self) -> Iterator[tuple[str, DocumentEntry | SubmissionSet | Folder, RegistryObject]]:
        """(label, model, rim) for every DocumentEntry, SubmissionSet and Folder, in that order."""
        for d, o in self.documents:
            yield f"DocumentEntry {d.entry_uuid}", d, o
        for s, o in self.submission_sets:
            yield f"SubmissionSet {s.entry_uuid}", s, o
        for f, o in self.folders:
            yield f"Folder {f.entry_uuid}", f, o


def _in_order(objects: list[RegistryObject], tag: str, ids: list[str]) -> list[RegistryObject]:
    """The RIM object behind each model object, matched by id in document order."""
    used: set[int] = set()
    out = []
    for wanted in ids:
        for i, o in enumerate(objects):
            if i not in used and o.tag == tag and o.id == wanted:
                used.add(i)
                out.append(o)
                break
    return out


# ----------------------------------------------------------------------------- RIM helpers

def classifications(o: RegistryObject, scheme: str) -> list[RegistryObject]:
    return [c for c in o.classifications if c.get("classificationScheme") == scheme]


def identifiers(o: RegistryObject, scheme: str) -> list[RegistryObject]:
    return [e for e in o.external_identifiers if e.get("identificationScheme") == scheme]


def code_pairs(o: RegistryObject, scheme: str) -> list[tuple[str, str]]:
    """(nodeRepresentation, codingScheme) of each coded classification of ``scheme``."""
    return [(c.get("nodeRepresentation") or "", c.slot_value(CODING_SCHEME) or "")
            for c in classifications(o, scheme)]


def classification_nodes(sub: Submission, o: RegistryObject) -> set[str]:
    """classificationNode values classifying ``o``, nested or as separate Classification objects."""
    nodes = {c.get("classificationNode") for c in o.classifications}
    nodes |= {c.get("classificationNode") for c in sub.objects
              if c.tag == "Classification" and c.get("classifiedObject") == o.id}
    nodes.discard(None)
    return nodes  # type: ignore[return-value]


def is_submission_set_package(sub: Submission, o: RegistryObject) -> bool:
    return o.tag == "RegistryPackage" and SS.CLASSIFICATION_NODE in classification_nodes(sub, o)


def is_folder_package(sub: Submission, o: RegistryObject) -> bool:
    return o.tag == "RegistryPackage" and FOL.CLASSIFICATION_NODE in classification_nodes(sub, o)


def all_objects(sub: Submission) -> Iterator[tuple[RegistryObject, RegistryObject | None]]:
    """Every object of the message with its parent: top-level ones, then nested ones."""
    for o in sub.objects:
        yield o, None
        for c in o.classifications:
            yield c, o
        for e in o.external_identifiers:
            yield e, o


def is_symbolic(ref: str) -> bool:
    """A symbolic id names an object of this message; ``urn:uuid:`` ids may name stored ones."""
    return not ref.startswith("urn:uuid:")
