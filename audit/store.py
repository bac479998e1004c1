"""Audit tables: the durable outbox, delivery cursors, the hash-chained record store and its keys.

* ``audit_outbox``: every audit message this server emits, as a ready RFC 5424 message, written
  before anything is sent (ITI TF-2 3.20.4.1: audit must not be lost when an ARR is down).
* ``audit_cursors``: per destination (``local`` for our own store, one per forwarded ARR), the
  last outbox id delivered. Delivery is in id order and at-least-once.
* ``audit_records``: the Audit Record Repository's store. Each record keeps the raw message,
  indexed fields and ``hash = SHA-256(prev_hash, record)``; the chain makes an edited, deleted
  or inserted record visible to :func:`verify`. Appends are serialised (SQLite ``BEGIN
  IMMEDIATE``, PostgreSQL transaction-scoped advisory lock) so the chain has one order.
* ``audit_record_keys``: (kind, value) -> record, for searches by user, patient, object...
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)

from audit.fields import Fields
from storage.database import LAZY_COMMIT, driver_execute

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "audit_alembic_version"
GENESIS = "0" * 64
LOCAL = "local"
CHAIN_LOCK = 0x41554454  # 'AUDT': PostgreSQL advisory lock key of chain appends
OUTBOX_LOCK = 0x4155444F  # 'AUDO': PostgreSQL advisory lock key of outbox inserts
_ID = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(naming_convention={"ix": "ix_%(table_name)s_%(column_0_N_name)s", "pk": "pk_%(table_name)s"})

outbox = Table("audit_outbox", metadata,
               Column("id", _ID, primary_key=True, autoincrement=True),
               Column("created_at", Float, nullable=False),
               Column("message", LargeBinary, nullable=False),
               Column("fields", Text),
               sqlite_autoincrement=True)
"""Ids must never be reused (SQLite AUTOINCREMENT) and must become visible in id order: see enqueue."""

cursors = Table("audit_cursors", metadata,
                Column("destination", String(255), primary_key=True),
                Column("last_id", BigInteger, nullable=False))

records = Table("audit_records", metadata,
                Column("seq", BigInteger, primary_key=True, autoincrement=False),
                Column("received_at", Float, nullable=False),
                Column("transport", String(8), nullable=False),
                Column("peer", String(255)),
                Column("event_ts", Float),
                Column("event_id", String(64)),
                Column("event_action", String(4)),
                Column("event_type", String(64)),
                Column("outcome", Integer),
                Column("source_id", String(255)),
                Column("purpose", String(512)),
                Column("status", String(16), nullable=False),
                Column("keys", Text, nullable=False),
                Column("raw", LargeBinary, nullable=False),
                Column("prev_hash", String(64), nullable=False),
                Column("hash", String(64), nullable=False),
                Index(None, "event_ts"),
                Index(None, "event_id", "event_ts"))

record_keys = Table("audit_record_keys", metadata,
                    Column("seq", BigInteger, nullable=False),
                    Column("kind", String(16), nullable=False),
                    Column("value", String(255), nullable=False),
                    Index(None, "kind", "value", "seq"))


_RECORD_COLUMNS = ("seq", "received_at", "transport", "peer", "event_ts", "event_id", "event_action", "event_type",
                   "outcome", "source_id", "purpose", "status", "keys", "raw", "prev_hash", "hash")
_RECORD_TYPES = ("int8", "float8", "varchar", "varchar", "float8", "varchar", "varchar", "varchar",
                 "int4", "varchar", "varchar", "varchar", "text", "bytea", "varchar", "varchar")


def _copy(conn, table: str, columns: tuple[str, ...], types: tuple[str, ...], rows: list[tuple]) -> None:
    """PostgreSQL: rows in with ``COPY ... FROM STDIN (FORMAT BINARY)``, in the connection's transaction.

    A batch of audit rows as an executemany costs one execution per row on the server and one
    parameter conversion per value in the driver; COPY streams them in one command, formatted by
    psycopg's C code (benchmarks/audit.py: what auditing adds to an ITI-18). The binary format
    sends a message's bytes as they are, where the text format doubles them into hex and the
    server decodes them back. Rows keep their order, so identity values are taken in order.
    ``types``: the columns' PostgreSQL types, which the binary format needs.
    """
    if not rows:
        return
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)
    finally:
        cursor.close()


def migrate(database) -> None:
    """Create or upgrade the audit tables (idempotent). ``database``: storage.database.Database."""
    database.migrate(MIGRATIONS)


# -- outbox --------------------------------------------------------------------------------------

_OUTBOX_BEGIN = {True: "SELECT pg_advisory_xact_lock(:k)",
                 False: "SELECT pg_advisory_xact_lock(:k), " + LAZY_COMMIT}
"""The first statement of an outbox transaction, by ``sync_commit``: one round trip either way
(the lock carries ``Database.write``'s own lazy-commit statement), run by the driver itself
(SQLAlchemy's per-statement work was half the cost of a batch)."""


def enqueue(database, messages: Sequence[bytes | tuple[bytes, str | None]], sync_commit: bool = True) -> None:
    """One transaction, one multi-row INSERT (a COPY on PostgreSQL): the only cost auditing adds
    to the database.

    The senders read by id after a cursor, so ids must commit in id order: a sequence value
    taken by one transaction and committed after a later one would be skipped. SQLite writers
    are serial (BEGIN IMMEDIATE); on PostgreSQL a transaction-scoped advisory lock serialises
    the (batched, short) outbox inserts the same way.

    ``sync_commit=False`` (PostgreSQL): the commit does not wait for the WAL flush
    (``synchronous_commit`` off for this transaction only). Committed rows survive any crash of
    ours; a crash of the database server itself can lose the last ~0.6 s of them (3 x
    ``wal_writer_delay``). Waiting for that flush was 6 points of the 20% that auditing took
    from ITI-18 throughput (benchmarks/audit.py). Anything committed later that depends on these
    rows (the chain append) flushes them with its own commit.
    """
    if not messages:
        return
    now = time.time()
    rows: list[dict[str, Any]] = [{"created_at": now, "message": m, "fields": None} if isinstance(m, bytes) else
            {"created_at": now, "message": m[0], "fields": m[1]} for m in messages]
    with database.write() as conn:
        if conn.dialect.name == "postgresql":
            driver_execute(conn, _OUTBOX_BEGIN[bool(sync_commit)], {"k": OUTBOX_LOCK})
            _copy(conn, "audit_outbox", ("created_at", "message", "fields"), ("float8", "bytea", "text"),
                  [(now, r["message"], r["fields"]) for r in rows])
        else:
            conn.execute(insert(outbox), rows)


def pending(database, destination: str, limit: int = 500, with_fields: bool = False) -> tuple[int, list[tuple]]:
    """(cursor, [(id, message)...]) not yet delivered to ``destination``, in order; with
    ``with_fields`` each row also carries the indexed fields the auditor computed (JSON or None)."""
    with database.read() as conn:
        last = conn.execute(select(cursors.c.last_id).where(cursors.c.destination == destination)).scalar()
        last = last or 0
        cols = [outbox.c.id, outbox.c.message] + ([outbox.c.fields] if with_fields else [])
        rows = conn.execute(select(*cols).where(outbox.c.id > last).order_by(outbox.c.id).limit(limit)).all()
    if with_fields:
        return last, [(r.id, bytes(r.message), r.fields) for r in rows]
    return last, [(r.id, bytes(r.message)) for r in rows]


def _set_cursor(conn, destination: str, last_id: int) -> None:
    done = conn.execute(update(cursors).where(cursors.c.destination == destination).values(last_id=last_id))
    if done.rowcount == 0:
        conn.execute(insert(cursors).values(destination=destination, last_id=last_id))


def advance(database, destination: str, last_id: int, sync_commit: bool = True) -> None:
    """Move a forwarding cursor. ``sync_commit=False``: a database crash can lose the move, and
    the messages are sent again (at least once, as ITI-20 allows)."""
    with database.write(sync_commit) as conn:
        _set_cursor(conn, destination, last_id)


def prune(database, destinations: Iterable[str], after: int = 0, sync_commit: bool = True) -> tuple[int, int]:
    """Delete outbox rows every destination has received; (rows deleted, id deleted through).

    ``after``: the id a previous prune deleted through. Until PostgreSQL vacuums the outbox, the
    index entries of deleted rows stay in its primary key, and a ``DELETE ... WHERE id <= n``
    walks all of them on every pass: a cost that grows with every record ever audited (a server
    that had audited some 200,000 requests read 192 index entries per ITI-18 in that delete).
    Bounded below, the delete reads only the rows it removes.
    """
    destinations = list(destinations)
    with database.write(sync_commit) as conn:  # a lost delete is done again by the next prune
        got = dict(conn.execute(select(cursors.c.destination, cursors.c.last_id)
                                .where(cursors.c.destination.in_(destinations))).all())
        if len(got) < len(destinations):
            return 0, after
        through = min(got.values())
        if through <= after:
            return 0, after
        return conn.execute(delete(outbox).where(outbox.c.id > after, outbox.c.id <= through)).rowcount, through


def vacuum_outbox(database) -> None:
    """PostgreSQL: reclaim the outbox's deleted rows now.

    The outbox is a queue: every row is inserted once and deleted once, so it is all dead rows
    after a while. Autovacuum, where it is on at all, wakes for a table only after a share of it
    has changed; the sender vacuums the outbox itself after each few thousand deletes so that it
    stays a few pages long whatever the server's settings. SQLite reuses freed pages by itself.
    """
    if database.is_sqlite:
        return
    with database.writer.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM audit_outbox")


def outbox_size(database) -> int:
    with database.read() as conn:
        return conn.execute(select(func.count()).select_from(outbox)).scalar() or 0


# -- the record store and its hash chain ----------------------------------------------------------

@dataclass
class Incoming:
    """A message the ARR accepts: raw bytes, how and from whom it came, its indexed fields."""
    raw: bytes
    transport: str
    peer: str | None
    fields: Fields
    received_at: float = 0.0


def _clip(v: str | None, n: int) -> str | None:
    return v[:n] if v is not None else None


def _row(seq: int, prev: str, m: Incoming) -> dict:
    f = m.fields
    row = {"seq": seq, "received_at": m.received_at or time.time(), "transport": m.transport,
           "peer": _clip(m.peer, 255), "event_ts": f.event_ts, "event_id": _clip(f.event_id, 64),
           "event_action": _clip(f.event_action, 4), "event_type": _clip(f.event_type, 64), "outcome": f.outcome,
           "source_id": _clip(f.source_id, 255), "purpose": _clip(f.purpose, 512), "status": f.status,
           "keys": json.dumps(f.keys, separators=(",", ":"), ensure_ascii=False), "raw": m.raw,
           "prev_hash": prev}
    row["hash"] = record_hash(row)
    return row


_HASHED = ("seq", "received_at", "transport", "peer", "event_ts", "event_id", "event_action", "event_type",
           "outcome", "source_id", "purpose", "status", "keys", "prev_hash")


def record_hash(row) -> str:
    """SHA-256 over the predecessor's hash, every indexed column and the raw message."""
    get: Callable[[str], Any] = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    head = json.dumps([repr(get(k)) if isinstance(get(k), float) else get(k) for k in _HASHED],
                      separators=(",", ":"), ensure_ascii=False).encode()
    h = hashlib.sha256(head)
    h.update(b"\0")
    h.update(bytes(get("raw")))
    return h.hexdigest()


def _lock_chain(conn) -> tuple[int, str]:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CHAIN_LOCK})
    last = conn.execute(select(records.c.seq, records.c.hash).order_by(records.c.seq.desc()).limit(1)).first()
    return (last.seq, last.hash) if last else (0, GENESIS)


