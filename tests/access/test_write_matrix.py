"""The DMP write matrix over real SOAP requests with signed XUA assertions (issue #17): every caller
kind x visibility case x operation on an open record, and a submission on every record state, against
``xds serve --access-policy dmp`` on SQLite and PostgreSQL; the expectations are
:func:`tests.access.matrix.expected_write`, the README's table of operations.

For each combination a fresh target document is registered first (by ``matrix.AUTHOR``, a
professional outside the patient's list: care team feeding), with the case's confidentiality and
the patient's decision on it (set over the JSON API); then the caller submits, over ITI-41, a new
document related to it (RPLC, XFRM_RPLC, XFRM, APND, signs) or filed in the target's folder
(HasMember from the Folder), or a plain new document; or, over ITI-57 to the registry, a new
version of the target's DocumentEntry or its deprecation (UpdateAvailabilityStatus). A refused operation stores nothing and leaves
the target Approved; its answer is the one for an entryUUID the registry never held
(UnresolvedReferenceException), or, for a caller who may not submit to the record at all, the
submission's refusal.

The combinations run in one batch per server (setup, then every attempt, then one read of what
the record holds); each test asserts one row. Policy changes over the JSON API are then seen by
the next SOAP request of the caller they concern.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import requests
from lxml import etree

from access.xua import local_issuer
from client.transport import Transport, decode_reply
from tests.access import matrix as m
from tests.access.test_live import REPOSITORY_UID, TOKEN, Client, configure_over_api, seg
from tests.repository.support import retrieve_body
from tests.support.databases import BACKENDS, database_url
from tests.support.metadata import SubmissionDraft, document_entry, folder, fresh_patient, submission_set
from tests.support.server import start_server
from xds.errors import ErrorCode
from xds.metadata import Association, Author, DocumentEntry, new_uuid
from xds.rim import Slot
from xds.vocabulary import DOC, NS_QUERY, NS_RIM, NS_RS, NS_XDSB, STORED_QUERIES, Actions, AssocType, q
from xds.vocabulary import MetadataUpdate as MU

APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
UNRESOLVED = ErrorCode.UNRESOLVED_REFERENCE

KINDS = {m.SUBMIT: (None,), m.REPLACE: ("RPLC", "XFRM_RPLC"), m.TRANSFORM: ("XFRM",), m.APPEND: ("APND",),
         m.SIGN: ("signs",), m.ADD_TO_FOLDER: ("HasMember",), m.NEW_VERSION: ("ITI-57",), m.DEPRECATE: ("ITI-57",)}
"""The association each operation is submitted as (replace: both RPLC and XFRM_RPLC); the
Metadata Update operations are ITI-57 Update Document Set requests to the registry."""
ASSOCIATION = {"RPLC": AssocType.RPLC, "XFRM_RPLC": AssocType.XFRM_RPLC, "XFRM": AssocType.XFRM,
               "APND": AssocType.APND, "signs": AssocType.SIGNS, "HasMember": AssocType.HAS_MEMBER}
REPLACEMENTS = ("RPLC", "XFRM_RPLC")

ROWS = [(state, caller, case, op, kind, allowed) for state, caller, case, op, allowed in m.WRITE_MATRIX
        for kind in KINDS[op]]


def row_id(state, caller, case, op, kind) -> str:
    return f"{state}-{caller}-{case}-{op}" + (f"-{kind}" if kind and len(KINDS[op]) > 1 else "")


def refusal_code(state: str) -> str:
    """The error a refused submission carries: a patient without a record is answered as an unknown
    patient id (a record exists only once created), any other refusal as a repository error."""
    return ErrorCode.UNKNOWN_PATIENT_ID if state == m.ABSENT else ErrorCode.REPOSITORY_ERROR


# ----------------------------------------------------------------------------- the messages

def author_id(caller: str, patient: str) -> str:
    """The national id the caller writes under: a professional's RPPS, or the patient's INS."""
    return m.CALLERS[caller][0] or patient.split("^", 1)[0]


def new_document(patient: str, writer: str, case: str):
    return document_entry(patient, new_uuid(), hash=None, size=None, repository_unique_id=None,
                          confidentiality_codes=m.confidentiality(case),
                          authors=[Author(m.person(writer), [m.INSTITUTION], ["Medecin"])])


def draft(patient: str, writer: str) -> SubmissionDraft:
    ss = submission_set(patient, new_uuid())
    ss.authors = [Author(m.person(writer), [m.INSTITUTION])]
    return SubmissionDraft(patient, ss)


def content_of(doc: DocumentEntry) -> bytes:
    return f"{doc.title} {doc.unique_id}".encode()


def provide_body(sub: SubmissionDraft) -> etree._Element:
    root = etree.Element(q(NS_XDSB, "ProvideAndRegisterDocumentSetRequest"), nsmap={"xdsb": NS_XDSB})
    root.append(sub.request())
    for doc in sub.documents:
        etree.SubElement(root, q(NS_XDSB, "Document"), id=doc.entry_uuid).text = \
            base64.b64encode(content_of(doc)).decode()
    return root


def new_version_of(target: DocumentEntry) -> DocumentEntry:
    """Version 2 of a document registered over ITI-41 (ITI TF-2 3.57.4.1.3.3.1): a new entryUUID, the
    lid and uniqueId of the document, what the repository registered (hash, size,
    repositoryUniqueId), a corrected title."""
    content = content_of(target)
    return dataclasses.replace(target, entry_uuid=new_uuid(), logical_id=target.entry_uuid, title="Version 2",
                               hash=hashlib.sha1(content).hexdigest(), size=len(content),
                               repository_unique_id=REPOSITORY_UID)


def update_draft(patient: str, writer: str, target: DocumentEntry, op: str) -> tuple[SubmissionDraft, str]:
    """The ITI-57 Update Document Set of ``op`` on ``target`` by ``writer``: a new version with its
    PreviousVersion (new_version) or an UpdateAvailabilityStatus Approved -> Deprecated (deprecate);
    the draft and the id the registry names when it refuses the target (the new version's, the
    association's)."""
    sub = draft(patient, writer)
    if op == m.NEW_VERSION:
        version = sub.add_document(new_version_of(target))
        sub.associations[-1].extra_slots = [Slot(MU.PREVIOUS_VERSION, ["1"])]
        return sub, version.entry_uuid
    change = Association(new_uuid(), MU.UPDATE_AVAILABILITY_STATUS, sub.submission_set.entry_uuid,
                         target.entry_uuid, extra_slots=[Slot(MU.ORIGINAL_STATUS, [APPROVED]),
                                                         Slot(MU.NEW_STATUS, [DEPRECATED])])
    sub.associations.append(change)
    return sub, change.entry_uuid


def find_all_body(patient: str) -> etree._Element:
    """FindDocuments of every Approved and Deprecated DocumentEntry of ``patient`` (LeafClass)."""
    root = etree.Element(q(NS_QUERY, "AdhocQueryRequest"), nsmap={"query": NS_QUERY, "rim": NS_RIM})
    etree.SubElement(root, q(NS_QUERY, "ResponseOption"), returnType="LeafClass", returnComposedObjects="true")
    query = etree.SubElement(root, q(NS_RIM, "AdhocQuery"), id=STORED_QUERIES["FindDocuments"])
    for name, value in (("$XDSDocumentEntryPatientId", f"'{patient}'"),
                        ("$XDSDocumentEntryStatus", f"('{APPROVED}','{DEPRECATED}')")):
        slot = etree.SubElement(query, q(NS_RIM, "Slot"), name=name)
        etree.SubElement(etree.SubElement(slot, q(NS_RIM, "ValueList")), q(NS_RIM, "Value")).text = value
    return root


@dataclass
class Answer:
    status: str
    errors: list[dict[str, str]]
    raw: bytes


@dataclass
class Target:
    """A registered document (and its own folder, for add_to_folder) an attempt acts on."""
    entry_uuid: str
    unique_id: str
    folder_uuid: str | None = None
    entry: DocumentEntry | None = None


@dataclass
class Attempt:
    row: tuple
    answer: Answer
    association: str | None
    new_unique_id: str
    target: Target | None = None


@dataclass
class Outcomes:
    client: Client
    records: dict[str, str]
    attempts: dict[tuple, Attempt] = field(default_factory=dict)
    statuses: dict[str, dict[str, str]] = field(default_factory=dict)
    """state -> document uniqueId -> status, read after every attempt (the closed record reopened,
    the absent one created, to see that nothing was stored)."""
    latest: set[str] = field(default_factory=set)
    """entryUUIDs of the open record's DocumentEntries that are their document's latest version."""
    unknown: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    """ITI-57 operation -> the errors (code, context, location; ids named) the registry answers the
    document's author for a document it never held: what a refusal must look like."""
    seconds: float = 0.0


class Wire:
    """SOAP over one requests.Session per thread; one signed assertion per caller kind and patient,
    serving every request of the batch (``xua_assertion_reuse``, the default)."""

    def __init__(self, client: Client, records: dict[str, str]) -> None:
        self.client, self.records = client, records
        self.local = threading.local()
        self.headers: dict[tuple[str, str], bytes] = {}
        self.lock = threading.Lock()

    def header(self, kind: str, patient: str) -> etree._Element:
        key = (kind, patient)
        with self.lock:
            if key not in self.headers:
                # authorised_other_patient: an assertion for another patient of the batch
                other = self.records[m.OPPOSED if patient == self.records[m.OPEN] else m.OPEN]
                self.headers[key] = etree.tostring(self.client.header(kind, patient, other, validity=900))
        return etree.fromstring(self.headers[key])

    def soap(self, url: str, action: str, body: etree._Element, header: etree._Element) -> tuple[Answer, etree._Element]:
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        data, headers = Transport(assertion=header, session=session).encode(url, action, body)
        resp = session.post(url, data=data, headers=headers, timeout=120)
        reply = decode_reply(resp.status_code, resp.headers.get("Content-Type", ""), resp.content, url)
        errors = [dict(e.attrib) for e in reply.body.iter(q(NS_RS, "RegistryError"))]
        return Answer((reply.body.get("status") or "").rsplit(":", 1)[-1], errors, resp.content), reply.body

    def provide(self, sub: SubmissionDraft, kind: str) -> Answer:
        server = self.client.server
        return self.soap(server.repository_url, Actions.PROVIDE, provide_body(sub), self.header(kind, sub.patient))[0]

    def update(self, sub: SubmissionDraft, kind: str) -> Answer:
        """ITI-57 Update Document Set at the registry."""
        return self.soap(self.client.server.registry_url, Actions.UPDATE, sub.request(),
                         self.header(kind, sub.patient))[0]

    def latest(self, patient: str) -> set[str]:
        """entryUUIDs FindDocuments (Approved and Deprecated) answers the treating physician: the latest
        version of each document (ITI TF-2 3.18.4.1.2.3.6)."""
        _, body = self.soap(self.client.server.registry_url, Actions.STORED_QUERY, find_all_body(patient),
                            self.header("treating", patient))
        return {entry.get("id") for entry in body.iter(q(NS_RIM, "ExtrinsicObject"))}

    def find(self, kind: str, patient: str) -> dict[str, str] | None:
        """ITI-18 FindDocuments (Approved and Deprecated) by ``kind``: uniqueId -> status of what it
        shows, None when the record is refused to it."""
        answer, body = self.soap(self.client.server.registry_url, Actions.STORED_QUERY, find_all_body(patient),
                                 self.header(kind, patient))
        if answer.status == "Failure":
            assert "access refused" in answer.raw.decode(), answer.raw[:2000]
            return None
        assert answer.status == "Success", answer.raw[:2000]
        out = {}
        for entry in body.iter(q(NS_RIM, "ExtrinsicObject")):
            uid = next(ei.get("value") for ei in entry.iter(q(NS_RIM, "ExternalIdentifier"))
                       if ei.get("identificationScheme") == DOC.UNIQUE_ID)
            out[uid] = entry.get("status")
        return out

    def statuses(self, patient: str) -> dict[str, str]:
        """What the treating physician, who sees the whole record, reads of it."""
        found = self.find("treating", patient)
        assert found is not None
        return found

    def retrieve(self, kind: str, patient: str, unique_ids) -> set[str]:
        """ITI-43 by ``kind``: the uniqueIds it got back."""
        _, body = self.soap(self.client.server.repository_url, Actions.RETRIEVE,
                            retrieve_body([(REPOSITORY_UID, u) for u in unique_ids]), self.header(kind, patient))
        return {el.findtext(q(NS_XDSB, "DocumentUniqueId")) for el in body.iter(q(NS_XDSB, "DocumentResponse"))}


# ----------------------------------------------------------------------------- the batch

def _api(client: Client, method: str, path: str, payload=None) -> None:
    resp = client.api(method, path, payload)
    assert resp.status_code in (200, 201), (path, resp.text)


def _register_targets(wire: Wire, patient: str) -> dict[tuple, Target]:
    """One fresh target document per open-record row that acts on one (the case's confidentiality,
    authored by AUTHOR and BLOCKED_AUTHOR), submitted by AUTHOR (care team feeding), one ITI-41 per
    case; a Folder of its own around each add_to_folder target; then the patient's decision on
    each target over the JSON API."""
    targets: dict[tuple, Target] = {}
    for case in m.CASES:
        sub = draft(patient, m.AUTHOR)
        for row in ROWS:
            state, _caller, row_case, op, _kind, _ = row
            if state != m.OPEN or row_case != case or op == m.SUBMIT:
                continue
            doc = new_document(patient, m.AUTHOR, case)
            doc.authors = m.authors()
            sub.add_document(doc)
            target = Target(doc.entry_uuid, doc.unique_id, entry=doc)
            if op == m.ADD_TO_FOLDER:
                target.folder_uuid = sub.add_folder(folder(patient, new_uuid())).entry_uuid
                sub.file_in_folder(target.folder_uuid, doc.entry_uuid)
            targets[row[:5]] = target
        answer = wire.provide(sub, "author")
        assert answer.status == "Success", answer.raw[:3000]
    for (_s, _c, case, _o, _k), target in targets.items():
        _codes, masked, disclosed = m.CASES[case]
        if masked is not None:
            _api(wire.client, "PUT", f"/documents/{seg(target.unique_id)}/mask", {"masked": masked})
        if disclosed:
            _api(wire.client, "PUT", f"/documents/{seg(target.unique_id)}/disclose", {"disclosed": True})
    return targets


def _attempt(wire: Wire, patient: str, row: tuple, target: Target | None) -> Attempt:
    """The caller's ITI-41: a new document (its own), alone (submit), related to the target, or
    filed into the target's folder."""
    _state, caller, case, op, kind, _ = row
    writer = author_id(caller, patient)
    if op in m.METADATA_UPDATE:
        assert target is not None and target.entry is not None
        update, named = update_draft(patient, writer, target.entry, op)
        return Attempt(row, wire.update(update, caller), named, target.unique_id, target)
    sub = draft(patient, writer)
    doc = sub.add_document(new_document(patient, writer, case if op == m.SUBMIT else "N"))
    association = None
    if op == m.ADD_TO_FOLDER:
        association = sub.file_in_folder(target.folder_uuid, doc.entry_uuid).entry_uuid
    elif op != m.SUBMIT:
        association = sub.relate(ASSOCIATION[kind], doc.entry_uuid, target.entry_uuid).entry_uuid
    return Attempt(row, wire.provide(sub, caller), association, doc.unique_id, target)


@pytest.fixture(scope="module", params=BACKENDS)
def dmp(request, tmp_path_factory):
    """A dmp server, and the wire to it with a patient id reserved for each record state."""
    tmp = tmp_path_factory.mktemp(f"write-matrix-{request.param}")
    url, handle = database_url(request.param, tmp)
    issuer = local_issuer(tmp / "data")
    server = start_server(tmp / "data", url, "--access-policy", "dmp",
                          env={"XDS_XUA_TRUST_LOCAL_ISSUER": "true", "XDS_ACCESS_API_TOKEN": TOKEN})
    try:
        yield Wire(Client(server, issuer), {state: fresh_patient() for state in m.STATES})
    finally:
        code = server.stop()
        if handle is not None:
            handle.close()
    assert code == 0, server.log()


@pytest.fixture(scope="module")
def batch(dmp):
    """Every row of the matrix attempted once, and what the records hold afterwards."""
    wire, client, records = dmp, dmp.client, dmp.records
    started = time.monotonic()
    targets: dict[tuple, Target] = {}
    for state, patient in records.items():
        if state == m.ABSENT:
            continue
        _api(client, "POST", "/records", {"patient_id": patient})
        configure_over_api(client, patient, state, {})  # the patient's list, the record's state
        if state == m.OPEN:
            targets = _register_targets(wire, patient)
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda row: _attempt(wire, records[row[0]], row, targets.get(row[:5])), ROWS))
    outcomes = Outcomes(client, records, {a.row[:5]: a for a in done})
    # what each record now holds: the closed one reopened, the absent one created, to read them
    _api(client, "POST", f"/records/{seg(records[m.CLOSED])}/reopen")
    _api(client, "POST", "/records", {"patient_id": records[m.ABSENT]})
    _api(client, "PUT", f"/records/{seg(records[m.ABSENT])}/treating-physician", {"professional_id": m.TREATING})
    outcomes.statuses = {state: wire.statuses(patient) for state, patient in records.items()}
    outcomes.latest = wire.latest(records[m.OPEN])
    outcomes.unknown = _unknown_document_updates(wire, records[m.OPEN])
    outcomes.seconds = time.monotonic() - started
    print(f"\nwrite matrix on {client.server.database_url.split(':')[0]}: {len(ROWS)} attempts, "
          f"{len(targets)} targets, {outcomes.seconds:.1f} s")
    return outcomes


