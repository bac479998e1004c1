"""Issue 19: a pending submission belongs to the process that wrote it (owner id + lease in the
database); only rows of owners that are gone are settled, by the reconciler elected among the
processes sharing the database, against the registry; a failed index commit is settled by its own
process; a full disk answers XDSRepositoryOutOfResources (ITI TF-3 Table 4.2.4.1-2) with nothing stored."""
from __future__ import annotations

import errno
import sqlite3

import psycopg
import pytest
from sqlalchemy import inspect, update
from sqlalchemy.exc import OperationalError

from repository.faults import FaultPlan
from repository.index import MIGRATIONS, RECONCILER_LEASE, leases
from repository.reconciler import Reconciler, new_owner_id
from repository.recovery import sweep
from repository.resources import out_of_resources
from repository.transactions import DocumentPart, Repository
from tests.repository.conftest import build_env
from tests.repository.support import FAILURE, REPOSITORY_UID, SUCCESS, call_wsgi, retrieve_request, submission


def parts(sub):
    return [DocumentPart(d.id, (lambda data=d.data: [data])) for d in sub.docs]


def owned(env, faults: str = "", lease: int = 30) -> tuple[Repository, Reconciler]:
    """A second process's repository on the same database and store: its own owner id and lease."""
    repo = env.repository
    other = Repository(repo.store, repo.index, repo.registry, REPOSITORY_UID, owner=new_owner_id(),
                       faults=FaultPlan.parse(faults))
    reconciler = Reconciler(other, lease_seconds=lease, interval=1)
    reconciler.beat()
    return other, reconciler


def retrieved(env, sub) -> dict[str, bytes]:
    got = call_wsgi(env.app, *retrieve_request([(REPOSITORY_UID, d.unique_id) for d in sub.docs])).documents()
    return {u: v[1] for u, v in got.items()}


def expire(env, holder: str) -> None:
    with env.database.write() as conn:
        conn.execute(update(leases).where(leases.c.holder == holder).values(expires_at=0))


def age_rows(env, seconds: float) -> None:
    from repository.index import documents
    with env.database.write() as conn:
        conn.execute(update(documents).values(created_at=documents.c.created_at - seconds))


def dies(repo: Repository, after_registration: bool) -> None:
    """Make ``repo``'s next ITI-41 end as a killed process does: after the registry's commit and
    before the index commit, or before the registry answered; a dead process rolls nothing back."""
    def killed(*args, **kwargs):
        raise SystemExit("killed")

    repo._rollback = lambda *args: None
    if after_registration:
        repo._commit = killed
    else:
        class DiesBeforeRegistration:
            def register(self, objects, security_header=None):
                killed()
        repo.registry = DiesBeforeRegistration()


def test_pending_rows_of_a_live_owner_are_never_swept_whatever_their_age(env):
    """Issue 19 finding 1: a second server or an immediate restart swept in-flight submissions."""
    other, _ = owned(env)
    sub = submission([b"<doc>in flight</doc>"])
    dies(other, after_registration=True)
    with pytest.raises(SystemExit):
        other.provide(sub.objects, parts(sub))
    assert [(r.state, r.owner) for r in env.index_rows()] == [("pending", other.owner)]
    age_rows(env, 10 * 86_400)
    report = sweep(env.repository.store, env.repository.index, env.repository.registry, older_than=0,
                   owned_older_than=0)
    assert (report.committed, report.removed) == (0, 0)
    assert [r.state for r in env.index_rows()] == ["pending"]
    # the owner is gone (its lease expired): the same row is settled against the registry
    expire(env, other.owner)
    report = sweep(env.repository.store, env.repository.index, env.repository.registry, older_than=0,
                   owned_older_than=0)
    assert (report.committed, report.removed) == (1, 0)
    assert retrieved(env, sub) == {sub.docs[0].unique_id: sub.docs[0].data}


def test_a_row_younger_than_the_bound_is_not_swept_even_if_its_owner_is_gone(env):
    other, _ = owned(env)
    dies(other, after_registration=True)
    sub = submission([b"<doc>young</doc>"])
    with pytest.raises(SystemExit):
        other.provide(sub.objects, parts(sub))
    expire(env, other.owner)
    report = sweep(env.repository.store, env.repository.index, env.repository.registry, owned_older_than=60)
    assert (report.committed, report.removed) == (0, 0)
    age_rows(env, 61)
    assert sweep(env.repository.store, env.repository.index, env.repository.registry,
                 owned_older_than=60).committed == 1


@pytest.mark.parametrize("registered", [True, False], ids=["registered", "not-registered"])
def test_the_reconciler_settles_a_dead_owners_rows_against_the_registry(env, registered):
    """Issue 19 finding 2: a worker killed between the registry commit and the index commit left a
    registered document unretrievable until the next full restart."""
    dead, dead_reconciler = owned(env, lease=1)
    dies(dead, after_registration=registered)
    sub = submission([b"<doc>a</doc>", b"<doc>b</doc>"])
    with pytest.raises(SystemExit):
        dead.provide(sub.objects, parts(sub))
    _, live_reconciler = owned(env, lease=1)
    assert live_reconciler.run_once().committed + live_reconciler.run_once().removed == 0  # owner still holds
    expire(env, dead.owner)
    age_rows(env, 2)
    report = live_reconciler.run_once()
    if registered:
        assert (report.committed, report.removed) == (2, 0)
        assert retrieved(env, sub) == {d.unique_id: d.data for d in sub.docs}
    else:
        assert (report.committed, report.removed) == (0, 2)
        assert env.index_rows() == [] and env.stored_files() == []
    assert dead_reconciler.owner != live_reconciler.owner


