"""The JSON policy API (``/dmp/api``) against an attacker on the host (issue #17, finding 5): it
always wants a bearer token, the audited actor is the token's principal, every read is audited.

In-process WSGI calls of the mounted door, on SQLite and PostgreSQL; the audit trail is read back
from the local Audit Record Repository and each message validated against DICOM's schemas."""
from __future__ import annotations

import io
import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

from audit import store
from audit.sender import Sender
from config import Settings, load_settings
from server.app import build_services, mounts
from tests.audit.support import assert_valid, xml_of
from tests.support.metadata import fresh_patient
from transactions.policy_admin import PolicyAdmin
from transactions.services import Services

TOKEN = "legacy-token-0123456789abcdef"
PORTAL_TOKEN = "portal-token-0123456789abcdef"
OPS_TOKEN = "ops-token-0123456789abcdef"
PROFESSIONAL = "810000000011"
ATTACKER = "203.0.113.7"
SECURITY_ALERT, USER_AUTHENTICATION, PATIENT_RECORD = "110113", "110122", "110110"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: dict


@dataclass
class Api:
    services: Services
    app: object

    def call(self, method: str, path: str, payload: dict | None = None, token: str | None = None,
             remote: str = "127.0.0.1", headers: dict[str, str] | None = None) -> Reply:
        raw = json.dumps(payload).encode() if payload is not None else b""
        environ = {"REQUEST_METHOD": method, "SCRIPT_NAME": "/dmp/api", "PATH_INFO": urllib.parse.unquote(path),
                   "RAW_URI": "/dmp/api" + path, "REMOTE_ADDR": remote, "SERVER_NAME": "127.0.0.1",
                   "SERVER_PORT": "8080", "HTTP_HOST": "127.0.0.1:8080", "wsgi.url_scheme": "http",
                   "wsgi.input": io.BytesIO(raw), "CONTENT_LENGTH": str(len(raw)),
                   "CONTENT_TYPE": "application/json"}
        if token is not None:
            environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        for name, value in (headers or {}).items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        answer: dict = {}

        def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
            answer["status"] = int(status.split()[0])
            answer["headers"] = dict(response_headers)

        body = b"".join(self.app(environ, start_response))
        return Reply(answer["status"], answer["headers"], json.loads(body))

    def trail(self) -> list[etree._Element]:
        """Every audit message written so far, each valid against DICOM's schemas."""
        self.services.auditor.flush()
        Sender(self.services.database).deliver_once()
        messages = [xml_of(r.raw) for r in store.iter_all(self.services.database)]
        for message in messages:
            assert_valid(message)
        return messages


@pytest.fixture
def make_api(db, tmp_path: Path) -> Iterator:
    built: list[Services] = []

    def make(**settings) -> Api:
        services = build_services(Settings(data_dir=tmp_path / f"data{len(built)}", database_url=db.url,
                                           access_policy="dmp", **settings))
        built.append(services)
        return Api(services, mounts(services)["/dmp/api"])

    yield make
    for services in built:
        services.auditor.close()


