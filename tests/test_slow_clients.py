"""Slow and hostile clients do not stop the service (issue 19 finding 4).

Against a real ``xds serve`` (2 workers x 8 threads, the defaults) on loopback: with 200
connections trickling a request head, or 100 that never start their TLS handshake, ITI-18
FindDocuments keeps a p95 (30 queries) under twice its unloaded p95. The same test on stock
gunicorn gthread (``--front gthread``) must fail: it is what the reporter measured (0 of 6 answered).
The limits themselves (head, body and handshake timeouts, connections per client) are tested one
by one on a one-thread server where a single held thread would show.

The front is the same on SQLite and PostgreSQL: these tests run on SQLite only (time budget).
"""
from __future__ import annotations

import select
import socket
import ssl
import time

import pytest
import requests

from client.queries import adhoc_query_request
from tests.access.test_tls import _cert, _write
from tests.support.server import LiveServer, start_server
from tests.support.slow import SlowClients, latencies, p95
from xds.soap.client import encode_request
from xds.vocabulary import Actions, Status

PATIENT = "slow-1^^^&1.3.6.1.4.1.21367.2005.3.7&ISO"


def find_documents(server: LiveServer, **kw):
    body, headers = encode_request(Actions.STORED_QUERY, server.registry_url, adhoc_query_request(
        "FindDocuments", {"$XDSDocumentEntryPatientId": [PATIENT], "$XDSDocumentEntryStatus": [Status.APPROVED]}))
    return lambda: requests.post(server.registry_url, data=body, headers=headers, timeout=3, **kw)


def answered(resp: requests.Response) -> bool:
    return resp.status_code == 200 and b"ResponseStatusType:Success" in resp.content


def port_of(server: LiveServer) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


def p95_under_load(query, load) -> tuple[float, float]:
    """(p95 under ``load``, unloaded p95): the unloaded figure is the larger of one run before and
    one after the load, so that a burst from another process on this shared machine does not
    make the bound stricter than the rule."""
    latencies(query, answered, n=5)
    before = p95(latencies(query, answered))
    with load:
        time.sleep(1)
        loaded = p95(latencies(query, answered))
    after = p95(latencies(query, answered))
    return loaded, max(before, after)


@pytest.fixture(params=["xds", pytest.param("gthread", marks=pytest.mark.xfail(
    strict=True, reason="stock gunicorn gthread: slow heads hold every thread (what issue 19 measured)"))])
def http_server(request, tmp_path):
    server = start_server(tmp_path / "data", f"sqlite:///{tmp_path / 'registry.db'}", "--no-patient-check",
                          "--front", request.param, workers=2, threads=8)
    yield server
    server.stop()


def test_queries_keep_their_p95_with_200_slow_heads_open(http_server):
    query = find_documents(http_server)
    slow = SlowClients(port_of(http_server), 200, "headers", interval=2.0)
    loaded, unloaded = p95_under_load(query, slow)
    assert slow.connects >= 200
    assert loaded < 2 * unloaded, f"p95 {loaded * 1000:.1f} ms under load, {unloaded * 1000:.1f} ms unloaded"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls-slow")
    ca_key, ca_cert = _cert("Test CA", ca=True)
    ca_pem, _ = _write(tmp / "ca", ca_key, ca_cert)
    server_pem, server_key = _write(tmp / "server", *_cert("localhost", ca_key, ca_cert.subject, san=True))
    client = _write(tmp / "client", *_cert("hopital-node-01", ca_key, ca_cert.subject))
    server = start_server(tmp / "data", f"sqlite:///{tmp / 'registry.db'}", "--no-patient-check",
                          "--tls-cert", server_pem, "--tls-key", server_key, "--tls-ca", ca_pem,
                          "--require-client-cert", "--handshake-timeout", "3", workers=2, threads=8,
                          scheme="https", health={"verify": ca_pem, "cert": client})
    yield server, ca_pem, client
    server.stop()


def test_queries_keep_their_p95_with_100_stalled_tls_handshakes(tls_server):
    server, ca, client = tls_server
    query = find_documents(server, verify=ca, cert=client)
    stalled = SlowClients(port_of(server), 100, "handshake", interval=1.0)
    loaded, unloaded = p95_under_load(query, stalled)
    assert stalled.connects >= 100
    assert loaded < 2 * unloaded, f"p95 {loaded * 1000:.1f} ms under load, {unloaded * 1000:.1f} ms unloaded"


