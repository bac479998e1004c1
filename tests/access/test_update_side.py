"""ITI-57 Update Document Set under the dmp policy, over real SOAP with signed XUA assertions, on
SQLite and PostgreSQL (``xds serve --access-policy dmp``).

A new version of a DocumentEntry (ITI TF-2 3.57.4.1.3.3.1) or a change of its availabilityStatus
(3.57.4.1.3.3.2) changes what every reader of the record sees, as a replacement does: only the
document's author or the patient's treating physician may (README, "The DMP policy"). Anyone else
is answered exactly as for a document the registry never held, nothing changes, and the attempt
is a Security Alert in the audit trail (DICOM 110113, Use of Restricted Function) beside the
transaction's own record (Import, ITI-57, a failure outcome).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import uuid

import pytest
from lxml import etree

from access.xua import local_issuer
from tests.access import matrix as m
from tests.access.test_live import REPOSITORY_UID
from tests.access.test_write_side import APPROVED, DEPRECATED, TOKEN, Answer, Dmp, document, query_body, submission
from tests.support.databases import BACKENDS, database_url
from tests.support.metadata import SubmissionDraft
from tests.support.server import start_server
from xds.errors import ErrorCode
from xds.metadata import Association, DocumentEntry, new_uuid
from xds.patient import patient_key
from xds.rim import Slot
from xds.vocabulary import NS_RIM, Actions, q
from xds.vocabulary import MetadataUpdate as MU

SECURITY_ALERT, USE_OF_RESTRICTED_FUNCTION = "110113", "110132"


@pytest.fixture(scope="module", params=BACKENDS)
def dmp(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"update-side-{request.param}")
    url, handle = database_url(request.param, tmp)
    issuer = local_issuer(tmp / "data")
    server = start_server(tmp / "data", url, "--access-policy", "dmp",
                          env={"XDS_XUA_TRUST_LOCAL_ISSUER": "true", "XDS_ACCESS_API_TOKEN": TOKEN})
    try:
        yield Dmp(server, issuer)
    finally:
        code = server.stop()
        if handle is not None:
            handle.close()
    assert code == 0, server.log()


def filed(dmp: Dmp) -> tuple[str, DocumentEntry]:
    """A new record (TREATING its treating physician, AUTHORISED authorised) holding one document
    written and submitted by AUTHOR; the patient and the document with its registered entryUUID."""
    patient = dmp.new_record()
    sub = submission(patient, m.AUTHOR)
    doc = sub.add_document(document(patient, m.AUTHOR))
    assert dmp.provide(sub, m.AUTHOR).status == "Success"
    return patient, dataclasses.replace(doc, entry_uuid=dmp.entry(patient, doc.unique_id).get("id"))


def update(dmp: Dmp, sub: SubmissionDraft, caller: str) -> Answer:
    return dmp.soap(dmp.server.registry_url, Actions.UPDATE, sub.request(), dmp.professional(caller, sub.patient))


def new_version(patient: str, caller: str, doc: DocumentEntry, previous: int = 1) -> SubmissionDraft:
    """``caller``'s new version of ``doc`` with a corrected title: a new entryUUID, its lid and
    uniqueId, what the repository registered (hash, size, repositoryUniqueId)."""
    content = f"{doc.title} {doc.unique_id}".encode()
    sub = submission(patient, caller)
    sub.add_document(dataclasses.replace(doc, entry_uuid=new_uuid(), logical_id=doc.entry_uuid, title="Corrige",
                                         hash=hashlib.sha1(content).hexdigest(), size=len(content),
                                         repository_unique_id=REPOSITORY_UID))
    sub.associations[-1].extra_slots = [Slot(MU.PREVIOUS_VERSION, [str(previous)])]
    return sub


def status_change(patient: str, caller: str, target: str, original: str, new: str) -> SubmissionDraft:
    sub = submission(patient, caller)
    sub.associations.append(Association(new_uuid(), MU.UPDATE_AVAILABILITY_STATUS, sub.submission_set.entry_uuid,
                                        target, extra_slots=[Slot(MU.ORIGINAL_STATUS, [original]),
                                                             Slot(MU.NEW_STATUS, [new])]))
    return sub


def versions(dmp: Dmp, patient: str, unique_id: str) -> list[tuple[str, str, str]]:
    """(version, status, title) of every version, as the treating physician reads them
    (GetDocuments at $MetadataLevel 2, ITI TF-2 3.18.4.1.2.3.5.1)."""
    body = query_body("GetDocuments", {"$XDSDocumentEntryUniqueId": [unique_id]})
    slot = etree.SubElement(body.find(q(NS_RIM, "AdhocQuery")), q(NS_RIM, "Slot"), name="$MetadataLevel")
    etree.SubElement(etree.SubElement(slot, q(NS_RIM, "ValueList")), q(NS_RIM, "Value")).text = "2"
    answer = dmp.soap(dmp.server.registry_url, Actions.STORED_QUERY, body, dmp.professional(m.TREATING, patient))
    assert answer.status == "Success", answer.raw
    return sorted((e.find(q(NS_RIM, "VersionInfo")).get("versionName"), e.get("status"),
                   e.find(f"{q(NS_RIM, 'Name')}/{q(NS_RIM, 'LocalizedString')}").get("value"))
                  for e in answer.objects)


def audited(dmp: Dmp, patient: str, *args: str, where=lambda row: True) -> list[dict]:
    """The audit trail's rows about ``patient`` matching ``xds audit search`` ``args`` and ``where``
    (waiting up to 20 s for the audit outbox to deliver). The trail names the patient as the
    message did, or by its key (CX.1 and CX.4, xds.patient)."""
    key = patient_key(patient)
    deadline = time.monotonic() + 20
    while True:
        out = dmp.server.xds("audit", "search", "--format", "json", *args, check=False).stdout
        try:
            rows = [r for r in (json.loads(out[out.index("["):]) if "[" in out else [])
                    if {patient, key} & set(r["patients"]) and where(r)]
        except ValueError:
            rows = []
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def test_a_new_version_by_a_professional_who_may_not_amend_is_refused_and_alerted(dmp):
    """The authorised professional sees the document but did not write it and is not the treating
    physician: their new version is answered as a new version of a logical document the registry
    never held (XDSMetadataVersionError, ITI TF-2 3.57.4.1.3.3.1), the document keeps its one
    version, and the attempt is a Security Alert naming them and the patient."""
    patient, doc = filed(dmp)
    refused = update(dmp, new_version(patient, m.AUTHORISED, doc), m.AUTHORISED)
    ghost = dataclasses.replace(doc, entry_uuid=f"urn:uuid:{uuid.uuid4()}", unique_id=doc.unique_id)
    unknown_sub = new_version(patient, m.AUTHOR, ghost)
    unknown = update(dmp, unknown_sub, m.AUTHOR)
    assert unknown.status == "Failure" and [e["errorCode"] for e in unknown.errors] == \
        [ErrorCode.METADATA_VERSION_ERROR], unknown.raw
    assert refused.status == "Failure", refused.raw
    assert refused.error_shape(NEW=refused_version_id(refused), TARGET=doc.entry_uuid) == \
        unknown.error_shape(NEW=unknown_sub.documents[0].entry_uuid, TARGET=ghost.entry_uuid)
    assert versions(dmp, patient, doc.unique_id) == [("1", APPROVED, doc.title)]
    alerts = audited(dmp, patient, "--event", SECURITY_ALERT, "--user", m.AUTHORISED,
                     where=lambda r: r["type"] == USE_OF_RESTRICTED_FUNCTION)
    assert len(alerts) == 1 and alerts[0]["outcome"] == 4, alerts
    (record,) = audited(dmp, patient, "--event", "ITI-57", "--user", m.AUTHORISED)
    assert (record["event"], record["action"]) == ("110107", "U") and record["outcome"] != 0, record


def refused_version_id(answer: Answer) -> str:
    """The new version's id the registry names in its error (codeContext 'DocumentEntry <id>: ...')."""
    return answer.errors[0]["codeContext"].split(" ", 2)[1].rstrip(":")


