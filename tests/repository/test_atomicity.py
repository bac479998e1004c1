"""Atomic ITI-41: a failing, raising or dead registration leaves no document the registry does not know."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from lxml import etree

from repository.recovery import PENDING_MIN_AGE, sweep
from repository.registry_client import InProcessRegistry, SoapRegistry
from repository.transactions import DocumentPart, Repository
from tests.repository.support import (
    FAILURE,
    REPOSITORY_UID,
    SUCCESS,
    call_wsgi,
    new_oid,
    provide_request,
    retrieve_request,
    submission,
)


class RaisingRegistry:
    def __init__(self, inner):
        self.inner = inner

    def register(self, objects, security_header=None):
        raise RuntimeError("registry crashed mid-call")

    def registered_hashes(self, ids):
        return self.inner.registered_hashes(ids)


def parts(sub):
    return [DocumentPart(d.id, (lambda data=d.data: [data])) for d in sub.docs]


def test_raising_registry_rolls_back_at_once(env):
    repo = env.repository
    raising = Repository(repo.store, repo.index, RaisingRegistry(repo.registry), REPOSITORY_UID)
    sub = submission([b"<a/>", b"<b/>"])
    with pytest.raises(RuntimeError):
        raising.provide(sub.objects, parts(sub))
    assert env.index_rows() == [] and env.stored_files() == [] and env.staged_files() == []


def test_unreachable_remote_registry_is_registry_not_available(env):
    repo = env.repository
    remote = Repository(repo.store, repo.index, SoapRegistry("http://127.0.0.1:9/registry", timeout=2), REPOSITORY_UID)
    sub = submission([b"<doc/>"])
    answer = remote.provide(sub.objects, parts(sub))
    assert answer.status == FAILURE
    assert [e.code for e in answer.errors] == ["XDSRegistryNotAvailable"]
    assert env.index_rows() == [] and env.stored_files() == []


CRASH = textwrap.dedent("""
    import os, sys
    from storage.database import Database
    from repository.index import DocumentIndex
    from repository.store import FileSystemStore
    from repository.transactions import DocumentPart, Repository
    from xds import rim
    from lxml import etree

    url, docs_dir, request_file, register_first = sys.argv[1:5]
    db = Database(url)
    objects = rim.parse_object_list(etree.parse(request_file).getroot())

    class DiesInRegistration:
        def register(self, objs, security_header=None):
            if register_first == "1":
                from registry.register import Registry
                Registry(db).register(objs, transaction="ITI-41")   # the registry commits ...
            os._exit(9)                                              # ... and the process dies

    repo = Repository(FileSystemStore(docs_dir), DocumentIndex(db), DiesInRegistration(), "%s")
    blobs = [b"<doc>crash %%d</doc>" %% i for i in range(2)]
    repo.provide(objects, [DocumentPart("Document%%02d" %% i, (lambda b=b: [b])) for i, b in enumerate(blobs)])
