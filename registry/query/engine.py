"""The stored query engine: checked parameters in, registry objects out (no SOAP here).

Every query starts from an index (see registry/store/schema.py):

* Find* and GetAll: ``(patient_id, status)`` of document_entries / submission_sets / folders,
  with the other filters as ``IN`` on single-valued code columns and correlated ``EXISTS`` on the
  child tables (entry_codes, entry_authors, entry_reference_ids, keyed by entry uuid);
* Get* by entryUUID: the primary keys; by uniqueId: the uniqueId indexes;
* association walks: ``(source, association_type)`` and ``(target, association_type)``.

The objects of the answer are then read in one ``IN (...)`` query per 500 ids from
``registry_objects`` and returned in registration order (``seq``).

Time ranges (TF-2 3.18.4.1.2.3.7, "…From" inclusive, "…To" exclusive): both the parameter and
the stored value are taken at their first instant (``xds.hl7v2.normalize_dtm``: ``2004`` is
``20040101000000``), then compared as 14-digit strings: ``stored >= From`` and ``stored < To``.
So a value stored with a lower precision compares as its first instant: creationTime ``2004``
is found by ``From=2004`` or ``From=20040101`` but not by ``From=200402``; it is found by
``To=2005`` but not by ``To=2004``. An entry without the attribute never matches a bound on it.
"""
from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from sqlalchemy import Connection, bindparam, or_, select, text

from registry.query.definitions import BY_NAME, QUERIES, StoredQuery
from registry.query.params import CodeValue, Params, check_params
from registry.store import schema as t
from xds.errors import ErrorCode, ErrorList, XDSError
from xds.hl7v2 import normalize_dtm
from xds.responses import response_status
from xds.vocabulary import NS_RIM, AssocType, ObjectType, Status, q
from xds.xmlsafe import parse_bytes, safe_parser

LEAF_CLASS = "LeafClass"
OBJECT_REF = "ObjectRef"
RETURN_TYPES = (LEAF_CLASS, OBJECT_REF)
CHUNK = 500
DEFAULT_MAX_RESULTS = 10_000

de, ss, fol, assoc = t.document_entries, t.submission_sets, t.folders, t.associations
codes, authors, refs, ro = t.entry_codes, t.entry_authors, t.entry_reference_ids, t.registry_objects


@dataclass
class QueryResult:
    """What a stored query answered: the objects (rim elements) in order, or the errors."""
    errors: ErrorList = field(default_factory=ErrorList)
    objects: list[etree._Element] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    patients: list[str | None] = field(default_factory=list)
    """Per object (parallel to ``ids``): the patient it belongs to, for the access layer."""
    kinds: list[str] = field(default_factory=list)
    """Per object: ``document``, ``submission_set``, ``folder`` or ``association`` (as stored)."""
    return_type: str = LEAF_CLASS
    query: StoredQuery | None = None
    entry_facts: list[tuple[str, str, str]] | None = None
    """Asked with ``entry_facts=True`` and answered by FindDocuments: per object, the entry's
    uniqueId, its confidentiality codes and its authorPerson values, each list joined by
    ``registry.store.schema.FACTS_SEPARATOR``, as the registration wrote them; None otherwise."""
    also: object = None
    """The value of the ``also`` expression asked of FindDocuments, read in the same statement;
    None when the query did not run it or answered no object."""

    @property
    def status(self) -> str:
        return response_status(self.errors)

    @property
    def ok(self) -> bool:
        return not self.errors.has_errors


def chunks(values: Iterable[str], size: int = CHUNK) -> Iterator[list[str]]:
    values = list(dict.fromkeys(values))
    for i in range(0, len(values), size):
        yield values[i:i + size]


# ----------------------------------------------------------------------------- SQL fragments

def code_match(col, values: list[CodeValue]):
    """OR of the given codes, each ``code^^codingScheme`` as stored."""
    return col.in_([c.key for c in values])


def like_any(col, patterns: list[str]):
    """SQL LIKE with the consumer's ``%`` and ``_``; a backslash is literal (TF-2 3.18.4.1.2.3.7).

    Case-insensitive on both back-ends (SQLite's LIKE is, PostgreSQL gets ILIKE), so that one
    registry answers the same whatever its database.
    """
    return or_(*[col.ilike(p.replace("\\", "\\\\"), escape="\\") for p in patterns])