def test_a_status_change_by_a_professional_who_may_not_amend_is_refused_and_alerted(dmp):
    """The same for a deprecation (UpdateAvailabilityStatus): answered as for an entryUUID the
    registry never held (UnresolvedReferenceException), the document stays Approved, a Security
    Alert names the professional."""
    patient, doc = filed(dmp)
    sub = status_change(patient, m.AUTHORISED, doc.entry_uuid, APPROVED, DEPRECATED)
    refused = update(dmp, sub, m.AUTHORISED)
    ghost = f"urn:uuid:{uuid.uuid4()}"
    unknown_sub = status_change(patient, m.AUTHOR, ghost, APPROVED, DEPRECATED)
    unknown = update(dmp, unknown_sub, m.AUTHOR)
    assert [e["errorCode"] for e in unknown.errors] == [ErrorCode.UNRESOLVED_REFERENCE], unknown.raw
    assert refused.error_shape(A=sub.associations[-1].entry_uuid, TARGET=doc.entry_uuid) == \
        unknown.error_shape(A=unknown_sub.associations[-1].entry_uuid, TARGET=ghost)
    assert versions(dmp, patient, doc.unique_id) == [("1", APPROVED, doc.title)]
    alerts = audited(dmp, patient, "--event", SECURITY_ALERT, "--user", m.AUTHORISED,
                     where=lambda r: r["type"] == USE_OF_RESTRICTED_FUNCTION)
    assert len(alerts) == 1 and alerts[0]["outcome"] == 4, alerts


def test_the_author_may_correct_and_the_treating_physician_may_deprecate(dmp):
    """The author's new version becomes the latest (version 1 Deprecated, ITI TF-2 3.57.4.1.3.3.1);
    the treating physician then deprecates it (3.57.4.1.3.3.2); neither is a Security Alert."""
    patient, doc = filed(dmp)
    sub = new_version(patient, m.AUTHOR, doc)
    answer = update(dmp, sub, m.AUTHOR)
    assert answer.status == "Success", answer.raw
    assert versions(dmp, patient, doc.unique_id) == [("1", DEPRECATED, doc.title), ("2", APPROVED, "Corrige")]
    second = sub.documents[0].entry_uuid
    answer = update(dmp, status_change(patient, m.TREATING, second, APPROVED, DEPRECATED), m.TREATING)
    assert answer.status == "Success", answer.raw
    assert versions(dmp, patient, doc.unique_id) == [("1", DEPRECATED, doc.title), ("2", DEPRECATED, "Corrige")]
    (record,) = audited(dmp, patient, "--event", "ITI-57", "--user", m.TREATING)
    assert (record["event"], record["action"], record["outcome"]) == ("110107", "U", 0), record
    assert audited(dmp, patient, "--event", SECURITY_ALERT,
                   where=lambda r: r["type"] == USE_OF_RESTRICTED_FUNCTION) == []