# ----------------------------------------------------------------------------- the matrix

@pytest.mark.parametrize("state,caller,case,op,kind,allowed", ROWS, ids=[row_id(*r[:5]) for r in ROWS])
def test_write_matrix_over_soap(batch, state, caller, case, op, kind, allowed):
    attempt = batch.attempts[(state, caller, case, op, kind)]
    answer, held = attempt.answer, batch.statuses[state]
    target = attempt.target
    if op in m.METADATA_UPDATE:
        _check_metadata_update(batch, attempt, allowed)
        return
    if allowed:
        assert answer.status == "Success", answer.raw[:3000]
        assert held.get(attempt.new_unique_id) == APPROVED
        if target is not None:
            assert held[target.unique_id] == (DEPRECATED if kind in REPLACEMENTS else APPROVED)
        return
    assert answer.status == "Failure", answer.raw[:3000]
    assert attempt.new_unique_id not in held, "a refused submission stored its document"
    if target is not None:
        assert held[target.unique_id] == APPROVED
    codes = [e["errorCode"] for e in answer.errors]
    if not m.may_submit(state, caller):
        assert codes == [refusal_code(state)], answer.raw[:3000]
        assert "submission refused" in answer.errors[0]["codeContext"]
        return
    # refused as an unknown entryUUID: the target document, or the folder filed into
    ref = target.folder_uuid if op == m.ADD_TO_FOLDER else target.entry_uuid
    assert codes == [UNRESOLVED], answer.raw[:3000]
    assert answer.errors[0]["codeContext"] == \
        f"Association {attempt.association}: {ref} is neither in the submission nor in the registry"


