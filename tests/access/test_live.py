"""The DMP matrix over real SOAP requests with signed XUA assertions, against ``xds serve
--access-policy dmp`` on SQLite and PostgreSQL; XUA attacks and the JSON API on the same server."""
from __future__ import annotations

import copy
import datetime as dt
import json
import urllib.parse

import pytest
import requests
from lxml import etree

from access.xua import Issuer, local_issuer, wrap_security
from client.errors import SoapFaultError
from client.transport import Transport
from tests.access import matrix as m
from tests.repository.support import provide_body, retrieve_body, submission
from tests.support.databases import BACKENDS, database_url
from tests.support.metadata import fresh_patient
from tests.support.server import start_server
from xds.vocabulary import NS_QUERY, NS_RIM, NS_XDSB, Actions, q

TOKEN = "test-token-0123456789"
FIND = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
REPOSITORY_UID = "1.3.6.1.4.1.21367.2017.2.3.52"
WSSE = "{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd}"


def find_body(patient: str) -> etree._Element:
    root = etree.Element(q(NS_QUERY, "AdhocQueryRequest"), nsmap={"query": NS_QUERY, "rim": NS_RIM})
    etree.SubElement(root, q(NS_QUERY, "ResponseOption"), returnType="LeafClass", returnComposedObjects="true")
    query = etree.SubElement(root, q(NS_RIM, "AdhocQuery"), id=FIND)
    for name, value in (("$XDSDocumentEntryPatientId", f"'{patient}'"),
                        ("$XDSDocumentEntryStatus", "('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')")):
        slot = etree.SubElement(query, q(NS_RIM, "Slot"), name=name)
        etree.SubElement(etree.SubElement(slot, q(NS_RIM, "ValueList")), q(NS_RIM, "Value")).text = value
    return root


class Client:
    def __init__(self, server, issuer: Issuer) -> None:
        self.server, self.issuer = server, issuer
        self.transport = Transport()

    def header(self, kind: str, patient: str, other: str, **kw) -> etree._Element:
        user, role, mode, for_patient = m.CALLERS[kind]
        resource = other if for_patient == "other" else (patient if for_patient else None)
        return self.issuer.security_header(user or patient, role=(role, "", role), mode=mode, patient_id=resource,
                                           **kw)

    def call(self, url, action, body, header):
        self.transport.assertion = header
        return self.transport.call(url, action, body)

    def find(self, patient: str, header) -> etree._Element:
        return self.call(self.server.registry_url, Actions.STORED_QUERY, find_body(patient), header).body

    def retrieve(self, unique_ids, header):
        reply = self.call(self.server.repository_url, Actions.RETRIEVE,
                          retrieve_body([(REPOSITORY_UID, u) for u in unique_ids]), header)
        return reply

    def api(self, method: str, path: str, payload=None, token=TOKEN):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.request(method, self.server.base_url + "/dmp/api" + path, json=payload, headers=headers,
                                timeout=30)


def seg(value: str) -> str:
    return urllib.parse.quote(value, safe="")


@pytest.fixture(scope="module", params=BACKENDS)
def live(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"access-live-{request.param}")
    url, handle = database_url(request.param, tmp)
    issuer = local_issuer(tmp / "data")
    server = start_server(tmp / "data", url, "--access-policy", "dmp",
                          env={"XDS_XUA_TRUST_LOCAL_ISSUER": "true", "XDS_ACCESS_API_TOKEN": TOKEN})
    client = Client(server, issuer)
    records = {}
    try:
        for state in m.STATES:
            patient = fresh_patient()
            uids: dict[str, str] = {}
            if state != m.ABSENT:
                assert client.api("POST", "/records", {"patient_id": patient}).status_code == 201
                cases = list(m.CASES)

                def edit(entry, i, cases=cases):
                    entry.confidentiality_codes = m.confidentiality(cases[i])
                    entry.authors = m.authors()
                sub = submission([f"doc {c} {patient}".encode() for c in cases], patient, edit=edit)
                body, _ = provide_body(sub, mtom=False)
                # the author is outside the authorised list: care team feeding
                reply = client.call(server.repository_url, Actions.PROVIDE, body,
                                    client.issuer.security_header(m.AUTHOR, patient_id=patient))
                assert reply.body.get("status").endswith("Success"), etree.tostring(reply.body)
                uids = {c: d.unique_id for c, d in zip(cases, sub.docs)}
                configure_over_api(client, patient, state, uids)
            records[state] = (patient, uids)
        yield client, records
    finally:
        code = server.stop()
        if handle is not None:
            handle.close()
    assert code == 0, server.log()


