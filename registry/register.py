"""ITI-42 Register Document Set-b at the Document Registry (ITI TF-2 3.42.4.1.3).

The checks here are the ones that need the registry's contents (known patient, uniqueness in
the registry, targets of associations, lifecycle); the message-level rules live in
:mod:`xds.validation`. A submission is stored in one transaction: all of it or none of it.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lxml import etree
from sqlalchemy import (
    BindParameter,
    Connection,
    String,
    bindparam,
    cast,
    literal_column,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError

from registry.store import schema as t
from storage.database import Database
from xds import rim
from xds.errors import ErrorCode, ErrorList, XDSError
from xds.hl7v2 import CX, is_dtm, normalize_dtm
from xds.metadata import Association, DocumentEntry, Submission, new_uuid
from xds.patient import ins_problem, patient_key
from xds.rim import RegistryObject
from xds.validation import ValueSets, validate_submission
from xds.vocabulary import DOC, FOL, NS_RIM, SS, AssocType, Status
from xds.xmlsafe import parse_bytes

log = logging.getLogger(__name__)

REFERENCE_ATTRIBUTES = ("classifiedObject", "registryObject", "sourceObject", "targetObject")


def utc_now_dtm() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


@dataclass
class _Lookup:
    patient_state: str | None = None
    packages: set[str] = field(default_factory=set)
    documents: dict[str, tuple[str | None, int | None]] = field(default_factory=dict)
    objects: dict[str, tuple[str, str, str | None]] = field(default_factory=dict)


@dataclass
class _Plan:
    """What a valid submission will write, worked out before the first insert."""
    objects: list[RegistryObject]
    sub: Submission
    registered_documents: set[str] = field(default_factory=set)
    """Document uniqueIds already in the registry (resubmissions of the same bytes)."""
    deprecate: set[str] = field(default_factory=set)
    touched_folders: set[str] = field(default_factory=set)


class Registry:
    """The Document Registry actor's metadata operations (transport-free)."""

    def __init__(self, db: Database, *, check_patient_ids: bool = True, value_sets: ValueSets | None = None) -> None:
        self.db = db
        self.check_patient_ids = check_patient_ids
        self.value_sets = value_sets

    # ------------------------------------------------------------------ patients (the DMP record)

    def add_patient(self, patient_id: str) -> bool:
        """Create a patient's record (the DMP's creation with consent); False if it exists.

        The record is kept under the patient key (:func:`xds.patient.patient_key`): the same
        patient written with or without CX.5 is one record. Raises ``ValueError`` for an id that is
        not a CX, or not a valid INS under an INS authority.
        """
        CX.parse(patient_id)
        why = ins_problem(patient_id)
        if why is not None:
            raise ValueError(f"patient id {patient_id}: {why}")
        key = patient_key(patient_id)
        with self.db.write() as conn:
            if conn.execute(select(t.patients.c.id).where(t.patients.c.patient_id == key)).first():
                return False
            conn.execute(t.patients.insert().values(patient_id=key, state="open",
                                                     created_at=datetime.now(UTC).isoformat()))
        return True

    def set_patient_state(self, patient_id: str, state: str) -> bool:
        with self.db.write() as conn:
            res = conn.execute(update(t.patients).where(t.patients.c.patient_id == patient_key(patient_id))
                               .values(state=state))
        return res.rowcount > 0

    def list_patients(self) -> list[tuple[str, str, str]]:
        with self.db.read() as conn:
            rows = conn.execute(select(t.patients.c.patient_id, t.patients.c.state, t.patients.c.created_at)
                                .order_by(t.patients.c.id)).all()
        return [r._tuple() for r in rows]

    def patient_record(self, patient_id: str, conn: Connection | None = None) -> PatientRecord | None:
        """The record of ``patient_id`` (any spelling of it), None when there is none."""
        if conn is None:
            with self.db.read() as conn:
                return self.patient_record(patient_id, conn)
        p = t.patients.c
        row = conn.execute(select(p.patient_id, p.state, p.created_at, p.family_name, p.given_name, p.birth_date,
                                  p.sex, p.replaced_by, p.updated_at)
                           .where(p.patient_id == patient_key(patient_id))).first()
        if row is None:
            return None
        return PatientRecord(row.patient_id, row.state, row.created_at,
                             PatientIdentity(row.family_name, row.given_name, row.birth_date, row.sex),
                             row.replaced_by, row.updated_at)

    def feed_patient(self, conn: Connection, patient_id: str, identity: PatientIdentity) -> str:
        """Create (``created``) or revise (``updated``) a record from the Patient Identity Feed
        (ITI-8 ADT^A01/A04/A05/A08, ITI TF-2 3.8.4.1; ITI-104 Add or Revise Patient, 3.104.4.1).

        A new record is open. A revision changes the demographics only: a closed record stays
        closed (its holder closed it, a feed does not re-open it). Raises ``ValueError`` for an
        id that is not a CX or not a valid INS, or for a record merged into another (its
        identifier was subsumed: the survivor is the one to revise).
        """
        check_patient_id(patient_id)
        now = datetime.now(UTC).isoformat()
        values = {"family_name": identity.family_name, "given_name": identity.given_name,
                  "birth_date": identity.birth_date, "sex": identity.sex, "updated_at": now}
        record = self.patient_record(patient_id, conn)
        if record is None:
            conn.execute(t.patients.insert().values(patient_id=patient_key(patient_id), state="open", created_at=now,
                                                     **values))
            return "created"
        if record.state == MERGED:
            raise ValueError(f"patient {patient_id} was merged into {record.replaced_by}: revise that record")
        conn.execute(update(t.patients).where(t.patients.c.patient_id == record.patient_id).values(**values))
        return "updated"

    def merge_patient(self, conn: Connection, merged_id: str, surviving_id: str,
                      identity: PatientIdentity | None = None) -> PatientMerge:
        """Merge the record of ``merged_id`` into the record of ``surviving_id`` (ITI-8 ADT^A40,
        ITI TF-2 3.8.4.2.3: the registry tracks the merge; ITI-104 Resolve Patient Duplicate,
        3.104.4.2.3: replace every reference to the duplicate by the survivor).

        Every DocumentEntry, Folder and SubmissionSet of the merged patient moves to the survivor:
        their rows, and the patientId ExternalIdentifier of their stored ebRIM, which now names
        ``surviving_id`` as sent (a LeafClass answer says whose entry it is; sourcePatientId keeps
        the source's id). The merged row stays, state ``merged`` and ``replaced_by`` the
        survivor's key, with ``identity`` if given: it links the patient's INS versions, and a
        later submission or feed under that id is refused. A survivor unknown so far is created,
        open unless the merged record was closed; a known survivor becomes closed if the merged
        record was (the DMP's holder closed it: its documents do not become readable again).
        Merging again into the same survivor changes nothing. Raises ``ValueError`` for a bad id,
        a merge of a patient into itself, into a merged record, or of a record merged elsewhere.
        """
        check_patient_id(merged_id)
        check_patient_id(surviving_id)
        old, new = patient_key(merged_id), patient_key(surviving_id)
        if old == new:
            raise ValueError(f"patient {merged_id} cannot be merged into itself")
        now = datetime.now(UTC).isoformat()
        merged = self.patient_record(old, conn)
        survivor = self.patient_record(new, conn)
        if survivor is not None and survivor.state == MERGED:
            raise ValueError(f"patient {surviving_id} was itself merged into {survivor.replaced_by}: "
                             "merge into that record")
        if merged is not None and merged.state == MERGED:
            if merged.replaced_by == new:
                return PatientMerge(old, new, already=True)
            raise ValueError(f"patient {merged_id} was already merged into {merged.replaced_by}")
        closed = merged is not None and merged.state == "closed"
        if survivor is None:
            conn.execute(t.patients.insert().values(patient_id=new, state="closed" if closed else "open",
                                                     created_at=merged.created_at if merged else now,
                                                     updated_at=now))
        elif closed and survivor.state != "closed":
            conn.execute(update(t.patients).where(t.patients.c.patient_id == new).values(state="closed",
                                                                                         updated_at=now))
        link: dict[str, str | None] = {"state": MERGED, "replaced_by": new, "updated_at": now}
        if identity is not None:
            link |= {"family_name": identity.family_name, "given_name": identity.given_name,
                     "birth_date": identity.birth_date, "sex": identity.sex}
        if merged is None:
            conn.execute(t.patients.insert().values(patient_id=old, created_at=now, **link))
        else:
            conn.execute(update(t.patients).where(t.patients.c.patient_id == old).values(**link))
        conn.execute(update(t.patients).where(t.patients.c.replaced_by == old).values(replaced_by=new))
        _move_objects(conn, old, new, surviving_id)
        moved = {}
        for table in (t.document_entries, t.folders, t.submission_sets):
            moved[table.name] = conn.execute(update(table).where(table.c.patient_id == old)
                                             .values(patient_id=new)).rowcount
        return PatientMerge(old, new, documents=moved["document_entries"], folders=moved["folders"],
                            submission_sets=moved["submission_sets"], survivor_created=survivor is None)

    # ------------------------------------------------------------------ ITI-42

    def register(self, objects: list[RegistryObject], transaction: str = "ITI-42") -> ErrorList:
        """Validate and store one submission; the returned list holds errors and warnings."""
        objects = rim.nest_free_standing(objects)
        sub = Submission.from_objects(objects)
        errors = validate_submission(sub, transaction=transaction, value_sets=self.value_sets)
        if errors.has_errors:
            return errors
        for _attempt in range(3):
            try:
                with self.db.write() as conn:
                    plan = self._check_against_registry(conn, objects, sub)
                    self._store(conn, plan)
                return errors
            except XDSError as exc:
                errors.extend(exc.errors)
                return errors
            except IntegrityError as exc:
                # A concurrent submission took a uniqueId or entryUUID between our checks and our
                # inserts; the next attempt sees it committed and answers with the precise error.
                log.info("register: concurrent conflict, retrying (%s)", exc.orig)
        errors.add(ErrorCode.REGISTRY_BUSY, "the submission conflicted with concurrent submissions; retry")
        return errors

    # ------------------------------------------------------------------ checks needing the registry

    def _lookup(self, conn: Connection, sub: Submission, uuids: set[str]) -> _Lookup:
        """Everything the checks need from the registry, in one round trip.

        The patient's record state, which uniqueIds are taken (and a document's registered hash
        and size), and kind/status/patient of the objects whose UUIDs the submission names.
        """
        ss = sub.submission_set
        assert ss is not None
        patient = patient_key(ss.patient_id or "")
        # validated: every object has its uniqueId (TF-3 4.2.3: R)
        unique_ids = sorted(u for u in {ss.unique_id} | {f.unique_id for f in sub.folders}
                            | {d.unique_id for d in sub.documents} if u is not None)
        uuid_list = sorted(uuids)
        values = {"patient": patient, **{f"u{i}": v for i, v in enumerate(unique_ids)},
                  **{f"o{i}": v for i, v in enumerate(uuid_list)}}

        def build():
            text = cast(null(), String)
            uids: list[BindParameter[Any]] = [bindparam(f"u{i}") for i in range(len(unique_ids))]
            parts = [
                select(literal_column("'patient'"), t.patients.c.patient_id, t.patients.c.state, text, text)
                .where(t.patients.c.patient_id == bindparam("patient")),
                select(literal_column("'package'"), t.submission_sets.c.unique_id, text, text, text)
                .where(t.submission_sets.c.unique_id.in_(uids)),
                select(literal_column("'package'"), t.folders.c.unique_id, text, text, text)
                .where(t.folders.c.unique_id.in_(uids)),
                select(literal_column("'document'"), t.document_unique_ids.c.unique_id, t.document_unique_ids.c.hash,
                       cast(t.document_unique_ids.c.size, String), text)
                .where(t.document_unique_ids.c.unique_id.in_(uids)),
            ]
            if uuid_list:
                parts.append(select(literal_column("'object'"), t.registry_objects.c.uuid, t.registry_objects.c.kind,
                                    t.registry_objects.c.status, t.registry_objects.c.patient_id)
                             .where(t.registry_objects.c.uuid.in_([bindparam(f"o{i}") for i in range(len(uuid_list))])))
            return union_all(*parts)

        found = _Lookup()
        for kind, key, a, b, c in self.db.fetch(conn, ("lookup", len(unique_ids), len(uuid_list)), build, values):
            if kind == "patient":
                found.patient_state = a
            elif kind == "package":
                found.packages.add(key)
            elif kind == "document":
                found.documents[key] = (a, int(b) if b is not None else None)
            else:
                found.objects[key] = (a, b, c)
        return found

    def _check_against_registry(self, conn: Connection, objects: list[RegistryObject], sub: Submission) -> _Plan:
        errors = ErrorList()
        ss = sub.submission_set
        assert ss is not None
        patient = patient_key(ss.patient_id or "")
        in_message = {o.id for o in objects if o.tag != "ObjectRef"}
        given_uuids = {i for i in in_message if i.startswith("urn:uuid:")}
        external = {ref for a in sub.associations for ref in (a.source, a.target) if ref not in in_message}
        found = self._lookup(conn, sub, given_uuids | external)

        if self.check_patient_ids:
            if found.patient_state is None:
                raise XDSError(ErrorCode.UNKNOWN_PATIENT_ID,
                               f"patient id {ss.patient_id} is not known to the registry (no patient record)",
                               ss.entry_uuid)
            if found.patient_state != "open":
                raise XDSError(ErrorCode.UNKNOWN_PATIENT_ID,
                               f"the record of patient {ss.patient_id} is closed: submissions are refused",
                               ss.entry_uuid)
        for uid in sorted(given_uuids & found.objects.keys()):
            errors.add(ErrorCode.REGISTRY_METADATA_ERROR,
                       f"entryUUID {uid} is already used by an object in the registry (ebRS 3.0 5.3.1)", uid)
        plan = _Plan(objects=objects, sub=sub, registered_documents=self._check_unique_ids(sub, found, errors))
        known = {k: v for k, v in found.objects.items() if k in external}
        folders_in_message = {f.entry_uuid: f for f in sub.folders}

        for a in sub.associations:
            for ref in (a.source, a.target):
                if ref not in in_message and ref not in known:
                    unresolved_reference(errors, a.entry_uuid, ref)
            target = known.get(a.target)
            if a.is_relationship and target is not None:
                kind, status, target_patient = target
                if kind != "document":
                    errors.add(ErrorCode.REGISTRY_METADATA_ERROR,
                               f"Association {a.entry_uuid}: target {a.target} of a "
                               f"{a.association_type.rsplit(':', 1)[-1]} association is not a DocumentEntry",
                               a.entry_uuid)
                elif status != Status.APPROVED:
                    errors.add(ErrorCode.REGISTRY_DEPRECATED_DOCUMENT_ERROR,
                               f"Association {a.entry_uuid}: target DocumentEntry {a.target} is deprecated; "
                               "only an Approved document can be replaced, transformed, appended or signed "
                               "(ITI TF-3 4.1.6)", a.entry_uuid)
                elif target_patient != patient:
                    errors.add(ErrorCode.PATIENT_ID_DOES_NOT_MATCH,
                               f"Association {a.entry_uuid}: target DocumentEntry {a.target} belongs to another "
                               f"patient than the submission's ({ss.patient_id})", a.entry_uuid)
                if a.is_replacement and status == Status.APPROVED:
                    plan.deprecate.add(a.target)
            if a.association_type == AssocType.HAS_MEMBER:
                source = known.get(a.source)
                if source is not None and source[0] == "folder":
                    if source[1] != Status.APPROVED:
                        errors.add(ErrorCode.REGISTRY_METADATA_ERROR,
                                   f"Association {a.entry_uuid}: Folder {a.source} is not Approved", a.entry_uuid)
                    if source[2] != patient:
                        errors.add(ErrorCode.PATIENT_ID_DOES_NOT_MATCH,
                                   f"Association {a.entry_uuid}: Folder {a.source} belongs to another patient than "
                                   f"the submission's ({ss.patient_id})", a.entry_uuid)
                    plan.touched_folders.add(a.source)
                target = known.get(a.target)
                if target is not None and target[0] == "document" and a.source in folders_in_message | known.keys():
                    if target[2] != patient:
                        errors.add(ErrorCode.PATIENT_ID_DOES_NOT_MATCH,
                                   f"Association {a.entry_uuid}: DocumentEntry {a.target} belongs to another patient "
                                   f"than the submission's ({ss.patient_id})", a.entry_uuid)
        if errors.has_errors:
            raise XDSError.from_list(errors)
        return plan

    def _check_unique_ids(self, sub: Submission, found: _Lookup, errors: ErrorList) -> set[str]:
        """uniqueIds must be new, except a document resubmitted with the same hash (NIST 12004).

        Returns the document uniqueIds already registered.
        """
        ss = sub.submission_set
        assert ss is not None
        package_ids = {ss.unique_id} | {f.unique_id for f in sub.folders}
        for uid in sorted(found.packages):
            errors.add(ErrorCode.DUPLICATE_UNIQUE_ID_IN_REGISTRY,
                       f"uniqueId {uid} is already used by a SubmissionSet or Folder in the registry "
                       "(ITI TF-2 3.42.4.1.3)", uid)
        registered_documents: set[str] = set()
        for doc in sub.documents:
            if doc.unique_id not in found.documents:
                continue
            registered_documents.add(doc.unique_id)
            registered_hash, registered_size = found.documents[doc.unique_id]
            if (registered_hash or "").lower() != (doc.hash or "").lower():
                errors.add(ErrorCode.NON_IDENTICAL_HASH,
                           f"DocumentEntry {doc.entry_uuid}: uniqueId {doc.unique_id} is registered with hash "
                           f"{registered_hash}, this submission has {doc.hash}", doc.entry_uuid)
            elif registered_size is not None and doc.size is not None and registered_size != doc.size:
                errors.add(ErrorCode.NON_IDENTICAL_SIZE,
                           f"DocumentEntry {doc.entry_uuid}: uniqueId {doc.unique_id} is registered with size "
                           f"{registered_size}, this submission has {doc.size}", doc.entry_uuid)
        for uid in sorted(found.documents.keys() & package_ids):
            errors.add(ErrorCode.DUPLICATE_UNIQUE_ID_IN_REGISTRY,
                       f"uniqueId {uid} is already used by a DocumentEntry in the registry (ITI TF-2 3.42.4.1.3)", uid)
        return registered_documents

    # ------------------------------------------------------------------ storing

    def _store(self, conn: Connection, plan: _Plan) -> dict[str, str]:
        """Insert the plan's objects; the UUIDs given to the submission's symbolic ids."""
        now = utc_now_dtm()
        # A fresh mapping per attempt: a retry after a concurrent conflict starts from the request as sent.
        ids = _uuid_mapping(plan.objects)

        def m(value: str) -> str:
            return ids.get(value, value)

        sub = plan.sub
        ss = sub.submission_set
        assert ss is not None
        patient = patient_key(ss.patient_id or "")
        folder_ids = {f.entry_uuid for f in sub.folders}
        xml = {o.id: _stored_xml(o, ids, now if o.id in folder_ids else None)
               for o in plan.objects if o.tag != "ObjectRef"}
        folder_ids = {m(f) for f in folder_ids}

        def obj_row(original_id: str, kind: str, patient_id: str | None) -> dict:
            return {"uuid": m(original_id), "kind": kind, "patient_id": patient_id, "status": Status.APPROVED,
                    "xml": xml[original_id]}

        rows_obj, rows_doc, rows_uid, rows_codes, rows_auth, rows_refs = [], [], [], [], [], []
        rows_ss, rows_fol, rows_assoc = [], [], []
        for d in sub.documents:
            uuid = m(d.entry_uuid)
            rows_obj.append(obj_row(d.entry_uuid, "document", patient))
            rows_doc.append(_document_row(d, uuid, m(d.logical_id) if d.logical_id else uuid, patient))
            rows_uid.append({"unique_id": d.unique_id, "hash": (d.hash or "").lower() or None, "size": d.size})
            for c in d.confidentiality_codes:
                rows_codes.append({"entry_uuid": uuid, "kind": "confidentiality", "code": c.key()})
            for c in d.event_codes:
                rows_codes.append({"entry_uuid": uuid, "kind": "event", "code": c.key()})
            for author in d.authors:
                if author.person:
                    rows_auth.append({"entry_uuid": uuid, "person": author.person})
            for r in d.reference_ids:
                rows_refs.append({"entry_uuid": uuid, "value": r})
        for s in sub.submission_sets:
            uuid = m(s.entry_uuid)
            rows_obj.append(obj_row(s.entry_uuid, "submission_set", patient))
            rows_ss.append({"uuid": uuid, "unique_id": s.unique_id, "patient_id": patient,
                            "source_id": s.source_id, "status": Status.APPROVED,
                            "submission_time": _time(s.submission_time),
                            "content_type_code": s.content_type_code.key() if s.content_type_code else None})
            for author in s.authors:
                if author.person:
                    rows_auth.append({"entry_uuid": uuid, "person": author.person})
        lids = {o.id: o.get("lid") for o in plan.objects if o.tag == "RegistryPackage"}
        for f in sub.folders:
            uuid = m(f.entry_uuid)
            rows_obj.append(obj_row(f.entry_uuid, "folder", patient))
            rows_fol.append({"uuid": uuid, "unique_id": f.unique_id, "patient_id": patient,
                             "last_update_time": now, "status": Status.APPROVED,
                             "lid": m(lids.get(f.entry_uuid) or f.entry_uuid), "version": 1})
            for c in f.codes:
                rows_codes.append({"entry_uuid": uuid, "kind": "folder", "code": c.key()})
        ss_uuid = m(ss.entry_uuid)
        associations = [Association(m(a.entry_uuid), a.association_type, m(a.source), m(a.target),
                                    a.submission_set_status) for a in sub.associations]
        for a in sub.associations:
            rows_obj.append(obj_row(a.entry_uuid, "association", patient))
        added = self._folder_memberships_of_replacements(conn, associations, plan.deprecate, ss_uuid)
        for a in added:
            rows_obj.append({"uuid": a.entry_uuid, "kind": "association", "patient_id": patient,
                             "status": Status.APPROVED, "xml": rim.to_bytes(a.to_rim())})
        for a in associations + added:
            rows_assoc.append({"uuid": a.entry_uuid, "association_type": a.association_type, "source": a.source,
                               "target": a.target, "status": Status.APPROVED,
                               "submission_set_status": a.submission_set_status})
            if a.association_type == AssocType.HAS_MEMBER and a.source != ss_uuid:
                plan.touched_folders.add(a.source)

        # New document uniqueIds: the primary key serialises concurrent first registrations.
        fresh = [r for r in rows_uid if r["unique_id"] not in plan.registered_documents]
        self.db.insert_many(conn, [(t.document_unique_ids, fresh), (t.registry_objects, rows_obj),
                                   (t.document_entries, rows_doc), (t.submission_sets, rows_ss),
                                   (t.folders, rows_fol), (t.associations, rows_assoc), (t.entry_codes, rows_codes),
                                   (t.entry_authors, rows_auth), (t.entry_reference_ids, rows_refs)])

        if plan.deprecate:
            self._deprecate(conn, plan.deprecate)
        existing_folders = plan.touched_folders - folder_ids
        if existing_folders:
            self._touch_folders(conn, existing_folders, now)
        return ids

    def _folder_memberships_of_replacements(self, conn: Connection, associations: list[Association],
                                            replaced: set[str], ss_id: str) -> list[Association]:
        """A replacement joins every Folder its original belonged to (ITI TF-3 4.1.6.1, NIST 12327).

        Each new Folder HasMember association is itself a member of the SubmissionSet, as TF-3
        4.1.4.3 requires of associations added to an existing Folder.
        """
        out: list[Association] = []
        for a in associations:
            if not (a.is_replacement and a.target in replaced):
                continue
            folders: Sequence[str] = conn.execute(
                select(t.associations.c.source)
                .join(t.folders, t.folders.c.uuid == t.associations.c.source)
                .where(t.associations.c.target == a.target,
                       t.associations.c.association_type == AssocType.HAS_MEMBER,
                       t.associations.c.status == Status.APPROVED)).scalars().all()
            for folder in folders:
                member = Association(new_uuid(), AssocType.HAS_MEMBER, folder, a.source, status=Status.APPROVED)
                out.append(member)
                out.append(Association(new_uuid(), AssocType.HAS_MEMBER, ss_id, member.entry_uuid,
                                       submission_set_status="Original", status=Status.APPROVED))
        return out

    def _deprecate(self, conn: Connection, originals: set[str]) -> None:
        """Deprecate replaced entries and, with them, their transformations and addenda (TF-3 4.1.6)."""
        todo: set[str] = set(originals)
        seen: set[str] = set()
        while todo:
            seen |= todo
            children: set[str] = set(conn.execute(
                select(t.associations.c.source).where(
                    t.associations.c.target.in_(list(todo)),
                    t.associations.c.association_type.in_([AssocType.XFRM, AssocType.APND]),
                    t.associations.c.status == Status.APPROVED)).scalars())
            todo = children - seen
        ids = list(seen)
        conn.execute(update(t.document_entries).where(t.document_entries.c.uuid.in_(ids))
                     .values(status=Status.DEPRECATED))
        conn.execute(update(t.registry_objects).where(t.registry_objects.c.uuid.in_(ids))
                     .values(status=Status.DEPRECATED))

    def _touch_folders(self, conn: Connection, folder_ids: set[str], now: str) -> None:
        """Folder lastUpdateTime follows every change of membership (TF-3 4.2.3.4.5)."""
        conn.execute(update(t.folders).where(t.folders.c.uuid.in_(list(folder_ids))).values(last_update_time=now))
        rows = conn.execute(select(t.registry_objects.c.uuid, t.registry_objects.c.xml)
                            .where(t.registry_objects.c.uuid.in_(list(folder_ids)))).all()
        for row in rows:
            el = parse_bytes(row.xml)
            _set_slot_element(el, "lastUpdateTime", now)
            conn.execute(update(t.registry_objects).where(t.registry_objects.c.uuid == row.uuid)
                         .values(xml=etree.tostring(el)))


