"""ITI-62 and ITI-86 audited as their Security Considerations say (ITI TF-2 3.62.5.1, 3.86.5.1):
Patient Record 110110, action D, the transaction's EventTypeCode, the outcome, the removed objects;
through the real SOAP endpoints in-process on SQLite and PostgreSQL, every message valid against
DICOM's schemas. A removed document's earlier audit records stay."""
from __future__ import annotations

import pytest
from lxml import etree
from sqlalchemy import select

from audit import store
from audit.sender import Sender
from registry.store import schema as t
from tests.audit.support import assert_valid, xml_of
from tests.repository.support import (
    PATIENT,
    REPOSITORY_UID,
    SUCCESS,
    call_wsgi,
    envelope,
    provide_request,
    retrieve_request,
    submission,
)
from tests.repository.test_remove_documents import remove_request
from xds.vocabulary import NS_LCM, NS_RIM, Actions, q

SOAP = 'application/soap+xml; charset=UTF-8; action="{}"'


@pytest.fixture
def app(audit_db, tmp_path):
    from config import Settings
    from server.app import Application, build_services, mounts
    services = build_services(Settings(data_dir=tmp_path / "data", database_url=audit_db.url))
    services.registry.add_patient(PATIENT)
    application = Application(services, mounts(services))
    yield application
    services.auditor.close()
    services.repository.close()


def trail(app) -> list[etree._Element]:
    app.services.auditor.flush()
    Sender(app.services.database).deliver_once()
    return [xml_of(r.raw) for r in store.iter_all(app.services.database)]


def event_of(x):
    ei = x.find("EventIdentification")
    return (ei.find("EventID").get("csd-code"), ei.get("EventActionCode"), ei.get("EventOutcomeIndicator"),
            ei.find("EventTypeCode").get("csd-code"))


def removal_body(ids: list[str]) -> etree._Element:
    root = etree.Element(q(NS_LCM, "RemoveObjectsRequest"), nsmap={"lcm": NS_LCM, "rim": NS_RIM})
    refs = etree.SubElement(root, q(NS_RIM, "ObjectRefList"))
    for i in ids:
        etree.SubElement(refs, q(NS_RIM, "ObjectRef"), id=i)
    return root


def remove_metadata(app, ids):
    return call_wsgi(app, envelope(removal_body(ids), Actions.REMOVE_METADATA),
                     SOAP.format(Actions.REMOVE_METADATA), path="/registry")


def registered_objects(app, patient_key: str) -> list[str]:
    with app.services.database.read() as conn:
        return list(conn.execute(select(t.registry_objects.c.uuid)
                                 .where(t.registry_objects.c.patient_id == patient_key)).scalars())


def test_remove_metadata_and_documents_are_audited_and_earlier_records_stay(app):
    from xds.patient import patient_key
    sub = submission([b"<audited/>"])
    assert call_wsgi(app, *provide_request(sub)).status_value == SUCCESS
    uid = sub.docs[0].unique_id
    assert call_wsgi(app, *retrieve_request([(REPOSITORY_UID, uid)])).status_value == SUCCESS
    ids = registered_objects(app, patient_key(PATIENT))
    assert len(ids) == 3

    r = remove_metadata(app, ids)
    assert r.status_value == SUCCESS, r.errors
    r = call_wsgi(app, *remove_request([(REPOSITORY_UID, uid)]))
    assert r.status_value == SUCCESS, r.errors
    assert call_wsgi(app, *retrieve_request([(REPOSITORY_UID, uid)])).error_codes == ["XDSDocumentUniqueIdError"]

    records = trail(app)
    for x in records:
        assert_valid(x)
    kinds = [event_of(x)[3] for x in records]
    assert "ITI-41" in kinds and "ITI-43" in kinds, "the document's earlier records stay"
    iti62 = next(x for x in records if event_of(x)[3] == "ITI-62")
    assert event_of(iti62) == ("110110", "D", "0", "ITI-62")
    objects = {o.get("ParticipantObjectID") for o in iti62.iterfind("ParticipantObjectIdentification")}
    assert set(ids) <= objects and any(PATIENT.split("^")[0] in o for o in objects)
    iti86 = next(x for x in records if event_of(x)[3] == "ITI-86")
    assert event_of(iti86) == ("110110", "D", "0", "ITI-86")
    assert uid in {o.get("ParticipantObjectID") for o in iti86.iterfind("ParticipantObjectIdentification")}


def test_refused_removal_is_audited_as_a_failure(app):
    r = remove_metadata(app, ["urn:uuid:11111111-2222-3333-4444-999999999999"])
    assert r.error_codes == ["UnresolvedReferenceException"]
    r = call_wsgi(app, *remove_request([("1.2.1.1.1", "1.2.3")]))
    assert r.error_codes == ["XDSUnknownRepositoryId"]
    outcomes = {event_of(x)[3]: event_of(x)[2] for x in trail(app)}
    assert outcomes["ITI-62"] == "8" and outcomes["ITI-86"] == "8"
