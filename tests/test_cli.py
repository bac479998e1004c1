"""The ``xds`` command: patients records and ``serve``, sharing one store through --data-dir."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.support.server import start_server

PID = "2740175123456^^^&1.2.250.1.213.1.4.10&ISO^NH"


def xds(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_patients_add_list_close_reopen(tmp_path):
    data = str(tmp_path / "d")
    r = xds("patients", "add", PID, "--data-dir", data)
    assert r.returncode == 0 and r.stdout.startswith("created"), r.stderr
    assert xds("patients", "add", PID, "--data-dir", data).stdout.startswith("exists")
    assert xds("patients", "close", PID, "--data-dir", data).returncode == 0
    listing = xds("patients", "list", "--data-dir", data).stdout
    assert PID in listing and "closed" in listing
    xds("patients", "reopen", PID, "--data-dir", data)
    assert "open" in xds("patients", "list", "--data-dir", data).stdout


def test_patients_add_refuses_a_malformed_patient_id(tmp_path):
    r = xds("patients", "add", "not-a-cx", "--data-dir", str(tmp_path))
    assert r.returncode == 2 and "CX" in r.stderr


def test_data_dir_from_environment(tmp_path):
    env = {"XDS_DATA_DIR": str(tmp_path / "env")}
    assert xds("patients", "add", PID, env=env).returncode == 0
    assert PID in xds("patients", "list", "--data-dir", str(tmp_path / "env")).stdout


def test_serve_prints_endpoints_and_stops_cleanly_on_sigterm(tmp_path):
    server = start_server(tmp_path / "data", f"sqlite:///{tmp_path / 'r.db'}")
    assert server.stop() == 0
    log = server.log()
    assert f"{server.registry_url}" in log and f"{server.repository_url}" in log and "?wsdl" in log


def test_xua_issue_writes_an_assertion_the_server_trusts(tmp_path):
    """``xds xua issue``: a wsse:Security with a signed assertion for the professional and the
    patient, ``--one-time-use`` adding saml2:OneTimeUse, that the local issuer's verifier accepts."""
    from lxml import etree

    from access.xua import NS_SAML, XuaVerifier, _q, local_issuer
    data = tmp_path / "d"
    for flags, once in (((), False), (("--one-time-use",), True)):
        r = subprocess.run([sys.executable, "-m", "server.cli", "xua", "issue", "810000000042", "--patient", PID,
                            "--data-dir", str(data), *flags], capture_output=True, timeout=120)
        assert r.returncode == 0, r.stderr
        security = etree.fromstring(r.stdout.strip())
        verifier = XuaVerifier([local_issuer(data, create=False).certificate], replay_check=False)
        facts = verifier.verify(list(security.iter(_q(NS_SAML, "Assertion"))))
        assert (facts.name_id, facts.text("urn:oasis:names:tc:xacml:2.0:resource:resource-id")) == \
            ("810000000042", PID)
        assert facts.one_time_use is once