def unresolved_reference(errors: ErrorList, association: str, ref: str) -> None:
    """An association's end that is neither in the submission nor in the registry (ebRS 3.0
    5.1.1, UnresolvedReferenceException). The access policy answers a registered object the
    caller may not act on with this same error, so that it cannot be told from an unknown one."""
    errors.add(ErrorCode.UNRESOLVED_REFERENCE,
               f"Association {association}: {ref} is neither in the submission nor in the registry", association)


def _uuid_mapping(objects: list[RegistryObject]) -> dict[str, str]:
    """A new UUID for every symbolic id of the submission (ITI TF-3 4.1.12.1)."""
    mapping: dict[str, str] = {}

    def collect(o: RegistryObject) -> None:
        if o.id and not o.id.startswith("urn:uuid:"):
            mapping.setdefault(o.id, new_uuid())
        for c in o.classifications:
            collect(c)
        for e in o.external_identifiers:
            collect(e)

    for o in objects:
        if o.tag != "ObjectRef":
            collect(o)
    return mapping


_RIM = "{%s}" % NS_RIM
_REFERENCES = ("id", "lid") + REFERENCE_ATTRIBUTES
_BEFORE_VERSION_INFO = (_RIM + "Classification", _RIM + "ExternalIdentifier", _RIM + "ContentVersionInfo")


