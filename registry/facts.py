"""The registry's read API for those who decide about its objects: the access policy, the
repository and the portal.

Small typed reads of what an access decision depends on (an entry's patient, authors and
confidentiality; what a submission set or folder holds; whether a professional authored a
document of the patient), so that no other package runs SQL on the registry's tables. Every
function takes an open connection: the caller chooses the transaction (often one shared with
the query it decides about).
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Executable, bindparam, or_, select, text

from registry.store import schema as t
from registry.store.schema import FACTS_SEPARATOR
from storage import driver_execute
from xds.patient import patient_key
from xds.vocabulary import AssocType


@dataclass(frozen=True)
class EntryFacts:
    """What visibility depends on, for one DocumentEntry, as registered."""
    uuid: str
    unique_id: str
    patient_id: str
    confidentiality: frozenset[str] = frozenset()
    """confidentialityCode codes (N, R, V, MASQUE_PS, INVISIBLE_PATIENT, ...)."""
    authors: frozenset[str] = frozenset()
    """National ids of the authorPerson values (first XCN component)."""


__all__ = ["FACTS_SEPARATOR", "RECORD_STATE_SQL", "DocumentLabel", "EntryFacts", "association_ends", "author_id",
           "document_labels", "entry_facts", "has_authored", "object_authors", "object_patients", "package_members",
           "EntriesPage", "entries_page", "packages_by_unique_id", "patient_of_document", "registered_hashes",
           "set_documents"]
"""``FACTS_SEPARATOR`` joins the confidentiality codes and authors an entry's row carries, as a
FindDocuments answer hands them to the policy."""

RECORD_STATE_SQL = "SELECT state FROM patients WHERE patient_id = :patient"
"""The patient's record state (``open``, ``closed``; NULL: never created), as a scalar subquery
with the parameter ``:patient``, a patient key (:func:`xds.patient.patient_key`, the form every
patient column of the registry holds): the access policy reads it in the same statement as the
patient's decisions, one round trip per request (benchmarks/query.py, issue 6)."""


def author_id(person: str) -> str:
    """The national id of an authorPerson XCN (its first component, ITI TF-3 4.2.3.1.4)."""
    return person.split("^", 1)[0].strip()


def _rows(conn: Connection, statement: Executable, values: dict[str, Any] | None = None) -> Iterable[Any]:
    """The rows of ``statement``, to unpack: the schema's columns are ``Column[Any]``, whose
    rows mypy unpacks as ``object`` values."""
    return conn.execute(statement, values)


_ENTRIES_BY = {
    "uuid": "SELECT uuid, unique_id, patient_id FROM document_entries WHERE uuid IN :ids",
    "unique_id": "SELECT uuid, unique_id, patient_id FROM document_entries WHERE unique_id IN :ids",
}
_FACTS_SQL = ("WITH e AS ({entries}) "
              "SELECT 'e' AS k, e.uuid, e.unique_id AS v, e.patient_id AS w FROM e "
              "UNION ALL SELECT 'c', c.entry_uuid, c.code, NULL FROM entry_codes c "
              "WHERE c.entry_uuid IN (SELECT uuid FROM e) AND c.kind = 'confidentiality' "
              "UNION ALL SELECT 'a', a.entry_uuid, a.person, NULL FROM entry_authors a "
              "WHERE a.entry_uuid IN (SELECT uuid FROM e)")
"""A DocumentEntry's facts in one round trip: the entry (``e``: uniqueId, patient), its
confidentiality codes (``c``) and its authors (``a``)."""
# IN (SELECT ...) rather than a join with e: SQLite would build a Bloom filter over the whole
# child table for a join (12 ms at 100,000 entries against 0.1 ms).
_FACTS = {key: text(_FACTS_SQL.format(entries=entries)).bindparams(bindparam("ids", expanding=True))
          for key, entries in _ENTRIES_BY.items()}
