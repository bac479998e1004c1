"""The repository's index: document uniqueId -> content address, size, SHA-1, mimeType, state.

Own tables and own Alembic version table (``repository_alembic_version``) in the registry's
database URL. A row is ``pending`` from the moment its bytes may exist until the registry has
answered: ``committed`` on Success, deleted on anything else. Only committed rows are
retrievable; pending rows left by a crash are settled by :func:`repository.recovery.sweep`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import BigInteger, Column, Float, Index, MetaData, String, Table, delete, func, insert, select, update
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
    Index(None, "address"),
    Index(None, "state", "created_at"),
)


@dataclass(frozen=True)
class IndexRow:
    unique_id: str
    ref: ContentRef
    mime_type: str
    state: str
    txn: str
    created_at: float


def _row(r) -> IndexRow:
    return IndexRow(r.unique_id, ContentRef(r.address, r.sha1, int(r.size)), r.mime_type, r.state, r.txn,
                    r.created_at)


def migrate(database) -> None:
    """Create or upgrade the repository tables (idempotent). ``database``: storage.database.Database."""
    database.migrate(MIGRATIONS)


class DocumentIndex:
    """Index operations, each its own short transaction on the shared database."""

    def __init__(self, database) -> None:
        self.db = database

    def insert_pending(self, unique_id: str, ref: ContentRef, mime_type: str, txn: str) -> IndexRow | None:
        """Insert a pending row; on a uniqueId already indexed, return the existing row instead."""
        try:
            with self.db.write() as conn:
                conn.execute(insert(documents).values(
                    unique_id=unique_id, address=ref.address, sha1=ref.sha1, size=ref.size,
                    mime_type=mime_type, state=PENDING, txn=txn, created_at=time.time()))
            return None
        except IntegrityError:
            existing = self.get(unique_id)
            if existing is None:  # deleted in between: try once more
                return self.insert_pending(unique_id, ref, mime_type, txn)
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

    def remove_pending(self, unique_id: str, txn: str | None = None) -> bool:
        stmt = delete(documents).where(documents.c.unique_id == unique_id, documents.c.state == PENDING)
        if txn is not None:
            stmt = stmt.where(documents.c.txn == txn)
        with self.db.write() as conn:
            return conn.execute(stmt).rowcount > 0

    def references(self, address: str) -> int:
        with self.db.read() as conn:
            return conn.execute(select(func.count()).select_from(documents)
                                .where(documents.c.address == address)).scalar_one()

    def pending(self, older_than: float = 0.0, limit: int = 1000) -> list[IndexRow]:
        with self.db.read() as conn:
            rows = conn.execute(select(documents)
                                .where(documents.c.state == PENDING,
                                       documents.c.created_at <= time.time() - older_than)
                                .order_by(documents.c.created_at).limit(limit)).all()
        return [_row(r) for r in rows]
