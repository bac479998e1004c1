"""The client's HTTPS: ``--tls-ca`` is the CA the server's certificate is checked with, whatever
the environment says (requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's
``verify``); without it those variables keep their usual meaning."""
from __future__ import annotations

import http.server
import ssl
import threading

import pytest
from lxml import etree

from client.errors import TransportError
from client.transport import TlsOptions, Transport
from tests.audit.support import make_pki
from xds.soap.namespaces import NS_SOAP12

REPLY = (b'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="%s"><s:Body><ok/></s:Body></s:Envelope>'
         % NS_SOAP12.encode())


class _Soap(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/soap+xml; charset=UTF-8")
        self.send_header("Content-Length", str(len(REPLY)))
        self.end_headers()
        self.wfile.write(REPLY)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def https_server(tmp_path):
    """An HTTPS endpoint whose certificate chains to ``ca``; ``other_ca`` is a CA that did not sign it."""
    (tmp_path / "ours").mkdir()
    (tmp_path / "other").mkdir()
    pki, other = make_pki(tmp_path / "ours"), make_pki(tmp_path / "other")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Soap)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["server_cert"], pki["server_key"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/registry", pki["ca"], other["ca"]
    server.shutdown()
    server.server_close()


def _call(url: str, ca: str | None) -> str:
    transport = Transport(TlsOptions(ca=ca))
    try:
        return transport.call(url, "urn:test", etree.Element("q")).body.tag
    finally:
        transport.close()


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_tls_ca_is_used_even_when_the_environment_names_another_bundle(https_server, monkeypatch, variable):
    url, ca, other_ca = https_server
    monkeypatch.setenv(variable, other_ca)
    assert _call(url, ca) == "ok"


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_without_tls_ca_the_environment_bundle_is_used(https_server, monkeypatch, variable):
    url, ca, other_ca = https_server
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv(variable, ca)
    assert _call(url, None) == "ok"
    monkeypatch.setenv(variable, other_ca)
    with pytest.raises(TransportError, match="TLS failure"):
        _call(url, None)


def test_a_server_certificate_outside_tls_ca_is_refused(https_server, monkeypatch):
    url, ca, other_ca = https_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca)
    with pytest.raises(TransportError, match="TLS failure"):
        _call(url, other_ca)
