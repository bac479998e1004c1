"""XUA (ITI-40) replay rules and assertion reuse, on the verifier itself over SQLite and PostgreSQL.

By default (``xua_assertion_reuse``) an assertion may come again until it expires (SAML 2.0 Core
2.5.1.5, ITI TF-2 3.40.4.1.2), except one that carries ``saml2:OneTimeUse``; each worker checks a
given assertion's signature once. Without reuse every assertion ID is accepted once.
"""
from __future__ import annotations

import copy
import datetime as dt
from types import SimpleNamespace

import pytest
from lxml import etree

from access import xua
from access.store import AccessStore, migrate
from access.xua import NS_SAML, Issuer, XuaError, XuaVerifier, _q, build_verifier, wrap_security
from config import Settings
from registry.store import migrate as migrate_registry
from tests.support.databases import BACKENDS, database_url
from xds.soap.namespaces import NS_SOAP12


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer.generate()


@pytest.fixture(scope="module", params=BACKENDS)
def store(request, tmp_path_factory):
    from storage.database import Database
    url, handle = database_url(request.param, tmp_path_factory.mktemp("xua-" + request.param))
    db = Database(url)
    migrate_registry(db)
    migrate(db)
    yield AccessStore(db)
    db.dispose()
    if handle is not None:
        handle.close()


def received(assertion: etree._Element) -> tuple[list[etree._Element], etree._Element]:
    """The assertion as a request brings it: parsed anew, inside wsse:Security in a SOAP header."""
    header = etree.Element(etree.QName(NS_SOAP12, "Header"))
    header.append(wrap_security(copy.deepcopy(assertion)))
    header = etree.fromstring(etree.tostring(header))
    return list(header.iter(_q(NS_SAML, "Assertion"))), header


def verify(verifier: XuaVerifier, assertion: etree._Element, now: dt.datetime | None = None):
    assertions, header = received(assertion)
    return verifier.verify(assertions, header, now=now)


def signxml_calls(monkeypatch) -> list[int]:
    from signxml import XMLVerifier
    calls, real = [], XMLVerifier.verify

    def counting(self, *args, **kw):
        calls.append(1)
        return real(self, *args, **kw)
    monkeypatch.setattr(XMLVerifier, "verify", counting)
    return calls


def refused_as_replay(verifier: XuaVerifier, assertion: etree._Element) -> bool:
    with pytest.raises(XuaError) as info:
        verify(verifier, assertion)
    return info.value.subcode == xua.FAILED_AUTHENTICATION and "replay" in info.value.reason


def test_without_reuse_an_assertion_is_accepted_once(issuer, store):
    verifier = XuaVerifier([issuer.certificate], store=store, reuse=False)
    assertion = issuer.assertion("810000000001")
    assert verify(verifier, assertion).name_id == "810000000001"
    assert refused_as_replay(verifier, assertion)


def test_with_reuse_an_assertion_is_accepted_again_until_it_expires(issuer, store):
    verifier = XuaVerifier([issuer.certificate], store=store, clock_skew=60, reuse=True)
    assertion = issuer.assertion("810000000002", validity=300)
    for _ in range(3):
        assert verify(verifier, assertion).name_id == "810000000002"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=300 + 61)
    with pytest.raises(XuaError) as info:
        verify(verifier, assertion, now=later)
    assert info.value.subcode == xua.FAILED_AUTHENTICATION and "expired" in info.value.reason


def test_with_reuse_a_one_time_use_assertion_is_still_accepted_once(issuer, store):
    verifier = XuaVerifier([issuer.certificate], store=store, reuse=True)
    assertion = issuer.assertion("810000000003", one_time_use=True)
    assert verify(verifier, assertion).one_time_use
    assert refused_as_replay(verifier, assertion)


def test_with_reuse_the_signature_is_checked_once_per_assertion(issuer, store, monkeypatch):
    calls = signxml_calls(monkeypatch)
    verifier = XuaVerifier([issuer.certificate], store=store, reuse=True)
    first, second = issuer.assertion("810000000004"), issuer.assertion("810000000004")
    for assertion in (first, first, second, first, second):
        verify(verifier, assertion)
    assert len(calls) == 2


