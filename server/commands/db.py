"""``xds db roles`` and ``xds db backup`` (loaded by ``server.cli`` through ``EXTENSIONS``; issue 19, operations).

Least privilege on PostgreSQL: two roles. The **owner** owns the schema and its tables and runs
the migrations (``xds migrate``) and the maintenance commands that rewrite derived data
(``xds audit reindex`` deletes and rebuilds ``audit_record_keys``). The **application** role, the
one ``xds serve`` connects with, reads and writes what the transactions need and nothing more: the
audit trail's tables (``audit_records``, ``audit_record_keys``, ``audit_seals``) are append-only
for it, so a compromised or buggy server can add to the trail but never rewrite or delete it
(ITI TF-2 3.20: an Audit Record Repository keeps what it received; the hash chain shows a
rewrite, these grants prevent it). It cannot change the schema either.

The privileges follow the statements each table takes from the server (audit/store.py): the
outbox is inserted, read and deleted (prune), never updated; the delivery cursors inserted, read
and updated, never deleted; the chain's tables inserted and read. Every other actor table gets
SELECT, INSERT, UPDATE, DELETE; the Alembic version tables SELECT (``xds serve`` checks the schema
is current, ``/ready`` too).
"""
from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from access import store as access_store
from audit import store as audit_store
from config import load_settings
from portal import accounts
from registry.store import schema as registry_schema
from repository import index as repository_index
from server.readiness import SCHEMAS
from storage.database import Database, DatabaseUnavailable, display_url

APPEND_ONLY = frozenset({audit_store.records.name, audit_store.record_keys.name, audit_store.seals.name})
"""Tables the application may only add to and read: the audit trail."""

EXACT = {
    audit_store.outbox.name: "SELECT, INSERT, DELETE",
    audit_store.cursors.name: "SELECT, INSERT, UPDATE",
    **dict.fromkeys(sorted(APPEND_ONLY), "SELECT, INSERT"),
}
"""The audit tables' privileges, statement by statement (audit/store.py)."""

READ_WRITE = "SELECT, INSERT, UPDATE, DELETE"
VERSION_TABLES = tuple(table for _, _, table in SCHEMAS)


def actor_tables() -> list[str]:
    """Every table the actors' newest migrations create, their Alembic version tables included, sorted."""
    names: set[str] = set(VERSION_TABLES)
    for metadata in (registry_schema.metadata, repository_index.metadata, audit_store.metadata,
                     access_store.metadata, accounts.metadata):
        names.update(metadata.tables)
    return sorted(names)


def privileges(table: str) -> str:
    if table in EXACT:
        return EXACT[table]
    if table in VERSION_TABLES:
        return "SELECT"
    return READ_WRITE


def _ident(name: str) -> str:
    if not name or "\0" in name:
        raise ValueError(f"not a PostgreSQL identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def role_statements(owner: str, app: str, schema: str) -> list[str]:
    """Part 1, as a superuser (or a role with CREATEROLE that owns the schema), before the first
    ``xds migrate``: the two roles (without password: set one with ``ALTER ROLE ... PASSWORD`` or use
    client certificates), the schema owned by the owner, the application allowed in it but not to
    create anything, and, through default privileges, SELECT and INSERT only on whatever table the
    owner creates later: a table a future migration adds is append-only for the application until
    part 2 runs again, never writable by mistake."""
    o, a, s = _ident(owner), _ident(app), _ident(schema)
    create = [f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {_literal(role)}) THEN "
              f"CREATE ROLE {_ident(role)} LOGIN; END IF; END$$" for role in (owner, app)]
    return create + [
        f"ALTER SCHEMA {s} OWNER TO {o}",
        f"REVOKE CREATE ON SCHEMA {s} FROM PUBLIC",
        f"REVOKE CREATE ON SCHEMA {s} FROM {a}",
        f"GRANT USAGE ON SCHEMA {s} TO {a}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {s} GRANT SELECT, INSERT ON TABLES TO {a}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {s} GRANT USAGE, SELECT ON SEQUENCES TO {a}",
    ]


