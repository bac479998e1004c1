"""Audit tables: the durable outbox, delivery cursors, the hash-chained record store and its keys.

* ``audit_outbox``: every audit message this server emits, as a ready RFC 5424 message, written
  before anything is sent (ITI TF-2 3.20.4.1: audit must not be lost when an ARR is down).
* ``audit_cursors``: per destination (``local`` for our own store, one per forwarded ARR), the
  last outbox id delivered. Delivery is in id order and at-least-once.
* ``audit_records``: the Audit Record Repository's store. Each record keeps the raw message,
  indexed fields and ``hash = SHA-256(prev_hash, record)``; the chain makes an edited, deleted
  or inserted record visible to :func:`verify`. Appends are serialised (SQLite ``BEGIN
  IMMEDIATE``, PostgreSQL transaction-scoped advisory lock) so the chain has one order.
* ``audit_record_keys``: (kind, value) -> record, for searches by user, patient, object... It is
  derived from the chained ``keys`` column: :func:`verify` checks it and :func:`reindex` rebuilds it.
* ``audit_seals``: one signed range per append transaction (:mod:`audit.seal`), so that a
  recomputed rewrite, a forged append and a deleted tail are seen too.
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
from audit.seal import Seal, Sealer, SealVerifier
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

seals = Table("audit_seals", metadata,
              Column("to_seq", BigInteger, primary_key=True, autoincrement=False),
              Column("from_seq", BigInteger, nullable=False),
              Column("head", String(64), nullable=False),
              Column("at", Float, nullable=False),
              Column("key_id", String(32), nullable=False),
              Column("signature", String(128), nullable=False))


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


def delivery_lag(database) -> tuple[int, float | None]:
    """(rows our own store has not taken yet, seconds since the oldest of them was queued, or None):
    what ``/health`` reports, so that an audit process that stopped delivering is seen."""
    with database.read() as conn:
        done = conn.execute(select(cursors.c.last_id).where(cursors.c.destination == LOCAL)).scalar() or 0
        n, oldest = conn.execute(select(func.count(), func.min(outbox.c.created_at)).where(outbox.c.id > done)).one()
    return int(n), (max(0.0, time.time() - oldest) if oldest is not None else None)


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


def _append(conn, messages: list[Incoming], sealer: Sealer | None) -> int:
    seq, prev = _lock_chain(conn)
    first = seq
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
    else:
        conn.execute(insert(records), rows)
        if keys:
            conn.execute(insert(record_keys), keys)
    if sealer is not None:
        _seal(conn, sealer, first, seq, prev)
    return seq


def _seal(conn, sealer: Sealer, first: int, last: int, head: str) -> None:
    """Sign the range this transaction appended. The very first seal of a chain covers every
    record before it too (a trail older than sealing); after that a seal starts exactly where
    the chain stood when the append locked it, so nothing appended by another hand is covered."""
    if not sealer.chain_sealed:
        sealer.chain_sealed = conn.execute(select(func.count()).select_from(seals)).scalar() != 0
        if not sealer.chain_sealed:
            first = 0
    seal = sealer.seal(first, last, head, time.time())
    conn.execute(insert(seals).values(to_seq=seal.to_seq, from_seq=seal.from_seq, head=seal.head, at=seal.at,
                                      key_id=seal.key_id, signature=seal.signature))
    sealer.chain_sealed = True


def append(database, messages: list[Incoming], sealer: Sealer | None = None) -> int:
    """Add records at the end of the chain, in one transaction; returns the last seq."""
    if not messages:
        return 0
    with database.write() as conn:
        return _append(conn, messages, sealer)


def append_from_outbox(database, rows: list[tuple[int, Incoming]], sync_commit: bool = True,
                       sealer: Sealer | None = None) -> int:
    """Store our own records and move the ``local`` cursor in the same transaction: exactly once.

    ``rows``: (outbox id, record) in id order. The cursor is read again under the chain's lock,
    and rows at or before it are skipped: when several servers share the database, each audit
    process delivers the same outbox, and whichever stores a row first stores it alone (issue
    19: two servers had stored 2,275 records for 1,800 ITI-18). Returns how many were stored.

    ``sync_commit=False``: a crash of the database server can lose the last appends, cursor
    included; the records are then stored again from the outbox rows, which the WAL holds
    before them, or were lost with them (``audit_sync_commit``)."""
    if not rows:
        return 0
    with database.write(sync_commit) as conn:
        _lock_chain(conn)
        done = conn.execute(select(cursors.c.last_id).where(cursors.c.destination == LOCAL)).scalar() or 0
        fresh = [m for i, m in rows if i > done]
        if fresh:
            _append(conn, fresh, sealer)
            _set_cursor(conn, LOCAL, rows[-1][0])
        return len(fresh)


def last_seal(database) -> Seal | None:
    with database.read() as conn:
        r = conn.execute(select(seals).order_by(seals.c.to_seq.desc()).limit(1)).first()
    return _seal_of(r) if r is not None else None


def _seal_of(r) -> Seal:
    return Seal(int(r.from_seq), int(r.to_seq), str(r.head), float(r.at), str(r.key_id), str(r.signature))


# -- verification ----------------------------------------------------------------------------------

ALTERED, DELETED, INSERTED, TRUNCATED, UNSEALED, BAD_SEAL, CORRUPT, INDEX = (
    "altered", "deleted", "inserted", "truncated", "unsealed", "bad seal", "corrupt", "index")


@dataclass
class VerifyReport:
    checked: int
    problem: str | None = None
    """One of the kinds above; None when the trail is intact."""
    seq: int | None = None
    """The first record concerned."""
    detail: str = ""
    seals: int = 0
    checkpoints: int = 0
    warnings: list[str] | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


class _Broken(Exception):
    def __init__(self, problem: str, seq: int | None, detail: str) -> None:
        super().__init__(detail)
        self.problem, self.seq, self.detail = problem, seq, detail


def _pages(database, table: Table, column, page: int) -> Iterator:
    after = -1
    while True:
        with database.read() as conn:
            rows = conn.execute(select(table).where(column > after).order_by(column).limit(page)).all()
        if not rows:
            return
        yield from rows
        after = rows[-1]._mapping[column.name]


def _index_rows(database, low: int, high: int) -> dict[int, list[tuple[str, str]]]:
    out: dict[int, list[tuple[str, str]]] = {}
    with database.read() as conn:
        for k in conn.execute(select(record_keys).where(record_keys.c.seq >= low, record_keys.c.seq <= high)):
            out.setdefault(int(k.seq), []).append((k.kind, k.value))
    return out


def _chained_keys(r) -> list[tuple[str, str]]:
    """The search keys the chained ``keys`` column gives, as ``audit_record_keys`` holds them."""
    return [(str(k), _clip(str(v), 255) or "") for k, v in json.loads(r.keys)]


def verify(database, verifier: SealVerifier | None = None, anchor: Sequence[Seal] = (), page: int = 2000,
           check_index: bool = True) -> VerifyReport:
    """Walk the chain, its seals and its search index in seq order; report the first break.

    Never raises on stored content: a row that cannot be read is reported as ``corrupt``.
    ``verifier``: the public keys the seals must verify with; without one, seals are checked
    for tiling and heads only. ``anchor``: checkpoints kept outside the database (an anchor
    file, an external ARR): each must lie on the chain, which a deleted tail cannot.
    """
    report = VerifyReport(0)
    try:
        _verify(database, verifier, anchor, page, check_index, report)
    except _Broken as b:
        report.problem, report.seq, report.detail = b.problem, b.seq, b.detail
    return report


def _verify(database, verifier: SealVerifier | None, anchor: Sequence[Seal], page: int, check_index: bool,
            report: VerifyReport) -> None:
    seal_rows = _pages(database, seals, seals.c.to_seq, page)
    pending_seal = next(seal_rows, None)
    sealing = pending_seal is not None or verifier is not None
    sealed_through, expected_seq, prev = 0, 1, GENESIS
    heads: dict[int, str] = {}
    anchored = {a.to_seq for a in anchor}
    batch: list = []

    def check_batch() -> None:
        if not (check_index and batch):
            return
        index = _index_rows(database, batch[0].seq, batch[-1].seq)
        for r in batch:
            chained = sorted(_chained_keys(r))
            stored = sorted(index.get(int(r.seq), []))
            if chained != stored:
                missing = sorted(set(chained) - set(stored))
                extra = sorted(set(stored) - set(chained))
                raise _Broken(INDEX, int(r.seq), f"its search index rows differ from its chained keys "
                                                 f"(missing {missing[:3]}, extra {extra[:3]}); "
                                                 "run `xds audit reindex`")
        batch.clear()

    for r in _pages(database, records, records.c.seq, page):
        seq = r.seq
        if seq != expected_seq:
            if seq > expected_seq:
                raise _Broken(DELETED, expected_seq, f"expected seq {expected_seq}, found {seq}")
            raise _Broken(INSERTED, seq, f"expected seq {expected_seq}, found {seq}")
        try:
            own = record_hash(r)
            _chained_keys(r)
        except Exception as exc:  # noqa: BLE001 - any unreadable column is named, never a crash
            raise _Broken(CORRUPT, seq, f"a column cannot be read ({exc.__class__.__name__}: {exc})") from None
        if own != r.hash:
            raise _Broken(ALTERED, seq, "content does not match its hash")
        if r.prev_hash != prev:
            raise _Broken(INSERTED if report.checked else ALTERED, seq, "prev_hash does not match the preceding record")
        while pending_seal is not None and pending_seal.to_seq <= seq:
            s = _seal_of(pending_seal)
            if s.to_seq < seq:  # a seal naming a record the numbering skipped: caught above
                raise _Broken(DELETED, s.to_seq, f"sealed record {s.to_seq} is missing")
            if s.from_seq != sealed_through:
                first = min(sealed_through, s.from_seq) + 1
                raise _Broken(UNSEALED, first, f"records {first} to {max(sealed_through, s.from_seq)} are not "
                                               "covered by one seal (a forged append, a deleted seal or an append "
                                               "without the seal key)")
            if s.head != r.hash:
                raise _Broken(ALTERED, s.from_seq + 1, f"a record of {s.from_seq + 1} to {s.to_seq} was changed: "
                                                       "their sealed head hash no longer matches (rewritten and "
                                                       "recomputed)")
            why = verifier.problem(s) if verifier is not None else None
            if why is not None:
                raise _Broken(BAD_SEAL, s.from_seq + 1, f"the seal of records {s.from_seq + 1} to {s.to_seq}: {why}")
            sealed_through = s.to_seq
            report.seals += 1
            pending_seal = next(seal_rows, None)
        if seq in anchored:
            heads[seq] = r.hash
        prev, expected_seq = r.hash, expected_seq + 1
        report.checked += 1
        batch.append(r)
        if len(batch) >= page:
            check_batch()
    check_batch()
    last = expected_seq - 1
    if pending_seal is not None:
        raise _Broken(TRUNCATED, last + 1, f"records {last + 1} to {pending_seal.to_seq} were sealed and are gone "
                                           "(the tail was deleted)")
    for a in sorted(anchor, key=lambda a: a.to_seq):
        why = verifier.problem(a) if verifier is not None else None
        if why is not None:
            raise _Broken(BAD_SEAL, a.from_seq + 1, f"anchored checkpoint through record {a.to_seq}: {why}")
        if a.to_seq > last:
            raise _Broken(TRUNCATED, last + 1, f"the anchored checkpoint reaches record {a.to_seq}; the chain ends "
                                               f"at {last} (the tail and its seals were deleted)")
        if heads.get(a.to_seq) != a.head:
            raise _Broken(ALTERED, a.from_seq + 1, f"record {a.to_seq} no longer hashes to the anchored checkpoint's "
                                                   "head: the chain was rewritten before it")
        report.checkpoints += 1
    if sealing and sealed_through < last:
        raise _Broken(UNSEALED, sealed_through + 1, f"records {sealed_through + 1} to {last} are not sealed "
                                                    "(a forged append, or an append without the seal key)")
    if not sealing and last:
        report.warnings = ["no seals: a rewritten-and-recomputed trail, a forged append or a deleted tail "
                           "cannot be detected (give --public-key, or let the audit process seal)"]


def reindex(database, page: int = 2000) -> int:
    """Rebuild ``audit_record_keys`` from the chained ``keys`` column; returns the rows written.

    Verifies nothing: run :func:`verify` first, so the index is rebuilt from a chain known good."""
    written = 0
    with database.write() as conn:
        conn.execute(delete(record_keys))
    after = 0
    while True:
        with database.write() as conn:
            rows = conn.execute(select(records.c.seq, records.c["keys"]).where(records.c.seq > after)
                                .order_by(records.c.seq).limit(page)).all()
            if not rows:
                return written
            keys = [{"seq": r.seq, "kind": k, "value": v} for r in rows for k, v in _chained_keys(r)]
            if keys:
                conn.execute(insert(record_keys), keys)
            written += len(keys)
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


def search_event_type(database, event_type: str, page: int = 1000) -> Iterator:
    """Every record of one event type code (e.g. 110127 Emergency Override), in seq order."""
    after = 0
    while True:
        with database.read() as conn:
            rows = conn.execute(select(records).where(records.c.event_type == event_type, records.c.seq > after)
                                .order_by(records.c.seq).limit(page)).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].seq


def last_event_ts(database) -> float | None:
    with database.read() as conn:
        return conn.execute(select(records.c.event_ts).order_by(records.c.seq.desc()).limit(1)).scalar()


def search_seq(database, seq: int) -> list:
    with database.read() as conn:
        return conn.execute(select(records).where(records.c.seq == seq)).all()
