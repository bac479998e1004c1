"""The DMP's access policy state: what the patient decided, per record and per document.

Own tables and own Alembic version table (``access_alembic_version``) in the registry's
database; the record itself (exists, open or closed) stays the registry's ``patients`` table.

* ``access_records``: per patient, the treating physician (medecin traitant) and whether the
  patient objects to break-glass and to emergency call-centre (centre 15) access;
* ``access_professionals``: per patient and professional (national id), ``authorised`` or
  ``blocked``;
* ``access_documents``: per document uniqueId, the patient's mask override (masked / unmasked to
  professionals, NULL: as the registered confidentialityCode says) and whether the professional
  disclosed a document registered INVISIBLE_PATIENT / INVISIBLE_REPRESENTANTS_LEGAUX;
* ``access_emergency``: every emergency access, listed for the patient;
* ``access_assertions``: XUA assertion ids seen, until they expire (replay detection).

Every ``patient_id`` column holds the patient key (:func:`xds.patient.patient_key`, CX.1 in CX.4
as ITI TF-3 4.2.3.1.7 identifies a patient), like the registry's: a patient written with or
without CX.5 has one set of decisions.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)

from registry.facts import RECORD_STATE_SQL
from storage.database import LAZY_COMMIT, Database, driver_execute
from xds.patient import patient_key

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "access_alembic_version"

metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
})

PID = 256
PROF = 128

records = Table(
    "access_records", metadata,
    Column("patient_id", String(PID), primary_key=True),
    Column("treating_physician", String(PROF)),
    Column("break_glass_allowed", Boolean, nullable=False, default=True),
    Column("centre_15_allowed", Boolean, nullable=False, default=True),
    Column("updated_at", Float, nullable=False),
)

professionals = Table(
    "access_professionals", metadata,
    Column("patient_id", String(PID), primary_key=True),
    Column("professional_id", String(PROF), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("updated_at", Float, nullable=False),
)

documents = Table(
    "access_documents", metadata,
    Column("unique_id", String(128), primary_key=True),
    Column("patient_id", String(PID), nullable=False),
    Column("masked", Boolean),
    Column("disclosed", Boolean, nullable=False, default=False),
    Column("updated_at", Float, nullable=False),
    Index(None, "patient_id"),
)

emergency = Table(
    "access_emergency", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("patient_id", String(PID), nullable=False),
    Column("professional_id", String(PROF), nullable=False),
    Column("professional_name", String(256)),
    Column("organization", String(256)),
    Column("mode", String(32), nullable=False),
    Column("at", Float, nullable=False),
    Index(None, "patient_id", "at"),
)

assertions = Table(
    "access_assertions", metadata,
    Column("assertion_id", String(256), primary_key=True),
    Column("expires_at", Float, nullable=False),
    Index(None, "expires_at"),
)

AUTHORISED = "authorised"
BLOCKED = "blocked"

_RECORD = (
    f"SELECT 'r' AS k, ({RECORD_STATE_SQL}) AS a, r.treating_physician AS b, r.break_glass_allowed AS c, "
    "r.centre_15_allowed AS d, r.patient_id IS NOT NULL AS e FROM (SELECT :patient AS patient_id) x "
    "LEFT JOIN access_records r ON r.patient_id = x.patient_id "
    "UNION ALL SELECT 'p', professional_id, status, NULL, NULL, NULL FROM access_professionals "
    "WHERE patient_id = :patient "
    "UNION ALL SELECT 'd', unique_id, NULL, masked, disclosed, NULL FROM access_documents "
    "WHERE patient_id = :patient")
"""The record's state (the registry's ``patients``, NULL when never created) and every decision of
the patient: one ``r`` row, a ``p`` row per professional listed, a ``d`` row per document whose
mask or disclosure the patient or a professional changed."""

RECORD_EXPRESSION = ("SELECT json_agg(json_build_array(k, a, b, c, d, e))::text FROM ("
                     + _RECORD.replace(":patient", ":rec_patient") + ") rec")
"""PostgreSQL: the rows of :data:`_RECORD` as one JSON text, for a statement that reads the record
along with something else (:meth:`AccessStore.record_expression`)."""

_FIRST_USE = ("INSERT INTO access_assertions (assertion_id, expires_at) VALUES (:assertion_id, :expires_at) "
              "ON CONFLICT (assertion_id) DO NOTHING")

_LAZY = f"lazy AS (SELECT {LAZY_COMMIT})"
_FIRST_USE_FROM_LAZY = ("INSERT INTO access_assertions (assertion_id, expires_at) SELECT :assertion_id, :expires_at "
                        "FROM lazy ON CONFLICT (assertion_id) DO NOTHING")
_USED = " UNION ALL SELECT 'u', NULL, NULL, NULL, NULL, NULL FROM used"

_FIRST_USE_ALONE = {True: _FIRST_USE, False: f"WITH {_LAZY} {_FIRST_USE_FROM_LAZY}"}
"""PostgreSQL, by ``replay_sync_commit``: the replay check alone; the second form commits without
waiting for the WAL flush (the ``lazy`` CTE sets ``synchronous_commit`` for its transaction)."""

_RECORD_AND_FIRST_USE = {
    True: f"WITH used AS ({_FIRST_USE} RETURNING 1) {_RECORD}{_USED}",
    False: f"WITH {_LAZY}, used AS ({_FIRST_USE_FROM_LAZY} RETURNING 1) {_RECORD}{_USED}",
}
"""PostgreSQL: the replay check of the request's assertion and the record in one autocommit
statement; a ``u`` row says the assertion id is new."""


@dataclass
class RecordPolicy:
    """One patient's decisions, with the record's state from the registry."""
    patient_id: str
    state: str | None = None
    """``open``, ``closed``, or None: no record (never created)."""
    treating_physician: str | None = None
    break_glass_allowed: bool = True
    centre_15_allowed: bool = True
    authorised: frozenset[str] = frozenset()
    blocked: frozenset[str] = frozenset()
    documents: dict[str, DocumentPolicy] = field(default_factory=dict)
    """uniqueId -> the patient's (or the author's) decision on that document, where one was taken."""

    def as_dict(self) -> dict[str, Any]:
        return {"patient_id": self.patient_id, "state": self.state, "treating_physician": self.treating_physician,
                "break_glass_allowed": self.break_glass_allowed, "centre_15_allowed": self.centre_15_allowed,
                "authorised": sorted(self.authorised), "blocked": sorted(self.blocked)}


@dataclass(frozen=True)
class DocumentPolicy:
    masked: bool | None = None
    disclosed: bool = False


NO_DECISION = DocumentPolicy()
"""A document no one masked, unmasked or disclosed (shared: a DocumentPolicy never changes)."""


def migrate(database: Database) -> None:
    """Create or upgrade the access tables (idempotent)."""
    database.migrate(MIGRATIONS)


class AccessStore:
    """Reads and changes of the policy state, each its own short transaction."""

    def __init__(self, database: Database, replay_sync_commit: bool = True) -> None:
        self.db = database
        self._next_purge = 0.0
        self.replay_sync_commit = replay_sync_commit
        """PostgreSQL: make each replay check wait for the WAL flush (``xua_replay_sync_commit``).

        Off, a crash of the database server itself can forget the assertion ids of its last
        ~0.6 s (3 x ``wal_writer_delay``): one of those assertions, if still valid, could then be
        used once more. The wait, once per request whose assertion is used once, cost 17% of the
        throughput of dmp FindDocuments that each carried a fresh assertion (benchmarks/query.py)."""

    # ------------------------------------------------------------------ reads
    def record(self, patient_id: str, conn: Connection | None = None) -> RecordPolicy:
        """The patient's decisions, read in one statement (every ITI-18/41/43 in mode dmp asks)."""
        if conn is None:
            with self.db.read() as conn:
                return self.record(patient_id, conn)
        return _record_of(patient_id, driver_execute(conn, _RECORD, {"patient": patient_key(patient_id)})[0])

    @staticmethod
    def record_expression(patient_id: str) -> tuple[str, dict[str, Any]]:
        """(SQL expression, parameters) of the patient's record for another statement to carry
        (PostgreSQL; ``registry.query.run_stored_query``'s ``also``); :meth:`record_of_value`
        reads its value."""
        return RECORD_EXPRESSION, {"rec_patient": patient_key(patient_id)}

    @staticmethod
    def record_of_value(patient_id: str, value: str) -> RecordPolicy:
        return _record_of(patient_id, [tuple(row) for row in json.loads(value)])

    def record_and_first_use(self, patient_id: str, conn: Connection, assertion_id: str, expires_at: float
                             ) -> tuple[RecordPolicy, bool]:
        """The record and the replay check of the request's assertion (:meth:`first_use`).

        On PostgreSQL one autocommit statement does both (``conn`` from ``Database.quick_read``):
        the replay check is then not a round trip of its own on the ITI-18 hot path.
        """
        if conn.dialect.name != "postgresql" or not getattr(conn.connection.dbapi_connection, "autocommit", False):
            return self.record(patient_id, conn), self.first_use(assertion_id, expires_at)
        self._purge_expired()
        rows = driver_execute(conn, _RECORD_AND_FIRST_USE[self.replay_sync_commit],
                              {"patient": patient_key(patient_id), "assertion_id": assertion_id,
                               "expires_at": expires_at})[0]
        return _record_of(patient_id, [r for r in rows if r[0] != "u"]), any(r[0] == "u" for r in rows)

    def emergency_accesses(self, patient_id: str) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            rows = conn.execute(select(emergency).where(emergency.c.patient_id == patient_key(patient_id))
                                .order_by(emergency.c.at, emergency.c.id)).all()
        return [{"professional_id": r.professional_id, "professional_name": r.professional_name,
                 "organization": r.organization, "mode": r.mode,
                 "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.at))} for r in rows]

    # ------------------------------------------------------------------ changes
    def _upsert_record(self, conn: Connection, patient_id: str, **values: object) -> None:
        patient_id = patient_key(patient_id)
        values["updated_at"] = time.time()
        res = conn.execute(update(records).where(records.c.patient_id == patient_id).values(**values))
        if res.rowcount == 0:
            base = {"patient_id": patient_id, "treating_physician": None, "break_glass_allowed": True,
                    "centre_15_allowed": True}
            conn.execute(insert(records).values({**base, **values}))

    def set_treating_physician(self, patient_id: str, professional_id: str | None) -> None:
        with self.db.write() as conn:
            self._upsert_record(conn, patient_id, treating_physician=professional_id or None)

    def set_emergency(self, patient_id: str, mode: str, allowed: bool) -> None:
        column = {"bris_de_glace": "break_glass_allowed", "centre_15": "centre_15_allowed"}[mode]
        with self.db.write() as conn:
            self._upsert_record(conn, patient_id, **{column: allowed})

    def set_professional(self, patient_id: str, professional_id: str, status: str | None) -> None:
        """``authorised``, ``blocked``, or None to forget the professional (neither)."""
        patient_id = patient_key(patient_id)
        with self.db.write() as conn:
            conn.execute(delete(professionals).where(professionals.c.patient_id == patient_id,
                                                     professionals.c.professional_id == professional_id))
            if status is not None:
                conn.execute(insert(professionals).values(patient_id=patient_id, professional_id=professional_id,
                                                          status=status, updated_at=time.time()))

    def set_document(self, unique_id: str, patient_id: str, *, masked: bool | None | str = "keep",
                     disclosed: bool | None = None) -> None:
        """Change a document's state; ``masked="keep"`` leaves the mask override as it is."""
        with self.db.write() as conn:
            row = conn.execute(select(documents).where(documents.c.unique_id == unique_id)).first()
            values: dict[str, object] = {"updated_at": time.time(), "patient_id": patient_key(patient_id)}
            if masked != "keep":
                values["masked"] = masked
            if disclosed is not None:
                values["disclosed"] = disclosed
            if row is None:
                conn.execute(insert(documents).values({"unique_id": unique_id, "masked": None,
                                                       "disclosed": False, **values}))
            else:
                conn.execute(update(documents).where(documents.c.unique_id == unique_id).values(**values))

    def log_emergency(self, patient_id: str, professional_id: str, mode: str, name: str | None = None,
                      organization: str | None = None) -> None:
        with self.db.write() as conn:
            conn.execute(insert(emergency).values(patient_id=patient_key(patient_id),
                                                  professional_id=professional_id, professional_name=name,
                                                  organization=organization, mode=mode,
                                                  at=time.time()))

    @staticmethod
    def merge_patient(conn: Connection, merged_id: str, surviving_id: str) -> int:
        """Move the merged patient's decisions to the surviving patient, in the caller's transaction
        (the registry's merge, ITI-8 ADT^A40 or ITI-104 Resolve Patient Duplicate, runs in the same
        one). Where both hold a decision the more protective one stays, since each was the
        patient's or a professional's: a professional blocked by either stays blocked, else an
        authorisation is kept; break-glass and centre 15 access stay allowed only if both
        allowed them; the survivor's treating physician, else the merged one's. Document masks
        and disclosures (keyed by uniqueId) and every emergency access move as they are. Returns
        the number of rows moved or merged."""
        old, new = patient_key(merged_id), patient_key(surviving_id)
        moved = 0
        rows = {r.patient_id: r for r in conn.execute(select(records).where(records.c.patient_id.in_([old, new])))}
        if old in rows:
            gone, kept = rows[old], rows.get(new)
            if kept is None:
                conn.execute(update(records).where(records.c.patient_id == old).values(patient_id=new))
            else:
                conn.execute(update(records).where(records.c.patient_id == new).values(
                    treating_physician=kept.treating_physician or gone.treating_physician,
                    break_glass_allowed=bool(kept.break_glass_allowed and gone.break_glass_allowed),
                    centre_15_allowed=bool(kept.centre_15_allowed and gone.centre_15_allowed),
                    updated_at=time.time()))
                conn.execute(delete(records).where(records.c.patient_id == old))
            moved += 1
        listed = conn.execute(select(professionals).where(professionals.c.patient_id.in_([old, new]))).all()
        survivor = {r.professional_id: r.status for r in listed if r.patient_id == new}
        for r in listed:
            if r.patient_id != old:
                continue
            moved += 1
            if r.professional_id not in survivor:
                conn.execute(update(professionals).where(professionals.c.patient_id == old,
                                                         professionals.c.professional_id == r.professional_id)
                             .values(patient_id=new))
                continue
            if BLOCKED in (r.status, survivor[r.professional_id]):
                conn.execute(update(professionals).where(professionals.c.patient_id == new,
                                                         professionals.c.professional_id == r.professional_id)
                             .values(status=BLOCKED, updated_at=time.time()))
            conn.execute(delete(professionals).where(professionals.c.patient_id == old,
                                                     professionals.c.professional_id == r.professional_id))
        for table in (documents, emergency):
            moved += conn.execute(update(table).where(table.c.patient_id == old).values(patient_id=new)).rowcount
        return moved

    def _purge_expired(self) -> None:
        now = time.time()
        if now >= self._next_purge:
            self._next_purge = now + 60
            with self.db.write() as conn:
                conn.execute(delete(assertions).where(assertions.c.expires_at < now - 3600))

    def first_use(self, assertion_id: str, expires_at: float) -> bool:
        """Remember an assertion id until it expires; False when it was seen before (a replay).

        One statement, ``INSERT ... ON CONFLICT DO NOTHING``, whose row count says whether the id
        is new: on PostgreSQL in autocommit (a single round trip on every XUA request), on SQLite
        in the serialised writer transaction. Expired ids are purged at most once a minute per
        process.
        """
        self._purge_expired()
        values = {"assertion_id": assertion_id, "expires_at": expires_at}
        if self.db.is_sqlite:
            with self.db.write() as conn:
                return driver_execute(conn, _FIRST_USE, values)[1] == 1
        with self.db.writer.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            return driver_execute(conn, _FIRST_USE_ALONE[self.replay_sync_commit], values)[1] == 1


def _record_of(patient_id: str, rows: Iterable[Sequence[Any]]) -> RecordPolicy:
    out = RecordPolicy(patient_key(patient_id))
    authorised: set[str] = set()
    blocked: set[str] = set()
    for kind, a, b, c, d, e in rows:
        if kind == "r":
            out.state = a
            if e:
                out.treating_physician = b
                out.break_glass_allowed = bool(c)
                out.centre_15_allowed = bool(d)
        elif kind == "p":
            if b == AUTHORISED:
                authorised.add(a)
            elif b == BLOCKED:
                blocked.add(a)
        else:
            out.documents[a] = DocumentPolicy(None if c is None else bool(c), bool(d))
    out.authorised, out.blocked = frozenset(authorised), frozenset(blocked)
    return out