""" % REPOSITORY_UID)


@pytest.mark.parametrize("registry_committed", [False, True], ids=["died-before-registry", "died-after-registry"])
def test_killed_process_then_sweep_leaves_no_orphan(env, tmp_path, registry_committed):
    from xds import rim
    sub = submission([b"<doc>crash 0</doc>", b"<doc>crash 1</doc>"])
    req = tmp_path / "objects.xml"
    req.write_bytes(etree.tostring(rim.object_list_element(sub.objects)))
    script = tmp_path / "crash.py"
    script.write_text(CRASH)
    proc = subprocess.run([sys.executable, str(script), env.database.url, str(env.documents_dir), str(req),
                           "1" if registry_committed else "0"], capture_output=True, text=True, timeout=120,
                          cwd=str(Path(__file__).resolve().parents[2]))
    assert proc.returncode == 9, proc.stderr
    assert [r.state for r in env.index_rows()] == ["pending", "pending"]
    assert len(env.stored_files()) == 2
    report = sweep(env.repository.store, env.repository.index, InProcessRegistry(env.registry, env.database),
                   older_than=0)
    uids = [d.unique_id for d in sub.docs]
    if registry_committed:
        assert (report.committed, report.removed) == (2, 0)
        assert [r.state for r in env.index_rows()] == ["committed", "committed"]
        got = call_wsgi(env.app, *retrieve_request([(REPOSITORY_UID, u) for u in uids])).documents()
        assert {u: v[1] for u, v in got.items()} == {u: d.data for u, d in zip(uids, sub.docs)}
    else:
        assert (report.committed, report.removed) == (0, 2)
        assert env.index_rows() == [] and env.stored_files() == []
    # a second sweep has nothing to do
    again = sweep(env.repository.store, env.repository.index, InProcessRegistry(env.registry, env.database),
                  older_than=0)
    assert (again.committed, again.removed) == (0, 0)


def test_sweep_with_unreachable_remote_registry_keeps_pending_rows(env):
    staged = env.repository.store.stage([b"<doc/>"])
    env.repository.index.insert_pending(new_oid(), staged.ref, "text/xml", "t")
    env.repository.store.place(staged)
    report = sweep(env.repository.store, env.repository.index, SoapRegistry("http://127.0.0.1:9/registry", timeout=1),
                   older_than=0)
    assert report.undecided == 1
    assert [r.state for r in env.index_rows()] == ["pending"]


def test_sweep_removes_staged_leftovers(env):
    (env.documents_dir / "staging" / "abc.part").write_bytes(b"half a document")
    assert sweep(env.repository.store, env.repository.index,
                 InProcessRegistry(env.registry, env.database), older_than=0).staged_removed == 1
    assert env.staged_files() == []


def test_startup_migrates_and_sweeps(env):
    from repository.wiring import startup
    staged = env.repository.store.stage([b"<left over/>"])
    env.repository.index.insert_pending(new_oid(), staged.ref, "text/xml", "t")
    env.repository.store.place(staged)
    age_rows(env, PENDING_MIN_AGE + 60)
    report = startup(env.settings)
    assert report.removed == 1
    assert env.index_rows() == [] and env.stored_files() == []


def age_rows(env, seconds):
    from sqlalchemy import update

    from repository.index import documents
    with env.database.write() as conn:
        conn.execute(update(documents).values(created_at=documents.c.created_at - seconds))


class SweptDuringRegistration:
    """Registers, then does what another process's start-up sweep did in issue 19: settles every
    pending row (deleting it, and its bytes, when the registry does not know it yet - or here,
    ``delete=True``, unconditionally as the sweep of a registry whose commit it did not yet see)."""

    def __init__(self, env, delete):
        self.env, self.delete = env, delete
        self.inner = env.repository.registry

    def register(self, objects, security_header=None):
        answer = self.inner.register(objects, security_header)
        repo = self.env.repository
        for row in repo.index.pending(older_than=0):
            if self.delete:
                repo.release(row.unique_id, row.ref, txn=None)
        if not self.delete:
            sweep(repo.store, repo.index, self.inner, older_than=0)
        return answer

    def registered_hashes(self, ids):
        return self.inner.registered_hashes(ids)


def test_a_commit_that_updates_no_row_is_not_acknowledged(env):
    """Issue 19 finding 1: the row was swept between registration and commit; Success was answered
    and the document was lost (XDSDocumentUniqueIdError on ITI-43 forever)."""
    repo = env.repository
    swept = Repository(repo.store, repo.index, SweptDuringRegistration(env, delete=True), REPOSITORY_UID)
    sub = submission([b"<doc>swept</doc>"])
    answer = swept.provide(sub.objects, parts(sub))
    assert answer.status == FAILURE
    assert [(e.code, e.location) for e in answer.errors] == [("XDSRepositoryError", sub.docs[0].unique_id)]
    assert env.index_rows() == [] and env.stored_files() == []
    # the registry keeps the metadata it registered (an ITI-42 cannot be withdrawn): logged for an operator
    assert sub.docs[0].unique_id in repo.registry.registered_hashes([sub.docs[0].unique_id])


def test_a_row_committed_by_a_sweep_meanwhile_is_still_acknowledged(env):
    repo = env.repository
    swept = Repository(repo.store, repo.index, SweptDuringRegistration(env, delete=False), REPOSITORY_UID)
    sub = submission([b"<doc>committed by the sweep</doc>"])
    assert swept.provide(sub.objects, parts(sub)).status == SUCCESS
    assert [r.state for r in env.index_rows()] == ["committed"]
    got = call_wsgi(env.app, *retrieve_request([(REPOSITORY_UID, sub.docs[0].unique_id)])).documents()
    assert got[sub.docs[0].unique_id][1] == sub.docs[0].data


def test_startup_sweep_leaves_a_young_pending_row_of_another_process(env):
    """Issue 19 finding 1: a second server (or an immediate restart) swept in-flight submissions."""
    from repository.wiring import startup
    young = env.repository.store.stage([b"<in flight elsewhere/>"])
    young_uid = new_oid()
    env.repository.index.insert_pending(young_uid, young.ref, "text/xml", "t1")
    env.repository.store.place(young)
    report = startup(env.settings)
    assert (report.removed, report.committed) == (0, 0)
    assert [(r.unique_id, r.state) for r in env.index_rows()] == [(young_uid, "pending")]
    assert len(env.stored_files()) == 1
    # once older than the bound, the same row is a crash's leftover and goes
    age_rows(env, PENDING_MIN_AGE + 60)
    assert startup(env.settings).removed == 1
    assert env.index_rows() == [] and env.stored_files() == []


STAGE_AND_WAIT = textwrap.dedent("""
    import sys
    from repository.store import FileSystemStore
    staged = FileSystemStore(sys.argv[1]).stage([b"half of a document in flight"])
    print(staged.handle, flush=True)
    sys.stdin.read()