def time_range(p: Params, col, from_name: str, to_name: str) -> list:
    conds = []
    low, high = p.one(from_name), p.one(to_name)
    if low is not None:
        conds.append(col >= normalize_dtm(low))
    if high is not None:
        conds.append(col < normalize_dtm(high))
    return conds


def code_exists(p: Params, name: str, kind: str, owner) -> list:
    """One EXISTS per Slot of ``name`` (AND between Slots, OR inside one)."""
    return [select(codes.c.entry_uuid).where(codes.c.entry_uuid == owner, codes.c.kind == kind,
                                             code_match(codes.c.code, group)).exists()
            for group in p.groups(name) if group]


def content_conditions(p: Params) -> list:
    """Format, confidentiality and entry type filters on document_entries (Get*AndContents, GetAll)."""
    conds = [de.c.object_type.in_(p.values("$XDSDocumentEntryType") or [ObjectType.STABLE_DOCUMENT])]
    if p.has("$XDSDocumentEntryFormatCode"):
        conds.append(code_match(de.c.format_code, p.values("$XDSDocumentEntryFormatCode")))
    conds += code_exists(p, "$XDSDocumentEntryConfidentialityCode", "confidentiality", de.c.uuid)
    return conds


# ----------------------------------------------------------------------------- execution context

class _Ctx:
    def __init__(self, conn: Connection, p: Params, max_results: int, with_xml: bool = True,
                 with_facts: bool = False, also: tuple[str, dict] | None = None) -> None:
        self.conn, self.p, self.max_results, self.with_xml = conn, p, max_results, with_xml
        self.with_facts, self.also = with_facts, also
        self.level: int = p.one("$MetadataLevel", 1)

    def assoc(self) -> list:
        """At $MetadataLevel 1 only Approved associations are answered; level 2 adds the Deprecated
        ones (ITI TF-2 3.18.4.1.2.3.5.1, XDS Metadata Update)."""
        return [assoc.c.status == Status.APPROVED] if self.level == 1 else []

    def limited(self, stmt) -> list[str]:
        """Run a Find selection of ids, stopping one past the limit."""
        ids: list[str] = list(self.conn.execute(stmt.limit(self.max_results + 1)).scalars())
        self.check_count(len(ids))
        return ids

    def check_count(self, n: int) -> None:
        if n > self.max_results:
            raise XDSError(ErrorCode.TOO_MANY_RESULTS,
                           f"the query matches more than {self.max_results} objects, the most this registry "
                           "returns in one answer; narrow it (time range, codes, status)")

    def ids_in(self, col, values: Iterable[str], *conds, result=None) -> list:
        """Values of ``result`` (default ``col``'s table uuid) for rows whose ``col`` is in ``values``."""
        out: list = []
        for chunk in chunks(values):
            stmt = select(result if result is not None else col).where(col.in_(chunk), *conds)
            out += self.conn.execute(stmt).scalars().all()
        return out

    def rows_in(self, columns, col, values: Iterable[str], *conds) -> list:
        out: list = []
        for chunk in chunks(values):
            out += self.conn.execute(select(*columns).where(col.in_(chunk), *conds)).all()
        return out

    def documents(self, uuid_param: str = "$XDSDocumentEntryEntryUUID",
                  uid_param: str = "$XDSDocumentEntryUniqueId") -> list[str]:
        return self.package(de, uuid_param, uid_param, "$XDSDocumentEntryLogicalID")

    def package(self, table, uuid_param: str, uid_param: str, lid_param: str = "$XDSFolderLogicalID") -> list[str]:
        """Objects by entryUUID (that version), by logicalID (every version) or by uniqueId (the
        versions of one object share it: every version at $MetadataLevel 2, the latest at level 1;
        ITI TF-2 3.18.4.1.2.3.7.5, .6)."""
        p = self.p
        if p.has(uuid_param):
            return self.ids_in(table.c.uuid, p.values(uuid_param))
        if p.has(lid_param):
            return self.ids_in(table.c.lid, p.values(lid_param), result=table.c.uuid)
        latest = [table.c.is_latest == 1] if table is not ss and self.level == 1 else []
        return self.ids_in(table.c.unique_id, p.values(uid_param), *latest, result=table.c.uuid)

    def all_versions(self, table, uuids: list[str]) -> list[str]:
        """Every version of the logical objects of ``uuids`` (at $MetadataLevel 2)."""
        lids = self.ids_in(table.c.uuid, uuids, result=table.c.lid)
        return list(dict.fromkeys(uuids + self.ids_in(table.c.lid, lids, result=table.c.uuid)))

    def filtered_documents(self, uuids: Iterable[str]) -> list[str]:
        return self.ids_in(de.c.uuid, uuids, *content_conditions(self.p))