def _append(conn, messages: list[Incoming]) -> int:
    seq, prev = _lock_chain(conn)
    rows, keys = [], []
    for m in messages:
        seq += 1
        row = _row(seq, prev, m)
        prev = row["hash"]
        rows.append(row)
        keys += [{"seq": seq, "kind": k, "value": _clip(v, 255)} for k, v in m.fields.keys]
    if conn.dialect.name == "postgresql":
        _copy(conn, "audit_records", _RECORD_COLUMNS, _RECORD_TYPES,
              [tuple(r[c] for c in _RECORD_COLUMNS) for r in rows])
        _copy(conn, "audit_record_keys", ("seq", "kind", "value"), ("int8", "varchar", "varchar"),
              [(k["seq"], k["kind"], k["value"]) for k in keys])
        return seq
    conn.execute(insert(records), rows)
    if keys:
        conn.execute(insert(record_keys), keys)
    return seq


def append(database, messages: list[Incoming]) -> int:
    """Add records at the end of the chain, in one transaction; returns the last seq."""
    if not messages:
        return 0
    with database.write() as conn:
        return _append(conn, messages)


def append_from_outbox(database, last_id: int, messages: list[Incoming], sync_commit: bool = True) -> None:
    """Store our own records and move the ``local`` cursor in the same transaction: exactly once.

    ``sync_commit=False``: a crash of the database server can lose the last appends, cursor
    included; the records are then stored again from the outbox rows, which the WAL holds
    before them, or were lost with them (``audit_sync_commit``)."""
    with database.write(sync_commit) as conn:
        _append(conn, messages)
        _set_cursor(conn, LOCAL, last_id)


