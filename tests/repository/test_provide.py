"""ITI-41 Provide and Register Document Set-b (ITI TF-2 3.41.4.1.3) through the /repository endpoint."""
from __future__ import annotations

import hashlib

import pytest

from tests.repository.schemas import assert_valid
from tests.repository.support import (
    FAILURE,
    REPOSITORY_UID,
    SUCCESS,
    call_wsgi,
    new_oid,
    provide_body,
    provide_request,
    retrieve_request,
    sha1,
    submission,
)


def registered(env, unique_id: str) -> dict:
    from sqlalchemy import select

    from registry.store.schema import document_entries as t
    with env.database.read() as conn:
        row = conn.execute(select(t).where(t.c.unique_id == unique_id)).first()
    return dict(row._mapping) if row else {}


def registered_slots(env, unique_id: str) -> dict[str, list[str]]:
    from sqlalchemy import select

    from registry.store.schema import document_entries as de
    from registry.store.schema import registry_objects as ro
    from xds import rim
    with env.database.read() as conn:
        xml = conn.execute(select(ro.c.xml).join(de, de.c.uuid == ro.c.uuid)
                           .where(de.c.unique_id == unique_id)).scalar_one()
    o = rim.from_bytes(xml)
    return {s.name: s.values for s in o.slots}


@pytest.mark.parametrize("mtom", [True, False], ids=["mtom", "inline"])
@pytest.mark.parametrize("count", [1, 3])
def test_provide_sets_size_hash_repository_and_stores_bytes(env, mtom, count):
    contents = [b"<ClinicalDocument>%d</ClinicalDocument>" % i * (i + 1) for i in range(count)]
    sub = submission(contents)
    body, _ = provide_body(sub, mtom)
    assert_valid(body)
    r = call_wsgi(env.app, *provide_request(sub, mtom=mtom))
    assert r.status == 200
    assert r.status_value == SUCCESS, r.errors
    assert r.envelope.findtext("{http://www.w3.org/2003/05/soap-envelope}Header/"
                               "{http://www.w3.org/2005/08/addressing}Action") == \
        "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse"
    assert_valid(r.registry_response)
    for d in sub.docs:
        slots = registered_slots(env, d.unique_id)
        assert slots["size"] == [str(len(d.data))]
        assert slots["hash"] == [sha1(d.data)]
        assert slots["repositoryUniqueId"] == [REPOSITORY_UID]
        assert registered(env, d.unique_id)["repository_unique_id"] == REPOSITORY_UID
    rows = env.index_rows()
    assert [(x.unique_id, x.state, x.size, x.sha1) for x in rows] == sorted(
        (d.unique_id, "committed", len(d.data), sha1(d.data)) for d in sub.docs)
    # content-addressed: the file name is the SHA-256 of the bytes, fanned out
    for d in sub.docs:
        h = hashlib.sha256(d.data).hexdigest()
        assert (env.documents_dir / "objects" / h[:2] / h[2:4] / h).read_bytes() == d.data
    assert env.staged_files() == []


def test_correct_submitter_hash_and_size_are_accepted(env):
    data = b"<doc>exact</doc>"

    def edit(e, i):
        e.hash, e.size = sha1(data).upper(), len(data)
    sub = submission([data], edit=edit)
    r = call_wsgi(env.app, *provide_request(sub))
    assert r.status_value == SUCCESS, r.errors


@pytest.mark.parametrize("field,value", [("hash", "0" * 40), ("size", 3)])
def test_submitter_hash_or_size_that_differs_is_repository_metadata_error(env, field, value):
    def edit(e, i):
        setattr(e, field, value)
    sub = submission([b"<doc>differs</doc>"], edit=edit)
    r = call_wsgi(env.app, *provide_request(sub))
    assert r.status_value == FAILURE
    assert r.error_codes == ["XDSRepositoryMetadataError"]
    assert r.errors[0]["location"] == "Document00"
    assert_nothing_stored(env, sub)


def assert_nothing_stored(env, sub) -> None:
    assert env.index_rows() == []
    assert env.stored_files() == []
    assert env.staged_files() == []
    for d in sub.docs:
        assert registered(env, d.unique_id) == {}


def test_document_entry_without_document_is_missing_document(env):
    sub = submission([b"<a/>", b"<b/>"])
    _body, _ct = provide_request(sub)
    # drop the second xdsb:Document
    sub2 = submission([b"<a/>"])
    sub2.objects = sub.objects
    sub2.docs = sub.docs[:1]
    r = call_wsgi(env.app, *provide_request(sub2))
    assert r.status_value == FAILURE
    assert r.error_codes == ["XDSMissingDocument"]
    assert r.errors[0]["location"] == "Document01"
    assert_nothing_stored(env, sub)