# ----------------------------------------------------------------------------- the queries

@dataclass
class Prefetched:
    """A handler's answer that already holds the object rows (seq, uuid, status, patient_id, kind, xml)."""
    rows: Sequence[Any]


_SINGLE_CODES = (("$XDSDocumentEntryClassCode", "class_code"), ("$XDSDocumentEntryTypeCode", "type_code"),
                 ("$XDSDocumentEntryPracticeSettingCode", "practice_setting_code"),
                 ("$XDSDocumentEntryHealthcareFacilityTypeCode", "healthcare_facility_type_code"),
                 ("$XDSDocumentEntryFormatCode", "format_code"))
_MULTI_CODES = (("$XDSDocumentEntryEventCodeList", "event"),
                ("$XDSDocumentEntryConfidentialityCode", "confidentiality"))
_TIMES = (("CreationTime", "creation_time"), ("ServiceStartTime", "service_start_time"),
          ("ServiceStopTime", "service_stop_time"))


_FACTS_COLUMNS = (", de.unique_id AS f_unique_id, de.confidentiality_codes AS f_confidentiality"
                  ", de.author_persons AS f_authors")
"""What an access policy reads of each entry, as the registration wrote it in the entry's row: on
the dmp hot path this is cheaper than walking each answer's LeafClass element, and than
aggregating the index tables row by row (benchmarks/query.py; migration 0003)."""


def _find_documents_sql(c: _Ctx, by_reference_id: bool) -> Prefetched:
    """FindDocuments and FindDocumentsByReferenceId (TF-2 3.18.4.1.2.3.7.1, .14) in one statement.

    The hottest query of a national record, so it is written as SQL text: the text is assembled
    from fixed fragments chosen by which parameters are present (SQLAlchemy caches its compiled
    form), every value is a bound parameter, and the objects' stored ebRIM comes back in the same
    round trip. Semantics are those of the fragments above: IN within a Slot, one EXISTS per Slot
    of a multi-valued code (AND between Slots), times compared at their first instant.
    """
    p = c.p
    leaf = c.with_xml
    arrays = c.conn.dialect.name == "postgresql"

    def one_of(name: str) -> str:
        """PostgreSQL: one array parameter (the text never varies with the number of values)."""
        return f"= ANY(:{name})" if arrays else f"IN :{name}"

    sql = ["SELECT ro.seq, ro.uuid, ro.status, ro.patient_id, ro.kind", ", ro.xml" if leaf else "",
           _FACTS_COLUMNS if c.with_facts else "",
           f", ({c.also[0]}) AS f_also" if c.also else "",
           " FROM document_entries de JOIN registry_objects ro ON ro.uuid = de.uuid"
           f" WHERE de.patient_id = :patient AND de.status {one_of('statuses')} AND de.object_type {one_of('types')}"
           " AND de.is_latest = 1"]
    values: dict = {**(c.also[1] if c.also else {}), "patient": p.one("$XDSDocumentEntryPatientId"),
                    "statuses": p.values("$XDSDocumentEntryStatus"),
                    "types": p.values("$XDSDocumentEntryType") or [ObjectType.STABLE_DOCUMENT]}
    expanding = ["statuses", "types"]
    for name, column in _SINGLE_CODES:
        if p.has(name):
            sql.append(f" AND de.{column} {one_of(column)}")
            values[column] = [v.key for v in p.values(name)]
            expanding.append(column)
    for name, kind in _MULTI_CODES:
        for i, group in enumerate(g for g in p.groups(name) if g):
            key = f"{kind}{i}"
            sql.append(f" AND EXISTS (SELECT 1 FROM entry_codes ec WHERE ec.entry_uuid = de.uuid"
                       f" AND ec.kind = '{kind}' AND ec.code {one_of(key)})")
            values[key] = [v.key for v in group]
            expanding.append(key)
    for prefix, column in _TIMES:
        low, high = p.one(f"$XDSDocumentEntry{prefix}From"), p.one(f"$XDSDocumentEntry{prefix}To")
        if low is not None:
            sql.append(f" AND de.{column} >= :{column}_from")
            values[f"{column}_from"] = normalize_dtm(low)
        if high is not None:
            sql.append(f" AND de.{column} < :{column}_to")
            values[f"{column}_to"] = normalize_dtm(high)
    if p.has("$XDSDocumentEntryAuthorPerson"):
        like = "ILIKE" if c.conn.dialect.name == "postgresql" else "LIKE"
        patterns = p.values("$XDSDocumentEntryAuthorPerson")
        sql.append(" AND EXISTS (SELECT 1 FROM entry_authors ea WHERE ea.entry_uuid = de.uuid AND ("
                   + " OR ".join(f"ea.person {like} :author{i} ESCAPE '\\'" for i in range(len(patterns))) + "))")
        values.update({f"author{i}": pat.replace("\\", "\\\\") for i, pat in enumerate(patterns)})
    if by_reference_id:
        sql.append(" AND EXISTS (SELECT 1 FROM entry_reference_ids er WHERE er.entry_uuid = de.uuid"
                   f" AND er.value {one_of('references')})")
        values["references"] = p.values("$XDSDocumentEntryReferenceIdList")
        expanding.append("references")
    sql.append(" ORDER BY ro.seq LIMIT :limit")
    values["limit"] = c.max_results + 1
    rows = c.conn.execute(_statement("".join(sql), () if arrays else tuple(expanding)), values).all()
    c.check_count(len(rows))
    return Prefetched(rows)