@dataclass
class VerifyReport:
    checked: int
    problem: str | None = None
    """``altered``, ``deleted`` or ``inserted``; None when the chain is intact."""
    seq: int | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify(database, page: int = 2000) -> VerifyReport:
    """Walk the chain in seq order and report the first record that breaks it.

    altered: a record's own hash does not match its content; deleted: a seq is missing (or its
    successor's prev_hash names a record that is not there); inserted: a record whose prev_hash
    does not name its predecessor while the numbering has no gap.
    """
    expected_seq, prev, checked = 1, GENESIS, 0
    after = 0
    while True:
        with database.read() as conn:
            rows = conn.execute(select(records).where(records.c.seq > after).order_by(records.c.seq)
                                .limit(page)).all()
        if not rows:
            return VerifyReport(checked)
        for r in rows:
            if r.seq != expected_seq:
                kind = "deleted" if r.seq > expected_seq else "inserted"
                return VerifyReport(checked, kind, r.seq if kind == "inserted" else expected_seq,
                                    f"expected seq {expected_seq}, found {r.seq}")
            if record_hash(r) != r.hash:
                return VerifyReport(checked, "altered", r.seq, "content does not match its hash")
            if r.prev_hash != prev:
                return VerifyReport(checked, "inserted" if checked else "altered", r.seq,
                                    "prev_hash does not match the preceding record")
            prev, expected_seq = r.hash, expected_seq + 1
            checked += 1
        after = rows[-1].seq


