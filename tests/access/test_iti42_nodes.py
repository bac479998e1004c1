"""ITI-42 is a node-to-node transaction (ITI TF-2 3.42): in the ``dmp`` policy the registry takes
it only from the Document Repositories it is configured with, identified by their mutual-TLS
certificate, and decides on the submitter's forwarded XUA assertion as for an ITI-41.

A live ``xds serve --access-policy dmp`` over mutual TLS; every client certificate is signed by
the CA the server trusts, so the TLS handshake alone admits them all.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import requests
from lxml import etree
from sqlalchemy import text

from access.xua import local_issuer
from client.transport import Transport
from registry.register import Registry
from registry.store import migrate as migrate_registry
from storage import Database
from tests.access.test_tls import _cert, _write
from tests.support.databases import BACKENDS, database_url
from tests.support.metadata import draft, fresh_patient
from tests.support.server import LiveServer, free_port
from xds.patient import patient_key
from xds.soap import NS_SOAP12, SoapFault
from xds.vocabulary import NS_RS, Actions, q

REPOSITORY_NODE = "repository-node"
HOSPITAL_NODE = "hopital-node-01"
PROFESSIONAL = "810000000042"


@pytest.fixture(scope="module", params=BACKENDS)
def dmp_tls(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"iti42-nodes-{request.param}")
    ca_key, ca_cert = _cert("Test CA", ca=True)
    ca_pem, _ = _write(tmp / "ca", ca_key, ca_cert)
    server_pem, server_key = _write(tmp / "server", *_cert("localhost", ca_key, ca_cert.subject, san=True))
    repository = _write(tmp / "repository", *_cert(REPOSITORY_NODE, ca_key, ca_cert.subject))
    hospital = _write(tmp / "hospital", *_cert(HOSPITAL_NODE, ca_key, ca_cert.subject))
    data = tmp / "data"
    data.mkdir()
    url, handle = database_url(request.param, tmp)
    issuer = local_issuer(data)
    port = free_port()
    log_path = data / "server.log"
    env = dict(os.environ, XDS_XUA_TRUST_LOCAL_ISSUER="true",
               XDS_REGISTRY_TRUSTED_REPOSITORIES=f"O=DMP-XDS tests,CN={REPOSITORY_NODE}")
    cmd = [sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--data-dir", str(data), "--database-url", url, "--workers", "1", "--access-policy", "dmp",
           "--tls-cert", server_pem, "--tls-key", server_key, "--tls-ca", ca_pem, "--require-client-cert"]
    proc = subprocess.Popen(cmd, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, env=env)
    server = LiveServer(proc, f"https://127.0.0.1:{port}", data, url, log_path)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(server.log())
        try:
            requests.get(server.base_url + "/health", cert=repository, verify=ca_pem, timeout=1)
            break
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    db = Database(url)
    migrate_registry(db)
    try:
        yield server, issuer, ca_pem, {"repository": repository, "hospital": hospital}, db
    finally:
        db.dispose()
        server.stop()
        if handle is not None:
            handle.close()


def _register(dmp_tls, node: str, assertion: etree._Element | None, patient: str):
    server, _issuer, ca_pem, certs, _db = dmp_tls
    transport = Transport(assertion=assertion)
    sub = draft(patient, 1)
    data, headers = transport.encode(server.registry_url, Actions.REGISTER, sub.request())
    reply = requests.post(server.registry_url, data=data, headers=headers, cert=certs[node], verify=ca_pem,
                          timeout=30)
    envelope = etree.fromstring(reply.content)
    body = envelope.find(q(NS_SOAP12, "Body"))[0]
    if body.tag == q(NS_SOAP12, "Fault"):
        raise SoapFault("Sender", body.findtext(f"{q(NS_SOAP12, 'Reason')}/{q(NS_SOAP12, 'Text')}") or "")
    return body, sub


def _registered(db: Database, patient: str) -> int:
    with db.read() as conn:
        return conn.execute(text("SELECT count(*) FROM document_entries WHERE patient_id = :p"),
                            {"p": patient_key(patient)}).scalar_one()


def _patient(db: Database) -> str:
    patient = fresh_patient()
    Registry(db).add_patient(patient)
    return patient


def _errors(body: etree._Element) -> list[str]:
    return [e.get("errorCode", "") for e in body.iter(q(NS_RS, "RegistryError"))]


def test_iti42_from_a_node_not_listed_is_refused_over_mutual_tls(dmp_tls):
    """A certificate of the trusted CA is not enough: the node must be a configured repository."""
    *_rest, db = dmp_tls
    patient = _patient(db)
    issuer = dmp_tls[1]
    body, _sub = _register(dmp_tls, "hospital", issuer.security_header(PROFESSIONAL, patient_id=patient), patient)
    assert body.get("status", "").endswith("Failure")
    assert _errors(body) == ["XDSRegistryError"]
    assert _registered(db, patient) == 0


def test_iti42_from_a_listed_repository_needs_the_submitters_assertion(dmp_tls):
    """In dmp the repository forwards the submitter's XUA assertion; without one nothing is stored."""
    *_rest, db = dmp_tls
    patient = _patient(db)
    with pytest.raises(SoapFault, match=r"XUA SAML 2\.0 assertion"):
        _register(dmp_tls, "repository", None, patient)
    assert _registered(db, patient) == 0


def test_iti42_from_a_listed_repository_with_the_forwarded_assertion_is_decided_as_iti41(dmp_tls):
    """The submit decision of ITI-41 (care team feeding the record) applies to the forwarded assertion."""
    *_rest, db = dmp_tls
    patient = _patient(db)
    issuer = dmp_tls[1]
    body, _sub = _register(dmp_tls, "repository", issuer.security_header(PROFESSIONAL, patient_id=patient), patient)
    assert body.get("status", "").endswith("Success"), etree.tostring(body)
    assert _registered(db, patient) == 1


def test_iti42_for_a_patient_without_a_record_is_refused_as_iti41_would(dmp_tls):
    *_rest, db = dmp_tls
    patient = fresh_patient()
    issuer = dmp_tls[1]
    body, _sub = _register(dmp_tls, "repository", issuer.security_header(PROFESSIONAL, patient_id=patient), patient)
    assert body.get("status", "").endswith("Failure")
    assert _errors(body) == ["XDSUnknownPatientId"]
    assert _registered(db, patient) == 0