@functools.lru_cache(maxsize=512)
def _statement(sql: str, expanding: tuple[str, ...]):
    """The statement of an SQL text, built once: SQLAlchemy scans a text for its bind parameters
    with a regular expression each time one is built, tens of microseconds for FindDocuments with
    the access policy's columns, on every request. The texts are few (one per set of parameters
    present) and short (``params.MAX_AND_SLOTS`` and ``MAX_PATTERNS`` bound what a request adds),
    and a statement is immutable, so the workers' threads share them."""
    stmt = text(sql)
    return stmt.bindparams(*(bindparam(k, expanding=True) for k in expanding)) if expanding else stmt


def find_documents(c: _Ctx) -> Prefetched:
    return _find_documents_sql(c, by_reference_id=False)


def find_documents_by_reference_id(c: _Ctx) -> Prefetched:
    return _find_documents_sql(c, by_reference_id=True)


def find_submission_sets(c: _Ctx) -> list[str]:
    p = c.p
    conds = [ss.c.patient_id == p.one("$XDSSubmissionSetPatientId"),
             ss.c.status.in_(p.values("$XDSSubmissionSetStatus"))]
    if p.has("$XDSSubmissionSetSourceId"):
        conds.append(ss.c.source_id.in_(p.values("$XDSSubmissionSetSourceId")))
    conds += time_range(p, ss.c.submission_time, "$XDSSubmissionSetSubmissionTimeFrom",
                        "$XDSSubmissionSetSubmissionTimeTo")
    if p.has("$XDSSubmissionSetContentType"):
        conds.append(code_match(ss.c.content_type_code, p.values("$XDSSubmissionSetContentType")))
    if p.has("$XDSSubmissionSetAuthorPerson"):
        conds.append(select(authors.c.entry_uuid).where(
            authors.c.entry_uuid == ss.c.uuid,
            like_any(authors.c.person, p.values("$XDSSubmissionSetAuthorPerson"))).exists())
    return c.limited(select(ss.c.uuid).where(*conds))


def find_folders(c: _Ctx) -> list[str]:
    p = c.p
    conds = [fol.c.patient_id == p.one("$XDSFolderPatientId"), fol.c.status.in_(p.values("$XDSFolderStatus")),
             fol.c.is_latest == 1]
    conds += time_range(p, fol.c.last_update_time, "$XDSFolderLastUpdateTimeFrom", "$XDSFolderLastUpdateTimeTo")
    conds += code_exists(p, "$XDSFolderCodeList", "folder", fol.c.uuid)
    return c.limited(select(fol.c.uuid).where(*conds))