def _stored_xml(o: RegistryObject, ids: dict[str, str], last_update_time: str | None) -> bytes:
    """The object as the registry keeps it: the request's own XML, UUIDs in place of symbolic
    ids, registry-assigned ``status``, ``lid`` and version (ebRIM 3.0 section 2.5.1), and for a
    Folder its ``lastUpdateTime`` (TF-3 4.2.3.4.5). Elements and children are put in ebRIM schema
    form (:func:`xds.rim.normalise_element`), so that LeafClass answers are schema-valid."""
    el = copy.deepcopy(o.element) if o.element is not None else rim.to_element(o)
    rim.normalise_element(el)
    for e in (el, *el.iterchildren(_RIM + "Classification", _RIM + "ExternalIdentifier")):
        if not e.get("id"):
            e.set("id", new_uuid())
        for attr in _REFERENCES:
            value = e.get(attr)
            if value is not None and value in ids:
                e.set(attr, ids[value])
        if e.tag == _RIM + "Classification" and not e.get("classifiedObject"):
            e.set("classifiedObject", el.attrib["id"])  # set above, when e was el
    if o.tag in ("ExtrinsicObject", "RegistryPackage", "Association"):
        el.set("status", Status.APPROVED)
    if o.tag in ("ExtrinsicObject", "RegistryPackage"):
        el.set("lid", el.get("lid") or el.attrib["id"])
        if el.find(_RIM + "VersionInfo") is None:
            set_version_info(el, 1)
    if last_update_time is not None:
        _set_slot_element(el, "lastUpdateTime", last_update_time)
    return etree.tostring(el)