def test_without_reuse_the_signature_is_checked_on_every_request(issuer, monkeypatch):
    calls = signxml_calls(monkeypatch)
    verifier = XuaVerifier([issuer.certificate], replay_check=False, reuse=False)
    assertion = issuer.assertion("810000000005")
    for _ in range(3):
        verify(verifier, assertion)
    assert len(calls) == 3


def test_with_reuse_an_altered_copy_of_a_verified_assertion_is_refused(issuer, store):
    verifier = XuaVerifier([issuer.certificate], store=store, reuse=True)
    assertion = issuer.assertion("810000000006", patient_id="1^^^&1.2.250.1.213.1.4.10&ISO")
    verify(verifier, assertion)
    altered = copy.deepcopy(assertion)
    altered.find(f"{_q(NS_SAML, 'Subject')}/{_q(NS_SAML, 'NameID')}").text = "810000000666"
    with pytest.raises(XuaError) as info:
        verify(verifier, altered)
    assert info.value.subcode == xua.FAILED_AUTHENTICATION and "does not verify" in info.value.reason


def test_with_reuse_a_verified_assertion_outside_wsse_security_is_refused(issuer, store):
    verifier = XuaVerifier([issuer.certificate], store=store, reuse=True)
    assertion = issuer.assertion("810000000007")
    verify(verifier, assertion)
    header = etree.Element(etree.QName(NS_SOAP12, "Header"))
    header.append(copy.deepcopy(assertion))
    with pytest.raises(XuaError) as info:
        verifier.verify(list(header.iter(_q(NS_SAML, "Assertion"))), header)
    assert info.value.subcode == xua.INVALID_TOKEN and "wsse:Security" in info.value.reason
    with pytest.raises(XuaError) as info:
        verifier.verify(received(assertion)[0] * 2)
    assert "wrapping" in info.value.reason


def test_with_reuse_a_not_yet_valid_assertion_is_refused_until_its_time(issuer, store):
    verifier = XuaVerifier([issuer.certificate], store=store, clock_skew=60, reuse=True)
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=600)
    assertion = issuer.assertion("810000000008", not_before=start)
    with pytest.raises(XuaError) as info:
        verify(verifier, assertion)
    assert "not valid before" in info.value.reason
    assert verify(verifier, assertion, now=start).name_id == "810000000008"


def test_the_verified_assertions_kept_are_bounded(issuer, monkeypatch):
    monkeypatch.setattr(xua, "VERIFIED_CACHE_SIZE", 3)
    calls = signxml_calls(monkeypatch)
    verifier = XuaVerifier([issuer.certificate], replay_check=False, reuse=True)
    assertions = [issuer.assertion(f"81000000010{i}") for i in range(5)]
    for assertion in assertions:
        verify(verifier, assertion)
    assert len(verifier._verified) == 3
    verify(verifier, assertions[-1])
    assert len(calls) == 5
    verify(verifier, assertions[0])
    assert len(calls) == 6


def test_a_deferred_replay_check_is_owed_only_for_an_assertion_used_once(issuer, store):
    from xds.context import Caller
    verifier = XuaVerifier([issuer.certificate], store=store, reuse=True)
    for one_time_use, owed in ((False, False), (True, True)):
        _assertions, header = received(issuer.assertion("810000000009", one_time_use=one_time_use))
        caller = Caller()
        verifier.apply(SimpleNamespace(header=header), caller, required=True, defer_replay=True)
        assert (caller.pending_assertion is not None) is owed


def test_the_verifier_takes_xua_assertion_reuse_from_the_settings(tmp_path):
    assert build_verifier(Settings(data_dir=tmp_path)).reuse is True
    assert build_verifier(Settings(data_dir=tmp_path, xua_assertion_reuse=False)).reuse is False
