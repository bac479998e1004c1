"""ITI-43 Retrieve Document Set (ITI TF-2 3.43.4.2.3): MTOM answers, byte-exact, partial answers."""
from __future__ import annotations

import os

import pytest

from tests.repository.schemas import assert_valid
from tests.repository.support import (
    BOUNDARY,
    FAILURE,
    PARTIAL,
    REPOSITORY_UID,
    SUCCESS,
    call_wsgi,
    new_oid,
    provide_request,
    retrieve_body,
    retrieve_request,
    submission,
)

FAKE = b"MIMEBoundary_" + b"0123456789abcdef" * 2
assert FAKE.decode() != BOUNDARY
TRICKY = {
    "crlf-ends": b"\r\n\r\n<doc/>\r\n\r\n",
    # a boundary line in the content (not the one the request uses: a sender picks one not in its data)
    "fake-boundary": b"head\r\n--" + FAKE + b"\r\nContent-ID: <x>\r\n\r\nbody\r\n--" + FAKE + b"--\r\ntail",
    "response-boundary-like": b"\r\n--MIMEBoundary_\r\n--uuid:\r\n",
    "binary": bytes(range(256)) * 64,
    "random": os.urandom(3 * 1024 * 1024 + 7),  # spooled to disk on the way in
    "lone-cr-lf": b"\r",
}


@pytest.mark.parametrize("mtom_in", [True, False], ids=["mtom", "inline"])
def test_byte_exact_round_trip(env, mtom_in):
    names = list(TRICKY)
    sub = submission([TRICKY[n] for n in names], mime="application/octet-stream")
    assert call_wsgi(env.app, *provide_request(sub, mtom=mtom_in)).status_value == SUCCESS
    body = retrieve_body([(REPOSITORY_UID, d.unique_id) for d in sub.docs])
    assert_valid(body)
    r = call_wsgi(env.app, *retrieve_request([(REPOSITORY_UID, d.unique_id) for d in sub.docs]))
    assert r.content_type.startswith("multipart/related")
    assert r.status_value == SUCCESS, r.errors
    assert_valid(r.body)
    got = r.documents()
    for d in sub.docs:
        assert got[d.unique_id] == ("application/octet-stream", d.data)


def test_retrieve_answers_mtom_to_an_mtom_request_and_echoes_home_community(env):
    sub = submission([b"<doc/>"])
    call_wsgi(env.app, *provide_request(sub))
    hcid = "urn:oid:1.2.3.4"
    r = call_wsgi(env.app, *retrieve_request([(REPOSITORY_UID, sub.docs[0].unique_id, hcid)], mtom=True))
    assert r.status_value == SUCCESS
    assert_valid(r.body)
    dr = r.body.find("{urn:ihe:iti:xds-b:2007}DocumentResponse")
    assert dr.findtext("{urn:ihe:iti:xds-b:2007}HomeCommunityId") == hcid
    assert dr.findtext("{urn:ihe:iti:xds-b:2007}mimeType") == "text/xml"


def test_partial_success_and_error_locations(env):
    sub = submission([b"<a/>", b"<b/>"])
    call_wsgi(env.app, *provide_request(sub))
    unknown, other_repo = new_oid(), new_oid()
    r = call_wsgi(env.app, *retrieve_request([(REPOSITORY_UID, sub.docs[0].unique_id), (REPOSITORY_UID, unknown),
                                               ("1.2.3.999", other_repo), (REPOSITORY_UID, sub.docs[1].unique_id)]))
    assert r.status_value == PARTIAL
    assert_valid(r.body)
    assert {(e["errorCode"], e["location"]) for e in r.errors} == {
        ("XDSDocumentUniqueIdError", unknown), ("XDSUnknownRepositoryId", other_repo)}
    assert sorted(r.documents()) == sorted(d.unique_id for d in sub.docs)


def test_nothing_found_is_failure_without_parts(env):
    r = call_wsgi(env.app, *retrieve_request([(REPOSITORY_UID, new_oid())]))
    assert r.status_value == FAILURE
    assert r.error_codes == ["XDSDocumentUniqueIdError"]
    assert r.documents() == {}
    assert r.attachments == {}
    assert_valid(r.body)


def test_pending_documents_are_not_retrievable(env):
    from repository.store import ContentRef
    staged = env.repository.store.stage([b"<pending/>"])
    uid = new_oid()
    env.repository.index.insert_pending(uid, staged.ref, "text/xml", "t1")
    env.repository.store.place(staged)
    r = call_wsgi(env.app, *retrieve_request([(REPOSITORY_UID, uid)]))
    assert r.error_codes == ["XDSDocumentUniqueIdError"]
    assert isinstance(staged.ref, ContentRef)