# -- searches --------------------------------------------------------------------------------------

@dataclass
class Query:
    since: float | None = None
    until: float | None = None
    patient: list[str] | None = None
    user: list[str] | None = None
    altid: list[str] | None = None
    entity: list[str] | None = None
    address: list[str] | None = None
    subtype: list[str] | None = None
    event: list[str] | None = None
    outcome: list[int] | None = None
    source: list[str] | None = None
    patient_any: list[str] | None = None
    """Patient ids in any assigning authority (a FHIR token without a system): the key is the id
    itself or ``oid|id``; OR-ed with :attr:`patient`."""
    before: int | None = None
    """Only records before this seq (the cursor of a newest-first page)."""
    through: int | None = None
    """Only records up to this seq: the trail as it was when the first page was answered, so that
    the pages of one search and their total do not move while new records arrive."""
    limit: int = 1000
    newest_first: bool = False


def _key(kind: str, values: list[str]):
    return exists().where(record_keys.c.seq == records.c.seq, record_keys.c.kind == kind,
                          record_keys.c.value.in_(values))


def _like_escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _patient_key(exact: list[str], any_system: list[str]):
    """A patient key equal to one of ``exact``, or the id of one of ``any_system`` under any
    assigning authority (``oid|id``, or the bare id)."""
    value = record_keys.c.value
    alternatives = [value.in_(exact + any_system)] + [value.like("%|" + _like_escaped(v), escape="\\")
                                                      for v in any_system]
    return exists().where(record_keys.c.seq == records.c.seq, record_keys.c.kind == "patient", or_(*alternatives))


def _where(stmt, q: Query):
    if q.through is not None:
        stmt = stmt.where(records.c.seq <= q.through)
    if q.since is not None:
        stmt = stmt.where(records.c.event_ts >= q.since)
    if q.until is not None:
        stmt = stmt.where(records.c.event_ts <= q.until)
    if q.patient_any:
        stmt = stmt.where(_patient_key(q.patient or [], q.patient_any))
    for kind, values in (("patient", None if q.patient_any else q.patient), ("user", q.user), ("altid", q.altid),
                         ("object", q.entity), ("address", q.address), ("subtype", q.subtype)):
        if values:
            stmt = stmt.where(_key(kind, values))
    if q.event:
        stmt = stmt.where(records.c.event_id.in_(q.event) | records.c.event_type.in_(q.event))
    if q.outcome:
        stmt = stmt.where(records.c.outcome.in_(q.outcome))
    if q.source:
        stmt = stmt.where(records.c.source_id.in_(q.source))
    return stmt


def search(database, q: Query) -> list:
    """Rows of ``audit_records`` matching every given criterion (values of one criterion: OR),
    at most ``q.limit``, before ``q.before`` when set."""
    stmt = _where(select(records), q)
    if q.before is not None:
        stmt = stmt.where(records.c.seq < q.before)
    order = records.c.seq.desc() if q.newest_first else records.c.seq
    with database.read() as conn:
        return conn.execute(stmt.order_by(order).limit(q.limit)).all()


def count_matching(database, q: Query) -> int:
    """How many records match ``q``, whatever its limit and cursor (FHIR ``Bundle.total``)."""
    with database.read() as conn:
        return conn.execute(_where(select(func.count()).select_from(records), q)).scalar() or 0


def iter_all(database, page: int = 1000) -> Iterator:
    after = 0
    while True:
        with database.read() as conn:
            rows = conn.execute(select(records).where(records.c.seq > after).order_by(records.c.seq)
                                .limit(page)).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].seq


def count(database) -> int:
    with database.read() as conn:
        return conn.execute(select(func.count()).select_from(records)).scalar() or 0


def search_seq(database, seq: int) -> list:
    with database.read() as conn:
        return conn.execute(select(records).where(records.c.seq == seq)).all()