def configure_over_api(client: Client, patient: str, state: str, uids: dict[str, str]) -> None:
    p = seg(patient)
    calls = [("PUT", f"/records/{p}/treating-physician", {"professional_id": m.TREATING}),
             ("PUT", f"/records/{p}/authorised/{m.AUTHORISED}", None),
             ("PUT", f"/records/{p}/blocked/{m.BLOCKED}", None),
             ("PUT", f"/records/{p}/blocked/{m.BLOCKED_AUTHOR}", None)]
    for case, uid in uids.items():
        _codes, masked, disclosed = m.CASES[case]
        if masked is not None:
            calls.append(("PUT", f"/documents/{seg(uid)}/mask", {"masked": masked}))
        if disclosed:
            calls.append(("PUT", f"/documents/{seg(uid)}/disclose", {"disclosed": True}))
    if state == m.OPPOSED:
        calls.append(("PUT", f"/records/{p}/emergency", {"bris_de_glace": False, "centre_15": False}))
    if state == m.CLOSED:
        calls.append(("POST", f"/records/{p}/close", None))
    for method, path, payload in calls:
        resp = client.api(method, path, payload)
        assert resp.status_code == 200, (path, resp.text)


def _unique_ids(answer: etree._Element) -> set[str]:
    return {ei.get("value") for ei in answer.iter(q(NS_RIM, "ExternalIdentifier"))
            if ei.get("identificationScheme") == UNIQUE_ID}


@pytest.mark.parametrize("state,kind,visible", m.MATRIX, ids=[f"{s}-{c}" for s, c, _ in m.MATRIX])
def test_matrix_over_soap(live, state, kind, visible):
    client, records = live
    patient, uids = records[state]
    other = records[m.OPEN][0] if state != m.OPEN else records[m.OPPOSED][0]
    answer = client.find(patient, client.header(kind, patient, other))
    by_uid = {u: c for c, u in uids.items()}
    if visible is None:
        assert answer.get("status").endswith("Failure")
        assert "access refused" in etree.tostring(answer, encoding="unicode")
    else:
        assert answer.get("status").endswith("Success"), etree.tostring(answer)
        assert {by_uid[u] for u in _unique_ids(answer)} == set(visible)
    if not uids:
        return
    reply = client.retrieve(list(uids.values()), client.header(kind, patient, other))
    got = {by_uid[el.findtext(q(NS_XDSB, "DocumentUniqueId"))] for el in reply.body.iter(q(NS_XDSB, "DocumentResponse"))}
    assert got == set(visible or ())
    # a hidden document answers exactly like an unknown one
    texts = [e.get("codeContext") for e in reply.body.iter("{urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0}RegistryError")]
    assert all(t.endswith("is not in this repository") for t in texts)
    assert len(texts) == len(uids) - len(got)


def test_emergency_access_listed_over_api(live):
    client, records = live
    patient, _ = records[m.OPEN]
    client.find(patient, client.header("break_glass", patient, "x", organization="SAMU 75"))
    listed = client.api("GET", f"/records/{seg(patient)}/emergency-accesses").json()["emergency_accesses"]
    assert any(a["professional_id"] == m.EMERGENCY and a["mode"] == "bris_de_glace" for a in listed)


def test_api_requires_the_token(live):
    client, records = live
    patient, _ = records[m.OPEN]
    assert client.api("GET", f"/records/{seg(patient)}", token=None).status_code == 401
    assert client.api("GET", f"/records/{seg(patient)}", token="wrong").status_code == 401
    shown = client.api("GET", f"/records/{seg(patient)}").json()
    assert shown["treating_physician"] == m.TREATING and m.BLOCKED in shown["blocked"]
    assert client.api("PUT", f"/documents/{seg('1.2.3.4.5.6')}/mask", {"masked": True}).status_code == 404