def test_stalled_tls_handshake_is_cut_after_the_handshake_timeout(tls_server):
    server, _ca, _client = tls_server
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as s:
        t0 = time.monotonic()
        assert s.recv(100) == b""
        assert 2 < time.monotonic() - t0 < 6


def test_client_certificate_subject_still_reaches_the_transaction(tls_server):
    """Mutual TLS through the new front: a request without a certificate is refused at the HTTP
    layer (403), one with it is served, which needs :func:`server.tls.peer_subject`."""
    server, ca, client = tls_server
    assert requests.get(server.base_url + "/registry", verify=ca, timeout=5).status_code == 403
    assert answered(find_documents(server, verify=ca, cert=client)())


@pytest.fixture(scope="module")
def one_thread(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("one-thread")
    home = tmp / "home"
    home.mkdir()
    server = start_server(tmp / "data", f"sqlite:///{tmp / 'registry.db'}", "--no-patient-check",
                          "--header-timeout", "1", "--body-timeout", "1", "--max-connections-per-client", "10",
                          "--min-body-rate", "50",
                          workers=1, threads=1, env={"HOME": str(home), "XDG_RUNTIME_DIR": str(home)})
    yield server, home
    server.stop()


def _read_all(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(4096):
        out += chunk
    return out


def test_incomplete_head_answered_408_after_the_header_timeout(one_thread):
    server, _ = one_thread
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as s:
        s.sendall(b"POST /registry HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        reply = _read_all(s)
        assert reply.startswith(b"HTTP/1.1 408 ")
        assert 0.5 < time.monotonic() - t0 < 4


def test_stalled_body_releases_its_thread_after_the_body_timeout(one_thread):
    """The only thread reads a body that stops coming: after --body-timeout the connection is
    dropped and the thread serves the next query."""
    server, _ = one_thread
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as s:
        s.sendall(b"POST /registry HTTP/1.1\r\nHost: x\r\nContent-Type: application/soap+xml\r\n"
                  b"Content-Length: 1000\r\n\r\n<a>")
        t0 = time.monotonic()
        _read_all(s)
        assert time.monotonic() - t0 < 5
    assert answered(find_documents(server)())


def test_body_slower_than_the_minimum_rate_releases_its_thread(one_thread):
    """10 bytes every 0.4 s (25 bytes/s) never trips the 1 s idle timeout, but is under
    --min-body-rate 50: the connection is dropped after the grace and the thread serves again."""
    server, _ = one_thread
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as s:
        s.sendall(b"POST /registry HTTP/1.1\r\nHost: x\r\nContent-Type: application/soap+xml\r\n"
                  b"Content-Length: 100000\r\n\r\n")
        t0 = time.monotonic()
        closed = False
        while not closed and time.monotonic() - t0 < 8:
            s.sendall(b"<a>      ")
            readable, _, _ = select.select([s], [], [], 0.4)
            closed = bool(readable) and s.recv(100) == b""
        assert closed and time.monotonic() - t0 < 5, "the trickled body was still being read"
    assert answered(find_documents(server)())


def test_connections_beyond_the_per_client_cap_answered_503(one_thread):
    server, _ = one_thread
    port = port_of(server)
    held = [socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.9", 0)) for _ in range(10)]
    try:
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.9", 0)) as extra:
            extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_all(extra).startswith(b"HTTP/1.1 503 ")
        assert answered(find_documents(server)()), "another client address is still served"
    finally:
        for s in held:
            s.close()


def test_no_control_socket_shared_between_servers(one_thread):
    """gunicorn's default control socket is one path per user ($XDG_RUNTIME_DIR/gunicorn.ctl or
    ~/.gunicorn/gunicorn.ctl): xds serve creates none."""
    _, home = one_thread
    assert not list(home.rglob("gunicorn.ctl"))


def test_tls_context_keeps_tls_1_2_minimum(tls_server):
    server, ca, client = tls_server
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(*client)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.version() == "TLSv1.2"
