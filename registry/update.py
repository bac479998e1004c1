"""ITI-57 Update Document Set at the Document Registry (ITI TF-2 3.57.4.1.3, XDS Metadata Update).

One update is checked against the registry and applied in one database transaction, all of it
or none of it (ITI TF-2 3.57.4.1.3.1: a failed operation fails the whole transaction):

* a new version of a DocumentEntry or Folder (``lid`` = the logical object; PreviousVersion on
  the SubmissionSet's HasMember = the registry's latest version) is stored with the next version
  number and the availabilityStatus of the version it follows, which becomes Deprecated
  (3.57.4.1.3.3.1, 3.57.4.1.3.3.3); with AssociationPropagation (the default) the Folder
  memberships and relationships of the previous version are copied onto the new one;
* an UpdateAvailabilityStatus sets the latest version of a DocumentEntry or Folder, or an
  Association, from OriginalStatus to NewStatus (3.57.4.1.3.3.2, 3.57.4.1.3.3.5);
* new associations between registered objects (Submit Association, 3.57.4.1.3.3.4) need Approved
  ends of one patient.

The message-level rules are :mod:`xds.validation.update`'s.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import Connection, or_, select, update
from sqlalchemy.exc import IntegrityError

from registry.register import Registry, _Plan, set_version_info, unresolved_reference, utc_now_dtm
from registry.store import schema as t
from xds import rim
from xds.errors import ErrorCode, ErrorList, XDSError
from xds.metadata import Association, Submission, new_uuid
from xds.patient import patient_key
from xds.rim import RegistryObject
from xds.validation import validate_submission
from xds.validation.update import propagates
from xds.vocabulary import AssocType, Status
from xds.vocabulary import MetadataUpdate as MU

log = logging.getLogger(__name__)

KINDS = {"ExtrinsicObject": ("document", "DocumentEntry"), "RegistryPackage": ("folder", "Folder")}


@dataclass(frozen=True)
class Stored:
    """One registered version of a DocumentEntry or Folder."""
    uuid: str
    kind: str
    lid: str
    version: int
    status: str
    patient_id: str
    unique_id: str
    is_latest: bool


@dataclass
class NewVersion:
    entry: str
    """The id of the new version in the message (symbolic or a UUID)."""
    kind: str
    previous: Stored
    propagate: bool


@dataclass
class StatusChange:
    target: str
    """The entryUUID in the registry, or the id of a new version of the message."""
    kind: str
    original: str
    new: str


@dataclass
class UpdatePlan:
    versions: list[NewVersion] = field(default_factory=list)
    changes: list[StatusChange] = field(default_factory=list)


def _stored(conn: Connection, table, column, values: set[str]) -> list[Stored]:
    if not values:
        return []
    kind = "document" if table is t.document_entries else "folder"
    rows = conn.execute(select(table.c.uuid, table.c.lid, table.c.version, table.c.status, table.c.patient_id,
                               table.c.unique_id, table.c.is_latest).where(column.in_(sorted(values)))).all()
    return [Stored(r.uuid, kind, r.lid or r.uuid, r.version, r.status, r.patient_id, r.unique_id, bool(r.is_latest))
            for r in rows]


def _objects(conn: Connection, uuids: set[str]) -> dict[str, tuple[str, str, str | None]]:
    """kind, status and patient of registered objects by entryUUID."""
    if not uuids:
        return {}
    ro = t.registry_objects
    return {r.uuid: (r.kind, r.status, r.patient_id)
            for r in conn.execute(select(ro.c.uuid, ro.c.kind, ro.c.status, ro.c.patient_id)
                                  .where(ro.c.uuid.in_(sorted(uuids))))}


def _connected(conn: Connection, uuid: str) -> bool:
    """Whether a registered version is a Folder member or an end of a relationship (Approved associations
    other than its SubmissionSet's), which pins its patient (ITI TF-2 3.57.4.1.3.3.1.7)."""
    a, ss = t.associations, t.submission_sets
    return conn.execute(select(a.c.uuid).where(
        or_(a.c.source == uuid, a.c.target == uuid), a.c.status == Status.APPROVED,
        a.c.association_type.in_(AssocType.ALL), a.c.source.not_in(select(ss.c.uuid))).limit(1)).first() is not None


def update_document_set(registry: Registry, objects: list[RegistryObject],
                        hidden: frozenset[str] = frozenset()) -> ErrorList:
    """Validate and apply one Update Document Set; the returned list holds errors and warnings.

    ``hidden``: registered objects (entryUUIDs; a logicalID hides every version) the caller may not
    act on, which the access policy has already reported: they are judged as objects the registry
    never held, so that the answer (an unknown logicalID's XDSMetadataVersionError, an unknown
    entryUUID's UnresolvedReferenceException) does not tell that they exist."""
    objects = rim.nest_free_standing(objects)
    sub = Submission.from_objects(objects)
    errors = validate_submission(sub, transaction="ITI-57", value_sets=registry.value_sets)
    if errors.has_errors:
        return errors
    for _attempt in range(3):
        try:
            with registry.db.write() as conn:
                plan, store = _check(registry, conn, objects, sub, hidden)
                _apply(registry, conn, plan, store)
            return errors
        except XDSError as exc:
            errors.extend(exc.errors)
            return errors
        except IntegrityError as exc:
            log.info("update: concurrent conflict, retrying (%s)", exc.orig)
    errors.add(ErrorCode.REGISTRY_BUSY, "the update conflicted with concurrent submissions; retry")
    return errors


def _check(registry: Registry, conn: Connection, objects: list[RegistryObject],
           sub: Submission, hidden: frozenset[str] = frozenset()) -> tuple[UpdatePlan, _Plan]:
    errors = ErrorList()
    ss = sub.submission_set
    assert ss is not None
    patient = patient_key(ss.patient_id or "")
    if registry.check_patient_ids:
        state = conn.execute(select(t.patients.c.state).where(t.patients.c.patient_id == patient)).scalar()
        if state != "open":
            why = "is not known to the registry (no patient record)" if state is None else \
                "has a closed record: updates are refused"
            raise XDSError(ErrorCode.UNKNOWN_PATIENT_ID, f"patient id {ss.patient_id} {why}", ss.entry_uuid)
    if conn.execute(select(t.submission_sets.c.uuid).where(t.submission_sets.c.unique_id == ss.unique_id)).first():
        errors.add(ErrorCode.DUPLICATE_UNIQUE_ID_IN_REGISTRY,
                   f"uniqueId {ss.unique_id} is already used by a SubmissionSet in the registry", ss.entry_uuid)
    in_message = {o.id: o for o in objects if o.tag != "ObjectRef"}
    for uid in sorted(_objects(conn, {i for i in in_message if i.startswith("urn:uuid:")})):
        errors.add(ErrorCode.REGISTRY_METADATA_ERROR,
                   f"entryUUID {uid} is already used by an object in the registry (ebRS 3.0 5.3.1)", uid)

    plan = UpdatePlan()
    members = {a.target: in_message[a.entry_uuid] for a in sub.associations
               if a.association_type == AssocType.HAS_MEMBER and a.source == ss.entry_uuid}
    versions = [(o, d.unique_id, d.patient_id) for d, o in zip(sub.documents, _in_order(objects, "ExtrinsicObject"))]
    versions += [(o, f.unique_id, f.patient_id) for f, o in zip(sub.folders, _folder_objects(objects, sub))]
    lids = {o.get("lid") or "" for o, _, _ in versions}
    registered: dict[str, list[Stored]] = {}
    for s in _stored(conn, t.document_entries, t.document_entries.c.lid, lids) + \
            _stored(conn, t.folders, t.folders.c.lid, lids):
        if s.lid not in hidden and s.uuid not in hidden:
            registered.setdefault(s.lid, []).append(s)
    new_kinds: dict[str, tuple[str, str]] = {}
    for o, unique_id, entry_patient in versions:
        kind, label = KINDS[o.tag]
        lid = o.get("lid") or ""
        member = members.get(o.id)
        wanted = int((member.slot_value(MU.PREVIOUS_VERSION) or "0").strip()) if member is not None else 0
        found = registered.get(lid, [])
        latest = next((s for s in found if s.is_latest), None)
        if latest is None:
            errors.add(ErrorCode.METADATA_VERSION_ERROR,
                       f"{label} {o.id}: logicalID {lid} names no {label} in the registry, so there is no version "
                       f"{wanted} to follow (ITI TF-2 3.57.4.1.3.3.1)", o.id)
            continue
        if latest.kind != kind:
            errors.add(ErrorCode.METADATA_UPDATE_ERROR,
                       f"{label} {o.id}: logicalID {lid} names a registered {latest.kind}, not a {label}", o.id)
            continue
        if latest.version != wanted:
            errors.add(ErrorCode.METADATA_VERSION_ERROR,
                       f"{label} {o.id}: PreviousVersion {wanted} is not the latest version of {lid} in the registry "
                       f"({latest.version}) (ITI TF-2 3.57.4.1.3.1.3.3)", o.id)
            continue
        if unique_id != latest.unique_id:
            errors.add(ErrorCode.METADATA_UPDATE_ERROR,
                       f"{label} {o.id}: uniqueId {unique_id} differs from {latest.unique_id}, the uniqueId of every "
                       f"version of {lid}; a uniqueId never changes (ITI TF-2 3.57.4.1.3.3.1)", o.id)
            continue
        if patient_key(entry_patient or "") != latest.patient_id and _connected(conn, latest.uuid):
            errors.add(ErrorCode.PATIENT_ID_RECONCILIATION_ERROR,
                       f"{label} {o.id}: a new patient id for {lid}, whose latest version is a Folder member or "
                       "related to another DocumentEntry (ITI TF-2 3.57.4.1.3.3.1.7)", o.id)
            continue
        plan.versions.append(NewVersion(o.id, kind, latest, propagates(member) if member is not None else True))
        new_kinds[o.id] = (kind, latest.status)

    known = _objects(conn, {ref for a in sub.associations for ref in (a.source, a.target)
                            if ref not in in_message and ref not in hidden})
    for a in sub.associations:
        if a.association_type == MU.UPDATE_AVAILABILITY_STATUS:
            _status_change(conn, a, in_message[a.entry_uuid], known, new_kinds, sub, plan, errors)
        elif a.source == ss.entry_uuid and a.association_type in (AssocType.HAS_MEMBER, MU.SUBMIT_ASSOCIATION):
            if a.target not in in_message:
                errors.add(ErrorCode.METADATA_UPDATE_OPERATION_ERROR,
                           f"Association {a.entry_uuid}: the SubmissionSet's {_short(a)} names {a.target}, which is "
                           "not an object of this update (ITI TF-2 3.57.4.1.3.3.4)", a.entry_uuid)
        else:
            _submitted_association(conn, a, known, in_message, sub, errors)
    if errors.has_errors:
        raise XDSError.from_list(errors)
    store = _Plan(objects=objects, sub=sub, registered_documents={d.unique_id for d in sub.documents if d.unique_id})
    return plan, store


def _short(a: Association) -> str:
    return a.association_type.rsplit(":", 1)[-1]


def _in_order(objects: list[RegistryObject], tag: str) -> list[RegistryObject]:
    return [o for o in objects if o.tag == tag]


def _folder_objects(objects: list[RegistryObject], sub: Submission) -> list[RegistryObject]:
    by_id = {o.id: o for o in objects if o.tag == "RegistryPackage"}
    return [by_id[f.entry_uuid] for f in sub.folders]


def _status_change(conn: Connection, a: Association, o: RegistryObject, known: dict[str, tuple[str, str, str | None]],
                   new_kinds: dict[str, tuple[str, str]], sub: Submission, plan: UpdatePlan,
                   errors: ErrorList) -> None:
    original, new = o.slot_value(MU.ORIGINAL_STATUS) or "", o.slot_value(MU.NEW_STATUS) or ""
    if a.target in new_kinds:
        kind, status = new_kinds[a.target]
    elif a.target in {x.entry_uuid for x in sub.associations}:
        kind, status = "association", Status.APPROVED
    elif a.target in known:
        kind, status, _ = known[a.target]
    elif a.target.startswith("urn:uuid:"):
        unresolved_reference(errors, a.entry_uuid, a.target)
        return
    else:
        errors.add(ErrorCode.METADATA_UPDATE_OPERATION_ERROR,
                   f"Association {a.entry_uuid}: UpdateAvailabilityStatus names {a.target}, which is neither a "
                   "new version nor an association of this update", a.entry_uuid)
        return
    if kind not in ("document", "folder", "association"):
        errors.add(ErrorCode.METADATA_UPDATE_OPERATION_ERROR,
                   f"Association {a.entry_uuid}: the availabilityStatus of a {kind.replace('_', ' ')} cannot be "
                   "updated; only DocumentEntries, Folders and Associations (ITI TF-2 3.57.4.1.3.1)", a.entry_uuid)
        return
    if kind in ("document", "folder") and a.target in known:
        table = t.document_entries if kind == "document" else t.folders
        if not conn.execute(select(table.c.is_latest).where(table.c.uuid == a.target)).scalar():
            errors.add(ErrorCode.METADATA_UPDATE_ERROR,
                       f"Association {a.entry_uuid}: {a.target} is not the latest version of its logical object; "
                       "only the latest version's availabilityStatus changes (ITI TF-2 3.57.4.1.3.3.2)", a.entry_uuid)
            return
    if status != original:
        errors.add(ErrorCode.METADATA_UPDATE_ERROR,
                   f"Association {a.entry_uuid}: OriginalStatus {original} is not the status of {a.target} "
                   f"({status}) (ITI TF-2 3.57.4.1.3.3.2)", a.entry_uuid)
        return
    plan.changes.append(StatusChange(a.target, kind, original, new))


def _submitted_association(conn: Connection, a: Association, known: dict[str, tuple[str, str, str | None]],
                           in_message: dict[str, RegistryObject], sub: Submission, errors: ErrorList) -> None:
    """A new association of the update (Submit Association, ITI TF-2 3.57.4.1.3.3.4): its registered
    ends exist and are Approved, and both ends are one patient's (3.57.4.1.3.3.6.7)."""
    patients: list[str] = []
    message_patients = {d.entry_uuid: d.patient_id for d in sub.documents}
    message_patients |= {f.entry_uuid: f.patient_id for f in sub.folders}
    for ref in (a.source, a.target):
        if ref in in_message:
            if ref in message_patients:
                patients.append(patient_key(message_patients[ref] or ""))
            continue
        if ref not in known:
            unresolved_reference(errors, a.entry_uuid, ref)
            return
        kind, status, patient = known[ref]
        if status != Status.APPROVED:
            errors.add(ErrorCode.METADATA_UPDATE_ERROR,
                       f"Association {a.entry_uuid}: {kind.replace('_', ' ')} {ref} is {status.rsplit(':', 1)[-1]}; "
                       "a new association links Approved objects (ITI TF-2 3.57.4.1.3.3.4)", a.entry_uuid)
            return
        if patient:
            patients.append(patient)
    if len(set(patients)) > 1:
        errors.add(ErrorCode.PATIENT_ID_RECONCILIATION_ERROR,
                   f"Association {a.entry_uuid}: its ends belong to different patients (ITI TF-2 3.57.4.1.3.3.6.7)",
                   a.entry_uuid)
        return
    if a.association_type == AssocType.HAS_MEMBER and a.source in known and a.target in known:
        x = t.associations
        if conn.execute(select(x.c.uuid).where(x.c.source == a.source, x.c.target == a.target,
                                               x.c.association_type == AssocType.HAS_MEMBER,
                                               x.c.status == Status.APPROVED).limit(1)).first():
            errors.add(ErrorCode.METADATA_UPDATE_ERROR,
                       f"Association {a.entry_uuid}: {a.target} is already a member of Folder {a.source} "
                       "(ITI TF-2 3.57.4.1.3.3.4)", a.entry_uuid)


# ----------------------------------------------------------------------------- applying

def _apply(registry: Registry, conn: Connection, plan: UpdatePlan, store: _Plan) -> None:
    for v in plan.versions:
        o = next(x for x in store.objects if x.id == v.entry)
        if o.element is not None:
            set_version_info(o.element, v.previous.version + 1)
    ids = registry._store(conn, store)
    new_ids = {v.entry: ids.get(v.entry, v.entry) for v in plan.versions}
    for v in plan.versions:
        _new_version(registry, conn, v, new_ids[v.entry])
    for change in plan.changes:
        target = ids.get(change.target, change.target)
        _set_status(conn, change.kind, target, change.new)


def _set_status(conn: Connection, kind: str, uuid: str, status: str) -> None:
    table = {"document": t.document_entries, "folder": t.folders, "association": t.associations}[kind]
    conn.execute(update(table).where(table.c.uuid == uuid).values(status=status))
    conn.execute(update(t.registry_objects).where(t.registry_objects.c.uuid == uuid).values(status=status))


def _new_version(registry: Registry, conn: Connection, v: NewVersion, uuid: str) -> None:
    table = t.document_entries if v.kind == "document" else t.folders
    prev = v.previous
    done = conn.execute(update(table).where(table.c.uuid == prev.uuid, table.c.is_latest == 1)
                        .values(is_latest=0, status=Status.DEPRECATED))
    if done.rowcount != 1:
        raise XDSError(ErrorCode.METADATA_VERSION_ERROR,
                       f"version {prev.version} of {prev.lid} was updated meanwhile; it is no longer the latest")
    conn.execute(update(t.registry_objects).where(t.registry_objects.c.uuid == prev.uuid)
                 .values(status=Status.DEPRECATED))
    conn.execute(update(table).where(table.c.uuid == uuid)
                 .values(lid=prev.lid, version=prev.version + 1, status=prev.status, is_latest=1))
    conn.execute(update(t.registry_objects).where(t.registry_objects.c.uuid == uuid).values(status=prev.status))
    if v.propagate:
        _propagate(registry, conn, prev, uuid)


def _propagate(registry: Registry, conn: Connection, prev: Stored, uuid: str) -> None:
    """Copy the previous version's Approved Folder memberships and relationships onto the new
    version (AssociationPropagation, ITI TF-2 3.57.4.1.3.1.3.4); the previous ones stay with it."""
    a, ss = t.associations, t.submission_sets
    rows = conn.execute(select(a.c.association_type, a.c.source, a.c.target, a.c.uuid)
                        .where(or_(a.c.source == prev.uuid, a.c.target == prev.uuid), a.c.status == Status.APPROVED,
                               a.c.association_type.in_(AssocType.ALL),
                               a.c.source.not_in(select(ss.c.uuid)))).all()
    now = utc_now_dtm()
    folders: set[str] = set()
    for row in rows:
        copy = Association(new_uuid(), row.association_type,
                           uuid if row.source == prev.uuid else row.source,
                           uuid if row.target == prev.uuid else row.target, status=Status.APPROVED)
        conn.execute(t.registry_objects.insert().values(uuid=copy.entry_uuid, kind="association",
                                                         patient_id=prev.patient_id, status=Status.APPROVED,
                                                         xml=rim.to_bytes(copy.to_rim())))
        conn.execute(a.insert().values(uuid=copy.entry_uuid, association_type=copy.association_type,
                                       source=copy.source, target=copy.target, status=Status.APPROVED))
        if copy.association_type == AssocType.HAS_MEMBER and prev.kind == "document":
            folders.add(copy.source)
    if folders:
        registry._touch_folders(conn, folders, now)