def error_shape(answer: Answer, named: str, target: str) -> list[tuple[str, str, str]]:
    """The errors with the ids the request chose set aside."""
    return [(e["errorCode"], e["codeContext"].replace(named, "NAMED").replace(target, "TARGET"),
             e.get("location", "").replace(named, "NAMED").replace(target, "TARGET")) for e in answer.errors]


def _unknown_document_updates(wire: Wire, patient: str) -> dict[str, list[tuple[str, str, str]]]:
    """Each ITI-57 operation by the author on a document the registry never held."""
    out = {}
    for op in m.METADATA_UPDATE:
        ghost = new_document(patient, m.AUTHOR, "N")
        ghost.entry_uuid = new_uuid()
        update, named = update_draft(patient, m.AUTHOR, ghost, op)
        answer = wire.update(update, "author")
        assert answer.status == "Failure", answer.raw[:3000]
        out[op] = error_shape(answer, named, ghost.entry_uuid)
    return out


def _check_metadata_update(batch: Outcomes, attempt: Attempt, allowed: bool) -> None:
    """An allowed ITI-57 made version 2 the latest (Approved, version 1 Deprecated) or deprecated the
    document; a refused one changed nothing and is answered as the registry answers an update of a
    document it never held: an unknown entryUUID (UnresolvedReferenceException) for a status change,
    an unknown logicalID for a new version."""
    _state, caller, _case, op, _kind, _ = attempt.row
    answer, target = attempt.answer, attempt.target
    assert target is not None
    held = batch.statuses[m.OPEN]
    if allowed:
        assert answer.status == "Success", answer.raw[:3000]
        if op == m.NEW_VERSION:
            assert attempt.association in batch.latest and target.entry_uuid not in batch.latest
            assert held[target.unique_id] == APPROVED
        else:
            assert target.entry_uuid in batch.latest and held[target.unique_id] == DEPRECATED
        return
    assert answer.status == "Failure", answer.raw[:3000]
    assert target.entry_uuid in batch.latest and held[target.unique_id] == APPROVED
    assert attempt.association not in batch.latest
    codes = [e["errorCode"] for e in answer.errors]
    if not m.may_submit(m.OPEN, caller):
        assert codes == [ErrorCode.REGISTRY_ERROR], answer.raw[:3000]
        assert "submission refused" in answer.errors[0]["codeContext"]
        return
    unknown = batch.unknown[op]
    assert error_shape(answer, attempt.association or "", target.entry_uuid) == unknown, answer.raw[:3000]