def seg(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def event_id(message: etree._Element) -> str:
    return message.find("EventIdentification/EventID").get("csd-code")


def event_types(message: etree._Element) -> list[str]:
    return [t.get("csd-code") for t in message.iterfind("EventIdentification/EventTypeCode")]


def outcome(message: etree._Element) -> str:
    return message.find("EventIdentification").get("EventOutcomeIndicator")


def description(message: etree._Element) -> str:
    return message.findtext("EventIdentification/EventOutcomeDescription") or ""


def users(message: etree._Element) -> list[str]:
    return [p.get("UserID") for p in message.iterfind("ActiveParticipant")]


def addresses(message: etree._Element) -> list[str]:
    """The network addresses of the requesting participants (this server's own is not one)."""
    return [p.get("NetworkAccessPointID") for p in message.iterfind("ActiveParticipant")
            if p.get("UserIsRequestor") == "true" and p.get("NetworkAccessPointID")]


def patients(message: etree._Element) -> list[str]:
    return [o.get("ParticipantObjectID") for o in message.iterfind("ParticipantObjectIdentification")
            if o.get("ParticipantObjectTypeCode") == "1" and o.get("ParticipantObjectTypeCodeRole") == "1"]


def refusals(trail: list[etree._Element]) -> list[etree._Element]:
    return [x for x in trail if event_id(x) == SECURITY_ALERT and USER_AUTHENTICATION in event_types(x)]


def changes(trail: list[etree._Element]) -> list[etree._Element]:
    return [x for x in trail if event_id(x) == SECURITY_ALERT and USER_AUTHENTICATION not in event_types(x)]


def test_api_without_a_configured_token_refuses_everyone_even_on_loopback(make_api):
    api = make_api()
    patient = fresh_patient()
    api.services.registry.add_patient(patient)
    for remote in ("127.0.0.1", "::1", ATTACKER):
        for token in (None, "", "anything-at-all"):
            got = api.call("GET", f"/records/{seg(patient)}", token=token, remote=remote)
            assert got.status in (401, 403), (remote, token, got)
            message = got.body["error"]
            assert "access_api_tokens" in message and "XDS_ACCESS_API_TOKENS" in message
            assert "patient_id" not in got.body
        put = api.call("PUT", f"/records/{seg(patient)}/authorised/{PROFESSIONAL}", remote=remote)
        assert put.status in (401, 403)
    assert PolicyAdmin(api.services.database).show(patient)["authorised"] == []
    refused = refusals(api.trail())
    assert len(refused) == 3 * 4
    assert all(outcome(x) != "0" for x in refused)
    for remote in ("127.0.0.1", "::1", ATTACKER):
        mine = [x for x in refused if remote in addresses(x)]
        assert len(mine) == 4 and all(remote in description(x) for x in mine)


def test_api_with_a_wrong_token_is_refused_and_audited(make_api):
    api = make_api(access_api_token=TOKEN)
    patient = fresh_patient()
    api.services.registry.add_patient(patient)
    path = f"/records/{seg(patient)}/authorised/{PROFESSIONAL}"
    attempts = [{"token": "wrong"}, {"token": TOKEN[:-1]}, {"token": TOKEN + "x"}, {"token": None},
                {"headers": {"Authorization": f"Basic {TOKEN}"}}, {"headers": {"Authorization": TOKEN}}]
    for attempt in attempts:
        got = api.call("PUT", path, remote=ATTACKER, **attempt)
        assert got.status == 401, (attempt, got)
        assert got.headers["WWW-Authenticate"].startswith("Bearer")
        assert "token" in got.body["error"]
    assert api.call("GET", f"/records/{seg(patient)}", token=TOKEN).body["authorised"] == []
    trail = api.trail()
    refused = refusals(trail)
    assert len(refused) == len(attempts)
    for message in refused:
        assert outcome(message) != "0"
        assert ATTACKER in addresses(message) and ATTACKER in description(message)
        assert TOKEN[:-1] not in etree.tostring(message, encoding="unicode")
    assert not changes(trail)


def test_api_actor_is_the_token_principal_not_a_header(make_api):
    api = make_api(access_api_token=TOKEN)
    patient = fresh_patient()
    api.services.registry.add_patient(patient)
    got = api.call("PUT", f"/records/{seg(patient)}/authorised/{PROFESSIONAL}", token=TOKEN,
                   headers={"X-DMP-Actor": "patient-mallory"})
    assert got.status == 200 and got.body["authorised"] == [PROFESSIONAL]
    [change] = changes(api.trail())
    assert outcome(change) == "0" and patients(change) == [patient]
    assert "dmp-api" in users(change)
    assert "patient-mallory" not in users(change)


def test_api_reads_are_audited(make_api):
    api = make_api(access_api_token=TOKEN)
    patient, unknown = fresh_patient(), fresh_patient()
    api.services.registry.add_patient(patient)
    assert api.call("GET", f"/records/{seg(patient)}", token=TOKEN).status == 200
    listed = api.call("GET", f"/records/{seg(patient)}/emergency-accesses", token=TOKEN)
    assert listed.status == 200 and listed.body["emergency_accesses"] == []
    assert api.call("GET", f"/records/{seg(unknown)}", token=TOKEN).status == 404
    reads = [x for x in api.trail() if event_id(x) == PATIENT_RECORD]
    assert [x.find("EventIdentification").get("EventActionCode") for x in reads] == ["R", "R", "R"]
    assert [patients(x) for x in reads] == [[patient], [patient], [unknown]]
    assert [outcome(x) for x in reads] == ["0", "0", "4"]
    assert all("dmp-api" in users(x) and "127.0.0.1" in addresses(x) for x in reads)
    assert "emergency accesses" in description(reads[1])
    # a change that changes nothing would answer the record unaudited: refused
    assert api.call("PUT", f"/records/{seg(patient)}/emergency", {}, token=TOKEN).status == 400


def test_named_tokens_each_act_as_their_principal(make_api):
    api = make_api(access_api_tokens={"portal": PORTAL_TOKEN, "ops": OPS_TOKEN}, access_api_token=TOKEN)
    patient = fresh_patient()
    api.services.registry.add_patient(patient)
    for token, professional in ((PORTAL_TOKEN, "810000000021"), (OPS_TOKEN, "810000000022"),
                                (TOKEN, "810000000023")):
        got = api.call("PUT", f"/records/{seg(patient)}/blocked/{professional}", token=token)
        assert got.status == 200, got
    by_professional = {next(p for p in ("810000000021", "810000000022", "810000000023") if p in description(x)):
                       users(x) for x in changes(api.trail())}
    assert "portal" in by_professional["810000000021"]
    assert "ops" in by_professional["810000000022"]
    assert "dmp-api" in by_professional["810000000023"]
    # the scheme is case-insensitive (RFC 7235 2.1)
    lower = api.call("GET", f"/records/{seg(patient)}", headers={"Authorization": f"bearer {OPS_TOKEN}"})
    assert lower.status == 200


def test_named_tokens_from_toml_and_environment(tmp_path: Path):
    config = tmp_path / "xds.toml"
    config.write_text(f'[xds]\naccess_api_token = "{TOKEN}"\n\n[xds.access_api_tokens]\nportal = "{PORTAL_TOKEN}"\n')
    assert load_settings(config, environ={}).access_api_tokens == {"portal": PORTAL_TOKEN}
    env = {"XDS_ACCESS_API_TOKENS": json.dumps({"ops": OPS_TOKEN})}
    assert load_settings(config, environ=env).access_api_tokens == {"ops": OPS_TOKEN}
    with pytest.raises(ValueError):
        load_settings(environ={"XDS_ACCESS_API_TOKENS": json.dumps({"ops": 12})})
    with pytest.raises(ValueError):
        load_settings(environ={"XDS_ACCESS_API_TOKENS": json.dumps(["ops", OPS_TOKEN])})


@pytest.mark.parametrize("settings", [
    {"access_api_tokens": {"portal": PORTAL_TOKEN, "ops": PORTAL_TOKEN}},
    {"access_api_tokens": {"dmp-api": PORTAL_TOKEN}, "access_api_token": TOKEN},
    {"access_api_tokens": {"": PORTAL_TOKEN}},
    {"access_api_tokens": {"ops": "   "}},
], ids=["same-token-twice", "dmp-api-twice", "no-name", "blank-token"])
def test_ambiguous_tokens_stop_the_server_from_starting(make_api, settings):
    with pytest.raises(ValueError):
        make_api(**settings)
