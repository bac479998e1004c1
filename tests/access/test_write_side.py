"""The DMP's write side and what its answers tell (issue #17, findings 1-4), over real SOAP.

``xds serve --access-policy dmp`` on SQLite and PostgreSQL, signed XUA assertions from the
server's local issuer, records and the patient's choices set over the JSON API: as a Document
Source, a Document Consumer and the DMP's portal would. Each test is named after the rule it
holds the server to:

1. ITI-42 Register Document Set-b at the registry is a node-to-node transaction: in the dmp
   policy no node may register behind the access policy's back (ITI TF-2 3.42).
2. A lifecycle association (RPLC, XFRM, APND, XFRM_RPLC, signs; ITI TF-3 4.1.6) or a HasMember
   from an existing Folder (ITI TF-3 4.1.5) changes what every reader of the record sees: only
   a caller allowed to amend the target, or to file into the folder, may submit it; to anyone
   else the target is answered exactly as an unknown entryUUID (XDSUnresolvedReferenceException).
3. A SubmissionSet or Folder tells of its documents (time, author, institution): it is visible
   only to a caller who sees at least one of its DocumentEntries (or authored the SubmissionSet),
   and a Get* query naming a hidden document answers as for an unknown id.
4. An error never names a patient the caller may not know of.
"""
from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass

import pytest
import requests
from lxml import etree

from access.xua import Issuer, local_issuer
from client.transport import Transport, decode_reply
from tests.access import matrix as m
from tests.support.databases import BACKENDS, database_url
from tests.support.metadata import SubmissionDraft, document_entry, fresh_patient, submission_set
from tests.support.server import start_server
from xds.errors import ErrorCode
from xds.metadata import Association, Author, Code, DocumentEntry, new_uuid
from xds.vocabulary import DOC, FOL, NS_LCM, NS_QUERY, NS_RIM, NS_RS, NS_XDSB, SS, STORED_QUERIES, Actions, AssocType, q

TOKEN = "test-token-write-side-0123456789"
TREATING, AUTHORISED, AUTHOR = m.TREATING, m.AUTHORISED, m.AUTHOR
INTRUDER = "810000000011"
"""A professional the patients never authorised and who never wrote to their records: the care
team feeding rule lets them submit new documents, nothing more."""
CONTRIBUTOR = "810000000012"
"""A professional outside the patients' lists who wrote one document of the record."""
NOBODY = "810000000013"
"""A professional with no access at all to any record of these tests."""

APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
UNRESOLVED = ErrorCode.UNRESOLVED_REFERENCE
"""ebRS 3.0 5.1.1 UnresolvedReferenceException: what the registry answers for an entryUUID it never held."""
LIFECYCLE = {"RPLC": AssocType.RPLC, "XFRM": AssocType.XFRM, "APND": AssocType.APND,
             "XFRM_RPLC": AssocType.XFRM_RPLC, "signs": AssocType.SIGNS}


# ----------------------------------------------------------------------------- the messages

def confidentiality(*codes: str) -> list[Code]:
    return [Code(c, m.HL7 if c in ("N", "R", "V") else m.VIS, c) for c in codes]


def document(patient: str, author: str, *codes: str) -> DocumentEntry:
    """A DocumentEntry as a Document Source sends it in ITI-41 (the repository computes hash,
    size and repositoryUniqueId), written by ``author``."""
    return document_entry(patient, f"Document{uuid.uuid4().hex[:8]}", hash=None, size=None,
                          repository_unique_id=None, confidentiality_codes=confidentiality(*(codes or ("N",))),
                          authors=[Author(m.person(author), [m.INSTITUTION], ["Medecin"])])


def submission(patient: str, submitter: str) -> SubmissionDraft:
    ss = submission_set(patient, f"SubmissionSet{uuid.uuid4().hex[:8]}")
    ss.authors = [Author(m.person(submitter), [m.INSTITUTION])]
    return SubmissionDraft(patient, ss)


