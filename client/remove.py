"""``xds remove``: a document's metadata through ITI-62 Remove Metadata, then its bytes through
ITI-86 Remove Documents (ITI TF-2 3.62, 3.86; the Document Administrator actor).

The registry removes nothing that would leave the metadata inconsistent (ReferencesExistException,
XDSUnreferencedObjectException, ITI TF-2 3.62.4.1.3), so the client works out the whole set first,
with stored queries: the DocumentEntry, every Association that references it (HasMember from its
SubmissionSets and Folders, relationships from or to other documents), every Association that
references one of those (a Folder membership is itself a member of a SubmissionSet), and each
SubmissionSet that would be left with no member. ``--dry-run`` prints that set and sends nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from client.client import XdsClient, check_response
from client.errors import RegistryErrorItem, XdsFailure
from xds.metadata import DocumentEntry
from xds.vocabulary import NS_LCM, NS_RIM, NS_RMD, NS_XDSB, Actions, AssocType, q


@dataclass
class RemovalPlan:
    document: DocumentEntry
    objects: list[tuple[str, str]] = field(default_factory=list)
    """(kind, entryUUID) of every object ITI-62 removes, in the order sent."""

    @property
    def object_refs(self) -> list[str]:
        return [uuid for _, uuid in self.objects]


@dataclass
class RemovalResult:
    plan: RemovalPlan
    bytes_removed: bool
    warnings: list[RegistryErrorItem] = field(default_factory=list)


def find_document(client: XdsClient, document: str) -> DocumentEntry:
    """The DocumentEntry named by uniqueId or entryUUID (``urn:uuid:...``), whatever its status."""
    if document.startswith("urn:uuid:"):
        found = [e for e in client.query("get-documents", uuid=document).documents if e.entry_uuid == document]
    else:
        entry = client.find_document(document)
        found = [entry] if entry is not None else []
    if not found:
        raise XdsFailure("no document", [RegistryErrorItem("XDSDocumentUniqueIdError",
                                                           f"the registry has no document {document}")])
    return found[0]


def plan_removal(client: XdsClient, document: str) -> RemovalPlan:
    """Every object ITI-62 must remove with the document for the registry to accept it."""
    entry = find_document(client, document)
    plan = RemovalPlan(entry, [("DocumentEntry", entry.entry_uuid)])
    removed = {entry.entry_uuid}
    emptied: dict[str, None] = {}
    todo = [entry.entry_uuid]
    while todo:
        found = client.query("get-associations", uuid=todo).associations
        todo = []
        for a in found:
            if a.entry_uuid in removed:
                continue
            removed.add(a.entry_uuid)
            plan.objects.append(("Association", a.entry_uuid))
            todo.append(a.entry_uuid)
            if a.association_type == AssocType.HAS_MEMBER and a.source not in removed:
                emptied.setdefault(a.source, None)
        if not todo:
            todo = _emptied_sets(client, list(emptied), removed, plan)
            emptied.clear()
    return plan


def _emptied_sets(client: XdsClient, sources: list[str], removed: set[str], plan: RemovalPlan) -> list[str]:
    """The SubmissionSets among ``sources`` whose every Association is being removed: they go too."""
    if not sources:
        return []
    members = [uuid for kind, uuid in plan.objects if kind != "SubmissionSet"]
    sets = {s.entry_uuid for s in client.query("get-submission-sets", uuid=members).submission_sets}
    going = []
    for source in sources:
        if source not in sets or source in removed:
            continue
        left = [a for a in client.query("get-associations", uuid=[source]).associations if a.entry_uuid not in removed]
        if not left:
            removed.add(source)
            plan.objects.append(("SubmissionSet", source))
            going.append(source)
    return going


def remove_metadata_request(plan: RemovalPlan) -> etree._Element:
    root = etree.Element(q(NS_LCM, "RemoveObjectsRequest"), nsmap={"lcm": NS_LCM, "rim": NS_RIM})
    refs = etree.SubElement(root, q(NS_RIM, "ObjectRefList"))
    for uuid in plan.object_refs:
        etree.SubElement(refs, q(NS_RIM, "ObjectRef"), id=uuid)
    return root


def remove_documents_request(entry: DocumentEntry) -> etree._Element:
    root = etree.Element(q(NS_RMD, "RemoveDocumentsRequest"), nsmap={"rmd": NS_RMD, "xdsb": NS_XDSB})
    dr = etree.SubElement(root, q(NS_XDSB, "DocumentRequest"))
    if entry.home:
        etree.SubElement(dr, q(NS_XDSB, "HomeCommunityId")).text = entry.home
    etree.SubElement(dr, q(NS_XDSB, "RepositoryUniqueId")).text = entry.repository_unique_id or ""
    etree.SubElement(dr, q(NS_XDSB, "DocumentUniqueId")).text = entry.unique_id or ""
    return root


def send_removal(client: XdsClient, plan: RemovalPlan) -> RemovalResult:
    """ITI-62 to the registry, then, once the metadata is gone, ITI-86 to the repository; raises
    :class:`XdsFailure` with the server's errors unless each answers Success."""
    reply = client.transport.call(client.registry_url, Actions.REMOVE_METADATA, remove_metadata_request(plan))
    warnings = check_response(client._registry_response(reply))
    if not plan.document.repository_unique_id:
        return RemovalResult(plan, False, warnings)
    reply = client.transport.call(client.repository_url, Actions.REMOVE_DOCUMENTS,
                                  remove_documents_request(plan.document))
    warnings += check_response(client._registry_response(reply))
    return RemovalResult(plan, True, warnings)