def test_the_table_has_every_kind_of_answer():
    """The table is not one-sided: each operation has callers allowed and callers refused on the
    open record, and each state of the record refuses someone a submission."""
    for op in m.OPERATIONS:
        answers = {allowed for state, _c, _k, o, allowed in m.WRITE_MATRIX if o == op and state == m.OPEN}
        assert answers == {True, False}, op
    for state in m.STATES:
        assert not all(m.expected_write(state, c, "N", m.SUBMIT) for c in m.CALLERS), state


# ----------------------------------------------------------------------------- policy changes over the API

def _record(wire: Wire, *cases: str) -> tuple[str, dict[str, str]]:
    """A fresh open record with the matrix's list (treating, authorised, blocked), one document per
    case written by AUTHOR (care team feeding): (patient, case -> uniqueId)."""
    patient = fresh_patient()
    _api(wire.client, "POST", "/records", {"patient_id": patient})
    configure_over_api(wire.client, patient, m.OPEN, {})
    sub = draft(patient, m.AUTHOR)
    uids = {}
    for case in cases:
        doc = sub.add_document(new_document(patient, m.AUTHOR, case))
        uids[case] = doc.unique_id
    answer = wire.provide(sub, "author")
    assert answer.status == "Success", answer.raw[:3000]
    return patient, uids


