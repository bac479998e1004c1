"""A Document Repository on its own host (``remote_registry_url``) in the ``dmp`` policy: it forwards
the submitter's XUA assertion with the ITI-42 it sends, and the registry, which holds the
record, takes the same submit decision as for an ITI-41 (issue 17)."""
from __future__ import annotations

import pytest

from access.xua import Issuer, local_issuer
from client.transport import Transport
from registry.register import Registry
from registry.store import migrate as migrate_registry
from storage import Database
from tests.repository.support import provide_body, submission
from tests.support.databases import BACKENDS, database_url
from tests.support.metadata import fresh_patient
from tests.support.server import start_server
from xds.vocabulary import Actions

PROFESSIONAL = "810000000077"


@pytest.fixture(scope="module", params=BACKENDS)
def split(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"split-{request.param}")
    issuer: Issuer = local_issuer(tmp / "issuer")
    trusted = str(tmp / "issuer.pem")
    (tmp / "issuer.pem").write_bytes(issuer.cert_pem)
    registry_url, registry_handle = database_url(request.param, tmp / "registry")
    common = {"XDS_XUA_TRUSTED_CERTS": trusted, "XDS_XUA_TRUST_LOCAL_ISSUER": "false"}
    registry = start_server(tmp / "registry", registry_url, "--access-policy", "dmp",
                            env=common | {"XDS_REGISTRY_TRUSTED_REPOSITORIES": "*"})
    repository = start_server(tmp / "repository", f"sqlite:///{tmp / 'repository.db'}", "--access-policy", "dmp",
                              "--remote-registry-url", registry.registry_url, env=common)
    db = Database(registry_url)
    migrate_registry(db)
    try:
        yield repository, issuer, db
    finally:
        db.dispose()
        repository.stop()
        registry.stop()
        if registry_handle is not None:
            registry_handle.close()


def _provide(repository, assertion, patient: str):
    body, _ = provide_body(submission([b"<doc>split</doc>"], patient), mtom=False)
    transport = Transport(assertion=assertion)
    try:
        return transport.call(repository.repository_url, Actions.PROVIDE, body).body
    finally:
        transport.close()


def test_the_registry_decides_on_the_forwarded_assertion(split):
    repository, issuer, db = split
    patient = fresh_patient()
    Registry(db).add_patient(patient)
    reply = _provide(repository, issuer.security_header(PROFESSIONAL, patient_id=patient), patient)
    assert reply.get("status", "").endswith("Success")


def test_a_patient_without_a_record_at_the_registry_is_refused_through_the_repository(split):
    repository, issuer, _db = split
    patient = fresh_patient()
    reply = _provide(repository, issuer.security_header(PROFESSIONAL, patient_id=patient), patient)
    assert reply.get("status", "").endswith("Failure")
    assert [e.get("errorCode") for e in reply.iter("{*}RegistryError")] == ["XDSUnknownPatientId"]
