"""The ``xds`` command: patients records and ``serve``, sharing one store through --data-dir."""
from __future__ import annotations

import importlib.metadata
import os
import socket
import subprocess
import sys

import pytest

from config import Settings
from server.cli import build_parser, commands
from server.serve import banner
from tests.support.server import free_port, start_server

PID = "274017512345613^^^&1.2.250.1.213.1.4.10&ISO"


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
    assert xds("patients", "reopen", PID, "--data-dir", data).stdout == f"reopened {PID}\n"
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
    assert "registry mode: embedded" in log and "repository mode: embedded" in log


def test_serve_banner_shows_each_actors_mode():
    remote = "https://registry.example.org/registry"
    embedded = "\n".join(banner(Settings(database_url="postgresql+psycopg://xds:secret@db/xds")))
    assert "registry mode: embedded" in embedded and "repository mode: embedded" in embedded
    assert "secret" not in embedded and "xds:***@db/xds" in embedded
    text = "\n".join(banner(Settings(remote_registry_url=remote)))
    assert f"registry mode: remote {remote}" in text and "repository mode: embedded" in text


def test_serve_warns_that_the_clients_registry_url_is_not_its_remote_registry(tmp_path):
    """XDS_REGISTRY_URL exported for the client (as the README shows) leaves the server's registry
    embedded, and the server says it ignores the variable."""
    server = start_server(tmp_path / "data", f"sqlite:///{tmp_path / 'r.db'}",
                          env={"XDS_REGISTRY_URL": "http://127.0.0.1:9/registry"})
    assert server.stop() == 0
    log = server.log()
    assert "XDS_REGISTRY_URL is the client's registry endpoint and xds serve ignores it" in log
    assert "registry mode: embedded" in log


def test_serve_refuses_the_clients_registry_url_flag(tmp_path):
    r = xds("serve", "--registry-url", "http://127.0.0.1:9/registry", "--data-dir", str(tmp_path))
    assert r.returncode == 2 and "--remote-registry-url" in r.stderr and "listening" not in r.stdout


def test_version_comes_from_the_package_metadata():
    r = xds("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"xds {importlib.metadata.version('dmp-xds')}"


def test_every_command_help_shows_an_example():
    for path, parser in commands(build_parser()):
        assert "example" in (parser.epilog or ""), f"xds {path} --help has no example"
        assert f"xds {path}".strip() in parser.format_help().split("example")[-1], path
    assert "  xds submit cr-bio.xml" in xds("submit", "--help").stdout


def test_client_commands_list_only_the_options_they_use():
    helps = {name: parser.format_help() for name, parser in commands(build_parser())}
    for name in ("submit", "query", "retrieve", "import"):
        assert "--data-dir" not in helps[name] and "--database-url" not in helps[name], name
        assert "--registry-url" in helps[name] and "--tls-ca" in helps[name], name
    assert "--repository-url" not in helps["query"]
    assert "--repository-url" in helps["retrieve"] and "--repository-url" in helps["submit"]
    assert "--data-dir" in helps["demo"] and "--repository-url" in helps["demo"]


def test_ordinary_commands_log_no_alembic_lines_unless_verbose(tmp_path):
    r = xds("patients", "list", "--data-dir", str(tmp_path))
    assert r.returncode == 0 and r.stderr == ""
    assert "alembic" in xds("patients", "list", "--data-dir", str(tmp_path), "--verbose").stderr
    assert "alembic" in xds("--verbose", "patients", "list", "--data-dir", str(tmp_path)).stderr


@pytest.mark.parametrize(("command", "url"), [(("serve", "--port", "0"), "postgresql+psycopg://postgres@127.0.0.1:1/none"),
                                            (("patients", "list"), "nosuchdriver://x"), (("migrate",), "not a url")])
def test_a_wrong_database_url_is_one_clear_line(command, url):
    """No server, an unknown driver, no URL at all: one line on stderr, no traceback, no banner."""
    r = xds(*command, "--database-url", url)
    assert r.returncode == 2 and r.stdout == "", r.stdout
    assert len(r.stderr.splitlines()) == 1 and "cannot use the database" in r.stderr, r.stderr


def test_a_busy_port_is_one_clear_line_before_any_banner(tmp_path):
    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        r = xds("serve", "--port", str(port), "--data-dir", str(tmp_path))
    assert r.returncode == 1 and "listening" not in r.stdout
    assert r.stderr.splitlines() == [f"xds serve: cannot listen on 127.0.0.1:{port}: Address already in use"]


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
