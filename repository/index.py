"""The repository's index: document uniqueId -> content address, size, SHA-1, mimeType, state.

Own tables and own Alembic version table (``repository_alembic_version``) in the registry's
database URL. A row is ``pending`` from the moment its bytes may exist until the registry has
answered: ``committed`` on Success, deleted on anything else. Only committed rows are
retrievable; pending rows left by a crash are settled by :func:`repository.recovery.sweep`.

A pending row names its ``owner``, the process that wrote it, and each owner keeps a lease row
(``repository_leases``) alive while it runs (issue 19: any number of servers share one database and
one store). A sweep settles a row only when its owner's lease has expired: another server's
in-flight submission is never touched, whatever its age. Rows without an owner (written before
leases, or by a repository built without one) fall back to the age bound ``PENDING_MIN_AGE``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    MetaData,
    String,
    Table,
    and_,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from repository.store import ContentRef

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "repository_alembic_version"

PENDING = "pending"
COMMITTED = "committed"

metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
})

documents = Table(
    "repository_documents", metadata,
    Column("unique_id", String(128), primary_key=True),
    Column("address", String(64), nullable=False),
    Column("sha1", String(40), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mime_type", String(128), nullable=False),
    Column("state", String(16), nullable=False),
    Column("txn", String(36), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("owner", String(128), nullable=True),
    Index(None, "address"),
    Index(None, "state", "created_at"),
)

leases = Table(
    "repository_leases", metadata,
    Column("name", String(128), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_at", Float, nullable=False),
)
"""Leases by name: each running owner's own (``name`` = ``holder`` = its owner id), and the
reconciler's election (``name`` = :data:`RECONCILER_LEASE`, ``holder`` = the elected owner)."""

RECONCILER_LEASE = "reconciler"


@dataclass(frozen=True)
class IndexRow:
    unique_id: str
    ref: ContentRef
    mime_type: str
    state: str
    txn: str
    created_at: float
    owner: str | None = None


def _row(r) -> IndexRow:
    return IndexRow(r.unique_id, ContentRef(r.address, r.sha1, int(r.size)), r.mime_type, r.state, r.txn,
                    r.created_at, r.owner)


def migrate(database) -> None:
    """Create or upgrade the repository tables (idempotent). ``database``: storage.database.Database."""
    database.migrate(MIGRATIONS)


