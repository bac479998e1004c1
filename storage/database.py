"""Database engines shared by every actor: SQLite (WAL) embedded, PostgreSQL in production.

Two engines on one URL: writers and readers. On SQLite a writer starts with ``BEGIN IMMEDIATE``
so that two concurrent submissions queue for the write lock instead of failing on lock upgrade;
readers use plain deferred transactions and run beside the writer thanks to WAL.
"""
from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, Dialect, Engine, Insert, MetaData, Table, bindparam, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, OperationalError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

if TYPE_CHECKING:
    import sqlite3

Values = dict[str, Any]
"""Bound parameters by name."""
Key = tuple[object, ...]
"""What names one statement shape in the compiled-statement cache."""


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    engine = create_engine(url, pool_size=8, max_overflow=16, pool_pre_ping=False)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@lru_cache(maxsize=256)
def _pyformat(sql: str) -> str:
    return re.sub(r"(?<!:):([A-Za-z_]\w*)", r"%(\1)s", sql.replace("%", "%%"))


LAZY_COMMIT = "set_config('synchronous_commit', 'off', true)"
"""PostgreSQL, in a statement: the commit of this transaction (an autocommit statement's own
included) does not wait for the WAL flush. For rows whose loss in a crash of the database server
itself (the last ~0.6 s, 3 x ``wal_writer_delay``) is bounded and said where it is used: the
audit outbox (``audit_sync_commit``) and the XUA replay check (``xua_replay_sync_commit``)."""


def _cursor(conn: Connection) -> DBAPICursor:
    """A cursor of the driver's own connection (``conn`` is checked out: it holds one)."""
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None, "a checked-out connection has its DBAPI connection"
    return dbapi_connection.cursor()


def _integrity_error(dialect: Dialect) -> type[Exception]:
    """The driver's IntegrityError (every dialect we run on has its DBAPI module loaded)."""
    assert dialect.dbapi is not None, "the dialect's DBAPI module is loaded"
    return dialect.dbapi.IntegrityError


def driver_execute(conn: Connection, sql: str, values: Values) -> tuple[Sequence[Any], int]:
    """(rows, rowcount) of one hot-path statement, run by the driver itself on PostgreSQL.

    ``sql`` names its parameters ``:name`` and takes a list only as ``= ANY(:name)``. On
    PostgreSQL it goes straight to psycopg: SQLAlchemy's per-execution work is most of the Python
    cost of a short statement. On SQLite it runs through SQLAlchemy, which binds the same text.
    """
    if conn.dialect.name != "postgresql":
        result = conn.execute(text(sql), values)
        return (result.all() if result.returns_rows else []), result.rowcount
    cursor = _cursor(conn)
    try:
        try:
            cursor.execute(_pyformat(sql), values)
        except _integrity_error(conn.dialect) as exc:
            raise IntegrityError(sql, None, exc) from exc
        return (cursor.fetchall() if cursor.description is not None else []), cursor.rowcount
    finally:
        cursor.close()


class DatabaseUnavailable(Exception):
    """The database URL names no database this process can open: unparsable, unknown driver, no
    server, login refused, SQLite file that cannot be created. A command says so in one line."""