""")


def test_startup_keeps_the_staging_of_a_live_process(env, tmp_path):
    """Issue 19 finding 1: ``xds serve`` emptied the staging folder of every process sharing the store."""
    import os

    from repository.wiring import startup
    script = tmp_path / "stage.py"
    script.write_text(STAGE_AND_WAIT)
    proc = subprocess.Popen([sys.executable, str(script), str(env.documents_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=str(Path(__file__).resolve().parents[2]))
    try:
        staged = Path(proc.stdout.readline().strip())
        assert staged.is_file()
        old = staged.stat().st_mtime - PENDING_MIN_AGE - 60
        os.utime(staged, (old, old))
        os.utime(staged.parent, (old, old))
        startup(env.settings)
        sweep(env.repository.store, env.repository.index, env.repository.registry, older_than=0)
        assert staged.is_file()  # its process is alive: never touched, whatever the age
    finally:
        proc.stdin.close()
        proc.wait(30)
    # the process is gone: its folder is a crash's leftover once older than the bound
    assert startup(env.settings).staged_removed == 1
    assert not staged.exists() and not staged.parent.exists()


# ----------------------------------------------------------------------------- concurrency

def run_threads(n, fn):
    results, errors = [None] * n, []
    barrier = threading.Barrier(n)

    def worker(i):
        try:
            barrier.wait()
            results[i] = fn(i)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return results


def test_concurrent_submissions(env):
    subs = [submission([b"<doc>%d</doc>" % i, b"<shared/>"]) for i in range(8)]
    results = run_threads(8, lambda i: call_wsgi(env.app, *provide_request(subs[i])).status_value)
    assert results == [SUCCESS] * 8
    assert len(env.index_rows()) == 16
    assert len(env.stored_files()) == 9  # <shared/> once
    r = call_wsgi(env.app, *retrieve_request([(REPOSITORY_UID, d.unique_id) for s in subs for d in s.docs]))
    assert r.status_value == SUCCESS and len(r.documents()) == 16


@pytest.mark.parametrize("same_bytes", [False, True], ids=["different-bytes", "same-bytes"])
def test_same_unique_id_concurrently_gives_exactly_one_set_of_bytes(env, same_bytes):
    uid = new_oid()
    subs = [submission([b"<doc>same</doc>" if same_bytes else b"<doc>v%d</doc>" % i], unique_ids=[uid])
            for i in range(6)]
    results = run_threads(6, lambda i: call_wsgi(env.app, *provide_request(subs[i])))
    winners = [i for i, r in enumerate(results) if r.status_value == SUCCESS]
    assert len(winners) >= 1
    if not same_bytes:
        assert len(winners) == 1, [r.error_codes for r in results]
    rows = env.index_rows()
    assert len(rows) == 1 and rows[0].state == "committed"
    assert len(env.stored_files()) == 1
    got = call_wsgi(env.app, *retrieve_request([(REPOSITORY_UID, uid)])).documents()[uid][1]
    assert got == subs[winners[0]].docs[0].data
    assert env.staged_files() == []
