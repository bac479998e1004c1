"""ITI-66 Find Document Lists (MHD 4.2, ITI TF-2 3.66): SubmissionSets and Folders of a patient as
FHIR Lists, through the stored queries and the policy of ITI-18 (:func:`transactions.iti67.answer`).

``code=submissionset`` is a FindSubmissionSets, ``code=folder`` a FindFolders, no code both. A
List names its members (``List.entry``): only the DocumentEntries the caller may see are named,
so that a List never discloses a hidden document's id. Audited as Query, ITI-66.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from access.policy import Decision, document_facts
from audit import mhd
from audit.messages import MAJOR_FAILURE, outcome_of_status
from registry import facts as registry_facts
from transactions.iti67 import answer
from transactions.services import Authenticate, Services, safely
from xds.context import Caller
from xds.errors import ErrorList
from xds.metadata import Folder, SubmissionSet
from xds.rim import parse_object
from xds.vocabulary import STORED_QUERIES, ResponseStatus


@dataclass
class ListSearch:
    """The stored queries of one ITI-66 search (``FindSubmissionSets`` and/or ``FindFolders``
    with their parameters) and what they cannot say."""
    queries: dict[str, dict[str, list[list[str]]]]
    url: str
    patient_id: str | None = None
    identifiers: set[str] = field(default_factory=set)


@dataclass
class FoundLists:
    submission_sets: list[SubmissionSet] = field(default_factory=list)
    folders: list[Folder] = field(default_factory=list)
    members: dict[str, list[str]] = field(default_factory=dict)
    """entryUUID of a List -> the entryUUIDs of the DocumentEntries it holds that the caller sees."""
    errors: ErrorList = field(default_factory=ErrorList)

    @property
    def ok(self) -> bool:
        return not self.errors.has_errors


def find_document_lists(services: Services, caller: Caller, authenticate: Authenticate,
                        search: ListSearch) -> FoundLists:
    outcome = MAJOR_FAILURE
    try:
        authenticate(caller)
        found = FoundLists()
        for name, params in search.queries.items():
            result = answer(services, caller, STORED_QUERIES[name], params)
            if not result.ok:
                found.errors.extend(result.errors)
                break
            for el, kind in zip(result.objects, result.kinds):
                obj = parse_object(el)
                if kind == "submission_set":
                    found.submission_sets.append(SubmissionSet.from_rim(obj))
                elif kind == "folder":
                    found.folders.append(Folder.from_rim(obj))
        if search.identifiers:
            found.submission_sets = [s for s in found.submission_sets
                                     if s.entry_uuid in search.identifiers or s.unique_id in search.identifiers]
            found.folders = [f for f in found.folders
                             if f.entry_uuid in search.identifiers or f.unique_id in search.identifiers]
        if found.ok:
            packages = [s.entry_uuid for s in found.submission_sets] + [f.entry_uuid for f in found.folders]
            found.members = _visible_members(services, caller, packages)
        outcome = outcome_of_status(ResponseStatus.SUCCESS if found.ok else ResponseStatus.FAILURE)
        return found
    finally:
        safely(services.auditor.record, mhd.find(caller, services.auditor.source_id, outcome, "ITI-66", search.url,
                                                 search.patient_id))


def _visible_members(services: Services, caller: Caller, packages: list[str]) -> dict[str, list[str]]:
    if not packages:
        return {}
    with services.database.quick_read() as conn:
        members = registry_facts.package_members(conn, packages)
        everyone = {u for uuids in members.values() for u in uuids}
        if not services.policy.is_dmp:
            return {p: sorted(uuids) for p, uuids in members.items()}
        docs = document_facts(conn, uuids=everyone)
        decisions: dict[str, Decision] = {}
        seen = {u for u, d in docs.items()
                if services.policy.decide(caller, d.patient_id, conn=conn, known=decisions).sees(d)}
    return {p: sorted(u for u in uuids if u in seen) for p, uuids in members.items()}
