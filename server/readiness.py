"""``/ready``: may a load balancer send this worker requests? (issue 19, operations)

Ready means the database answers and every actor's schema is at the newest revision this code
knows (each actor keeps its own Alembic history and version table in the one database). During an
upgrade, a new server whose database the owner has not migrated yet (``xds migrate``) answers 503,
and so does an old server whose database was already migrated past it: neither should take traffic.
``/health`` says whether the process and its audit delivery are well; ``/ready`` whether it can serve.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import SQLAlchemyError

from access import store as access_store
from audit import store as audit_store
from portal import accounts
from registry import store as registry_store
from repository import index as repository_index
from storage import Database

SCHEMAS: tuple[tuple[str, Path, str], ...] = (
    ("registry", registry_store.MIGRATIONS, "alembic_version"),
    ("repository", repository_index.MIGRATIONS, repository_index.VERSION_TABLE),
    ("audit", audit_store.MIGRATIONS, audit_store.VERSION_TABLE),
    ("access", access_store.MIGRATIONS, access_store.VERSION_TABLE),
    ("portal", accounts.MIGRATIONS, accounts.VERSION_TABLE),
)
"""(actor, Alembic script directory, version table) of every schema ``xds migrate`` brings up."""


def heads() -> dict[str, frozenset[str]]:
    """The newest revisions this code knows, by actor (read once: the scripts do not change)."""
    return {actor: frozenset(ScriptDirectory(str(path)).get_heads()) for actor, path, _ in SCHEMAS}


@dataclass(frozen=True)
class Readiness:
    ready: bool
    database: str
    """``ok``, or why the database did not answer (the exception's class: no URL or password in it)."""
    schemas: dict[str, str]
    """By actor: ``ok``, or ``at <revisions>, expected <heads>``."""


def check(database: Database, expected: dict[str, frozenset[str]]) -> Readiness:
    """Read every version table (one connection, a read-only transaction)."""
    schemas: dict[str, str] = {}
    try:
        with database.read() as conn:
            for actor, _, table in SCHEMAS:
                current = frozenset(MigrationContext.configure(conn, opts={"version_table": table})
                                    .get_current_heads())
                want = expected[actor]
                schemas[actor] = "ok" if current == want else (
                    f"at {', '.join(sorted(current)) or 'nothing'}, expected {', '.join(sorted(want))}")
    except (SQLAlchemyError, OSError) as exc:
        return Readiness(False, f"unavailable ({exc.__class__.__name__})", schemas)
    return Readiness(all(v == "ok" for v in schemas.values()), "ok", schemas)
