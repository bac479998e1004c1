"""Removal through its doors under the ``dmp`` policy, in-process on SQLite and PostgreSQL: ITI-62
(transactions/iti62.py) takes only nodes the registry trusts to write, as ITI-42 does, and removes
what the author of a document or the patient may remove, answering anything else exactly as an
unknown object and reporting it as a Security Alert; ITI-86 (transactions/iti86.py) alike for bytes.
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from registry.store import schema as t
from repository.transactions import DocumentPart, DocumentRequest
from tests.repository.support import REPOSITORY_UID
from tests.support.metadata import document_entry, draft, fresh_patient, submission_set
from transactions import iti62, iti86
from transactions.services import already_authenticated
from xds.context import Caller
from xds.metadata import new_uuid
from xds.validation.removal import RemovalRequest

ADMIN_NODE = "CN=document-administrator"
AUTHOR = "801234567890"  # the authorPerson of tests.support.metadata
STRANGER = "810000000003"
TREATING = "810000000001"


@pytest.fixture
def dmp(db, tmp_path):
    from access.store import AccessStore
    from config import Settings
    from server.app import build_services
    settings = Settings(data_dir=tmp_path / "data", database_url=db.url, audit_enabled=False, access_policy="dmp",
                        registry_trusted_repositories=[ADMIN_NODE])
    services = build_services(settings)
    alerts: list[str] = []
    services.policy.alert = lambda caller, description, *a, **k: alerts.append(description)
    services.alerts = alerts
    patient = fresh_patient()
    services.registry.add_patient(patient)
    AccessStore(services.database).set_treating_physician(patient, TREATING)
    yield services, patient
    services.repository.close()


def professional(pid: str, node: str | None = ADMIN_NODE) -> Caller:
    return Caller(user_id=pid, kind="professional", access_mode="normal", authenticated=True, node_subject=node)


def registered(services, patient):
    d = draft(patient, documents=0)
    d.submission_set = submission_set(patient, new_uuid())
    d.add_document(document_entry(patient, new_uuid()))
    assert not services.registry.register(d.objects()).has_errors
    return [d.documents[0].entry_uuid, d.associations[0].entry_uuid, d.submission_set.entry_uuid]


def codes(errors) -> list[str]:
    return [e.code for e in errors if e.is_error]


def still_there(services, uuid: str) -> bool:
    with services.database.read() as conn:
        return conn.execute(select(t.registry_objects.c.uuid).where(t.registry_objects.c.uuid == uuid)).first() \
            is not None


def test_iti62_refuses_a_node_not_trusted_to_write(dmp):
    services, patient = dmp
    ids = registered(services, patient)
    result = iti62.remove(services, professional(AUTHOR, node="CN=hopital-node-01"), already_authenticated,
                          RemovalRequest(ids))
    assert codes(result.errors) == ["XDSRegistryError"]
    assert still_there(services, ids[0])
    assert any("hopital-node-01" in a for a in services.alerts)


def test_iti62_the_author_removes_through_a_trusted_node(dmp):
    services, patient = dmp
    ids = registered(services, patient)
    result = iti62.remove(services, professional(AUTHOR), already_authenticated, RemovalRequest(ids))
    assert codes(result.errors) == []
    assert not still_there(services, ids[0])


@pytest.mark.parametrize("who", [STRANGER, TREATING], ids=["stranger", "treating-physician"])
def test_iti62_anyone_else_is_answered_as_unknown_and_alerted(dmp, who):
    services, patient = dmp
    ids = registered(services, patient)
    result = iti62.remove(services, professional(who), already_authenticated, RemovalRequest(ids))
    assert set(codes(result.errors)) == {"UnresolvedReferenceException"}
    unknown = iti62.remove(services, professional(who), already_authenticated, RemovalRequest([new_uuid()]))
    assert [e.context.split(" ", 2)[2] for e in result.errors] == \
        [unknown.errors.errors[0].context.split(" ", 2)[2]] * len(result.errors.errors)
    assert all(still_there(services, u) for u in ids)
    assert any("removal of document" in a for a in services.alerts)


def test_iti62_the_patient_removes_from_her_record_in_process(dmp):
    services, patient = dmp
    ids = registered(services, patient)
    her = Caller(user_id=patient, kind="patient", patient_id=patient, authenticated=True)
    result = iti62.remove(services, her, already_authenticated, RemovalRequest(ids), from_node=False)
    assert codes(result.errors) == []


def test_iti86_anyone_but_the_author_or_patient_gets_document_unique_id_error(dmp, tmp_path):
    from tests.repository.support import submission
    services, patient = dmp
    sub = submission([b"<dmp/>"], patient=patient)
    answer = services.repository.provide(sub.objects, [DocumentPart(d.id, lambda d=d: [d.data]) for d in sub.docs])
    assert answer.status.endswith("Success"), answer.errors
    request = [DocumentRequest(REPOSITORY_UID, sub.docs[0].unique_id)]
    refused = iti86.remove(services, professional(STRANGER), already_authenticated, request)
    assert codes(refused.errors) == ["XDSDocumentUniqueIdError"]
    assert services.repository.index.committed([sub.docs[0].unique_id])
    assert any("ITI-86" in a for a in services.alerts)
    done = iti86.remove(services, professional(AUTHOR), already_authenticated, request)
    assert codes(done.errors) == [] and not services.repository.index.committed([sub.docs[0].unique_id])