def set_version_info(el: etree._Element, version: int) -> None:
    """Give ``el`` one ``rim:VersionInfo`` naming ``version``, in its ebRIM schema place: the
    registry, not the submitter, numbers versions (ebRIM 3.0 2.5.1; ITI TF-3 4.2.3.2.x version)."""
    for old in el.findall(_RIM + "VersionInfo"):
        el.remove(old)
    info = etree.Element(_RIM + "VersionInfo", versionName=str(version))
    anchor = next((c for c in el if c.tag in _BEFORE_VERSION_INFO), None)
    if anchor is None:
        el.append(info)
    else:
        anchor.addprevious(info)


def _set_slot_element(el, name: str, value: str) -> None:
    for slot in el.iterchildren(_RIM + "Slot"):
        if slot.get("name") == name:
            slot.getparent().remove(slot)
    new = etree.Element(_RIM + "Slot", name=name)
    etree.SubElement(etree.SubElement(new, _RIM + "ValueList"), _RIM + "Value").text = value
    el.insert(0, new)


MERGED = "merged"
"""State of a record merged into another (its ``replaced_by``) by the Patient Identity Feed."""
_PATIENT_ID_SCHEMES = frozenset({DOC.PATIENT_ID, SS.PATIENT_ID, FOL.PATIENT_ID})
_MERGE_BATCH = 500