class DocumentIndex:
    """Index operations, each its own short transaction on the shared database."""

    def __init__(self, database) -> None:
        self.db = database

    def insert_pending(self, unique_id: str, ref: ContentRef, mime_type: str, txn: str,
                       owner: str | None = None) -> IndexRow | None:
        """Insert a pending row of ``owner``; on a uniqueId already indexed, return the existing row instead."""
        try:
            with self.db.write() as conn:
                conn.execute(insert(documents).values(
                    unique_id=unique_id, address=ref.address, sha1=ref.sha1, size=ref.size,
                    mime_type=mime_type, state=PENDING, txn=txn, created_at=time.time(), owner=owner))
            return None
        except IntegrityError:
            existing = self.get(unique_id)
            if existing is None:  # deleted in between: try once more
                return self.insert_pending(unique_id, ref, mime_type, txn, owner)
            return existing

    def get(self, unique_id: str) -> IndexRow | None:
        with self.db.read() as conn:
            r = conn.execute(select(documents).where(documents.c.unique_id == unique_id)).first()
        return _row(r) if r is not None else None

    def committed(self, unique_ids: list[str]) -> dict[str, IndexRow]:
        if not unique_ids:
            return {}
        with self.db.read() as conn:
            rows = conn.execute(select(documents).where(documents.c.unique_id.in_(unique_ids),
                                                        documents.c.state == COMMITTED)).all()
        return {r.unique_id: _row(r) for r in rows}

    def commit(self, unique_ids: list[str], txn: str) -> int:
        if not unique_ids:
            return 0
        with self.db.write() as conn:
            if conn.dialect.name == "postgresql":
                # Losing this commit in a crash is harmless: the row stays pending and the start-up
                # sweep finds the uniqueId at the registry and commits it. Saves a WAL flush per submission.
                conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            res = conn.execute(update(documents)
                               .where(documents.c.unique_id.in_(unique_ids), documents.c.txn == txn,
                                      documents.c.state == PENDING)
                               .values(state=COMMITTED))
        return res.rowcount

    def commit_settled(self, unique_id: str, txn: str) -> bool:
        """Commit one pending row of submission ``txn`` that a sweep found registered."""
        with self.db.write() as conn:
            return conn.execute(update(documents)
                                .where(documents.c.unique_id == unique_id, documents.c.txn == txn,
                                       documents.c.state == PENDING)
                                .values(state=COMMITTED)).rowcount > 0

    def remove_pending(self, unique_id: str, txn: str | None = None) -> bool:
        stmt = delete(documents).where(documents.c.unique_id == unique_id, documents.c.state == PENDING)
        if txn is not None:
            stmt = stmt.where(documents.c.txn == txn)
        with self.db.write() as conn:
            return conn.execute(stmt).rowcount > 0

    def remove_committed(self, unique_id: str) -> IndexRow | None:
        """ITI-86: delete the committed row of ``unique_id`` (its bytes are the caller's to delete
        when no row holds them); the row as it was, or None when there was no committed row."""
        with self.db.write() as conn:
            r = conn.execute(select(documents).where(documents.c.unique_id == unique_id,
                                                     documents.c.state == COMMITTED)).first()
            if r is None:
                return None
            conn.execute(delete(documents).where(documents.c.unique_id == unique_id, documents.c.state == COMMITTED,
                                                 documents.c.txn == r.txn))
        return _row(r)

    def references(self, address: str) -> int:
        with self.db.read() as conn:
            return conn.execute(select(func.count()).select_from(documents)
                                .where(documents.c.address == address)).scalar_one()

    def pending_of(self, keys: list[tuple[str, str]]) -> list[IndexRow]:
        """The rows still pending among (uniqueId, txn) ``keys``."""
        if not keys:
            return []
        wanted = set(keys)
        with self.db.read() as conn:
            rows = conn.execute(select(documents).where(documents.c.unique_id.in_(sorted({u for u, _ in keys})),
                                                        documents.c.state == PENDING)).all()
        return [_row(r) for r in rows if (r.unique_id, r.txn) in wanted]

    def settleable(self, unowned_older_than: float, owned_older_than: float, limit: int = 1000) -> list[IndexRow]:
        """Pending rows a sweep may settle: rows whose owner's lease has expired (or was never
        taken) and that are older than ``owned_older_than``; rows without an owner older than
        ``unowned_older_than``. A row of a live owner is never returned, whatever its age."""
        now = time.time()
        owner_alive = exists().where(leases.c.name == documents.c.owner, leases.c.expires_at > now)
        with self.db.read() as conn:
            rows = conn.execute(select(documents)
                                .where(documents.c.state == PENDING,
                                       or_(and_(documents.c.owner.is_(None),
                                                documents.c.created_at <= now - unowned_older_than),
                                           and_(documents.c.owner.is_not(None),
                                                documents.c.created_at <= now - owned_older_than,
                                                ~owner_alive)))
                                .order_by(documents.c.created_at).limit(limit)).all()
        return [_row(r) for r in rows]

    # -- leases

    def hold_lease(self, name: str, holder: str, seconds: float) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until ``seconds`` from now; False when
        another holder's lease on it has not expired. One statement each way, so two processes
        racing for a free lease get one winner (the insert's primary key, or the update's
        condition re-checked on the locked row)."""
        now = time.time()
        with self.db.write() as conn:
            updated = conn.execute(update(leases)
                                   .where(leases.c.name == name,
                                          or_(leases.c.holder == holder, leases.c.expires_at <= now))
                                   .values(holder=holder, expires_at=now + seconds)).rowcount
            if updated:
                return True
        try:
            with self.db.write() as conn:
                conn.execute(insert(leases).values(name=name, holder=holder, expires_at=now + seconds))
            return True
        except IntegrityError:
            return False

    def drop_leases(self, holder: str) -> None:
        """Give up every lease of ``holder`` (a clean stop: its leftovers need not wait for expiry)."""
        with self.db.write() as conn:
            conn.execute(delete(leases).where(leases.c.holder == holder))

    def forget_expired_leases(self, older_than: float) -> int:
        """Delete owners' lease rows expired for ``older_than`` seconds: a row with no lease reads
        as an owner that is gone, exactly as an expired one."""
        with self.db.write() as conn:
            return conn.execute(delete(leases).where(leases.c.name != RECONCILER_LEASE,
                                                     leases.c.expires_at <= time.time() - older_than)).rowcount

    def pending(self, older_than: float = 0.0, limit: int = 1000) -> list[IndexRow]:
        with self.db.read() as conn:
            rows = conn.execute(select(documents)
                                .where(documents.c.state == PENDING,
                                       documents.c.created_at <= time.time() - older_than)
                                .order_by(documents.c.created_at).limit(limit)).all()
        return [_row(r) for r in rows]

    def pending_summary(self) -> tuple[int, float | None]:
        """(documents not committed, ``created_at`` of the oldest of them or None): what the
        server's ``/metrics`` reports, so that submissions stuck in flight are seen (issue 19)."""
        with self.db.read() as conn:
            n, oldest = conn.execute(select(func.count(), func.min(documents.c.created_at))
                                     .where(documents.c.state == PENDING)).one()
        return int(n), oldest