def provide_body(sub: SubmissionDraft) -> etree._Element:
    root = etree.Element(q(NS_XDSB, "ProvideAndRegisterDocumentSetRequest"),
                         nsmap={"xdsb": NS_XDSB, "lcm": NS_LCM, "rim": NS_RIM})
    root.append(sub.request())
    for doc in sub.documents:
        etree.SubElement(root, q(NS_XDSB, "Document"), id=doc.entry_uuid).text = \
            base64.b64encode(f"{doc.title} {doc.unique_id}".encode()).decode()
    return root


def quoted(values) -> str:
    if isinstance(values, str):
        return f"'{values}'"
    return "(" + ",".join(f"'{v}'" for v in values) + ")"


def query_body(name: str, params: dict[str, object], return_type: str = "LeafClass") -> etree._Element:
    root = etree.Element(q(NS_QUERY, "AdhocQueryRequest"), nsmap={"query": NS_QUERY, "rim": NS_RIM})
    etree.SubElement(root, q(NS_QUERY, "ResponseOption"), returnType=return_type, returnComposedObjects="true")
    query = etree.SubElement(root, q(NS_RIM, "AdhocQuery"), id=STORED_QUERIES[name])
    for param, values in params.items():
        slot = etree.SubElement(query, q(NS_RIM, "Slot"), name=param)
        etree.SubElement(etree.SubElement(slot, q(NS_RIM, "ValueList")), q(NS_RIM, "Value")).text = quoted(values)
    return root


def unique_id_of(entry: etree._Element) -> str:
    """A registered DocumentEntry's uniqueId."""
    return next(ei.get("value") for ei in entry.iter(q(NS_RIM, "ExternalIdentifier"))
                if ei.get("identificationScheme") == DOC.UNIQUE_ID)


def national_id(patient: str) -> bytes:
    """The identifying part of a patient id (the INS number, before the first ``^``)."""
    return patient.split("^", 1)[0].encode()


@dataclass
class Answer:
    """A registry or repository answer: the bytes on the wire and the parsed SOAP body."""
    raw: bytes
    body: etree._Element

    @property
    def status(self) -> str:
        return (self.body.get("status") or "").rsplit(":", 1)[-1]

    @property
    def errors(self) -> list[dict[str, str]]:
        return [dict(e.attrib) for e in self.body.iter(q(NS_RS, "RegistryError"))]

    @property
    def objects(self) -> list[etree._Element]:
        found = self.body.find(q(NS_RIM, "RegistryObjectList"))
        return [] if found is None else [o for o in found if isinstance(o.tag, str)]

    def ids(self, tag: str) -> set[str]:
        return {o.get("id") for o in self.objects if o.tag == q(NS_RIM, tag)}

    def unique_ids(self, scheme: str) -> set[str]:
        return {ei.get("value") for ei in self.body.iter(q(NS_RIM, "ExternalIdentifier"))
                if ei.get("identificationScheme") == scheme}

    def error_shape(self, **names: str) -> list[dict[str, str]]:
        """The errors with the given ids replaced by their names: what tells one answer from another
        once the ids the request itself chose are set aside."""
        out = []
        for error in self.errors:
            for value, name in ((v, k) for k, v in names.items()):
                error = {k: v.replace(value, name) for k, v in error.items()}
            out.append(error)
        return out