def test_one_reconciler_is_elected_among_processes_sharing_the_database(env):
    _, first = owned(env, lease=30)
    _, second = owned(env, lease=30)
    assert first.elected() and not second.elected()
    assert first.elected()  # renewing its own lease
    expire(env, first.owner)
    assert second.elected() and not first.elected()
    second.stop()  # a clean stop gives the leases up at once
    assert first.elected()
    with env.database.read() as conn:
        holders = conn.execute(leases.select().where(leases.c.name == RECONCILER_LEASE)).all()
    assert [h.holder for h in holders] == [first.owner]


def test_a_failed_index_commit_is_acknowledged_and_settled_by_its_own_process(env):
    """Issue 19 finding 2: the registry has the entry, the bytes are in place, the index commit
    failed (disk full, database error): the document must become retrievable without a restart."""
    other, reconciler = owned(env, faults="commit_error=1")
    sub = submission([b"<doc>commit failed</doc>"])
    assert other.provide(sub.objects, parts(sub)).status == SUCCESS
    assert [r.state for r in env.index_rows()] == ["pending"]
    assert retrieved(env, sub) == {}
    assert len(other.unsettled) == 1
    report = reconciler.run_once(sweep_now=False)  # its owner is alive: only its own round settles it
    assert report.committed == 1 and len(other.unsettled) == 0
    assert retrieved(env, sub) == {sub.docs[0].unique_id: sub.docs[0].data}


def test_a_failed_settlement_is_queued_again(env):
    other, reconciler = owned(env, faults="commit_error=1")
    sub = submission([b"<doc>registry away</doc>"])
    assert other.provide(sub.objects, parts(sub)).status == SUCCESS

    class Unreachable:
        def registered_hashes(self, ids):
            return None
    real, other.registry = other.registry, Unreachable()
    assert reconciler.run_once(sweep_now=False).committed == 0 and len(other.unsettled) == 1
    other.registry = real
    assert reconciler.run_once(sweep_now=False).committed == 1
    assert retrieved(env, sub) == {sub.docs[0].unique_id: sub.docs[0].data}


def test_disk_full_while_storing_is_repository_out_of_resources(env):
    """ITI TF-3 Table 4.2.4.1-2 XDSRepositoryOutOfResources, not a SOAP fault; nothing stored."""
    other, _ = owned(env, faults="enospc=2")
    sub = submission([b"<doc>first fits</doc>", b"<doc>second does not</doc>"])
    answer = other.provide(sub.objects, parts(sub))
    assert answer.status == FAILURE
    assert [e.code for e in answer.errors] == ["XDSRepositoryOutOfResources"]
    assert env.index_rows() == [] and env.stored_files() == [] and env.staged_files() == []
    assert env.repository.registry.registered_hashes([d.unique_id for d in sub.docs]) == {}


def sqlite_full_error() -> OperationalError:
    """The error SQLite itself raises when its database is full (a tiny max_page_count)."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("PRAGMA max_page_count = 3")
    try:
        for _ in range(100):
            conn.execute("INSERT INTO t VALUES (?)", ("x" * 1000,))
    except sqlite3.OperationalError as exc:
        return OperationalError("INSERT INTO repository_documents ...", {}, exc)
    raise AssertionError("SQLite did not fill up")


@pytest.mark.parametrize("error", [
    pytest.param(lambda: OSError(errno.ENOSPC, "No space left on device"), id="ENOSPC"),
    pytest.param(lambda: OSError(errno.EDQUOT, "Disk quota exceeded"), id="EDQUOT"),
    pytest.param(sqlite_full_error, id="sqlite-full"),
    pytest.param(lambda: OperationalError("INSERT ...", {}, psycopg.errors.DiskFull("could not extend file")),
                 id="postgresql-disk-full"),
])
def test_a_full_database_or_disk_while_indexing_is_repository_out_of_resources(env, monkeypatch, error):
    def full(*args, **kwargs):
        raise error()
    monkeypatch.setattr(env.repository.index, "insert_pending", full)
    sub = submission([b"<doc>no room</doc>"])
    answer = env.repository.provide(sub.objects, parts(sub))
    assert [e.code for e in answer.errors] == ["XDSRepositoryOutOfResources"] and answer.status == FAILURE
    assert env.index_rows() == [] and env.stored_files() == [] and env.staged_files() == []


def test_other_failures_are_not_out_of_resources():
    assert not out_of_resources(OSError(errno.EACCES, "Permission denied"))
    assert not out_of_resources(OperationalError("SELECT 1", {}, psycopg.errors.DeadlockDetected("deadlock")))
    assert not out_of_resources(RuntimeError("registry crashed"))


def test_fault_plan_refuses_unknown_points():
    with pytest.raises(ValueError):
        FaultPlan.parse("exit_after_commit=3")
    with pytest.raises(ValueError):
        FaultPlan.parse("enospc=0")
    plan = FaultPlan.parse("enospc=3")
    assert [plan.fires("enospc") for _ in range(6)] == [False, False, True, False, False, True]
    assert not FaultPlan.parse("").fires("enospc")


def test_migration_r0002_adds_owners_and_leases(db, tmp_path):
    built = build_env(db, tmp_path, repository_reconcile_interval=0)
    try:
        db.downgrade("r0001", MIGRATIONS)
        with db.read() as conn:
            insp = inspect(conn)
            assert "repository_leases" not in insp.get_table_names()
            assert "owner" not in {c["name"] for c in insp.get_columns("repository_documents")}
        db.migrate(MIGRATIONS)
        with db.read() as conn:
            insp = inspect(conn)
            assert "repository_leases" in insp.get_table_names()
            assert "owner" in {c["name"] for c in insp.get_columns("repository_documents")}
    finally:
        built.repository.close()