def table_statements(owner: str, app: str, schema: str, tables: list[str]) -> list[str]:
    """Part 2, after every ``xds migrate`` (as a superuser): each table owned by the owner (a
    database first migrated by another role is taken over) and the application's exact privileges."""
    o, a, s = _ident(owner), _ident(app), _ident(schema)
    out: list[str] = []
    for table in tables:
        t = f"{s}.{_ident(table)}"
        out += [f"ALTER TABLE {t} OWNER TO {o}", f"REVOKE ALL ON TABLE {t} FROM {a}",
                f"GRANT {privileges(table)} ON TABLE {t} TO {a}"]
    out.append(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {a}")
    return out


def script(owner: str, app: str, schema: str) -> str:
    part1 = role_statements(owner, app, schema)
    part2 = table_statements(owner, app, schema, actor_tables())
    return "\n".join([
        "-- DMP-XDS least-privilege roles (xds db roles). Part 1: as a superuser, before the first xds migrate.",
        *(s + ";" for s in part1),
        f"-- Then: xds migrate --database-url postgresql+psycopg://{owner}@HOST/DB (the owner migrates).",
        "-- Part 2: as a superuser, after every xds migrate (xds serve connects as the application role).",
        *(s + ";" for s in part2),
        f"-- PostgreSQL 17 and later: GRANT MAINTAIN ON TABLE {_ident(schema)}.{_ident(audit_store.outbox.name)} "
        f"TO {_ident(app)}; (the audit sender vacuums its outbox; before 17 only the owner or autovacuum can).",
    ]) + "\n"


def apply(url: str, owner: str, app: str, schema: str) -> tuple[int, list[str]]:
    """Run part 1, then part 2 for the tables that exist; (statements run, tables not created yet)."""
    db = Database(url)
    try:
        if db.is_sqlite:
            raise DatabaseUnavailable("xds db roles is for PostgreSQL: SQLite has no roles (protect its file)")
        try:
            with db.writer.begin() as conn:
                present = set(inspect(conn).get_table_names(schema=schema))
                wanted = actor_tables()
                statements = role_statements(owner, app, schema) + table_statements(
                    owner, app, schema, [t for t in wanted if t in present])
                if conn.dialect.server_version_info and conn.dialect.server_version_info >= (17,) and \
                        audit_store.outbox.name in present:
                    statements.append(f"GRANT MAINTAIN ON TABLE {_ident(schema)}.{_ident(audit_store.outbox.name)} "
                                      f"TO {_ident(app)}")
                for statement in statements:
                    conn.execute(text(statement))
        except Exception as exc:  # noqa: BLE001 - any refusal (privilege, unknown schema) is one line
            if isinstance(exc, DatabaseUnavailable):
                raise
            raise DatabaseUnavailable(f"cannot set the roles on {display_url(url)}: "
                                      f"{str(exc).strip().splitlines()[0]}") from exc
    finally:
        db.dispose()
    return len(statements), [t for t in wanted if t not in present]


def _admin_url(args) -> str:
    settings = load_settings(args.config, data_dir=args.data_dir, database_url=args.database_url)
    return settings.effective_database_url()


def cmd_roles(args) -> int:
    if args.owner == args.app:
        print("error: the owner and the application must be two roles", file=sys.stderr)
        return 2
    try:
        sql = script(args.owner, args.app, args.schema)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.apply:
        sys.stdout.write(sql)
        return 0
    url = _admin_url(args)
    if not make_url(url).get_backend_name().startswith("postgresql"):
        print("error: xds db roles --apply needs a PostgreSQL --database-url (a superuser's)", file=sys.stderr)
        return 2
    count, missing = apply(url, args.owner, args.app, args.schema)
    print(f"roles {args.owner} (owner) and {args.app} (application) set on schema {args.schema}: {count} statements")
    if missing:
        print(f"{len(missing)} tables do not exist yet: run xds migrate as {args.owner}, then xds db roles --apply "
              "again")
    return 0


def sqlite_backup(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (SQLite's online backup API: pages copied under
    a read transaction, so writers may go on; WAL content included)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    partial.replace(target)


def cmd_backup(args) -> int:
    url = _admin_url(args)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        print("error: xds db backup copies the embedded SQLite database; on PostgreSQL use pg_dump "
              "(docs/operations.md)", file=sys.stderr)
        return 2
    source = Path(parsed.database)
    if not source.exists():
        print(f"error: no database at {source}", file=sys.stderr)
        return 2
    sqlite_backup(source, Path(args.output))
    print(f"database copied to {args.output}")
    return 0


def add_commands(sub, common) -> None:
    p = sub.add_parser("db", help="database operations: least-privilege roles (PostgreSQL), online backup (SQLite)")
    dsub = p.add_subparsers(dest="db_command", required=True)
    r = dsub.add_parser("roles", help="print (or --apply) the SQL of an owner role that migrates and an application "
                                      "role that cannot UPDATE or DELETE audit rows",
                        epilog="example: xds db roles --owner xds_owner --app xds_app --apply "
                               "--database-url postgresql+psycopg://postgres@db/xds")
    common(r)
    r.add_argument("--owner", required=True, help="role that owns the schema and runs xds migrate")
    r.add_argument("--app", required=True, help="role xds serve connects as")
    r.add_argument("--schema", default="public", help="schema of the tables (default public)")
    r.add_argument("--apply", action="store_true",
                   help="run it on --database-url (a superuser's) instead of printing it")
    r.set_defaults(func=cmd_roles)
    b = dsub.add_parser("backup", help="consistent copy of the embedded SQLite database while the server runs",
                        epilog="example: xds db backup --data-dir /var/lib/xds /backup/registry.db")
    common(b)
    b.add_argument("output", help="file to write the copy to")
    b.set_defaults(func=cmd_backup)