@dataclass
class PatientIdentity:
    """Corroborating demographics of a patient (PID-5, PID-7, PID-8; Patient.name, birthDate, gender)."""
    family_name: str | None = None
    given_name: str | None = None
    birth_date: str | None = None
    """ISO 8601 date, as precise as the feed gave it: ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``."""
    sex: str | None = None
    """FHIR AdministrativeGender: ``male``, ``female``, ``other``, ``unknown``."""


@dataclass
class PatientRecord:
    """A DMP record as the registry keeps it (``patients``)."""
    patient_id: str
    """The patient key (:func:`xds.patient.patient_key`)."""
    state: str
    """``open``, ``closed`` or ``merged``."""
    created_at: str
    identity: PatientIdentity
    replaced_by: str | None = None
    updated_at: str | None = None


@dataclass
class PatientMerge:
    """What :meth:`Registry.merge_patient` moved."""
    merged: str
    surviving: str
    documents: int = 0
    folders: int = 0
    submission_sets: int = 0
    survivor_created: bool = False
    already: bool = False
    """The merged record was already merged into this survivor: nothing changed."""


def check_patient_id(patient_id: str) -> None:
    """``ValueError`` naming what is wrong with a patient id: not a CX (TF-3 4.2.3.1.7) or not a valid INS."""
    CX.parse(patient_id)
    why = ins_problem(patient_id)
    if why is not None:
        raise ValueError(f"patient id {patient_id}: {why}")


