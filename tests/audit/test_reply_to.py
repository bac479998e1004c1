"""The calling node's ActiveParticipant per the audit tables of ITI TF-2 (3.18.5.1, 3.41.5.1,
3.42.5.1, 3.43.5.1): its UserID is "the content of the <wsa:ReplyTo/> element", the anonymous URI
when the request has none (WS-Addressing 1.0 Core 3.2); its network address is the
NetworkAccessPointID. This actor's participant is its SOAP endpoint URI. Every message valid
against DICOM's schemas (through the real endpoints in-process, on SQLite and PostgreSQL)."""
from __future__ import annotations

import re

import pytest

from tests.audit.support import assert_valid
from tests.audit.test_transactions import SOAP, app, event, query_body  # noqa: F401 - app: the fixture
from tests.repository.support import (
    PATIENT,
    REPOSITORY_UID,
    SUCCESS,
    call_wsgi,
    envelope,
    provide_request,
    retrieve_request,
    submission,
)
from tests.support.metadata import draft
from xds.soap.namespaces import WSA_ANONYMOUS, WSA_NONE
from xds.vocabulary import Actions

ADDRESS = "10.20.30.40"
_REPLY_TO = re.compile(rb"<wsa:ReplyTo>.*?</wsa:ReplyTo>")


def _send(app, data: bytes, ctype: str, path: str, reply_to: str | None):  # noqa: F811
    """``data`` with its wsa:ReplyTo set to ``reply_to`` (removed when None), from ADDRESS."""
    new = b"" if reply_to is None else f"<wsa:ReplyTo><wsa:Address>{reply_to}</wsa:Address></wsa:ReplyTo>".encode()
    data, n = _REPLY_TO.subn(new, data)
    assert n == 1
    return call_wsgi(lambda environ, start: app({**environ, "REMOTE_ADDR": ADDRESS}, start), data, ctype, path)


def _audit(app, kind: str, event_id: str):  # noqa: F811
    found = [x for x in app.trail() if event(x)[3][0][0] == kind and event(x)[0][0] == event_id]
    assert len(found) == 1, [event(x) for x in app.trail()]
    return assert_valid(found[0])


def _participant(x, role: str) -> dict:
    """The ActiveParticipant of RoleIDCode ``role`` (110153 Source, 110152 Destination)."""
    found = [p for p in x.iterfind("ActiveParticipant")
             if [r.get("csd-code") for r in p.iterfind("RoleIDCode")] == [role]]
    assert len(found) == 1
    return dict(found[0].attrib)


def _node(user_id: str, requestor: str = "true") -> dict:
    return {"UserID": user_id, "UserIsRequestor": requestor, "NetworkAccessPointID": ADDRESS,
            "NetworkAccessPointTypeCode": "2"}


CASES = [pytest.param(WSA_ANONYMOUS, WSA_ANONYMOUS, id="anonymous"), pytest.param(WSA_NONE, WSA_NONE, id="none"),
         pytest.param(None, WSA_ANONYMOUS, id="anonymous_when_absent")]


def _stored_query(app, reply_to):  # noqa: F811
    data = envelope(query_body(PATIENT), Actions.STORED_QUERY)
    _send(app, data, SOAP.format(Actions.STORED_QUERY), "/registry", reply_to)
    return _audit(app, "ITI-18", "110112")


@pytest.mark.parametrize("reply_to, user_id", CASES)
def test_iti18_source_user_id_is_the_reply_to(app, reply_to, user_id):  # noqa: F811
    x = _stored_query(app, reply_to)
    assert _participant(x, "110153") == _node(user_id)
    destination = _participant(x, "110152")
    assert destination["UserID"].endswith("/registry") and destination["UserIsRequestor"] == "false"


def test_iti18_anonymous_when_absent_and_address_in_network_access_point(app):  # noqa: F811
    source = _participant(_stored_query(app, None), "110153")
    assert source["UserID"] == WSA_ANONYMOUS and source["UserID"] != ADDRESS
    assert source["NetworkAccessPointID"] == ADDRESS


@pytest.mark.parametrize("reply_to, user_id", CASES)
def test_iti41_source_user_id_is_the_reply_to(app, reply_to, user_id):  # noqa: F811
    reply = _send(app, *provide_request(submission([b"reply to"])), "/repository", reply_to)
    assert reply.status_value == SUCCESS
    x = _audit(app, "ITI-41", "110107")
    assert _participant(x, "110153") == _node(user_id)
    assert _participant(x, "110152")["UserID"].endswith("/repository")


@pytest.mark.parametrize("reply_to, user_id", CASES)
def test_iti42_source_user_id_is_the_reply_to(app, reply_to, user_id):  # noqa: F811
    data = envelope(draft(PATIENT).request(), Actions.REGISTER)
    _send(app, data, SOAP.format(Actions.REGISTER), "/registry", reply_to)
    x = _audit(app, "ITI-42", "110107")
    assert _participant(x, "110153") == _node(user_id)
    destination = _participant(x, "110152")
    assert destination["UserID"].endswith("/registry") and destination["UserIsRequestor"] == "false"


def test_iti42_of_a_provide_our_source_user_id_is_the_reply_to_we_send(app):  # noqa: F811
    """The repository's ITI-42 (Export at the repository, Import at the in-process registry):
    the repository is the Source, and our SOAP client sends wsa:ReplyTo anonymous."""
    assert _send(app, *provide_request(submission([b"export"])), "/repository", WSA_NONE).status_value == SUCCESS
    for event_id in ("110106", "110107"):
        x = _audit(app, "ITI-42", event_id)
        source, destination = _participant(x, "110153"), _participant(x, "110152")
        assert source["UserID"] == WSA_ANONYMOUS and source["UserIsRequestor"] == "true"
        assert source["NetworkAccessPointID"] != ADDRESS  # ours, not the provider's
        assert destination["UserID"].endswith("/registry")


@pytest.mark.parametrize("reply_to, user_id", CASES)
def test_iti43_destination_user_id_is_the_reply_to(app, reply_to, user_id):  # noqa: F811
    sub = submission([b"retrieved"])
    assert call_wsgi(app, *provide_request(sub)).status_value == SUCCESS
    _send(app, *retrieve_request([(REPOSITORY_UID, sub.docs[0].unique_id)]), "/repository", reply_to)
    x = _audit(app, "ITI-43", "110106")
    assert _participant(x, "110152") == _node(user_id)
    source = _participant(x, "110153")
    assert source["UserID"].endswith("/repository") and source["UserIsRequestor"] == "false"


def test_an_authenticated_node_keeps_its_tls_subject_as_alternative_user_id():
    """The TF leaves the Source's AlternativeUserID unspecialized: the node's TLS subject, which
    UserID carried before the wsa:ReplyTo rule, stays in the message (and the ARR's index)."""
    from audit import compact, messages
    from xds.context import Caller
    caller = Caller(remote_addr=ADDRESS, node_subject="CN=lps.example,O=Clinique & Co", endpoint="https://x/registry")
    for ev in (messages.stored_query(caller, "src", 0, "urn:uuid:q", b"<q/>", PATIENT),
               compact.decode(compact.encode_facts("iti18", compact.caller_facts(caller), [0, b"<q/>"], 0.0, "src",
                                                   "h"))[0]):
        source = _participant(assert_valid(ev.to_xml()), "110153")
        assert source == {**_node(WSA_ANONYMOUS), "AlternativeUserID": "CN=lps.example,O=Clinique & Co"}
        assert ("altid", "CN=lps.example,O=Clinique & Co") in ev.index_fields().keys