def _submit(wire: Wire, kind: str, patient: str) -> Answer:
    writer = author_id(kind, patient)
    sub = draft(patient, writer)
    sub.add_document(new_document(patient, writer, "N"))
    return wire.provide(sub, kind)


def test_a_mask_set_over_the_api_hides_the_document_from_the_next_read(dmp):
    """The patient masks a document (PUT /documents/{uid}/mask) through the API: the authorised
    professional's next FindDocuments and Retrieve, with the same assertion, no longer show it
    (the matrix's MASKED_BY_PATIENT); the treating physician still reads it; unmasked, it is back."""
    patient, uids = _record(dmp, "N")
    uid = uids["N"]
    assert m.sees(m.OPEN, "authorised", "N") and not m.sees(m.OPEN, "authorised", "MASKED_BY_PATIENT")
    assert set(dmp.find("authorised", patient)) == {uid}
    assert dmp.retrieve("authorised", patient, [uid]) == {uid}
    _api(dmp.client, "PUT", f"/documents/{seg(uid)}/mask", {"masked": True})
    assert set(dmp.find("authorised", patient)) == set()
    assert dmp.retrieve("authorised", patient, [uid]) == set()
    assert set(dmp.find("treating", patient)) == {uid}
    _api(dmp.client, "PUT", f"/documents/{seg(uid)}/mask", {"masked": None})
    assert set(dmp.find("authorised", patient)) == {uid}