def _move_objects(conn: Connection, old: str, new: str, surviving_id: str) -> None:
    """Give the stored objects of patient key ``old`` to ``new``: their row, and the value of
    their patientId ExternalIdentifier (``surviving_id`` as sent), in batches."""
    o = t.registry_objects.c
    while True:
        rows = conn.execute(select(o.seq, o.xml).where(o.patient_id == old).order_by(o.seq)
                            .limit(_MERGE_BATCH)).all()
        if not rows:
            return
        changes = []
        for row in rows:
            el = parse_bytes(row.xml)
            for ident in el.iterchildren(_RIM + "ExternalIdentifier"):
                if ident.get("identificationScheme") in _PATIENT_ID_SCHEMES:
                    ident.set("value", surviving_id)
            changes.append({"s": row.seq, "x": etree.tostring(el), "p": new})
        conn.execute(update(t.registry_objects).where(o.seq == bindparam("s"))
                     .values(xml=bindparam("x"), patient_id=bindparam("p")), changes)


def _time(value: str | None) -> str | None:
    return normalize_dtm(value) if value and is_dtm(value) else None


def _document_row(d: DocumentEntry, uuid: str, lid: str, patient: str) -> dict:
    def key(code):
        return code.key() if code else None
    return {
        "uuid": uuid, "unique_id": d.unique_id, "patient_id": patient, "status": Status.APPROVED,
        "object_type": d.object_type, "lid": lid, "version": 1,
        "class_code": key(d.class_code), "type_code": key(d.type_code), "format_code": key(d.format_code),
        "healthcare_facility_type_code": key(d.healthcare_facility_type_code),
        "practice_setting_code": key(d.practice_setting_code),
        "creation_time": _time(d.creation_time), "service_start_time": _time(d.service_start_time),
        "service_stop_time": _time(d.service_stop_time), "hash": (d.hash or "").lower() or None, "size": d.size,
        "repository_unique_id": d.repository_unique_id, "mime_type": d.mime_type, "title": d.title,
        "confidentiality_codes": t.FACTS_SEPARATOR.join(c.key() for c in d.confidentiality_codes) or None,
        "author_persons": t.FACTS_SEPARATOR.join(a.person for a in d.authors if a.person) or None,
    }