_FACTS_PG = {key: _FACTS_SQL.format(entries=entries.replace("IN :ids", "= ANY(:ids)"))
             for key, entries in _ENTRIES_BY.items()}
"""PostgreSQL: the ids as one array parameter, run by the driver (one statement text)."""
_CHUNK = 500


def entry_facts(conn: Connection, *, uuids: Iterable[str] | None = None,
                unique_ids: Iterable[str] | None = None) -> dict[str, EntryFacts]:
    """EntryFacts by entry uuid, for the given entry uuids or document uniqueIds (unknown ones are
    absent from the answer)."""
    key = "uuid" if uuids is not None else "unique_id"
    postgres = conn.dialect.name == "postgresql"
    values = list(dict.fromkeys(uuids if uuids is not None else (unique_ids or ())))
    entries: dict[str, tuple[str, str]] = {}
    conf: dict[str, set[str]] = {}
    people: dict[str, set[str]] = {}
    for i in range(0, len(values), _CHUNK):
        chunk = {"ids": values[i:i + _CHUNK]}
        rows = driver_execute(conn, _FACTS_PG[key], chunk)[0] if postgres else _rows(conn, _FACTS[key], chunk)
        for k, uuid, v, w in rows:
            if k == "e":
                entries[uuid] = (v, w)
            elif k == "c":
                conf.setdefault(uuid, set()).add(v.split("^", 1)[0])
            else:
                people.setdefault(uuid, set()).add(author_id(v))
    return {u: EntryFacts(u, uid, pid, frozenset(conf.get(u, ())), frozenset(people.get(u, ())))
            for u, (uid, pid) in entries.items()}


def has_authored(conn: Connection, patient_id: str, professional_id: str) -> bool:
    """Whether ``professional_id`` is the authorPerson of at least one DocumentEntry of the patient."""
    de, authors = t.document_entries, t.entry_authors
    escaped = professional_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    stmt = (select(de.c.uuid).join(authors, authors.c.entry_uuid == de.c.uuid)
            .where(de.c.patient_id == patient_key(patient_id),
                   or_(authors.c.person == professional_id, authors.c.person.like(escaped + "^%", escape="\\")))
            .limit(1))
    return conn.execute(stmt).first() is not None


def package_members(conn: Connection, packages: Iterable[str]) -> dict[str, set[str]]:
    """The DocumentEntry uuids each SubmissionSet or Folder holds (its HasMember targets that are
    DocumentEntries, ITI TF-3 4.1.4); a package without one maps to an empty set."""
    ids = list(dict.fromkeys(packages))
    out: dict[str, set[str]] = {u: set() for u in ids}
    assoc, de = t.associations, t.document_entries
    for i in range(0, len(ids), _CHUNK):
        stmt = (select(assoc.c.source, assoc.c.target)
                .join(de, de.c.uuid == assoc.c.target)
                .where(assoc.c.source.in_(ids[i:i + _CHUNK]),
                       assoc.c.association_type == AssocType.HAS_MEMBER))
        for source, target in _rows(conn, stmt):
            out[source].add(target)
    return out


def object_authors(conn: Connection, uuids: Iterable[str]) -> dict[str, frozenset[str]]:
    """National ids of the authorPerson values of DocumentEntries and SubmissionSets, by uuid."""
    ids = list(dict.fromkeys(uuids))
    found: dict[str, set[str]] = {}
    for i in range(0, len(ids), _CHUNK):
        stmt = select(t.entry_authors.c.entry_uuid, t.entry_authors.c.person) \
            .where(t.entry_authors.c.entry_uuid.in_(ids[i:i + _CHUNK]))
        for uuid, person in _rows(conn, stmt):
            found.setdefault(uuid, set()).add(author_id(person))
    return {u: frozenset(found.get(u, ())) for u in ids}