def test_an_unmask_over_the_api_shows_a_masque_ps_document_to_the_next_read(dmp):
    """A MASQUE_PS document the patient unmasks (``masked: false``, the matrix's
    UNMASKED_BY_PATIENT) is read by the authorised professional's next request."""
    patient, uids = _record(dmp, "MASQUE_PS")
    uid = uids["MASQUE_PS"]
    assert not m.sees(m.OPEN, "authorised", "MASQUE_PS") and m.sees(m.OPEN, "authorised", "UNMASKED_BY_PATIENT")
    assert set(dmp.find("authorised", patient)) == set()
    _api(dmp.client, "PUT", f"/documents/{seg(uid)}/mask", {"masked": False})
    assert set(dmp.find("authorised", patient)) == {uid}
    assert dmp.retrieve("authorised", patient, [uid]) == {uid}


def test_a_block_over_the_api_refuses_the_next_read_and_submission(dmp):
    """The patient blocks the professional she had authorised: their next query is refused, their
    retrieve gets nothing and their submission is refused (the matrix's ``blocked`` row), with the
    assertion that served them a moment before; authorised again, they read again."""
    patient, uids = _record(dmp, "N")
    assert set(dmp.find("authorised", patient)) == {uids["N"]}
    assert _submit(dmp, "authorised", patient).status == "Success"
    _api(dmp.client, "PUT", f"/records/{seg(patient)}/blocked/{m.AUTHORISED}")
    assert m.expected(m.OPEN, "blocked") is None and not m.expected_write(m.OPEN, "blocked", "N", m.SUBMIT)
    assert dmp.find("authorised", patient) is None
    assert dmp.retrieve("authorised", patient, [uids["N"]]) == set()
    refused = _submit(dmp, "authorised", patient)
    assert refused.status == "Failure" and [e["errorCode"] for e in refused.errors] == [refusal_code(m.OPEN)]
    _api(dmp.client, "PUT", f"/records/{seg(patient)}/authorised/{m.AUTHORISED}")
    assert uids["N"] in dmp.find("authorised", patient)