def _associations_among(c: _Ctx, objects: set[str]) -> list[str]:
    """Associations whose source is one of ``objects`` and whose target is one of them too, or is
    such an association (a SubmissionSet's HasMember to a Folder HasMember, TF-3 4.1.4.3)."""
    rows = c.rows_in((assoc.c.uuid, assoc.c.target), assoc.c.source, objects, *c.assoc())
    kept = {r.uuid for r in rows if r.target in objects}
    kept |= {r.uuid for r in rows if r.target in kept}
    return [r.uuid for r in rows if r.uuid in kept]


def get_all(c: _Ctx) -> list[str]:
    p = c.p
    patient = p.one("$patientId")
    docs = c.limited(select(de.c.uuid).where(de.c.patient_id == patient,
                                             de.c.status.in_(p.values("$XDSDocumentEntryStatus")),
                                             de.c.is_latest == 1, *content_conditions(p)))
    sets = c.limited(select(ss.c.uuid).where(ss.c.patient_id == patient,
                                             ss.c.status.in_(p.values("$XDSSubmissionSetStatus"))))
    folders = c.limited(select(fol.c.uuid).where(fol.c.patient_id == patient, fol.c.is_latest == 1,
                                                 fol.c.status.in_(p.values("$XDSFolderStatus"))))
    objects = set(docs) | set(sets) | set(folders)
    c.check_count(len(objects))
    return [*docs, *sets, *folders, *_associations_among(c, objects)]


def get_documents(c: _Ctx) -> list[str]:
    return c.documents()


def get_folders(c: _Ctx) -> list[str]:
    return c.package(fol, "$XDSFolderEntryUUID", "$XDSFolderUniqueId")


def _associations_of(c: _Ctx, uuids: list[str], *conds) -> list[str]:
    conds = (*conds, *c.assoc())
    out = c.ids_in(assoc.c.source, uuids, *conds, result=assoc.c.uuid)
    out += c.ids_in(assoc.c.target, uuids, *conds, result=assoc.c.uuid)
    return list(dict.fromkeys(out))


def get_associations(c: _Ctx) -> list[str]:
    return _associations_of(c, c.p.values("$uuid"))


def get_documents_and_associations(c: _Ctx) -> list[str]:
    docs = c.documents()
    return docs + _associations_of(c, docs) if docs else []


def get_submission_sets(c: _Ctx) -> list[str]:
    rows = c.rows_in((assoc.c.uuid, assoc.c.source), assoc.c.target, c.p.values("$uuid"),
                     assoc.c.association_type == AssocType.HAS_MEMBER, *c.assoc())
    sets = set(c.ids_in(ss.c.uuid, {r.source for r in rows}))
    return list(dict.fromkeys([r.source for r in rows if r.source in sets] +
                              [r.uuid for r in rows if r.source in sets]))


def get_submission_set_and_contents(c: _Ctx) -> list[str]:
    sets = c.package(ss, "$XDSSubmissionSetEntryUUID", "$XDSSubmissionSetUniqueId")
    if not sets:
        return []
    members = c.rows_in((assoc.c.uuid, assoc.c.target), assoc.c.source, sets,
                        assoc.c.association_type == AssocType.HAS_MEMBER, *c.assoc())
    targets = {r.target for r in members}
    member_assocs = c.rows_in((assoc.c.uuid, assoc.c.source, assoc.c.target), assoc.c.uuid, targets, *c.assoc())
    endpoints = targets | {e for r in member_assocs for e in (r.source, r.target)}
    all_docs = set(c.ids_in(de.c.uuid, endpoints))
    ok_docs = set(c.filtered_documents(all_docs))
    excluded = all_docs - ok_docs
    folders = set(c.ids_in(fol.c.uuid, targets))
    kept_assocs = {r.uuid for r in member_assocs if r.source not in excluded and r.target not in excluded}
    returned = (targets & ok_docs) | folders | kept_assocs
    return [*sets, *returned, *[r.uuid for r in members if r.target in returned]]


def get_folder_and_contents(c: _Ctx) -> list[str]:
    folders = c.package(fol, "$XDSFolderEntryUUID", "$XDSFolderUniqueId")
    if not folders:
        return []
    if c.level == 2:
        folders = c.all_versions(fol, folders)
    members = c.rows_in((assoc.c.uuid, assoc.c.target), assoc.c.source, folders,
                        assoc.c.association_type == AssocType.HAS_MEMBER, *c.assoc())
    docs = set(c.filtered_documents({r.target for r in members}))
    return [*folders, *docs, *[r.uuid for r in members if r.target in docs]]