def test_document_without_entry_is_missing_document_metadata(env):
    sub = submission([b"<a/>"])
    r = call_wsgi(env.app, *provide_request(sub, extra_docs=[("Stray", b"<stray/>")]))
    assert r.status_value == FAILURE
    assert r.error_codes == ["XDSMissingDocumentMetadata"]
    assert r.errors[0]["location"] == "Stray"
    assert_nothing_stored(env, sub)


@pytest.mark.parametrize("mtom", [True, False], ids=["mtom", "inline"])
def test_empty_document_is_an_error(env, mtom):
    sub = submission([b"<ok/>", b""])
    r = call_wsgi(env.app, *provide_request(sub, mtom=mtom))
    assert r.status_value == FAILURE
    assert r.error_codes == ["XDSRepositoryError"]
    assert "empty" in r.errors[0]["codeContext"]
    assert_nothing_stored(env, sub)


def test_same_unique_id_twice_in_message(env):
    uid = new_oid()
    sub = submission([b"<a/>", b"<b/>"], unique_ids=[uid, uid])
    r = call_wsgi(env.app, *provide_request(sub))
    assert r.status_value == FAILURE
    assert "XDSRepositoryDuplicateUniqueIdInMessage" in r.error_codes
    assert_nothing_stored(env, sub)


def test_registry_failure_is_returned_unchanged_and_rolls_back(env):
    sub = submission([b"<doc>unknown patient</doc>"], patient="999999999999983^^^&1.2.250.1.213.1.4.10&ISO^NH")
    r = call_wsgi(env.app, *provide_request(sub))
    assert r.status_value == FAILURE
    assert r.error_codes == ["XDSUnknownPatientId"]
    assert "999999999999983^^^" in r.errors[0]["codeContext"]
    assert_nothing_stored(env, sub)


def test_registry_metadata_error_rolls_back(env):
    def edit(e, i):
        e.class_code = None  # required: the registry's validation refuses it
    sub = submission([b"<doc>no class code</doc>"], edit=edit)
    r = call_wsgi(env.app, *provide_request(sub))
    assert r.status_value == FAILURE
    assert r.error_codes
    assert_nothing_stored(env, sub)


def test_same_bytes_are_stored_once(env):
    data = b"<doc>shared content</doc>"
    a, b = submission([data]), submission([data])
    for s in (a, b):
        assert call_wsgi(env.app, *provide_request(s)).status_value == SUCCESS
    assert len(env.stored_files()) == 1
    assert len(env.index_rows()) == 2
    # a failed submission of the same bytes must not delete the shared file
    c = submission([data], patient="999999999999983^^^&1.2.250.1.213.1.4.10&ISO^NH")
    assert call_wsgi(env.app, *provide_request(c)).status_value == FAILURE
    assert len(env.stored_files()) == 1
    r = call_wsgi(env.app, *retrieve_request([(REPOSITORY_UID, a.docs[0].unique_id), (REPOSITORY_UID, b.docs[0].unique_id)]))
    assert {k: v[1] for k, v in r.documents().items()} == {a.docs[0].unique_id: data, b.docs[0].unique_id: data}


def test_known_unique_id_with_other_bytes_is_refused_and_bytes_kept(env):
    uid = new_oid()
    first = submission([b"<doc>v1</doc>"], unique_ids=[uid])
    assert call_wsgi(env.app, *provide_request(first)).status_value == SUCCESS
    second = submission([b"<doc>v2 different</doc>"], unique_ids=[uid])
    r = call_wsgi(env.app, *provide_request(second))
    assert r.status_value == FAILURE
    assert r.error_codes == ["XDSNonIdenticalHash"]
    assert len(env.stored_files()) == 1
    got = call_wsgi(env.app, *retrieve_request([(REPOSITORY_UID, uid)])).documents()
    assert got[uid][1] == b"<doc>v1</doc>"


def test_resubmission_of_same_bytes_under_same_unique_id_goes_to_the_registry(env):
    uid = new_oid()
    data = b"<doc>again</doc>"
    assert call_wsgi(env.app, *provide_request(submission([data], unique_ids=[uid]))).status_value == SUCCESS
    r = call_wsgi(env.app, *provide_request(submission([data], unique_ids=[uid])))
    direct_codes = r.error_codes  # whatever the registry says about the metadata, unchanged
    assert r.status_value in (SUCCESS, FAILURE)
    assert len(env.stored_files()) == 1
    assert [x.state for x in env.index_rows()] == ["committed"]
    assert all(c != "XDSNonIdenticalHash" for c in direct_codes)


def test_missing_submit_objects_request(env):
    from lxml import etree

    from tests.repository.support import envelope
    from xds.vocabulary import NS_XDSB, Actions
    body = etree.Element(f"{{{NS_XDSB}}}ProvideAndRegisterDocumentSetRequest")
    r = call_wsgi(env.app, envelope(body, Actions.PROVIDE), "application/soap+xml")
    assert r.status_value == FAILURE
    assert r.error_codes == ["XDSRepositoryMetadataError"]