class Dmp:
    """The live server and the parties that talk to it."""

    def __init__(self, server, issuer: Issuer) -> None:
        self.server, self.issuer = server, issuer
        self.http = requests.Session()

    # -- who speaks
    def professional(self, pid: str, patient: str | None = None) -> etree._Element:
        return self.issuer.security_header(pid, patient_id=patient)

    def patient(self, patient: str) -> etree._Element:
        return self.issuer.security_header(patient, role=("PATIENT", "", "PATIENT"), patient_id=patient)

    # -- the transactions
    def soap(self, url: str, action: str, body: etree._Element, security: etree._Element | None) -> Answer:
        data, headers = Transport(assertion=security).encode(url, action, body)
        resp = self.http.post(url, data=data, headers=headers, timeout=60)
        reply = decode_reply(resp.status_code, resp.headers.get("Content-Type", ""), resp.content, url)
        return Answer(resp.content, reply.body)

    def provide(self, sub: SubmissionDraft, submitter: str, for_patient: bool = True) -> Answer:
        """ITI-41 Provide and Register Document Set-b by ``submitter``, with an assertion for the
        draft's patient (``for_patient``) or for no patient in particular."""
        return self.soap(self.server.repository_url, Actions.PROVIDE, provide_body(sub),
                         self.professional(submitter, sub.patient if for_patient else None))

    def register(self, sub: SubmissionDraft, security: etree._Element | None = None) -> Answer:
        """ITI-42 Register Document Set-b straight to the registry."""
        return self.soap(self.server.registry_url, Actions.REGISTER, sub.request(), security)

    def query(self, name: str, security: etree._Element, return_type: str = "LeafClass", **params) -> Answer:
        """ITI-18 ``name``; keyword arguments are the parameters without their ``$``."""
        return self.soap(self.server.registry_url, Actions.STORED_QUERY,
                         query_body(name, {f"${k}": v for k, v in params.items()}, return_type), security)

    # -- what the treating physician, who sees the whole record, reads of it
    def entry(self, patient: str, unique_id: str) -> etree._Element:
        """The registered DocumentEntry of ``unique_id`` (any status)."""
        answer = self.query("GetDocuments", self.professional(TREATING, patient), XDSDocumentEntryUniqueId=[unique_id])
        assert answer.status == "Success", answer.raw
        (entry,) = answer.objects
        return entry

    def registered(self, patient: str) -> set[str]:
        """uniqueIds of the patient's Approved DocumentEntries."""
        answer = self.query("FindDocuments", self.professional(TREATING, patient), XDSDocumentEntryPatientId=patient,
                            XDSDocumentEntryStatus=[APPROVED])
        assert answer.status == "Success", answer.raw
        return answer.unique_ids(DOC.UNIQUE_ID)

    # -- the records, over the JSON API
    def api(self, method: str, path: str, payload=None) -> None:
        resp = self.http.request(method, self.server.base_url + "/dmp/api" + path, json=payload,
                                 headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert resp.status_code in (200, 201), (path, resp.text)

    def new_record(self) -> str:
        """A patient's open record: TREATING their treating physician, AUTHORISED authorised."""
        patient = fresh_patient()
        p = requests.utils.quote(patient, safe="")
        self.api("POST", "/records", {"patient_id": patient})
        self.api("PUT", f"/records/{p}/treating-physician", {"professional_id": TREATING})
        self.api("PUT", f"/records/{p}/authorised/{AUTHORISED}")
        return patient

    def filed(self, patient: str, author: str = AUTHOR, *codes: str, folder: bool = False,
              submitter: str = AUTHOR) -> tuple[SubmissionDraft, etree._Element]:
        """One document by ``author`` (in a new Folder when ``folder``), submitted over ITI-41;
        the draft and the registered DocumentEntry."""
        sub = submission(patient, submitter)
        doc = sub.add_document(document(patient, author, *codes))
        if folder:
            sub.file_in_folder(sub.add_folder().entry_uuid, doc.entry_uuid)
        answer = self.provide(sub, submitter)
        assert answer.status == "Success", answer.raw
        return sub, self.entry(patient, doc.unique_id)


@pytest.fixture(scope="module", params=BACKENDS)
def dmp(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"write-side-{request.param}")
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


# ----------------------------------------------------------------------------- 1. ITI-42 at the registry

def test_iti42_without_security_is_refused_and_stores_nothing(dmp):
    """A RegisterDocumentSet-b sent straight to /registry, with no wsse:Security, would put a
    document in a record without anyone's access being decided: in the dmp policy only the
    embedded repository registers (in-process), so the registry answers XDSRegistryError and
    stores nothing the patient's treating physician could then read."""
    patient = dmp.new_record()
    sub = SubmissionDraft(patient, submission_set(patient))
    doc = sub.add_document()
    answer = dmp.register(sub)
    assert answer.status == "Failure", answer.raw
    assert [e["errorCode"] for e in answer.errors] == ["XDSRegistryError"]
    assert doc.unique_id not in dmp.registered(patient)


def test_iti42_with_rplc_cannot_deprecate_another_professionals_document(dmp):
    """The same unauthenticated ITI-42 replacing a registered document (RPLC): were it accepted,
    every reader would lose the original (ITI TF-3 4.1.6.1). It is refused and the target stays
    Approved."""
    patient = dmp.new_record()
    _, target = dmp.filed(patient)
    sub = SubmissionDraft(patient, submission_set(patient))
    new = sub.add_document()
    sub.relate(AssocType.RPLC, new.entry_uuid, target.get("id"))
    answer = dmp.register(sub)
    assert answer.status == "Failure", answer.raw
    assert [e["errorCode"] for e in answer.errors] == ["XDSRegistryError"]
    assert dmp.entry(patient, unique_id_of(target)).get("status") == APPROVED
    assert new.unique_id not in dmp.registered(patient)


# ----------------------------------------------------------------------------- 2. lifecycle associations

def _amend(dmp: Dmp, patient: str, kind: str, target: str, submitter: str = INTRUDER,
           for_patient: bool = True) -> tuple[Answer, str]:
    """An ITI-41 by ``submitter``: a new document related to ``target`` by ``kind``; the answer
    and the association's entryUUID."""
    sub = submission(patient, submitter)
    new = sub.add_document(document(patient, submitter))
    association = sub.relate(LIFECYCLE[kind], new.entry_uuid, target)
    return dmp.provide(sub, submitter, for_patient), association.entry_uuid


@pytest.mark.parametrize("kind", list(LIFECYCLE))
def test_rplc_of_a_document_hidden_from_the_submitter_is_answered_as_unknown(dmp, kind):
    """A professional the patient never authorised may feed the record (care team) but not
    replace, transform, append to or sign a document they cannot see: the answer is the one for
    an entryUUID the registry never held (same errorCode, same codeContext and location once the
    ids are set aside), so it does not even confirm the document exists; the target stays
    Approved."""
    patient = dmp.new_record()
    _, target = dmp.filed(patient, AUTHOR, "MASQUE_PS")
    hidden, hidden_association = _amend(dmp, patient, kind, target.get("id"))
    unknown_target = f"urn:uuid:{uuid.uuid4()}"
    unknown, unknown_association = _amend(dmp, patient, kind, unknown_target)
    assert unknown.status == "Failure" and [e["errorCode"] for e in unknown.errors] == [UNRESOLVED], unknown.raw
    assert hidden.status == unknown.status, hidden.raw
    assert hidden.error_shape(ASSOCIATION=hidden_association, TARGET=target.get("id")) \
        == unknown.error_shape(ASSOCIATION=unknown_association, TARGET=unknown_target)
    assert dmp.entry(patient, unique_id_of(target)).get("status") == APPROVED


def test_author_may_replace_own_document(dmp):
    """Its author may replace a document (ITI TF-3 4.1.6.1): the replacement is Approved, the
    original Deprecated."""
    patient = dmp.new_record()
    _, original = dmp.filed(patient, AUTHOR)
    answer, _ = _amend(dmp, patient, "RPLC", original.get("id"), submitter=AUTHOR)
    assert answer.status == "Success", answer.raw
    assert dmp.entry(patient, unique_id_of(original)).get("status") == DEPRECATED


def _reference(dmp: Dmp, patient: str, holder: str, document_uuid: str) -> tuple[Answer, str]:
    """An ITI-41 by INTRUDER naming the registered document ``document_uuid`` as a member of a new
    Folder or, by reference, of its SubmissionSet (HasMember, ITI TF-3 4.1.4); the answer and the
    association's entryUUID."""
    sub = submission(patient, INTRUDER)
    sub.add_document(document(patient, INTRUDER))
    if holder == "folder":
        association = sub.file_in_folder(sub.add_folder().entry_uuid, document_uuid)
    else:
        association = Association(new_uuid(), AssocType.HAS_MEMBER, sub.submission_set.entry_uuid, document_uuid,
                                  submission_set_status="Reference")
        sub.associations.append(association)
    return dmp.provide(sub, INTRUDER), association.entry_uuid


@pytest.mark.parametrize("holder", ["folder", "submission_set"])
def test_referencing_a_document_hidden_from_the_submitter_is_answered_as_unknown(dmp, holder):
    """Naming a registered document as a member of one's new Folder or SubmissionSet also takes
    seeing it: otherwise the registry's Success would confirm that a document hidden from the
    caller exists, where an unknown entryUUID is an UnresolvedReferenceException."""
    patient = dmp.new_record()
    _, target = dmp.filed(patient, AUTHOR, "MASQUE_PS")
    hidden, hidden_association = _reference(dmp, patient, holder, target.get("id"))
    unknown_target = f"urn:uuid:{uuid.uuid4()}"
    unknown, unknown_association = _reference(dmp, patient, holder, unknown_target)
    assert unknown.status == "Failure" and [e["errorCode"] for e in unknown.errors] == [UNRESOLVED], unknown.raw
    assert hidden.status == unknown.status, hidden.raw
    assert hidden.error_shape(ASSOCIATION=hidden_association, TARGET=target.get("id")) \
        == unknown.error_shape(ASSOCIATION=unknown_association, TARGET=unknown_target)


def _file_into(dmp: Dmp, patient: str, folder: str, submitter: str) -> tuple[Answer, str]:
    """An ITI-41 by ``submitter`` adding a new document to the registered Folder ``folder``
    (Folder HasMember DocumentEntry, ITI TF-3 4.1.5); the answer and the association's entryUUID."""
    sub = submission(patient, submitter)
    new = sub.add_document(document(patient, submitter))
    member = sub.file_in_folder(folder, new.entry_uuid)
    return dmp.provide(sub, submitter), member.entry_uuid


def _folder_of(dmp: Dmp, patient: str, sub: SubmissionDraft) -> str:
    """The entryUUID the registry gave the draft's Folder."""
    answer = dmp.query("GetFolders", dmp.professional(TREATING, patient),
                       XDSFolderUniqueId=[sub.folders[0].unique_id])
    (folder,) = answer.ids("RegistryPackage")
    return folder


def test_adding_to_an_existing_folder_needs_a_view_of_the_whole_record(dmp):
    """Adding to a Folder changes what the folder shows every reader: it takes a view of the
    whole record (treating physician, authorised professional, emergency access, the patient).
    A professional outside the patient's list, even one who sees the folder because it holds a
    document they wrote, is answered as for a folder the registry never held."""
    patient = dmp.new_record()
    sub = submission(patient, AUTHOR)
    theirs = sub.add_document(document(patient, CONTRIBUTOR))
    folder = sub.add_folder()
    sub.file_in_folder(folder.entry_uuid, theirs.entry_uuid)
    assert dmp.provide(sub, AUTHOR).status == "Success"
    folder_uuid = _folder_of(dmp, patient, sub)
    seen = dmp.query("GetFolders", dmp.professional(CONTRIBUTOR, patient), XDSFolderEntryUUID=[folder_uuid])
    assert seen.ids("RegistryPackage") == {folder_uuid}, "the folder holds their document: they see it"

    refused, refused_association = _file_into(dmp, patient, folder_uuid, CONTRIBUTOR)
    unknown_folder = f"urn:uuid:{uuid.uuid4()}"
    unknown, unknown_association = _file_into(dmp, patient, unknown_folder, CONTRIBUTOR)
    assert unknown.status == "Failure" and [e["errorCode"] for e in unknown.errors] == [UNRESOLVED], unknown.raw
    assert refused.status == unknown.status, refused.raw
    assert refused.error_shape(ASSOCIATION=refused_association, FOLDER=folder_uuid) \
        == unknown.error_shape(ASSOCIATION=unknown_association, FOLDER=unknown_folder)


def test_authorised_professional_may_add_to_an_existing_folder(dmp):
    """The same addition by a professional the patient authorised (a view of the whole record)."""
    patient = dmp.new_record()
    sub, _ = dmp.filed(patient, AUTHOR, folder=True)
    answer, _ = _file_into(dmp, patient, _folder_of(dmp, patient, sub), AUTHORISED)
    assert answer.status == "Success", answer.raw


# ----------------------------------------------------------------------------- 3. package visibility

def _submission_sets(dmp: Dmp, patient: str, security: etree._Element) -> set[str]:
    """uniqueIds of the SubmissionSets FindSubmissionSets shows the caller."""
    answer = dmp.query("FindSubmissionSets", security, XDSSubmissionSetPatientId=patient,
                       XDSSubmissionSetStatus=[APPROVED])
    assert answer.status == "Success", answer.raw
    return answer.unique_ids(SS.UNIQUE_ID)


def test_own_documents_professional_sees_only_submission_sets_holding_them(dmp):
    """A professional outside the patient's list who wrote one document sees that document
    only (DMP rule 10); of the SubmissionSets and Folders, only those holding it: another
    submission's time, author and institution would tell of documents hidden from them."""
    writer = CONTRIBUTOR
    patient = dmp.new_record()
    mixed = submission(patient, AUTHOR)  # theirs and another's, submitted by AUTHOR
    theirs = mixed.add_document(document(patient, writer))
    mixed.add_document(document(patient, AUTHOR))
    assert dmp.provide(mixed, AUTHOR).status == "Success"
    other, _ = dmp.filed(patient, AUTHOR, folder=True)

    security = dmp.professional(writer, patient)
    assert _submission_sets(dmp, patient, security) == {mixed.submission_set.unique_id}
    everything = dmp.query("GetAll", security, patientId=patient, XDSDocumentEntryStatus=[APPROVED],
                           XDSSubmissionSetStatus=[APPROVED], XDSFolderStatus=[APPROVED])
    assert everything.status == "Success", everything.raw
    assert everything.unique_ids(DOC.UNIQUE_ID) == {theirs.unique_id}
    assert everything.unique_ids(SS.UNIQUE_ID) == {mixed.submission_set.unique_id}
    assert everything.unique_ids(FOL.UNIQUE_ID) == set()
    shown = {o.get("id") for o in everything.objects}
    for association in everything.objects:
        if association.tag == q(NS_RIM, "Association"):
            assert {association.get("sourceObject"), association.get("targetObject")} <= shown
    assert _submission_sets(dmp, patient, dmp.professional(TREATING, patient)) \
        == {mixed.submission_set.unique_id, other.submission_set.unique_id}


def test_authorised_professional_does_not_see_the_submission_set_of_a_masked_document(dmp):
    """A document masked to professionals (MASQUE_PS) is hidden from an authorised professional
    (DMP rule 7), and so is the SubmissionSet that holds only it; the treating physician sees
    both."""
    patient = dmp.new_record()
    masked, _ = dmp.filed(patient, AUTHOR, "MASQUE_PS")
    plain, _ = dmp.filed(patient, AUTHOR)
    assert _submission_sets(dmp, patient, dmp.professional(AUTHORISED, patient)) == {plain.submission_set.unique_id}
    assert _submission_sets(dmp, patient, dmp.professional(TREATING, patient)) \
        == {plain.submission_set.unique_id, masked.submission_set.unique_id}


def test_patient_does_not_see_the_submission_set_of_a_document_hidden_from_her(dmp):
    """A document INVISIBLE_PATIENT (not yet disclosed) is hidden from the patient (DMP rule 3),
    and so is the SubmissionSet that holds only it."""
    patient = dmp.new_record()
    dmp.filed(patient, AUTHOR, "INVISIBLE_PATIENT")
    plain, _ = dmp.filed(patient, AUTHOR)
    assert _submission_sets(dmp, patient, dmp.patient(patient)) == {plain.submission_set.unique_id}


def _as_for_unknown(dmp: Dmp, name: str, parameter: str, hidden: str, security_of) -> None:
    """``name`` naming the hidden document answers as it does for an id no object has: same
    status, same errors, no object."""
    answer = dmp.query(name, security_of(), **{parameter: [hidden]})
    unknown = dmp.query(name, security_of(), **{parameter: [f"urn:uuid:{uuid.uuid4()}"]})
    assert unknown.status == "Success" and not unknown.objects, unknown.raw
    assert (answer.status, answer.errors, len(answer.objects)) == (unknown.status, unknown.errors, 0), answer.raw


def test_get_folders_for_a_masked_document_answers_as_for_an_unknown_one(dmp):
    """GetFoldersForDocument on a document masked to the caller must not confirm that it exists
    (nor show its folder): the answer is the one for an entryUUID the registry never held."""
    patient = dmp.new_record()
    _, masked = dmp.filed(patient, AUTHOR, "MASQUE_PS", folder=True)
    treating = dmp.query("GetFoldersForDocument", dmp.professional(TREATING, patient),
                         XDSDocumentEntryEntryUUID=[masked.get("id")])
    assert len(treating.ids("RegistryPackage")) == 1, "the treating physician sees the folder"
    _as_for_unknown(dmp, "GetFoldersForDocument", "XDSDocumentEntryEntryUUID", masked.get("id"),
                    lambda: dmp.professional(AUTHORISED, patient))


def test_get_submission_sets_of_a_masked_document_answers_as_for_an_unknown_one(dmp):
    """GetSubmissionSets on a document masked to the caller: as for an unknown entryUUID."""
    patient = dmp.new_record()
    _, masked = dmp.filed(patient, AUTHOR, "MASQUE_PS")
    treating = dmp.query("GetSubmissionSets", dmp.professional(TREATING, patient), uuid=[masked.get("id")])
    assert len(treating.ids("RegistryPackage")) == 1, "the treating physician sees the submission set"
    _as_for_unknown(dmp, "GetSubmissionSets", "uuid", masked.get("id"), lambda: dmp.professional(AUTHORISED, patient))


# ----------------------------------------------------------------------------- 4. errors that disclose

def _two_patients(dmp: Dmp) -> tuple[tuple[str, str], tuple[str, str]]:
    """Two records with one document each, TREATING the treating physician of both:
    ((patient, document uniqueId), ...)."""
    out = []
    for _ in range(2):
        patient = dmp.new_record()
        sub, _ = dmp.filed(patient, AUTHOR)
        out.append((patient, sub.documents[0].unique_id))
    return tuple(out)


def test_result_not_single_patient_never_names_a_patient(dmp):
    """A Get* query whose objects span two patients is refused with XDSResultNotSinglePatient
    (ITI TF-2 3.18.4.1.3); the error says so without naming either patient."""
    (p1, d1), (p2, d2) = _two_patients(dmp)
    answer = dmp.query("GetDocuments", dmp.professional(TREATING), XDSDocumentEntryUniqueId=[d1, d2])
    assert answer.status == "Failure", answer.raw
    assert [e["errorCode"] for e in answer.errors] == ["XDSResultNotSinglePatient"]
    assert national_id(p1) not in answer.raw and national_id(p2) not in answer.raw, answer.raw


def test_get_documents_of_two_patients_by_a_caller_without_access_answers_as_for_unknown_ids(dmp):
    """uniqueIds of documents of two patients, asked by a professional with no access to either
    record: the answer is the one for uniqueIds no document has (Success, no object), never an
    error telling that they exist, still less whose they are."""
    (p1, d1), (p2, d2) = _two_patients(dmp)
    answer = dmp.query("GetDocuments", dmp.professional(NOBODY), XDSDocumentEntryUniqueId=[d1, d2])
    unknown = dmp.query("GetDocuments", dmp.professional(NOBODY),
                        XDSDocumentEntryUniqueId=[f"2.25.{uuid.uuid4().int}", f"2.25.{uuid.uuid4().int}"])
    assert unknown.status == "Success" and not unknown.objects, unknown.raw
    assert (answer.status, answer.errors, len(answer.objects)) == (unknown.status, unknown.errors, 0), answer.raw
    assert national_id(p1) not in answer.raw and national_id(p2) not in answer.raw, answer.raw


def test_patient_id_does_not_match_never_names_the_other_patient(dmp):
    """A replacement whose target belongs to another patient is XDSPatientIdDoesNotMatch (ITI
    TF-3 4.1.6); even to the treating physician of both (an assertion for no patient in
    particular), the error does not name the target's patient."""
    (p1, _), (p2, d2) = _two_patients(dmp)
    answer, _ = _amend(dmp, p1, "RPLC", dmp.entry(p2, d2).get("id"), submitter=TREATING, for_patient=False)
    assert answer.status == "Failure", answer.raw
    assert "XDSPatientIdDoesNotMatch" in [e["errorCode"] for e in answer.errors], answer.raw
    assert national_id(p2) not in answer.raw, answer.raw
