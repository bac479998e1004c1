"""ITI-86 Remove Documents at the Document Repository (ITI TF-2 3.86.4.1.3 and 3.86.4.2.2), over the
/repository SOAP endpoint on SQLite and PostgreSQL: answered as ITI-43 answers, bytes deleted once no
document holds them, and a process killed during a removal leaves the old or the new state."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from lxml import etree

from repository.faults import EXIT_STATUS
from repository.recovery import sweep
from repository.removal import finish_removals
from tests.repository.schemas import assert_valid
from tests.repository.support import (
    FAILURE,
    PARTIAL,
    REPOSITORY_UID,
    SUCCESS,
    call_wsgi,
    envelope,
    new_oid,
    provide_request,
    retrieve_request,
    submission,
)
from xds.vocabulary import NS_RMD, NS_XDSB, Actions, q


def remove_body(requests: list[tuple[str, str]]) -> etree._Element:
    root = etree.Element(q(NS_RMD, "RemoveDocumentsRequest"), nsmap={"rmd": NS_RMD, "xdsb": NS_XDSB})
    for repository, document in requests:
        dr = etree.SubElement(root, q(NS_XDSB, "DocumentRequest"))
        etree.SubElement(dr, q(NS_XDSB, "RepositoryUniqueId")).text = repository
        etree.SubElement(dr, q(NS_XDSB, "DocumentUniqueId")).text = document
    return root


def remove_request(requests) -> tuple[bytes, str]:
    return envelope(remove_body(requests), Actions.REMOVE_DOCUMENTS), \
        f'application/soap+xml; charset=UTF-8; action="{Actions.REMOVE_DOCUMENTS}"'


def provided(env, contents: list[bytes]):
    sub = submission(contents)
    assert call_wsgi(env.app, *provide_request(sub)).status_value == SUCCESS
    return sub


def retrieve_codes(env, uid: str) -> list[str]:
    return call_wsgi(env.app, *retrieve_request([(REPOSITORY_UID, uid)])).error_codes


def test_remove_documents_success_then_retrieve_answers_unknown(env):
    sub = provided(env, [b"<one/>", b"<two/>"])
    r = call_wsgi(env.app, *remove_request([(REPOSITORY_UID, d.unique_id) for d in sub.docs]))
    assert r.status_value == SUCCESS and r.error_codes == []
    assert r.body.tag == "{urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0}RegistryResponse"
    assert_valid(r.body)
    for d in sub.docs:
        assert retrieve_codes(env, d.unique_id) == ["XDSDocumentUniqueIdError"]
    assert env.stored_files() == [] and env.index_rows() == []


def test_unknown_document_is_document_unique_id_error(env):
    r = call_wsgi(env.app, *remove_request([(REPOSITORY_UID, new_oid())]))
    assert r.status_value == FAILURE and r.error_codes == ["XDSDocumentUniqueIdError"]


def test_other_repository_is_unknown_repository_id_and_keeps_the_document(env):
    sub = provided(env, [b"<kept/>"])
    r = call_wsgi(env.app, *remove_request([("1.2.1.1.1", sub.docs[0].unique_id)]))
    assert r.status_value == FAILURE and r.error_codes == ["XDSUnknownRepositoryId"]
    assert retrieve_codes(env, sub.docs[0].unique_id) == []


def test_one_removed_one_unknown_is_partial_success(env):
    sub = provided(env, [b"<gone/>"])
    r = call_wsgi(env.app, *remove_request([(REPOSITORY_UID, sub.docs[0].unique_id), (REPOSITORY_UID, new_oid())]))
    assert r.status_value == PARTIAL and r.error_codes == ["XDSDocumentUniqueIdError"]


def test_shared_bytes_stay_while_another_document_holds_them(env):
    first, second = provided(env, [b"<same/>"]), provided(env, [b"<same/>"])
    assert len(env.stored_files()) == 1
    call_wsgi(env.app, *remove_request([(REPOSITORY_UID, first.docs[0].unique_id)]))
    assert len(env.stored_files()) == 1
    assert retrieve_codes(env, second.docs[0].unique_id) == []
    call_wsgi(env.app, *remove_request([(REPOSITORY_UID, second.docs[0].unique_id)]))
    assert env.stored_files() == []


def test_removed_twice_is_document_unique_id_error(env):
    sub = provided(env, [b"<twice/>"])
    assert call_wsgi(env.app, *remove_request([(REPOSITORY_UID, sub.docs[0].unique_id)])).status_value == SUCCESS
    r = call_wsgi(env.app, *remove_request([(REPOSITORY_UID, sub.docs[0].unique_id)]))
    assert r.error_codes == ["XDSDocumentUniqueIdError"]


def test_interrupted_removal_mark_is_finished_by_the_sweep(env):
    """The state a crash leaves after the index row went and before the bytes did: the mark and the
    bytes; the sweep deletes the bytes no row holds and clears the mark."""
    sub = provided(env, [b"<half/>"])
    row = env.repository.index.committed([sub.docs[0].unique_id])[sub.docs[0].unique_id]
    env.repository.store.mark_removal(row.ref.address)
    env.repository.index.remove_committed(sub.docs[0].unique_id)
    assert len(env.stored_files()) == 1
    report = sweep(env.repository.store, env.repository.index, env.repository.registry, older_than=0)
    assert report.removals_finished == 1
    assert env.stored_files() == [] and env.repository.store.removal_marks() == []


def test_mark_of_a_removal_killed_before_its_commit_keeps_the_document(env):
    sub = provided(env, [b"<kept/>"])
    row = env.repository.index.committed([sub.docs[0].unique_id])[sub.docs[0].unique_id]
    env.repository.store.mark_removal(row.ref.address)
    assert finish_removals(env.repository.store, env.repository.index) == 0
    assert retrieve_codes(env, sub.docs[0].unique_id) == [] and env.repository.store.removal_marks() == []


def test_process_killed_during_removal_leaves_old_or_new_state(env, db, tmp_path):
    """A real process, killed (os._exit) inside ITI-86 between the index commit and the bytes'
    deletion (``repository_faults`` exit_in_removal=1): the document answers ITI-43 as unknown (new
    state), its bytes are left with their mark, and the next sweep deletes them: bounded, nothing
    half-visible. Its twin, sharing the bytes, stays retrievable throughout."""
    sub = provided(env, [b"<killed/>"])
    twin = provided(env, [b"<other/>"])
    script = textwrap.dedent(f"""
        from pathlib import Path
        from config import Settings
        from server.app import build_services
        from repository.removal import remove_documents
        from repository.transactions import DocumentRequest
        settings = Settings(data_dir=Path({str(tmp_path / "data")!r}), database_url={db.url!r}, audit_enabled=False,
                            repository_faults="exit_in_removal=1", repository_reconcile_interval=0)
        services = build_services(settings)
        remove_documents(services.repository, [DocumentRequest({REPOSITORY_UID!r}, {sub.docs[0].unique_id!r})])
        raise SystemExit("the fault did not fire")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_STATUS, done.stderr
    assert retrieve_codes(env, sub.docs[0].unique_id) == ["XDSDocumentUniqueIdError"]
    assert len(env.stored_files()) == 2 and len(env.repository.store.removal_marks()) == 1
    sweep(env.repository.store, env.repository.index, env.repository.registry, older_than=0)
    assert len(env.stored_files()) == 1 and env.repository.store.removal_marks() == []
    assert retrieve_codes(env, twin.docs[0].unique_id) == []