def get_folders_for_document(c: _Ctx) -> list[str]:
    docs = c.documents()
    sources = c.ids_in(assoc.c.target, docs, assoc.c.association_type == AssocType.HAS_MEMBER, *c.assoc(),
                       result=assoc.c.source)
    return c.ids_in(fol.c.uuid, sources)


def get_related_documents(c: _Ctx) -> list[str]:
    docs = c.documents()
    if not docs:
        return []
    types = c.p.values("$AssociationTypes")
    rows = []
    for end in (assoc.c.source, assoc.c.target):
        rows += c.rows_in((assoc.c.uuid, assoc.c.source, assoc.c.target), end, docs,
                          assoc.c.association_type.in_(types), *c.assoc())
    others = {e for r in rows for e in (r.source, r.target)} - set(docs)
    related = set(c.ids_in(de.c.uuid, others, de.c.object_type.in_(
        c.p.values("$XDSDocumentEntryType") or [ObjectType.STABLE_DOCUMENT])))
    kept = [r.uuid for r in rows if (r.source in docs or r.source in related) and
            (r.target in docs or r.target in related)]
    if not kept:
        return []
    return [*docs, *related, *dict.fromkeys(kept)]


HANDLERS: dict[str, Callable[[_Ctx], list[str] | Prefetched]] = {
    "FindDocuments": find_documents,
    "FindSubmissionSets": find_submission_sets,
    "FindFolders": find_folders,
    "GetAll": get_all,
    "GetDocuments": get_documents,
    "GetFolders": get_folders,
    "GetAssociations": get_associations,
    "GetDocumentsAndAssociations": get_documents_and_associations,
    "GetSubmissionSets": get_submission_sets,
    "GetSubmissionSetAndContents": get_submission_set_and_contents,
    "GetFolderAndContents": get_folder_and_contents,
    "GetFoldersForDocument": get_folders_for_document,
    "GetRelatedDocuments": get_related_documents,
    "FindDocumentsByReferenceId": find_documents_by_reference_id,
}
assert set(HANDLERS) == set(BY_NAME), "every stored query has a handler"


# ----------------------------------------------------------------------------- answer

def _object_rows(conn: Connection, uuids: list[str], with_xml: bool) -> list:
    cols = [ro.c.seq, ro.c.uuid, ro.c.status, ro.c.patient_id, ro.c.kind] + ([ro.c.xml] if with_xml else [])
    rows: list[Any] = []
    for chunk in chunks(uuids):
        rows += conn.execute(select(*cols).where(ro.c.uuid.in_(chunk))).all()
    rows.sort(key=lambda r: r.seq)
    return rows


_parsers = threading.local()
_LIST_OPEN = ('<rim:RegistryObjectList xmlns:rim="%s">' % NS_RIM).encode()
_LIST_CLOSE = b"</rim:RegistryObjectList>"


def _parse_stored(rows) -> list[etree._Element]:
    """Parse the stored ebRIM of all answered objects in one lxml call.

    Stored XML is ours (written by the registry), yet it is still read with the safe parser, one
    per thread: building a parser costs about as much as parsing a DocumentEntry, and parsing the
    objects one by one costs several times one parse of their concatenation.
    """
    parser = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = safe_parser()
    data = b"".join(bytes(r.xml) for r in rows)
    if b"<!DOCTYPE" in data:
        for r in rows:
            parse_bytes(bytes(r.xml))  # refused there exactly as on the write path
    return list(etree.fromstring(_LIST_OPEN + data + _LIST_CLOSE, parser))


def _render_all(rows, return_type: str, home: str | None) -> list[etree._Element]:
    if return_type == OBJECT_REF:
        elements = [etree.Element(q(NS_RIM, "ObjectRef"), nsmap={"rim": NS_RIM}, id=r.uuid) for r in rows]
    else:
        elements = _parse_stored(rows)
        for el, r in zip(elements, rows):
            el.set("status", r.status)
    if home:
        for el in elements:
            el.set("home", home)
    return elements


