"""Small builders of registry content for the stored query tests.

They write the rows Registry.register writes (registry_objects with the ebRIM bytes, the indexed
tables) straight into the store, from xds.metadata objects, so that each test states exactly the
content it queries (statuses, times at odd precisions, several patients) without the ITI-42
checks in the way.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from sqlalchemy import update

from registry.store import schema as t
from xds import rim
from xds.hl7v2 import normalize_dtm
from xds.metadata import Association, Author, Code, DocumentEntry, Folder, SubmissionSet, new_uuid
from xds.vocabulary import AssocType, ObjectType, Status

PID = "123456789012311^^^&1.2.250.1.213.1.4.8&ISO"
PID2 = "987654321098704^^^&1.2.250.1.213.1.4.8&ISO"
_n = itertools.count(1)


def code(value: str, scheme: str = "1.2.3") -> Code:
    return Code(value, scheme, value)


def document(patient: str = PID, **kw) -> DocumentEntry:
    n = next(_n)
    values = {"entry_uuid": new_uuid(), "unique_id": f"1.2.3.4.{n}", "patient_id": patient, "mime_type": "text/xml",
              "title": f"doc {n}", "class_code": code("CLASS-A"), "type_code": code("TYPE-A"),
              "format_code": code("FMT-A"), "healthcare_facility_type_code": code("HCF-A"),
              "practice_setting_code": code("PS-A"), "confidentiality_codes": [code("N")],
              "creation_time": "20200101120000", "hash": "da39a3ee5e6b4b0d3255bfef95601890afd80709", "size": 10,
              "repository_unique_id": "1.2.3.9", "language_code": "fr-FR", "source_patient_id": patient,
              "authors": [Author(person="^Dupont^Jean")]}
    values.update(kw)
    return DocumentEntry(**values)


def folder(patient: str = PID, **kw) -> Folder:
    n = next(_n)
    values = {"entry_uuid": new_uuid(), "unique_id": f"1.2.3.5.{n}", "patient_id": patient, "title": f"folder {n}",
              "codes": [code("FOL-A")]}
    values.update(kw)
    return Folder(**values)


def submission_set(patient: str = PID, **kw) -> SubmissionSet:
    n = next(_n)
    values = {"entry_uuid": new_uuid(), "unique_id": f"1.2.3.6.{n}", "patient_id": patient, "source_id": "1.2.3.7",
              "submission_time": "20200102030405", "content_type_code": code("CT-A"),
              "authors": [Author(person="^Martin^Anne")], "title": f"ss {n}"}
    values.update(kw)
    return SubmissionSet(**values)


def _time(v):
    return normalize_dtm(v) if v else None


def _key(c):
    return c.key() if c else None


@dataclass
class Store:
    db: object
    rows: list = field(default_factory=list)

    def _object(self, conn, o: rim.RegistryObject, kind: str, patient: str, status: str) -> None:
        o.attributes["status"] = status
        conn.execute(t.registry_objects.insert().values(uuid=o.id, kind=kind, patient_id=patient, status=status,
                                                        xml=rim.to_bytes(o)))

    def _package(self, objects: list[rim.RegistryObject]) -> rim.RegistryObject:
        pkg, node = objects
        pkg.classifications.append(node)
        return pkg

    def put_document(self, conn, d: DocumentEntry, status: str = Status.APPROVED) -> str:
        o = d.to_rim()
        o.attributes.setdefault("lid", d.entry_uuid)
        self._object(conn, o, "document", d.patient_id, status)
        conn.execute(t.document_entries.insert().values(
            uuid=d.entry_uuid, unique_id=d.unique_id, patient_id=d.patient_id, status=status,
            object_type=d.object_type, lid=d.entry_uuid, version=1, class_code=_key(d.class_code),
            type_code=_key(d.type_code), format_code=_key(d.format_code),
            healthcare_facility_type_code=_key(d.healthcare_facility_type_code),
            practice_setting_code=_key(d.practice_setting_code), creation_time=_time(d.creation_time),
            service_start_time=_time(d.service_start_time), service_stop_time=_time(d.service_stop_time),
            hash=d.hash, size=d.size, repository_unique_id=d.repository_unique_id, mime_type=d.mime_type,
            title=d.title))
        for kind, cs in (("confidentiality", d.confidentiality_codes), ("event", d.event_codes)):
            for c in cs:
                conn.execute(t.entry_codes.insert().values(entry_uuid=d.entry_uuid, kind=kind, code=c.key()))
        for a in d.authors:
            if a.person:
                conn.execute(t.entry_authors.insert().values(entry_uuid=d.entry_uuid, person=a.person))
        for r in d.reference_ids:
            conn.execute(t.entry_reference_ids.insert().values(entry_uuid=d.entry_uuid, value=r))
        return d.entry_uuid

    def put_submission_set(self, conn, s: SubmissionSet, status: str = Status.APPROVED) -> str:
        self._object(conn, self._package(s.to_rim()), "submission_set", s.patient_id, status)
        conn.execute(t.submission_sets.insert().values(
            uuid=s.entry_uuid, unique_id=s.unique_id, patient_id=s.patient_id, source_id=s.source_id,
            submission_time=_time(s.submission_time), content_type_code=_key(s.content_type_code), status=status))
        for a in s.authors:
            if a.person:
                conn.execute(t.entry_authors.insert().values(entry_uuid=s.entry_uuid, person=a.person))
        return s.entry_uuid

    def put_folder(self, conn, f: Folder, status: str = Status.APPROVED, last_update: str = "20200102030405") -> str:
        f.last_update_time = last_update
        self._object(conn, self._package(f.to_rim()), "folder", f.patient_id, status)
        conn.execute(t.folders.insert().values(uuid=f.entry_uuid, unique_id=f.unique_id, patient_id=f.patient_id,
                                               last_update_time=_time(last_update), status=status))
        for c in f.codes:
            conn.execute(t.entry_codes.insert().values(entry_uuid=f.entry_uuid, kind="folder", code=c.key()))
        return f.entry_uuid

    def put_association(self, conn, a: Association, patient: str) -> str:
        self._object(conn, a.to_rim(), "association", patient, Status.APPROVED)
        conn.execute(t.associations.insert().values(uuid=a.entry_uuid, association_type=a.association_type,
                                                    source=a.source, target=a.target, status=Status.APPROVED,
                                                    submission_set_status=a.submission_set_status))
        return a.entry_uuid

    def submit(self, docs=(), folders=(), members=(), relations=(), ss: SubmissionSet | None = None,
               patient: str = PID, statuses: dict | None = None) -> dict:
        """One submission: SS, documents, folders, Folder HasMember doc (``members``: (folder, doc)),
        document relationships (``relations``: (type, source doc, target doc)) and the SS HasMember
        associations to all of them. Returns the uuids by role."""
        ss = ss or submission_set(patient)
        statuses = statuses or {}
        out = {"ss": ss.entry_uuid, "docs": [], "folders": [], "ss_members": {}, "folder_members": [],
               "relations": []}
        with self.db.write() as conn:
            self.put_submission_set(conn, ss)
            for d in docs:
                out["docs"].append(self.put_document(conn, d, statuses.get(d.entry_uuid, Status.APPROVED)))
            for f in folders:
                out["folders"].append(self.put_folder(conn, f))
            targets = list(out["docs"]) + list(out["folders"])
            for f, d in members:
                a = Association(new_uuid(), AssocType.HAS_MEMBER, f, d)
                out["folder_members"].append(self.put_association(conn, a, ss.patient_id))
                targets.append(a.entry_uuid)
            for kind, src, tgt in relations:
                a = Association(new_uuid(), kind, src, tgt)
                out["relations"].append(self.put_association(conn, a, ss.patient_id))
            for target in targets:
                a = Association(new_uuid(), AssocType.HAS_MEMBER, ss.entry_uuid, target,
                                submission_set_status="Original")
                out["ss_members"][target] = self.put_association(conn, a, ss.patient_id)
        return out

    def set_status(self, uuid: str, status: str) -> None:
        with self.db.write() as conn:
            conn.execute(update(t.document_entries).where(t.document_entries.c.uuid == uuid).values(status=status))
            conn.execute(update(t.registry_objects).where(t.registry_objects.c.uuid == uuid).values(status=status))


ON_DEMAND = ObjectType.ON_DEMAND_DOCUMENT
