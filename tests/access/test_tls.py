"""``xds serve`` over HTTPS: TLS 1.2 minimum, mutual TLS, the client certificate's subject."""
from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import subprocess
import sys
import time

import pytest
import requests

from tests.support.server import LiveServer, free_port


def _cert(subject: str, issuer_key=None, issuer_name=None, ca: bool = False, san: bool = False):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "DMP-XDS tests")])
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                      content_commitment=False, key_encipherment=False,
                                                      data_encipherment=False, key_agreement=False,
                                                      encipher_only=False, decipher_only=False), critical=True)
    if san:
        import ipaddress
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return key, cert


def _write(path, key, cert):
    from cryptography.hazmat.primitives import serialization
    path.with_suffix(".key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path.with_suffix(".pem")), str(path.with_suffix(".key"))


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls")
    ca_key, ca_cert = _cert("Test CA", ca=True)
    ca_pem, _ = _write(tmp / "ca", ca_key, ca_cert)
    server_pem, server_key = _write(tmp / "server", *_cert("localhost", ca_key, ca_cert.subject, san=True))
    client = _write(tmp / "client", *_cert("hopital-node-01", ca_key, ca_cert.subject))
    other_ca_key, other_ca = _cert("Other CA", ca=True)
    stranger = _write(tmp / "stranger", *_cert("stranger", other_ca_key, other_ca.subject))
    port = free_port()
    data = tmp / "data"
    data.mkdir()
    log_path = data / "server.log"
    cmd = [sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--data-dir", str(data), "--database-url", f"sqlite:///{tmp / 'registry.db'}", "--workers", "1",
           "--tls-cert", server_pem, "--tls-key", server_key, "--tls-ca", ca_pem, "--require-client-cert"]
    proc = subprocess.Popen(cmd, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, env=dict(os.environ))
    server = LiveServer(proc, f"https://127.0.0.1:{port}", data, f"sqlite:///{tmp / 'registry.db'}", log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(server.log())
        try:
            requests.get(server.base_url + "/health", cert=client, verify=ca_pem, timeout=1)
            break
        except requests.RequestException:
            time.sleep(0.2)
    yield server, ca_pem, client, stranger, port
    assert server.stop() == 0, server.log()


def test_client_certificate_accepted(tls_server):
    server, ca, client, _stranger, _port = tls_server
    resp = requests.get(server.base_url + "/health", cert=client, verify=ca, timeout=10)
    assert resp.status_code == 200


def test_without_client_certificate_refused_and_audited(tls_server):
    server, ca, _client, _stranger, _port = tls_server
    resp = requests.get(server.base_url + "/registry", verify=ca, timeout=10)
    assert resp.status_code == 403 and "client certificate" in resp.text
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        out = server.xds("audit", "search", "--event", "110113", "--outcome", "4", "--format", "json",
                         check=False).stdout
        if '"110126"' in out:
            break
        time.sleep(0.5)
    assert '"110126"' in out  # Security Alert: Node Authentication failure


def test_certificate_from_another_ca_fails_the_handshake(tls_server):
    server, ca, _client, stranger, _port = tls_server
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(server.base_url + "/health", cert=stranger, verify=ca, timeout=10)


def test_tls_below_1_2_refused(tls_server):
    _server, _ca, client, _stranger, port = tls_server
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot even offer TLS 1.1")
    ctx.load_cert_chain(*client)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with ctx.wrap_socket(raw) as tls:
                tls.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                tls.recv(10)


def test_peer_subject_formatting():
    from server.tls import peer_subject

    class Sock:
        def getpeercert(self):
            return {"subject": ((("countryName", "FR"),), (("organizationName", "CHU"),),
                                (("commonName", "node-1"),))}
    assert peer_subject({"gunicorn.socket": Sock()}) == "CN=node-1,O=CHU,C=FR"
    assert peer_subject({}) is None