@contextmanager
def _connection(source) -> Iterator[Connection]:
    if isinstance(source, Connection):
        with nullcontext(source) as conn:
            yield conn
    else:
        with source.quick_read() as conn:
            yield conn


def run_stored_query(source, query_id: str, params: dict[str, list[list[str]]], return_type: str = LEAF_CLASS,
                     settings=None, *, max_results: int | None = None,
                     home_community_id: str | None = None, entry_facts: bool = False,
                     also: tuple[str, dict] | None = None) -> QueryResult:
    """Run one stored query (ITI TF-2 3.18.4.1.2.3.7) against the registry.

    ``source``: a :class:`storage.database.Database` (a read transaction is opened) or an open
    SQLAlchemy ``Connection``. ``params``: parameter name -> one list of raw ``rim:Value`` texts per
    ``rim:Slot`` of that name, as sent. ``settings`` (``config.Settings``) gives
    ``max_query_results`` and ``home_community_id`` unless the keyword arguments do.
    ``entry_facts``: fill ``QueryResult.entry_facts`` where the query can (FindDocuments).
    ``also``: (a scalar SQL expression, its parameters) that FindDocuments evaluates in its own
    statement, its value in ``QueryResult.also``: what a caller needs with the answer, without a
    round trip of its own. Its parameter names must not be the query's (prefix them).
    Errors are returned in ``QueryResult.errors``, never raised.
    """
    if max_results is None:
        max_results = settings.max_query_results if settings is not None else DEFAULT_MAX_RESULTS
    home = home_community_id if home_community_id is not None else \
        (settings.home_community_id if settings is not None else None)
    result = QueryResult(return_type=return_type)
    try:
        if return_type not in RETURN_TYPES:
            raise XDSError(ErrorCode.REGISTRY_ERROR, f"returnType {return_type!r} is not supported: "
                                                     "use LeafClass or ObjectRef (ITI TF-2 3.18.4.1.2.1)")
        query = QUERIES.get((query_id or "").strip())
        if query is None:
            raise XDSError(ErrorCode.UNKNOWN_STORED_QUERY, f"stored query {query_id!r} is not one of the "
                                                           "stored queries of ITI TF-2 3.18.4.1.2.3.7", query_id)
        result.query = query
        p = check_params(query.params, query.one_of, params)
        community = p.one("$homeCommunityId")
        if community is not None and home and community != home:
            raise XDSError(ErrorCode.UNKNOWN_COMMUNITY, f"$homeCommunityId {community} is not this registry's "
                                                        f"community ({home})", "$homeCommunityId")
        with _connection(source) as conn:
            ctx = _Ctx(conn, p, max_results, with_xml=return_type == LEAF_CLASS, with_facts=entry_facts, also=also)
            answer = HANDLERS[query.name](ctx)
            if isinstance(answer, Prefetched):
                rows = answer.rows
            else:
                ids = list(dict.fromkeys(answer))
                ctx.check_count(len(ids))
                rows = _object_rows(conn, ids, with_xml=return_type == LEAF_CLASS)
        if query.single_patient and return_type == LEAF_CLASS:
            # ObjectRefs disclose no patient data, so they may span patients (NIST 12368)
            patients = sorted({r.patient_id for r in rows if r.patient_id})
            if len(patients) > 1:
                raise XDSError(ErrorCode.RESULT_NOT_SINGLE_PATIENT,
                               f"{query.name}: the objects asked for belong to more than one patient; a query "
                               "answer concerns one patient (ITI TF-2 3.18.4.1.3)")
        result.ids = [r.uuid for r in rows]
        result.patients = [r.patient_id for r in rows]
        result.kinds = [r.kind for r in rows]
        if ctx.with_facts and isinstance(answer, Prefetched):
            result.entry_facts = [(r.f_unique_id, r.f_confidentiality or "", r.f_authors or "") for r in rows]
        if ctx.also and isinstance(answer, Prefetched) and rows:
            result.also = rows[0].f_also
        result.objects = _render_all(rows, return_type, home)
    except XDSError as exc:
        result.errors.extend(exc.errors)
        result.objects, result.ids, result.patients, result.kinds = [], [], [], []
        result.entry_facts = result.also = None
    return result


def query_by_name(name: str) -> StoredQuery:
    return BY_NAME[name]