def test_an_emergency_objection_over_the_api_refuses_the_next_break_glass(dmp):
    """The patient objects to break-glass access: the next bris_de_glace request is refused (the
    matrix's emergency_opposed state), a centre 15 request still reads until she objects to it too."""
    patient, uids = _record(dmp, "N")
    assert set(dmp.find("break_glass", patient)) == {uids["N"]}
    _api(dmp.client, "PUT", f"/records/{seg(patient)}/emergency", {"bris_de_glace": False})
    assert dmp.find("break_glass", patient) is None
    assert not m.expected_write(m.OPPOSED, "break_glass", "N", m.SUBMIT)
    assert _submit(dmp, "break_glass", patient).status == "Failure"
    assert set(dmp.find("centre_15", patient)) == {uids["N"]}
    _api(dmp.client, "PUT", f"/records/{seg(patient)}/emergency", {"centre_15": False})
    assert dmp.find("centre_15", patient) is None


def test_closing_over_the_api_refuses_the_next_read_and_submission(dmp):
    """A record closed over the API refuses even its treating physician's next query and
    submission (the matrix's closed state); reopened, it answers again."""
    patient, uids = _record(dmp, "N")
    assert set(dmp.find("treating", patient)) == {uids["N"]}
    _api(dmp.client, "POST", f"/records/{seg(patient)}/close")
    assert m.expected(m.CLOSED, "treating") is None and not m.expected_write(m.CLOSED, "treating", "N", m.SUBMIT)
    assert dmp.find("treating", patient) is None
    refused = _submit(dmp, "treating", patient)
    assert refused.status == "Failure" and [e["errorCode"] for e in refused.errors] == [refusal_code(m.CLOSED)]
    _api(dmp.client, "POST", f"/records/{seg(patient)}/reopen")
    assert set(dmp.find("treating", patient)) == {uids["N"]}


