"""ITI-57 Update Document Set from the client: the Document Administrator (Update Initiator) of XDS
Metadata Update (ITI TF-2 3.57).

A registered DocumentEntry is never edited in place. A change of its attributes is a new version:
a new entryUUID, the same logicalID (``lid``) and uniqueId, sent as a member of a new
SubmissionSet whose HasMember carries ``PreviousVersion``, the version it follows (ITI TF-2
3.57.4.1.3.3.1); the registry numbers it and deprecates the previous one. A change of its
availabilityStatus (deprecate, approve again) is an UpdateAvailabilityStatus association from the
SubmissionSet with ``OriginalStatus`` and ``NewStatus`` (3.57.4.1.3.3.2). Both start from the latest
version, fetched with ITI-18 GetDocuments.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from lxml import etree

from client.client import CONTENT_TYPE, XdsClient, check_response, new_oid, now_dtm
from client.documents import Overrides, apply_overrides
from client.errors import InputError, RegistryErrorItem, XdsFailure
from xds import rim
from xds.metadata import Association, Author, Code, DocumentEntry, SubmissionSet, new_uuid
from xds.rim import Slot
from xds.vocabulary import Actions, AssocType, Status
from xds.vocabulary import MetadataUpdate as MU

STATUS_WORDS = {"approved": Status.APPROVED, "deprecated": Status.DEPRECATED}

ATTRIBUTES = (("title", "title"), ("comments", "comments"), ("classCode", "class_code"),
              ("typeCode", "type_code"), ("formatCode", "format_code"),
              ("confidentialityCode", "confidentiality_codes"),
              ("healthcareFacilityTypeCode", "healthcare_facility_type_code"),
              ("practiceSettingCode", "practice_setting_code"), ("creationTime", "creation_time"),
              ("languageCode", "language_code"))
"""The DocumentEntry attributes ``xds update`` may change, by their TF name (ITI TF-3 4.2.3.2)."""


@dataclass
class Changes:
    """What the user asks to change; None: leave as registered."""
    attributes: Overrides = field(default_factory=Overrides)
    comments: str | None = None
    status: str | None = None
    """The new availabilityStatus (Status.APPROVED or Status.DEPRECATED)."""


@dataclass
class UpdatePlan:
    """One Update Document Set, ready to send, and what it changes."""
    latest: DocumentEntry
    submission_set: SubmissionSet
    objects: list[rim.RegistryObject]
    new_version: DocumentEntry | None = None
    changed: list[tuple[str, str, str]] = field(default_factory=list)
    """(attribute, registered value, new value) of the new version."""
    status_change: tuple[str, str] | None = None
    """(OriginalStatus, NewStatus)."""

    @property
    def unique_id(self) -> str:
        return self.latest.unique_id or ""

    @property
    def version(self) -> int:
        return version_number(self.latest)


@dataclass
class UpdateResult:
    plan: UpdatePlan
    warnings: list[RegistryErrorItem]


def version_number(entry: DocumentEntry) -> int:
    """The registry's version of ``entry`` (rim:VersionInfo); 1 when a registry without Metadata
    Update gives none (ITI TF-3 4.2.3.2: the first version is 1)."""
    try:
        return int(entry.version or "1")
    except ValueError:
        raise InputError(f"the registry gives version {entry.version!r} for {entry.unique_id}, not a number") \
            from None


def parse_status(word: str) -> str:
    full = STATUS_WORDS.get(word.lower(), word)
    if full not in MU.STATUSES:
        raise InputError(f"status {word!r}: an update sets Approved or Deprecated (ITI TF-2 3.57.4.1.3.3.2)")
    return full


def latest_version(client: XdsClient, document: str) -> DocumentEntry:
    """The latest version of the document named by uniqueId or entryUUID (``urn:uuid:``).

    GetDocuments by uniqueId at $MetadataLevel 1 answers the latest version (the versions of a
    document share its uniqueId, ITI TF-2 3.18.4.1.2.3.7.5); an entryUUID names one version, whose
    uniqueId then leads to the latest."""
    unique_id = document
    if document.startswith("urn:uuid:"):
        found = [e for e in client.query("get-documents", uuid=document).documents if e.entry_uuid == document]
        if not found:
            raise XdsFailure("no document", [RegistryErrorItem(
                "XDSDocumentUniqueIdError", f"the registry has no document with entryUUID {document}")])
        unique_id = found[0].unique_id or ""
    found = [e for e in client.query("get-documents", unique_id=unique_id).documents if e.unique_id == unique_id]
    if not found:
        raise XdsFailure("no document", [RegistryErrorItem(
            "XDSDocumentUniqueIdError", f"the registry has no document {unique_id}")])
    return max(found, key=version_number)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, Code):
        return f"{value.code} ({value.scheme})"
    return str(value)


def _changed(before: DocumentEntry, after: DocumentEntry) -> list[tuple[str, str, str]]:
    return [(name, _text(getattr(before, attr)), _text(getattr(after, attr))) for name, attr in ATTRIBUTES
            if getattr(before, attr) != getattr(after, attr)]


def plan_update(client: XdsClient, latest: DocumentEntry, changes: Changes) -> UpdatePlan:
    """The Update Document Set that applies ``changes`` to ``latest``: a new version when an
    attribute changes, an UpdateAvailabilityStatus when the status does (of the new version when
    both do, which inherits the status of the one it follows, ITI TF-2 3.57.4.1.3.3.1)."""
    if latest.status not in MU.STATUSES:
        raise InputError(f"{latest.unique_id} is {latest.status}: only an Approved or Deprecated entry is updated")
    lid = latest.logical_id or latest.entry_uuid
    candidate = dataclasses.replace(latest, entry_uuid=new_uuid(), logical_id=lid, version=None, status=None,
                                    home=None, confidentiality_codes=list(latest.confidentiality_codes))
    apply_overrides(candidate, changes.attributes)
    if changes.comments is not None:
        candidate.comments = changes.comments
    changed = _changed(latest, candidate)
    new_status = changes.status if changes.status != latest.status else None
    if not changed and new_status is None:
        raise InputError(f"nothing to change: {latest.unique_id} already has these values"
                         + (f" and is {_word(latest.status)}" if changes.status else ""))
    ss = SubmissionSet(entry_uuid=new_uuid(), patient_id=latest.patient_id, unique_id=new_oid(),
                       source_id=client.source_id, submission_time=now_dtm(), content_type_code=CONTENT_TYPE)
    first = next((a for a in latest.authors if a.person or a.institutions), None)
    if first is not None:
        ss.authors = [Author(first.person, list(first.institutions), list(first.roles), list(first.specialties))]
    plan = UpdatePlan(latest, ss, [], changed=changed)
    objects: list[rim.RegistryObject] = []
    target = latest.entry_uuid
    if changed:
        plan.new_version = candidate
        objects.append(candidate.to_rim())
        target = candidate.entry_uuid
    objects += ss.to_rim()
    if changed:
        objects.append(Association(new_uuid(), AssocType.HAS_MEMBER, ss.entry_uuid, candidate.entry_uuid,
                                   submission_set_status="Original",
                                   extra_slots=[Slot(MU.PREVIOUS_VERSION, [str(version_number(latest))])]).to_rim())
    if new_status is not None:
        original = latest.status or Status.APPROVED
        plan.status_change = (original, new_status)
        objects.append(Association(new_uuid(), MU.UPDATE_AVAILABILITY_STATUS, ss.entry_uuid, target,
                                   extra_slots=[Slot(MU.ORIGINAL_STATUS, [original]),
                                                Slot(MU.NEW_STATUS, [new_status])]).to_rim())
    plan.objects = objects
    return plan


def update_request(plan: UpdatePlan) -> etree._Element:
    """The ``lcm:SubmitObjectsRequest`` of the update (ITI TF-2 3.57.4.1.2)."""
    return rim.submit_objects_request(plan.objects)


def send_update(client: XdsClient, plan: UpdatePlan) -> UpdateResult:
    """ITI-57 to the registry (action ``urn:ihe:iti:2010:UpdateDocumentSet``); raises
    :class:`XdsFailure` with the registry's errors unless it answers Success."""
    reply = client.transport.call(client.registry_url, Actions.UPDATE, update_request(plan))
    return UpdateResult(plan, check_response(client._registry_response(reply)))


def _word(status: str | None) -> str:
    return (status or "").rsplit(":", 1)[-1]