def object_patients(conn: Connection, uuids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """(kind, patient id) of registry objects by uuid: ``document``, ``submission_set``, ``folder``
    or ``association``; unknown uuids are absent."""
    ro = t.registry_objects
    return _pairs_by_uuid(conn, uuids, ro.c.uuid, ro.c.kind, ro.c.patient_id)


def association_ends(conn: Connection, uuids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """(sourceObject, targetObject) of Associations by uuid."""
    assoc = t.associations
    return _pairs_by_uuid(conn, uuids, assoc.c.uuid, assoc.c.source, assoc.c.target)


def _pairs_by_uuid(conn: Connection, uuids: Iterable[str], key: ColumnElement[str], first: ColumnElement[str],
                   second: ColumnElement[str]) -> dict[str, tuple[str, str]]:
    """(first, second) of the rows whose ``key`` is one of ``uuids``, read in chunks of bound ids."""
    ids = list(dict.fromkeys(uuids))
    out: dict[str, tuple[str, str]] = {}
    for i in range(0, len(ids), _CHUNK):
        for uuid, a, b in _rows(conn, select(key, first, second).where(key.in_(ids[i:i + _CHUNK]))):
            out[uuid] = (a, b)
    return out


def patient_of_document(conn: Connection, unique_id: str) -> str | None:
    """The patient of the DocumentEntry whose uniqueId is ``unique_id`` (None: unknown)."""
    de = t.document_entries
    value = conn.execute(select(de.c.patient_id).where(de.c.unique_id == unique_id).limit(1)).scalar()
    return str(value) if value is not None else None


def packages_by_unique_id(conn: Connection, unique_ids: Iterable[str]) -> dict[str, tuple[str, str, str]]:
    """(uuid, kind, patient id) of SubmissionSets and Folders by uniqueId."""
    ids = list(dict.fromkeys(unique_ids))
    out: dict[str, tuple[str, str, str]] = {}
    for table, kind in ((t.submission_sets, "submission_set"), (t.folders, "folder")):
        for i in range(0, len(ids), _CHUNK):
            for uuid, unique, patient in _rows(conn, select(table.c.uuid, table.c.unique_id, table.c.patient_id)
                                                     .where(table.c.unique_id.in_(ids[i:i + _CHUNK]))):
                out[unique] = (uuid, kind, patient)
    return out


def registered_hashes(conn: Connection, unique_ids: Iterable[str]) -> dict[str, str | None]:
    """The registered hash (lower-case SHA-1, None when none was given) of each known document
    uniqueId: what the repository's start-up sweep asks before it settles a pending document."""
    ids = list(dict.fromkeys(unique_ids))
    du = t.document_unique_ids
    out: dict[str, str | None] = {}
    for i in range(0, len(ids), _CHUNK):
        stmt = select(du.c.unique_id, du.c.hash).where(du.c.unique_id.in_(ids[i:i + _CHUNK]))
        for unique_id, digest in _rows(conn, stmt):
            out[unique_id] = (digest or "").lower() or None
    return out


@dataclass(frozen=True)
class DocumentLabel:
    """How a document is named to a person: its title and creation time as registered."""
    unique_id: str
    patient_id: str
    title: str | None
    creation_time: str | None


def document_labels(conn: Connection, unique_ids: Iterable[str]) -> dict[str, DocumentLabel]:
    """Title and creationTime of DocumentEntries by uniqueId, in one statement per 500 ids (the access
    history names the documents a professional read or added; the caller checks the reader may see
    each one before it shows a title)."""
    ids = list(dict.fromkeys(unique_ids))
    de = t.document_entries
    out: dict[str, DocumentLabel] = {}
    for i in range(0, len(ids), _CHUNK):
        stmt = select(de.c.unique_id, de.c.patient_id, de.c.title, de.c.creation_time) \
            .where(de.c.unique_id.in_(ids[i:i + _CHUNK]))
        for unique_id, patient, title, created in _rows(conn, stmt):
            out[unique_id] = DocumentLabel(unique_id, patient, title, created)
    return out


def set_documents(conn: Connection, set_unique_ids: Iterable[str]) -> dict[str, list[str]]:
    """The uniqueIds of the DocumentEntries each SubmissionSet (by uniqueId) holds, through its
    HasMember associations (ITI TF-3 4.1.4); one statement per 500 sets."""
    ids = list(dict.fromkeys(set_unique_ids))
    ss, assoc, de = t.submission_sets, t.associations, t.document_entries
    out: dict[str, list[str]] = {}
    for i in range(0, len(ids), _CHUNK):
        stmt = (select(ss.c.unique_id, de.c.unique_id)
                .join(assoc, assoc.c.source == ss.c.uuid).join(de, de.c.uuid == assoc.c.target)
                .where(ss.c.unique_id.in_(ids[i:i + _CHUNK]), assoc.c.association_type == AssocType.HAS_MEMBER))
        for set_uid, doc_uid in _rows(conn, stmt):
            out.setdefault(set_uid, []).append(doc_uid)
    return out


@dataclass(frozen=True)
class EntriesPage:
    """One page of a patient's DocumentEntries, newest first."""
    uuids: list[str]
    """The page's entries, by creationTime then uniqueId, newest first."""
    total: int
    """How many entries the filter keeps, over all pages."""
    type_codes: list[str]
    """The distinct typeCode keys (``code^^scheme``) of all the given entries, whatever the type filter:
    what a type selector offers, each code once."""


_PAGE_SQL = ("WITH v AS (SELECT uuid, unique_id, creation_time, type_code FROM document_entries "
             "WHERE uuid IN ({ids})), "
             "k AS (SELECT uuid, unique_id, creation_time FROM v{kept}) "
             "SELECT 'p', uuid, n FROM (SELECT uuid, ROW_NUMBER() OVER (ORDER BY creation_time DESC, unique_id DESC) "
             "AS n FROM k) r WHERE n > :offset AND n <= :offset + :limit "
             "UNION ALL SELECT 't', type_code, 0 FROM (SELECT DISTINCT type_code FROM v "
             "WHERE type_code IS NOT NULL) d "
             "UNION ALL SELECT 'n', NULL, COUNT(*) FROM k")
"""A page of entries, every type code among them and the filter's count, in one statement. The ids are one
parameter (a JSON array for SQLite's json_each, an array for PostgreSQL): a statement with thousands of bound
values costs more to build than to run."""
_TYPE_FILTER = " WHERE type_code = :type OR type_code LIKE :type_prefix ESCAPE '\\'"


def entries_page(conn: Connection, uuids: Iterable[str], *, type_code: str | None = None, offset: int = 0,
                 limit: int = 20) -> EntriesPage:
    """Filter by typeCode (its code, any scheme), sort (creationTime, then uniqueId, newest first) and page,
    in the database, the DocumentEntries ``uuids`` (those a stored query answered, that the access policy
    let through): a page of a long record reads its 20 rows, never every entry's metadata (issue 23)."""
    ids = list(dict.fromkeys(uuids))
    if not ids:
        return EntriesPage([], 0, [])
    postgres = conn.dialect.name == "postgresql"
    sql = _PAGE_SQL.format(ids="SELECT unnest(CAST(:ids AS text[]))" if postgres
                           else "SELECT value FROM json_each(:ids)", kept=_TYPE_FILTER if type_code else "")
    values: dict[str, Any] = {"ids": ids if postgres else json.dumps(ids), "offset": offset, "limit": limit}
    if type_code:
        escaped = type_code.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        values.update({"type": type_code, "type_prefix": escaped + "^%"})
    page: list[tuple[int, str]] = []
    types: list[str] = []
    total = 0
    for kind, value, n in _rows(conn, text(sql), values):
        if kind == "p":
            page.append((int(n), str(value)))
        elif kind == "t":
            types.append(str(value))
        else:
            total = int(n)
    return EntriesPage([u for _n, u in sorted(page)], total, sorted(types))