# -- XUA attacks: each refused with a WS-Security fault ------------------------------------------------------

def _fault(client, header) -> tuple[str, str]:
    patient = "000000000000196^^^&1.2.250.1.213.1.4.10&ISO"
    with pytest.raises(SoapFaultError) as info:
        client.find(patient, header)
    return str(info.value), patient


def _sign_other(assertion):
    return Issuer.generate().assertion("810000000002")


def _assertion(client, **kw):
    return client.issuer.assertion(m.AUTHORISED, **kw)


def test_missing_assertion(live):
    client, _ = live
    text, _ = _fault(client, None)
    assert "InvalidSecurityToken" in text and "requires an XUA" in text


def test_signature_stripped(live):
    client, _ = live
    a = _assertion(client)
    a.remove(a.find("{http://www.w3.org/2000/09/xmldsig#}Signature"))
    text, _ = _fault(client, wrap_security(a))
    assert "InvalidSecurityToken" in text and "not signed" in text


def test_signed_by_another_key(live):
    client, _ = live
    text, _ = _fault(client, wrap_security(Issuer.generate().assertion(m.AUTHORISED)))
    assert "FailedAuthentication" in text and "not trusted" in text


def test_patient_changed_and_resigned(live):
    client, records = live
    patient, _ = records[m.OPEN]
    a = _assertion(client, patient_id=records[m.OPPOSED][0])
    for value in a.iter("{urn:oasis:names:tc:SAML:2.0:assertion}AttributeValue"):
        if value.text == records[m.OPPOSED][0]:
            value.text = patient
    tampered = copy.deepcopy(a)
    text, _ = _fault(client, wrap_security(tampered))
    assert "FailedAuthentication" in text and "does not verify" in text
    # re-signed by the attacker's own key (its certificate in KeyInfo): not trusted
    attacker = Issuer.generate()
    resigned = attacker.assertion(m.AUTHORISED, patient_id=patient)
    text, _ = _fault(client, wrap_security(resigned))
    assert "FailedAuthentication" in text
    # the attacker's signature with the trusted certificate put in KeyInfo: the signature fails
    cert_text = a.find(".//{http://www.w3.org/2000/09/xmldsig#}X509Certificate").text
    resigned.find(".//{http://www.w3.org/2000/09/xmldsig#}X509Certificate").text = cert_text
    text, _ = _fault(client, wrap_security(resigned))
    assert "FailedAuthentication" in text and "does not verify" in text


def test_expired(live):
    client, _ = live
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    text, _ = _fault(client, wrap_security(_assertion(client, not_before=start, validity=600)))
    assert "FailedAuthentication" in text and "expired" in text


def test_not_yet_valid(live):
    client, _ = live
    start = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    text, _ = _fault(client, wrap_security(_assertion(client, not_before=start)))
    assert "FailedAuthentication" in text and "not valid before" in text


def test_signature_wrapping(live):
    client, records = live
    _patient, _ = records[m.OPEN]
    signed = _assertion(client)
    forged = copy.deepcopy(signed)
    forged.remove(forged.find("{http://www.w3.org/2000/09/xmldsig#}Signature"))
    forged.set("ID", "_forged")
    forged.find("{urn:oasis:names:tc:SAML:2.0:assertion}Subject/{urn:oasis:names:tc:SAML:2.0:assertion}NameID") \
        .text = m.TREATING
    text, _ = _fault(client, wrap_security(forged, signed))
    assert "InvalidSecurityToken" in text and "wrapping" in text
    # the signed assertion hidden inside the forged one
    forged2 = copy.deepcopy(forged)
    ext = etree.SubElement(forged2, "{urn:oasis:names:tc:SAML:2.0:assertion}Advice")
    ext.append(_assertion(client))
    text, _ = _fault(client, wrap_security(forged2))
    assert "InvalidSecurityToken" in text


