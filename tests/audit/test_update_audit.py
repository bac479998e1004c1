"""ITI-57 Update Document Set audited as ITI TF-2 3.57.5.1 (Security Considerations) says, each
message valid against DICOM's audit schemas (PS3.15 A.5):

* the Update Responder (the Document Registry, 3.57.5.1.2): EventID 110107 Import, EventActionCode
  U, EventTypeCode ITI-57 "Update Document Set"; the Document Administrator as Source (UserID its
  wsa:ReplyTo, UserIsRequestor), the registry as Destination (UserID its endpoint); the patient
  (1, role 1 Patient, ID type 2) and the SubmissionSet (2, role 20 Job, ID type the SubmissionSet
  classificationNode) as objects; whatever the outcome;
* the Update Initiator (the Document Administrator, 3.57.5.1.1): EventID 110106 Export, the same
  action, type, participants and objects.

Through the real /registry SOAP endpoint in-process, SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
from lxml import etree
from sqlalchemy import select

from audit import messages
from audit.messages import SUBMISSION_SET
from registry.store import schema as t
from tests.audit.support import NODE, assert_valid
from tests.audit.test_removal_audit import event_of, trail
from tests.repository.support import PATIENT, SUCCESS, call_wsgi, envelope, provide_request, submission
from tests.support.metadata import SubmissionDraft, submission_set
from xds.metadata import Association, new_uuid
from xds.rim import Slot
from xds.vocabulary import Actions
from xds.vocabulary import MetadataUpdate as MU

SOAP = 'application/soap+xml; charset=UTF-8; action="{}"'
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
SOURCE, DESTINATION = "110153", "110152"


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


def registered_uuid(app, unique_id: str) -> str:
    with app.services.database.read() as conn:
        de = t.document_entries
        return conn.execute(select(de.c.uuid).where(de.c.unique_id == unique_id)).scalar_one()


def deprecation(target: str) -> SubmissionDraft:
    """An Update Document Set deprecating ``target`` (UpdateAvailabilityStatus, ITI TF-2 3.57.4.1.3.3.2)."""
    sub = SubmissionDraft(PATIENT, submission_set(PATIENT, new_uuid()))
    sub.associations.append(Association(new_uuid(), MU.UPDATE_AVAILABILITY_STATUS, sub.submission_set.entry_uuid,
                                        target, extra_slots=[Slot(MU.ORIGINAL_STATUS, [APPROVED]),
                                                             Slot(MU.NEW_STATUS, [DEPRECATED])]))
    return sub


def send(app, sub: SubmissionDraft):
    return call_wsgi(app, envelope(sub.request(), Actions.UPDATE), SOAP.format(Actions.UPDATE), path="/registry")


def roles(x: etree._Element) -> dict[str, etree._Element]:
    return {p.find("RoleIDCode").get("csd-code"): p for p in x.iterfind("ActiveParticipant")
            if p.find("RoleIDCode") is not None}


def objects(x: etree._Element) -> dict[tuple[str, str], etree._Element]:
    """ParticipantObjectIdentification by (type code, type code role)."""
    return {(o.get("ParticipantObjectTypeCode"), o.get("ParticipantObjectTypeCodeRole")): o
            for o in x.iterfind("ParticipantObjectIdentification")}


def assert_iti57_codes(x: etree._Element, event_id: str, outcome: str, submission_set_uid: str) -> None:
    assert_valid(x)
    assert event_of(x) == (event_id, "U", outcome, "ITI-57")
    ei = x.find("EventIdentification")
    assert ei.find("EventID").get("codeSystemName") == "DCM"
    etc = ei.find("EventTypeCode")
    assert (etc.get("codeSystemName"), etc.get("originalText")) == ("IHE Transactions", "Update Document Set")
    who = roles(x)
    assert who[SOURCE].get("UserIsRequestor") == "true" and who[DESTINATION].get("UserIsRequestor") == "false"
    found = objects(x)
    patient, ss = found[("1", "1")], found[("2", "20")]
    assert patient.get("ParticipantObjectID") == PATIENT
    assert patient.find("ParticipantObjectIDTypeCode").get("csd-code") == "2"
    assert ss.get("ParticipantObjectID") == submission_set_uid
    assert ss.find("ParticipantObjectIDTypeCode").get("csd-code") == SUBMISSION_SET.code


def test_update_responder_audits_import_u_iti57_valid_dicom(app):
    sub = submission([b"<to deprecate/>"])
    assert call_wsgi(app, *provide_request(sub)).status_value == SUCCESS
    update = deprecation(registered_uuid(app, sub.docs[0].unique_id))
    reply = send(app, update)
    assert reply.status_value == SUCCESS, reply.errors
    (record,) = [x for x in trail(app) if event_of(x)[3] == "ITI-57"]
    assert_iti57_codes(record, "110107", "0", update.submission_set.unique_id)
    who = roles(record)
    assert who[SOURCE].get("UserID") == "http://www.w3.org/2005/08/addressing/anonymous"
    assert who[DESTINATION].get("UserID").endswith("/registry")


def test_a_refused_update_is_audited_with_its_failure_outcome(app):
    """ITI TF-2 3.57.5.1.2 audits the transaction whatever its outcome: a deprecation of an
    entryUUID the registry never held (UnresolvedReferenceException) is an Import with outcome 8."""
    update = deprecation(new_uuid())
    reply = send(app, update)
    assert reply.error_codes == ["UnresolvedReferenceException"]
    (record,) = [x for x in trail(app) if event_of(x)[3] == "ITI-57"]
    assert_iti57_codes(record, "110107", "8", update.submission_set.unique_id)


def test_update_initiator_message_is_export_u_iti57_valid_dicom():
    """The Document Administrator's record (ITI TF-2 3.57.5.1.1), as an Update Initiator auditing
    with this project's builders would write it: Export, U, ITI-57, this node as Source, the
    registry's endpoint as Destination."""
    x = etree.fromstring(messages.update_export(NODE, "src", "https://registry.example/registry", 0, PATIENT,
                                                "1.2.3.4").to_xml())
    assert_iti57_codes(x, "110106", "0", "1.2.3.4")
    assert roles(x)[DESTINATION].get("UserID") == "https://registry.example/registry"
