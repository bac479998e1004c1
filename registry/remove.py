"""ITI-62 Remove Metadata at the Document Registry (ITI TF-2 3.62.4.1.3).

One removal is one database transaction: the registry's state around the named objects is read
(their rows locked on PostgreSQL), the rules of :mod:`xds.validation.removal` judged, and either
every named object is deleted, with its indexed rows, or nothing is. A removed DocumentEntry
leaves no trace a stored query or the access policy could find: its entry row, codes, authors,
reference ids and stored ebRIM go, and its uniqueId is freed once no entry holds it.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection, delete, or_, select

from registry.register import Registry
from registry.store import schema as t
from xds.errors import ErrorList
from xds.metadata import Association
from xds.validation.removal import RemovalRequest, RemovalState, validate_removal, validate_removal_message

log = logging.getLogger(__name__)

Refuse = Callable[[Connection, dict[str, "RemovedObject"]], set[str]]
"""The access policy's write rule for removals: of the named objects (registered, with their
patient), those the caller may not remove; answered as unknown objects."""


@dataclass(frozen=True)
class RemovedObject:
    """A named object as the registry holds it: what an audit record and the policy need."""
    uuid: str
    kind: str
    patient_id: str | None
    unique_id: str | None = None


@dataclass
class RemovalResult:
    errors: ErrorList
    removed: list[RemovedObject] = field(default_factory=list)
    """What was removed (empty on failure), or, for a dry run, what would be."""

    @property
    def patient_id(self) -> str | None:
        return next((o.patient_id for o in self.removed if o.patient_id), None)


_CHUNK = 500


def _chunks(values: Iterable[str]) -> Iterable[list[str]]:
    items = sorted(set(values))
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]


def read_state(conn: Connection, uuids: Iterable[str],
               lock: bool = False) -> tuple[RemovalState, dict[str, RemovedObject]]:
    """The registry's state around ``uuids`` (:class:`~xds.validation.removal.RemovalState`) and the
    named objects it holds. ``lock``: their rows are locked for the transaction (PostgreSQL)."""
    ro, assoc, de, ss, fol = t.registry_objects, t.associations, t.document_entries, t.submission_sets, t.folders
    state = RemovalState()
    objects: dict[str, RemovedObject] = {}
    for chunk in _chunks(uuids):
        stmt = select(ro.c.uuid, ro.c.kind, ro.c.patient_id).where(ro.c.uuid.in_(chunk))
        if lock and conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        for row in conn.execute(stmt):
            state.kinds[row.uuid] = row.kind
            objects[row.uuid] = RemovedObject(row.uuid, row.kind, row.patient_id)
        for table in (de, ss, fol):
            for row in conn.execute(select(table.c.uuid, table.c.unique_id).where(table.c.uuid.in_(chunk))):
                known = objects[row.uuid]
                objects[row.uuid] = RemovedObject(known.uuid, known.kind, known.patient_id, row.unique_id)

    def associations_where(condition) -> list[Association]:
        return [Association(r.uuid, r.association_type, r.source, r.target, r.submission_set_status, r.status)
                for r in conn.execute(select(assoc).where(condition))]

    named = [u for u, k in state.kinds.items() if k == "association"]
    for chunk in _chunks(named):
        for a in associations_where(assoc.c.uuid.in_(chunk)):
            state.associations[a.entry_uuid] = a
    around = set(state.kinds) | {e for a in state.associations.values() for e in (a.source, a.target)}
    for chunk in _chunks(around):
        for a in associations_where(or_(assoc.c.source.in_(chunk), assoc.c.target.in_(chunk))):
            state.associations[a.entry_uuid] = a
    return state, objects


def remove_metadata(registry: Registry, request: RemovalRequest, refuse: Refuse | None = None,
                    dry_run: bool = False) -> RemovalResult:
    """Judge and, when every rule passes, remove the named objects in one transaction.

    ``refuse``: the access policy's write rule (None: anyone may). A refused object is reported
    exactly as an unknown one (UnresolvedReferenceException), so a caller cannot tell a hidden
    object from a missing one. ``dry_run``: judge only, remove nothing (``xds remove --dry-run``).
    """
    errors = validate_removal_message(request)
    if errors.has_errors:
        return RemovalResult(errors)
    wanted = list(dict.fromkeys(request.object_refs))
    with registry.db.write() as conn:
        state, objects = read_state(conn, wanted, lock=not dry_run)
        if refuse is not None:
            named = {u: o for u, o in objects.items() if u in wanted}
            for uuid in refuse(conn, named):
                state.kinds.pop(uuid, None)
                objects.pop(uuid, None)
        errors = validate_removal(request, state)
        if errors.has_errors:
            return RemovalResult(errors)
        removed = [objects[u] for u in wanted]
        if not dry_run:
            _delete(conn, removed)
    if not dry_run:
        log.info("ITI-62: removed %d objects (%s)", len(removed),
                 ", ".join(f"{o.kind} {o.uuid}" for o in removed))
    return RemovalResult(errors, removed)


def _delete(conn: Connection, removed: list[RemovedObject]) -> None:
    by_kind: dict[str, list[str]] = {}
    for o in removed:
        by_kind.setdefault(o.kind, []).append(o.uuid)
    document_uids = {o.unique_id for o in removed if o.kind == "document" and o.unique_id}
    tables = {
        "document": [(t.entry_codes, "entry_uuid"), (t.entry_authors, "entry_uuid"),
                     (t.entry_reference_ids, "entry_uuid"), (t.document_entries, "uuid")],
        "submission_set": [(t.entry_authors, "entry_uuid"), (t.submission_sets, "uuid")],
        "folder": [(t.entry_codes, "entry_uuid"), (t.folders, "uuid")],
        "association": [(t.associations, "uuid")],
    }
    for kind, uuids in by_kind.items():
        for chunk in _chunks(uuids):
            for table, column in tables[kind]:
                conn.execute(delete(table).where(table.c[column].in_(chunk)))
            conn.execute(delete(t.registry_objects).where(t.registry_objects.c.uuid.in_(chunk)))
    for chunk in _chunks(document_uids):
        still: set[str] = set(conn.execute(select(t.document_entries.c.unique_id)
                                 .where(t.document_entries.c.unique_id.in_(chunk))).scalars())
        freed = [u for u in chunk if u not in still]
        if freed:
            conn.execute(delete(t.document_unique_ids).where(t.document_unique_ids.c.unique_id.in_(freed)))