def test_replayed(live):
    """An assertion that carries OneTimeUse is accepted once (SAML 2.0 Core 2.5.1.5); the replay
    is a security alert naming the professional whose assertion came again."""
    client, records = live
    patient, _ = records[m.OPEN]
    header = wrap_security(_assertion(client, one_time_use=True))
    answer = client.find(patient, copy.deepcopy(header))
    assert answer.get("status").endswith("Success")
    with pytest.raises(SoapFaultError) as info:
        client.find(patient, copy.deepcopy(header))
    assert "FailedAuthentication" in str(info.value) and "replay" in str(info.value)
    assert _audited(client.server, "110126", 4, m.AUTHORISED)


def test_an_assertion_serves_a_session_by_default(live):
    """Without OneTimeUse an assertion serves until it expires: an X-Service User keeps the one it
    got for its session (``xua_assertion_reuse``, on by default)."""
    client, records = live
    patient, _ = records[m.OPEN]
    header = wrap_security(_assertion(client))
    for _ in range(3):
        assert client.find(patient, copy.deepcopy(header)).get("status").endswith("Success")


def _audited(server, alert_type: str, outcome: int, user: str | None = None) -> bool:
    """A Security Alert of ``alert_type`` with ``outcome`` (and the user) reached the audit trail."""
    import time
    args = ["audit", "search", "--event", "110113", "--format", "json", "--outcome", str(outcome)]
    if user:
        args += ["--user", user]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        out = server.xds(*args, check=False).stdout
        try:
            rows = json.loads(out[out.index("["):]) if "[" in out else []
        except ValueError:
            rows = []
        if any(r.get("type") == alert_type for r in rows):
            return True
        time.sleep(0.5)
    return False


def test_refusals_are_audited(live):
    client, records = live
    _fault(client, wrap_security(Issuer.generate().assertion(m.AUTHORISED)))
    assert _audited(client.server, "110126", 4)  # Node Authentication failure (XUA)
    patient, _ = records[m.OPEN]
    answer = client.find(patient, client.header("blocked", patient, "x"))
    assert answer.get("status").endswith("Failure")
    assert _audited(client.server, "110132", 4, m.BLOCKED)  # Use of Restricted Function, refused
    client.find(patient, client.header("break_glass", patient, "x"))
    assert _audited(client.server, "110127", 0, m.EMERGENCY)  # Emergency Override, granted and flagged


def test_wrong_audience(tmp_path):
    from access.xua import NS_SAML, XuaError, XuaVerifier, _q
    issuer = Issuer.generate()
    verifier = XuaVerifier([issuer.certificate], audience="urn:dmp:registry")
    for audience, ok in (("urn:dmp:registry", True), ("urn:elsewhere", False), (None, False)):
        sec = etree.fromstring(etree.tostring(wrap_security(issuer.assertion("X", audience=audience))))
        if ok:
            assert verifier.verify(list(sec.iter(_q(NS_SAML, "Assertion")))).name_id == "X"
        else:
            with pytest.raises(XuaError) as info:
                verifier.verify(list(sec.iter(_q(NS_SAML, "Assertion"))))
            assert info.value.subcode.endswith("FailedAuthentication") and "audience" in info.value.reason


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_assertion_reuse_every_assertion_is_accepted_once_over_soap(tmp_path, backend):
    """``xua_assertion_reuse = false``: each request carries a fresh assertion, and a second use
    of any assertion is a replay."""
    url, handle = database_url(backend, tmp_path)
    issuer = local_issuer(tmp_path / "data")
    server = start_server(tmp_path / "data", url, "--access-policy", "dmp",
                          env={"XDS_XUA_TRUST_LOCAL_ISSUER": "true", "XDS_XUA_ASSERTION_REUSE": "false"})
    try:
        client = Client(server, issuer)
        patient = fresh_patient()
        kept = wrap_security(_assertion(client, patient_id=patient))
        assert client.find(patient, copy.deepcopy(kept)).tag.endswith("AdhocQueryResponse")
        with pytest.raises(SoapFaultError) as info:
            client.find(patient, copy.deepcopy(kept))
        assert "FailedAuthentication" in str(info.value) and "replay" in str(info.value)
    finally:
        code = server.stop()
        if handle is not None:
            handle.close()
    assert code == 0, server.log()