def test_a_new_treating_physician_over_the_api_changes_who_reads_and_replaces(dmp):
    """The patient names another treating physician: the authorised professional becomes it and,
    at their next request, reads the masked document and may replace it; the former treating
    physician, now outside the list, is refused the record and answered as for an unknown
    document when replacing it."""
    patient, uids = _record(dmp, "MASQUE_PS", "N")
    masked = uids["MASQUE_PS"]
    assert set(dmp.find("authorised", patient)) == {uids["N"]}
    _api(dmp.client, "PUT", f"/records/{seg(patient)}/treating-physician", {"professional_id": m.AUTHORISED})
    seen = dmp.find("authorised", patient)
    assert set(seen) == {masked, uids["N"]}
    assert dmp.find("treating", patient) is None  # TREATING: no longer on the list, authored nothing here
    entry_uuid = _entry_uuid(dmp, "authorised", patient, masked)
    for kind, allowed in (("treating", False), ("authorised", True)):
        writer = author_id(kind, patient)
        sub = draft(patient, writer)
        doc = sub.add_document(new_document(patient, writer, "N"))
        association = sub.relate(AssocType.RPLC, doc.entry_uuid, entry_uuid)
        answer = dmp.provide(sub, kind)
        if allowed:
            assert answer.status == "Success", answer.raw[:3000]
        else:
            assert answer.status == "Failure"
            assert [(e["errorCode"], e["codeContext"]) for e in answer.errors] == [
                (UNRESOLVED, f"Association {association.entry_uuid}: {entry_uuid} is neither in the submission "
                             "nor in the registry")]
    assert dmp.find("authorised", patient)[masked] == DEPRECATED


def _entry_uuid(wire: Wire, kind: str, patient: str, unique_id: str) -> str:
    _, body = wire.soap(wire.client.server.registry_url, Actions.STORED_QUERY, find_all_body(patient),
                        wire.header(kind, patient))
    for entry in body.iter(q(NS_RIM, "ExtrinsicObject")):
        if any(ei.get("value") == unique_id for ei in entry.iter(q(NS_RIM, "ExternalIdentifier"))):
            return entry.get("id")
    raise AssertionError(f"{unique_id} not shown to {kind}")


# ----------------------------------------------------------------------------- beyond the table

def test_an_author_who_may_not_see_a_document_may_not_amend_it(dmp):
    """"Never a caller who may not see it": a document whose authorPerson is the patient's legal
    representative, marked INVISIBLE_REPRESENTANTS_LEGAUX, is hidden from them; being its author
    does not let them replace or append to it: answered as for an unknown entryUUID. (The matrix's
    documents are written by professionals, whose authorship always shows them their own, so the
    table alone does not hold the server to this clause.)"""
    patient = fresh_patient()
    _api(dmp.client, "POST", "/records", {"patient_id": patient})
    configure_over_api(dmp.client, patient, m.OPEN, {})
    sub = draft(patient, m.AUTHOR)
    target = sub.add_document(new_document(patient, m.REPRESENTATIVE, "INVISIBLE_RL"))
    assert dmp.provide(sub, "author").status == "Success"
    assert not m.sees(m.OPEN, "legal_representative", "INVISIBLE_RL")
    assert target.unique_id not in dmp.find("legal_representative", patient)
    for kind in ("RPLC", "APND"):
        writer = author_id("legal_representative", patient)
        attempt = draft(patient, writer)
        doc = attempt.add_document(new_document(patient, writer, "N"))
        association = attempt.relate(ASSOCIATION[kind], doc.entry_uuid, target.entry_uuid)
        answer = dmp.provide(attempt, "legal_representative")
        assert answer.status == "Failure", answer.raw[:3000]
        assert [(e["errorCode"], e["codeContext"]) for e in answer.errors] == [
            (UNRESOLVED, f"Association {association.entry_uuid}: {target.entry_uuid} is neither in the "
                         "submission nor in the registry")]
    assert dmp.statuses(patient)[target.unique_id] == APPROVED
