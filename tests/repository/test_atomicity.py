"""Atomic ITI-41: a failing, raising or dead registration leaves no document the registry does not know."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from lxml import etree

from repository.recovery import sweep
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
    report = sweep(env.repository.store, env.repository.index, InProcessRegistry(env.registry, env.database))
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
    again = sweep(env.repository.store, env.repository.index, InProcessRegistry(env.registry, env.database))
    assert (again.committed, again.removed) == (0, 0)


def test_sweep_with_unreachable_remote_registry_keeps_pending_rows(env):
    staged = env.repository.store.stage([b"<doc/>"])
    env.repository.index.insert_pending(new_oid(), staged.ref, "text/xml", "t")
    env.repository.store.place(staged)
    report = sweep(env.repository.store, env.repository.index, SoapRegistry("http://127.0.0.1:9/registry", timeout=1))
    assert report.undecided == 1
    assert [r.state for r in env.index_rows()] == ["pending"]


def test_sweep_removes_staged_leftovers(env):
    (env.documents_dir / "staging" / "abc.part").write_bytes(b"half a document")
    assert sweep(env.repository.store, env.repository.index,
                 InProcessRegistry(env.registry, env.database)).staged_removed == 1
    assert env.staged_files() == []


def test_startup_migrates_and_sweeps(env):
    from repository.wiring import startup
    staged = env.repository.store.stage([b"<left over/>"])
    env.repository.index.insert_pending(new_oid(), staged.ref, "text/xml", "t")
    env.repository.store.place(staged)
    report = startup(env.settings)
    assert report.removed == 1
    assert env.index_rows() == [] and env.stored_files() == []


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