def display_url(url: str) -> str:
    """``url`` with its password hidden (a log line, a banner or an error message shows this)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a database URL)"


def _unavailable(url: str, exc: Exception) -> DatabaseUnavailable:
    reason = str(exc.orig if isinstance(exc, OperationalError) else exc).strip().splitlines()
    return DatabaseUnavailable(f"cannot use the database {display_url(url)}: {reason[0] if reason else exc}")


@contextmanager
def host_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing): one process of this host at a time.

    Workers that start together build their actors at once; a schema migration that a worker
    runs on its own (a test server, a command) must not race another one on the same database.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class Database:
    """The engines of the one database every actor keeps its tables in, and its migration entry."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._compiled: dict[Key, tuple[str, tuple[str, ...] | None]] = {}
        self._integrity_errors: tuple[type[Exception], ...] = ()
        try:
            if self.is_sqlite:
                self.writer = _sqlite_engine(url, immediate=True)
                self.reader = _sqlite_engine(url, immediate=False)
            else:
                # No pre-ping: it costs a round trip per transaction. A dropped connection (database
                # restart, fail-over) fails one request and SQLAlchemy then invalidates the whole pool.
                self.writer = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=False,
                                            pool_recycle=3600)
                self.reader = self.writer
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise _unavailable(url, exc) from exc
        self._integrity_errors = (_integrity_error(self.writer.dialect),)

    @contextmanager
    def write(self, sync_commit: bool = True) -> Iterator[Connection]:
        """One all-or-nothing transaction (ITI TF-2 3.42.4.1.3: a submission is atomic).

        ``sync_commit=False``: on PostgreSQL its commit does not wait for the WAL flush
        (:data:`LAZY_COMMIT`); SQLite (synchronous=NORMAL) has no flush per commit to skip.
        """
        with self.writer.begin() as conn:
            if not sync_commit and not self.is_sqlite:
                driver_execute(conn, "SELECT " + LAZY_COMMIT, {})
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.reader.connect() as conn:
            with conn.begin():
                yield conn

    @contextmanager
    def quick_read(self) -> Iterator[Connection]:
        """Reads whose statements may each see their own snapshot: autocommit on PostgreSQL.

        At READ COMMITTED (PostgreSQL's default) every statement takes its own snapshot inside a
        transaction too, so the answers are the same; the BEGIN and the COMMIT of an explicit read
        transaction are two of the three or four round trips of a typical query
        (benchmarks/query.py). SQLite keeps its read transaction (one snapshot, no round trips).
        """
        if self.is_sqlite:
            with self.read() as conn:
                yield conn
        else:
            with self.reader.connect() as conn:
                yield conn.execution_options(isolation_level="AUTOCOMMIT")

    def migrate(self, migrations: Path) -> None:
        """Bring one actor's tables to the newest Alembic revision of ``migrations`` (idempotent).

        Each actor (registry, repository, audit, access, portal) keeps its own migrations and
        version table in the one database; ``xds serve`` runs them all in the master before
        the workers fork.
        """
        self._alembic("upgrade", "head", migrations)

    def downgrade(self, revision: str, migrations: Path) -> None:
        """Take one actor's tables back to ``revision`` (a migration's tests start from there)."""
        self._alembic("downgrade", revision, migrations)

    def _alembic(self, operation: str, revision: str, migrations: Path) -> None:
        cfg = Config()
        cfg.set_main_option("script_location", str(migrations))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        try:
            connection = self.writer.connect()
        except OperationalError as exc:
            raise _unavailable(self.url, exc) from exc
        with connection as conn:
            cfg.attributes["connection"] = conn
            getattr(command, operation)(cfg, revision)
            if conn.in_transaction():
                conn.commit()

    def _compile(self, conn: Connection, key: Key,
                 build: Callable[[], ClauseElement]) -> tuple[str, tuple[str, ...] | None]:
        compiled = self._compiled.get(key)
        if compiled is None:
            stmt = build().compile(dialect=conn.dialect)
            assert isinstance(stmt, SQLCompiler), "a statement compiles with the dialect's SQL compiler"
            order = stmt.positiontup
            compiled = (str(stmt), tuple(order) if order else None)
            if len(self._compiled) < 4096:
                self._compiled[key] = compiled
        return compiled

    def fetch(self, conn: Connection, key: Key, build: Callable[[], ClauseElement],
              values: Values) -> Sequence[Any]:
        """Run the statement ``build()`` makes (compiled once per ``key``) with bound ``values``.

        For hot paths only: the statement must name every parameter with ``bindparam`` and the
        key must change whenever the statement's shape does (for example an IN list's length).
        """
        sql, order = self._compile(conn, key, build)
        params = tuple(values[name] for name in order) if order else values
        cursor = _cursor(conn)
        try:
            cursor.execute(sql, params)
            return cursor.fetchall()
        finally:
            cursor.close()

    def insert_rows(self, conn: Connection, table: Table, rows: list[Values]) -> None:
        """INSERT ``rows`` into ``table``: see :meth:`insert_many`."""
        self.insert_many(conn, [(table, rows)])

    def insert_many(self, conn: Connection, batches: list[tuple[Table, list[Values]]]) -> None:
        """INSERT rows into several tables in as few round trips as the database allows.

        Each table's rows form one multi-row INSERT; on PostgreSQL all of them travel as one
        statement (data-modifying WITH clauses run to completion whether read or not). Statements
        are compiled by SQLAlchemy once per shape and values are always bound parameters. This
        skips SQLAlchemy's per-execution work and most round trips: together most of the cost of
        a registration (benchmarks/register.py).
        """
        batches = [(table, rows) for table, rows in batches if rows]
        if not batches:
            return
        shapes = tuple((table.name, tuple(rows[0]), len(rows)) for table, rows in batches)
        values = {f"t{n}_{i}_{j}": row[k] for n, (table, rows) in enumerate(batches)
                  for i, row in enumerate(rows) for j, k in enumerate(rows[0])}

        def statement(n: int, table: Table, rows: list[Values]) -> Insert:
            keys = list(rows[0])
            return table.insert().values([{k: bindparam(f"t{n}_{i}_{j}") for j, k in enumerate(keys)}
                                          for i in range(len(rows))])

        if self.is_sqlite:
            for n, (table, rows) in enumerate(batches):
                # _compile calls the builder at once, within this iteration
                sql, order = self._compile(conn, ("insert", n, shapes[n]), lambda: statement(n, table, rows))  # noqa: B023
                self._execute(conn, sql, order, values)
            return
        key: Key = ("insert-all",) + shapes
        compiled = self._compiled.get(key)
        if compiled is None:
            parts = [str(statement(n, table, rows).compile(dialect=conn.dialect))
                     for n, (table, rows) in enumerate(batches)]
            sql = parts[-1] if len(parts) == 1 else (
                "WITH " + ", ".join(f"w{n} AS ({p})" for n, p in enumerate(parts[:-1])) + " " + parts[-1])
            compiled = (sql, None)
            if len(self._compiled) < 4096:
                self._compiled[key] = compiled
        self._execute(conn, compiled[0], None, values)

    def _execute(self, conn: Connection, sql: str, order: tuple[str, ...] | None, values: Values) -> None:
        params = tuple(values[name] for name in order) if order else values
        cursor = _cursor(conn)
        try:
            cursor.execute(sql, params)
        except self._integrity_errors as exc:
            raise IntegrityError(sql, None, exc) from exc
        finally:
            cursor.close()

    def dispose(self) -> None:
        self.writer.dispose()
        if self.reader is not self.writer:
            self.reader.dispose()


def alembic_env(metadata: MetaData, version_table: str = "alembic_version") -> None:
    """The body of every actor's ``migrations/env.py``: run against the connection that
    :meth:`Database.migrate` hands over, looking only at the actor's own tables (the others share
    the database and migrate on their own)."""
    config = context.config

    def include(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
        return type_ != "table" or name in metadata.tables

    def run(conn: Connection) -> None:
        context.configure(connection=conn, target_metadata=metadata, version_table=version_table,
                          include_object=include, render_as_batch=conn.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()

    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
    else:
        url = config.get_main_option("sqlalchemy.url")
        if url is None:
            raise RuntimeError("the Alembic configuration names no sqlalchemy.url")
        with create_engine(url).connect() as conn:
            run(conn)
            conn.commit()
