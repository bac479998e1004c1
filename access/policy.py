"""The one module that decides who sees what (DMP patient-controlled access, or an open domain).

Two layers:

* :func:`decide` and :meth:`Decision.sees`: pure functions of the caller, the patient's
  decisions (:class:`~access.store.RecordPolicy`) and a document's facts. No database, no
  transport: the table-driven tests run them directly.
* :class:`AccessPolicy`: what the actors ask (``identify`` a SOAP request's caller, may this
  caller query / submit for this patient, which objects of an answer may it see, which documents
  may it retrieve). It loads the facts, asks the pure functions, audits refusals and emergency
  accesses, and records emergency accesses for the patient.

DMP rules (mode ``dmp``), in order; the first that applies wins:

1. no record for the patient: refused (a record exists only once created with consent);
2. closed record: refused (data kept);
3. the patient (NameID = the patient's INS): their record, less undisclosed INVISIBLE_PATIENT;
   a legal representative (resource-id = the patient): less INVISIBLE_PATIENT and
   INVISIBLE_REPRESENTANTS_LEGAUX not disclosed;
4. an assertion for another patient (resource-id) or no person at all: refused;
5. a blocked professional: refused, whatever else (treating, authorised, author, emergency);
6. the treating physician: everything, masked documents included;
7. an authorised professional: everything but documents masked to professionals;
8. break-glass / centre 15 where the patient did not object: as 7, flagged, audited, listed;
9. a submission by a professional outside the list (care team feeding) when configured;
10. an unauthorised professional who authored documents of the patient: those documents only;
11. anyone else: refused.

At every level a professional sees the documents they authored (rule 5 aside). Mode ``open``:
every authenticated caller sees everything (a plain XDS affinity domain).
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import uuid
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol

from lxml import etree
from sqlalchemy import Connection

from access.store import NO_DECISION, AccessStore, DocumentPolicy, RecordPolicy
from access.xua import replayed
from config import Settings
from registry import facts as registry_facts
from registry.facts import FACTS_SEPARATOR, author_id
from registry.query.engine import QueryResult
from registry.query.params import split_value
from storage import Database
from xds.context import Caller, caller_from_environ
from xds.errors import ErrorCode, ErrorList
from xds.metadata import Association
from xds.patient import patient_key, same_patient
from xds.soap.messages import SoapRequest
from xds.vocabulary import DOC, NS_RIM, QUERY_PATIENT_PARAMETERS, STORED_QUERIES, AssocType, q

log = logging.getLogger(__name__)

VISIBILITY_SYSTEM = "1.2.250.1.213.1.1.4.13"
"""TRE_A07-StatutVisibiliteDocument."""
MASQUE_PS = "MASQUE_PS"
INVISIBLE_PATIENT = "INVISIBLE_PATIENT"
INVISIBLE_REPRESENTANTS_LEGAUX = "INVISIBLE_REPRESENTANTS_LEGAUX"

NORMAL, BREAK_GLASS, CENTRE_15 = "normal", "bris_de_glace", "centre_15"
ACCESS_MODES = (NORMAL, BREAK_GLASS, CENTRE_15)

PATIENT, REPRESENTATIVE, PROFESSIONAL = "patient", "legal_representative", "professional"

READ, SUBMIT = "read", "submit"

PACKAGE_KINDS = frozenset({"submission_set", "folder"})
"""Registry object kinds that hold DocumentEntries (``registry_objects.kind``)."""

# views: what an allowed caller sees of the record
ALL = "all"                    # open domain
FULL = "full"                  # treating physician
STANDARD = "standard"          # authorised professional, emergency access
OWN = "own"                    # only documents the caller authored
PATIENT_VIEW = "patient"
REPRESENTATIVE_VIEW = "representative"


@dataclass(frozen=True)
class DocumentFacts:
    """What visibility depends on, for one DocumentEntry."""
    unique_id: str
    patient_id: str
    confidentiality: frozenset[str] = frozenset()
    """confidentialityCode codes (N, R, V, MASQUE_PS, INVISIBLE_PATIENT, ...)."""
    authors: frozenset[str] = frozenset()
    """National ids of the authorPerson values (first XCN component)."""
    state: DocumentPolicy = NO_DECISION

    @property
    def masked_to_professionals(self) -> bool:
        if self.state.masked is not None:
            return self.state.masked
        return MASQUE_PS in self.confidentiality

    @property
    def hidden_from_patient(self) -> bool:
        return INVISIBLE_PATIENT in self.confidentiality and not self.state.disclosed

    @property
    def hidden_from_representatives(self) -> bool:
        return (self.hidden_from_patient or INVISIBLE_REPRESENTANTS_LEGAUX in self.confidentiality) \
            and not self.state.disclosed


NO_RECORD = "no-record"
"""Why a decision refuses: the patient has no record (answered as an unknown patient id)."""
CLOSED = "closed"
NOT_ALLOWED = "not-allowed"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    view: str = ""
    reason: str = ""
    emergency: bool = False
    refusal: str = ""
    """:data:`NO_RECORD`, :data:`CLOSED` or :data:`NOT_ALLOWED` when refused: what error codes are
    chosen from, never the reason's text."""
    caller_id: str | None = None
    record: RecordPolicy | None = field(default=None, compare=False, repr=False)
    """The patient's decisions it was taken on (their document decisions serve the filter)."""

    def sees(self, doc: DocumentFacts) -> bool:
        if not self.allowed:
            return False
        if doc.state is NO_DECISION and self.record is not None and doc.unique_id in self.record.documents:
            doc = dataclasses.replace(doc, state=self.record.documents[doc.unique_id])
        if self.view == ALL or self.view == FULL:
            return True
        if self.view in (FULL, STANDARD, OWN) and self.caller_id and self.caller_id in doc.authors:
            return True
        if self.view == STANDARD:
            return not doc.masked_to_professionals
        if self.view == PATIENT_VIEW:
            return not doc.hidden_from_patient
        if self.view == REPRESENTATIVE_VIEW:
            return not doc.hidden_from_representatives
        return False


def refuse(reason: str, caller_id: str | None = None, refusal: str = NOT_ALLOWED) -> Decision:
    return Decision(False, reason=reason, caller_id=caller_id, refusal=refusal)


def caller_kind(caller: Caller) -> str:
    return caller.kind if caller.kind in (PATIENT, REPRESENTATIVE) else PROFESSIONAL


def decide(caller: Caller, record: RecordPolicy, action: str = READ, *, care_team_may_submit: bool = True,
           authored: bool = False) -> Decision:
    """May ``caller`` read (or submit to) ``record``, and with which view (the rules above)."""
    pid = record.patient_id
    who = caller.user_id
    if record.state is None:
        return refuse(f"patient {pid} has no DMP record (a record exists only once created with the "
                      "patient's consent)", who, NO_RECORD)
    if record.state != "open":
        return refuse(f"the DMP record of patient {pid} is closed: it refuses submissions and queries", who, CLOSED)
    kind = caller_kind(caller)
    if kind == PATIENT:
        if who is not None and same_patient(who, pid):
            return Decision(True, PATIENT_VIEW, "the patient", caller_id=who)
        return refuse(f"a patient has access to their own record only, not to {pid}", who)
    if caller.patient_id and not same_patient(caller.patient_id, pid):
        return refuse(f"the assertion is for patient {caller.patient_id}, not {pid}", who)
    if kind == REPRESENTATIVE:
        if caller.patient_id and same_patient(caller.patient_id, pid) and who:
            return Decision(True, REPRESENTATIVE_VIEW, "legal representative", caller_id=who)
        return refuse(f"a legal representative needs an assertion naming patient {pid}", who)
    if not who:
        return refuse("the DMP needs the person behind the request: send an XUA assertion naming the professional")
    if who in record.blocked:
        return refuse(f"professional {who} is blocked by patient {pid}", who)
    if who == record.treating_physician:
        return Decision(True, FULL, "treating physician", caller_id=who)
    if who in record.authorised:
        return Decision(True, STANDARD, "authorised by the patient", caller_id=who)
    mode = caller.access_mode or NORMAL
    if mode in (BREAK_GLASS, CENTRE_15):
        allowed = record.break_glass_allowed if mode == BREAK_GLASS else record.centre_15_allowed
        if not allowed:
            what = "break-glass" if mode == BREAK_GLASS else "emergency call-centre (centre 15)"
            return refuse(f"patient {pid} objects to {what} access", who)
        return Decision(True, STANDARD, f"emergency access ({mode})", emergency=True, caller_id=who)
    if mode not in ACCESS_MODES:
        return refuse(f"unknown access mode {mode!r} (TRE_R248: normal, bris_de_glace, centre_15)", who)
    if action == SUBMIT and care_team_may_submit:
        return Decision(True, OWN, "care team feeding the record", caller_id=who)
    if authored:
        return Decision(True, OWN, "author of documents of the record", caller_id=who)
    return refuse(f"professional {who} is not authorised by patient {pid}", who)


def may_amend(decision: Decision, target: DocumentFacts) -> bool:
    """Write rule: replace, transform, append to or sign ``target`` (RPLC, XFRM, APND, XFRM_RPLC,
    signs; ITI TF-3 4.1.6): its author or the treating physician (the whole record is theirs),
    and in an open domain anyone; never a caller who may not see it."""
    if not decision.sees(target):
        return False
    if decision.view in (ALL, FULL):
        return True
    return bool(decision.caller_id) and decision.caller_id in target.authors


def may_file_into(decision: Decision, folder_visible: bool) -> bool:
    """Write rule: add a document to an existing Folder (HasMember from the Folder, ITI TF-3
    4.1.5): a caller who sees the folder and holds a view of the whole record (treating
    physician, authorised professional, emergency access, the patient or her legal
    representative, who acts for her), not one limited to their own documents."""
    return decision.allowed and folder_visible and decision.view in (ALL, FULL, STANDARD, PATIENT_VIEW,
                                                                     REPRESENTATIVE_VIEW)


def may_remove(decision: Decision, target: DocumentFacts) -> bool:
    """Write rule: remove a DocumentEntry (ITI-62) or its bytes (ITI-86): its author, or the patient
    from her own record (issue 21: "the author may delete their document; the patient may delete a
    document from her record; nobody else"), and in an open domain anyone; never a caller who may
    not see it. The treating physician and a legal representative may not."""
    if not decision.sees(target):
        return False
    if decision.view in (ALL, PATIENT_VIEW):
        return True
    return bool(decision.caller_id) and decision.caller_id in target.authors


def may_remove_package(decision: Decision, authors: frozenset[str]) -> bool:
    """Write rule: remove a SubmissionSet or Folder (ITI-62): the patient from her own record, or an
    author of the SubmissionSet (a Folder has no author: the patient only); anyone in an open domain."""
    if not decision.allowed:
        return False
    if decision.view in (ALL, PATIENT_VIEW):
        return True
    return decision.view != REPRESENTATIVE_VIEW and bool(decision.caller_id) and decision.caller_id in authors


# ----------------------------------------------------------------------------- facts from the registry

def document_facts(conn: Connection, *, uuids: Iterable[str] | None = None,
                   unique_ids: Iterable[str] | None = None) -> dict[str, DocumentFacts]:
    """DocumentFacts by entry uuid, for the given entry uuids or document uniqueIds (the registry's
    read API); the patient's decisions on each document come with the decision on the patient
    (:meth:`Decision.sees`)."""
    return {u: DocumentFacts(f.unique_id, f.patient_id, f.confidentiality, f.authors)
            for u, f in registry_facts.entry_facts(conn, uuids=uuids, unique_ids=unique_ids).items()}


_EXTRINSIC_OBJECT = q(NS_RIM, "ExtrinsicObject")
_CLASSIFICATION = q(NS_RIM, "Classification")
_EXTERNAL_IDENTIFIER = q(NS_RIM, "ExternalIdentifier")
_SLOT = q(NS_RIM, "Slot")
_VALUE = q(NS_RIM, "Value")


def entry_facts(entry: etree._Element, patient_id: str, record: RecordPolicy | None) -> DocumentFacts | None:
    """A DocumentEntry's facts read from its LeafClass element, as the registry stored it.

    The same values the registration wrote to ``entry_codes`` and ``entry_authors`` (the
    confidentialityCode classifications' codes, the first authorPerson of each author), so a
    LeafClass answer needs no second read; None when ``entry`` is not an ExtrinsicObject.
    """
    if entry.tag != _EXTRINSIC_OBJECT:
        return None
    unique_id = ""
    codes: set[str] = set()
    authors: set[str] = set()
    for el in entry.iterchildren(_CLASSIFICATION, _EXTERNAL_IDENTIFIER):
        if el.tag == _EXTERNAL_IDENTIFIER:
            if el.get("identificationScheme") == DOC.UNIQUE_ID:
                unique_id = el.get("value") or ""
            continue
        scheme = el.get("classificationScheme")
        if scheme == DOC.CONFIDENTIALITY_CODE:
            codes.add(el.get("nodeRepresentation") or "")
        elif scheme == DOC.AUTHOR:
            person = _first_value(el, "authorPerson")
            if person:
                authors.add(author_id(person))
    state = record.documents.get(unique_id) if record is not None else None
    return DocumentFacts(unique_id, patient_id, frozenset(codes), frozenset(authors), state or NO_DECISION)


def indexed_facts(unique_id: str, confidentiality: str, authors: str, patient_id: str,
                  record: RecordPolicy | None) -> DocumentFacts:
    """A DocumentEntry's facts as the registration wrote them in its row (``confidentiality_codes``,
    ``author_persons``) and a FindDocuments answer carries them (``QueryResult.entry_facts``): the
    values :func:`entry_facts` reads from the element, without walking it."""
    codes = frozenset([c.partition("^")[0] for c in confidentiality.split(FACTS_SEPARATOR)]) \
        if confidentiality else frozenset()
    people = frozenset([author_id(p) for p in authors.split(FACTS_SEPARATOR)]) if authors else frozenset()
    state = record.documents.get(unique_id) if record is not None else None
    return DocumentFacts(unique_id, patient_id, codes, people, state or NO_DECISION)


def _first_value(obj: etree._Element, name: str) -> str | None:
    """The first Value of the Slot ``name`` (walked by hand: an ElementPath with a predicate is
    interpreted in Python on every call, ten times per answer)."""
    for slot in obj.iterchildren(_SLOT):
        if slot.get("name") == name:
            for value in slot.iter(_VALUE):
                return value.text
            return None
    return None


# ----------------------------------------------------------------------------- what the actors ask

CALLER_KEY = "xds.caller"
"""Where the transport keeps the request's Caller (shared with the audit edges)."""



FIND_DOCUMENTS = frozenset({STORED_QUERIES["FindDocuments"], STORED_QUERIES["FindDocumentsByReferenceId"]})
"""The stored queries whose statement can carry the record read (``run_stored_query``'s ``also``)."""


def query_patient(params: dict[str, list[list[str]]]) -> str | None:
    """The patient a Find/GetAll stored query is about (its patient parameter, unquoted, as the
    patient key the registry answers with: :func:`xds.patient.patient_key`)."""
    for name in QUERY_PATIENT_PARAMETERS:
        for slot in params.get(name, ()):
            for text in slot:
                values = (_values_of if len(text) <= _KEPT_TEXT else _parse_values)(name, text)
                if values is None:
                    return None
                if values:
                    return patient_key(values[0])
    return None


def _parse_values(name: str, text: str) -> tuple[str, ...] | None:
    """The values of a patient parameter's Value text, None when it does not parse."""
    try:
        return tuple(value[0] for value in split_value(name, text))
    except Exception:  # noqa: BLE001 - the engine reports bad values itself
        return None


_values_of = functools.lru_cache(maxsize=1024)(_parse_values)
""":func:`_parse_values` remembered: a dmp FindDocuments asks three times (record read,
decision, filter)."""
_KEPT_TEXT = 512
"""Only texts of a patient id's size are remembered, so requests cannot fill a worker's memory."""


class AlertSink(Protocol):
    """Where the policy reports a refusal or an emergency access (an ATNA Security Alert, wired by
    the composition root to the auditor): ``kind`` is ``authentication``, ``restricted``,
    ``emergency`` or ``user``."""

    def __call__(self, caller: Caller, description: str, kind: str = "restricted",
                 patient_id: str | None = None, success: bool = False) -> None: ...


def log_alert(caller: Caller, description: str, kind: str = "restricted", patient_id: str | None = None,
              success: bool = False) -> None:
    """The sink of a policy without an auditor (tests of the policy alone, audit disabled)."""
    log.info("security alert (%s): %s", kind, description)


UUID_PARAMETERS = ("$XDSDocumentEntryEntryUUID", "$uuid", "$XDSFolderEntryUUID", "$XDSSubmissionSetEntryUUID")
"""Get* query parameters that name registry objects by entryUUID (ITI TF-2 3.18.4.1.2.3.7)."""
PACKAGE_UNIQUE_ID_PARAMETERS = ("$XDSFolderUniqueId", "$XDSSubmissionSetUniqueId")
NAMED_PARAMETERS = UUID_PARAMETERS + ("$XDSDocumentEntryUniqueId",) + PACKAGE_UNIQUE_ID_PARAMETERS


def _unknown_id(parameter: str) -> str:
    """An id no registry object has: a fresh UUID URN, or a fresh OID under 2.25 (ITU-T X.667)."""
    fresh = uuid.uuid4()
    return f"urn:uuid:{fresh}" if parameter in UUID_PARAMETERS else f"2.25.{fresh.int}"


class AssertionCheck(Protocol):
    """What the policy asks of the XUA verifier (:class:`access.xua.XuaVerifier`): fill the caller
    from the request's assertion, or raise the SoapFault that refuses it (and tell ``on_refusal``)."""

    def apply(self, request: SoapRequest, caller: Caller, required: bool, on_refusal: AlertSink | None = None,
              defer_replay: bool = False) -> None: ...


class AccessPolicy:
    """What the actors ask. ``mode``: ``open`` or ``dmp``. Safe to share between threads."""

    def __init__(self, settings: Settings, database: Database, store: AccessStore | None = None,
                 xua: AssertionCheck | None = None, alert: AlertSink = log_alert) -> None:
        self.settings = settings
        self.mode = settings.access_policy or "open"
        if self.mode not in ("open", "dmp"):
            raise ValueError(f"access_policy must be 'open' or 'dmp', not {self.mode!r}")
        self.database = database
        self.store = store or AccessStore(database)
        self.xua = xua
        self.alert = alert
        self.care_team_may_submit = settings.care_team_may_submit

    @property
    def is_dmp(self) -> bool:
        return self.mode == "dmp"

    def _alert(self, caller: Caller, description: str, kind: str = "restricted", patient_id: str | None = None,
               success: bool = False) -> None:
        self.alert(caller, description, kind, patient_id, success)

    # -- who is calling --------------------------------------------------------------------------------
    def identify(self, request: SoapRequest, defer_replay: bool = False) -> Caller:
        """The Caller of a SOAP request: TLS node, XUA assertion (verified); SoapFault when refused.

        ``defer_replay``: the assertion's replay check waits for the first read of the patient's
        record (:meth:`decide`) or :meth:`settle`, whichever comes first (ITI-18).
        """
        environ = request.environ if request.environ is not None else {}
        caller = environ.get(CALLER_KEY)  # the audit edge's Caller: filled in place, audited as such
        if caller is None:
            caller = caller_from_environ(environ)
            environ[CALLER_KEY] = caller
        caller.reply_to = caller.reply_to or request.reply_to
        caller.authenticated = bool(caller.node_subject)
        if self.xua is not None:
            self.xua.apply(request, caller, required=self.xua_required, on_refusal=self._alert,
                           defer_replay=defer_replay)
        return caller

    @staticmethod
    def _owed_replay_check(caller: Caller | None) -> tuple[str, float] | None:
        """(assertion id, expiry) of the replay check ``identify`` deferred, taken off the caller:
        whoever asks first does it, once."""
        if caller is None or caller.pending_assertion is None:
            return None
        owed, caller.pending_assertion = caller.pending_assertion, None
        return owed

    def settle(self, caller: Caller) -> None:
        """Do the replay check ``identify`` deferred, if it is still owed; SoapFault on a replay."""
        owed = self._owed_replay_check(caller)
        if owed is not None and not self.store.first_use(*owed):
            self._replayed(caller, owed[0])

    def _replayed(self, caller: Caller, assertion_id: str) -> None:
        error = replayed(assertion_id)
        self._alert(caller, f"XUA assertion refused: {error.reason}", "authentication")
        raise error.fault()

    @property
    def xua_required(self) -> bool:
        value = str(self.settings.xua_required).strip().lower()
        if value in ("", "auto"):
            return self.is_dmp
        return value in ("1", "true", "yes", "on")

    # -- decisions ---------------------------------------------------------------------------------------
    def decide(self, caller: Caller, patient_id: str, action: str = READ, conn: Connection | None = None,
               known: dict[str, Decision] | None = None, record: RecordPolicy | None = None) -> Decision:
        """``known``: the read decisions already taken in this request, by patient (filled in).
        ``record``: the patient's record, already read in this request (:meth:`record_expression`)."""
        if not self.is_dmp:
            return Decision(True, ALL, "open affinity domain", caller_id=caller.user_id)
        patient_id = patient_key(patient_id)
        if known is not None and action == READ:
            if patient_id not in known:
                known[patient_id] = self.decide(caller, patient_id, action, conn, record=record)
            return known[patient_id]
        if conn is None:
            with self.database.quick_read() as conn:
                return self.decide(caller, patient_id, action, conn, record=record)
        owed = self._owed_replay_check(caller)
        if owed is not None:
            record, fresh = self.store.record_and_first_use(patient_id, conn, *owed)
            if not fresh:
                self._replayed(caller, owed[0])
        elif record is None:
            record = self.store.record(patient_id, conn)
        decision = decide(caller, record, action, care_team_may_submit=self.care_team_may_submit)
        if not decision.allowed and action == READ and caller_kind(caller) == PROFESSIONAL and caller.user_id \
                and record.state == "open" and caller.user_id not in record.blocked \
                and not (caller.patient_id and not same_patient(caller.patient_id, patient_id)) \
                and registry_facts.has_authored(conn, patient_id, caller.user_id):
            decision = decide(caller, record, action, care_team_may_submit=self.care_team_may_submit,
                              authored=True)
        return dataclasses.replace(decision, record=record)

    def _granted(self, caller: Caller, patient_id: str, decision: Decision, transaction: str) -> None:
        if decision.emergency:
            self.store.log_emergency(patient_id, caller.user_id or "", caller.access_mode, caller.user_name,
                                     caller.organization)
            self._alert(caller, f"{transaction}: emergency access ({caller.access_mode}) to the record of "
                                f"{patient_id} by {caller.user_id}", "emergency", patient_id, success=True)

    def _refused(self, caller: Caller, patient_id: str, decision: Decision, transaction: str) -> None:
        self._alert(caller, f"{transaction}: access refused: {decision.reason}", "restricted", patient_id)

    # ITI-18 --------------------------------------------------------------------------------------------
    def record_expression(self, caller: Caller, query_id: str, params: dict[str, list[list[str]]],
                          conn: Connection) -> tuple[str, dict[str, Any]] | None:
        """The record read a FindDocuments may carry in its own statement (``run_stored_query``'s
        ``also``), or None: not PostgreSQL, no patient named, or a replay check still owed (it
        is made with the record, in a statement of its own).

        A FindDocuments in mode dmp is then one round trip instead of two, the most frequent
        query of the DMP (benchmarks/query.py, issue 6). The query runs before the decision;
        a refused caller gets only the refusal, and the answer is dropped.
        """
        if not self.is_dmp or conn.dialect.name != "postgresql" or query_id not in FIND_DOCUMENTS \
                or caller.pending_assertion is not None:
            return None
        patient = query_patient(params)
        return self.store.record_expression(patient) if patient else None

    def record_of_value(self, params: dict[str, list[list[str]]], value: object) -> RecordPolicy | None:
        """The record a FindDocuments carried (:meth:`record_expression`: JSON text, NULL without
        rows, as ``QueryResult.also`` holds it); None without one."""
        patient = query_patient(params)
        if not patient or value is None:
            return None
        if not isinstance(value, str):
            raise TypeError(f"the record expression gave a {type(value).__name__}, not JSON text")
        return self.store.record_of_value(patient, value)

    def check_query(self, caller: Caller, params: dict[str, list[list[str]]],
                    known: dict[str, Decision] | None = None, conn: Connection | None = None,
                    record: RecordPolicy | None = None) -> ErrorList | None:
        """Errors for a query on a patient the caller may not access; None when it may run.

        ``known``: a dict that keeps this request's decisions for :meth:`filter_query`. A replay
        check that ``identify`` deferred is done here at the latest (with the record when the
        query names a patient). ``record``: the patient's record, if already read.
        """
        if not self.is_dmp:
            self.settle(caller)
            return None
        patient = query_patient(params)
        if patient is None:
            self.settle(caller)
            return None  # Get* queries: filtered object by object
        decision = self.decide(caller, patient, conn=conn, known=known,
                               record=record if record is not None and record.patient_id == patient else None)
        if not decision.allowed:
            self._refused(caller, patient, decision, "ITI-18")
            errors = ErrorList()
            code = ErrorCode.UNKNOWN_PATIENT_ID if decision.refusal == NO_RECORD else ErrorCode.REGISTRY_ERROR
            errors.add(code, f"access refused: {decision.reason}", patient)
            return errors
        self._granted(caller, patient, decision, "ITI-18")
        return None

    def conceal(self, caller: Caller, params: dict[str, list[list[str]]], conn: Connection,
                known: dict[str, Decision]) -> dict[str, list[list[str]]]:
        """The parameters of a Get* query with every object it names that the caller may not see
        replaced by an id no object has, so that the registry answers exactly as it does for an
        unknown id: no error naming another patient (XDSResultNotSinglePatient), no folder or
        submission set confirming that a hidden document exists (issue 17, finding 3 and 4)."""
        if not self.is_dmp:
            return params
        named: dict[str, list[str]] = {}
        for name in NAMED_PARAMETERS:
            for slot in params.get(name, ()):
                for text in slot:
                    values = _values_of(name, text) if len(text) <= _KEPT_TEXT else _parse_values(name, text)
                    named.setdefault(name, []).extend(values or ())
        if not named:
            return params
        by_uuid = {v for name in UUID_PARAMETERS for v in named.get(name, ())}
        kinds = registry_facts.object_patients(conn, by_uuid) if by_uuid else {}
        docs = document_facts(conn, uuids=[u for u, (k, _) in kinds.items() if k == "document"])
        by_unique = {f.unique_id: f for f in document_facts(
            conn, unique_ids=named.get("$XDSDocumentEntryUniqueId", [])).values()} \
            if "$XDSDocumentEntryUniqueId" in named else {}
        package_uids = [v for name in PACKAGE_UNIQUE_ID_PARAMETERS for v in named.get(name, ())]
        packages = {u: pid for u, (k, pid) in kinds.items() if k in PACKAGE_KINDS}
        package_of_uid = registry_facts.packages_by_unique_id(conn, package_uids) if package_uids else {}
        packages.update({package: pid for package, _k, pid in package_of_uid.values()})
        for pid in {d.patient_id for d in docs.values()} | {d.patient_id for d in by_unique.values()} \
                | set(packages.values()):
            self.decide(caller, pid, READ, conn, known=known)
        hidden_packages = self._hidden_packages(
            caller, {u: p for u, p in packages.items() if known[p].allowed and known[p].view not in (ALL, FULL)},
            known, conn) | {u for u, p in packages.items() if not known[p].allowed}

        def hidden(name: str, value: str) -> bool:
            if name == "$XDSDocumentEntryUniqueId":
                f = by_unique.get(value)
                return f is not None and not known[f.patient_id].sees(f)
            if name in PACKAGE_UNIQUE_ID_PARAMETERS:
                return value in package_of_uid and package_of_uid[value][0] in hidden_packages
            if value in docs:
                return not known[docs[value].patient_id].sees(docs[value])
            return value in hidden_packages

        concealed = {(name, v) for name, values in named.items() for v in values if hidden(name, v)}
        if not concealed:
            return params
        out = dict(params)
        for name in {n for n, _ in concealed}:
            slots = []
            for slot in params[name]:
                texts = []
                for text in slot:
                    for n, value in concealed:
                        if n == name:
                            text = text.replace(f"'{value}'", f"'{_unknown_id(name)}'")
                    texts.append(text)
                slots.append(texts)
            out[name] = slots
        return out

    def filter_query(self, caller: Caller, result: QueryResult, known: dict[str, Decision] | None = None,
                     conn: Connection | None = None) -> None:
        """Drop from a QueryResult (ids, objects) what the caller may not see, and associations to it.

        The owners and kinds of the objects come with the result; only associations need their
        ends read. Documents' facts come from their LeafClass elements and the patients'
        decisions (:func:`entry_facts`); an ObjectRef answer or one with associations reads them
        (:func:`document_facts`), unless every patient concerned is seen in full (treating
        physician) or not at all.
        """
        if not self.is_dmp or not result.ids:
            return
        ids = list(result.ids)
        known = {} if known is None else known
        owners = dict(zip(ids, result.patients))
        links = [u for u, k in zip(ids, result.kinds) if k == "association"]
        documents = [u for u, k in zip(ids, result.kinds) if k == "document"]
        with ExitStack() as stack:
            opened: list[Connection] = []

            if conn is not None:
                opened.append(conn)

            def reader() -> Connection:
                """A connection only when something is left to read (often nothing is)."""
                if not opened:
                    opened.append(stack.enter_context(self.database.quick_read()))
                return opened[0]

            ends = registry_facts.association_ends(reader(), links) if links else {}
            for pid in {p for p in owners.values() if p and p not in known}:
                self.decide(caller, pid, READ, reader(), known=known)
            everything = all(d.view in (ALL, FULL) or not d.allowed for d in known.values())
            docs: dict[str, DocumentFacts] = {}
            if ends or (documents and not everything):
                if not ends:
                    docs = self._facts_of_entries(result, known)
                if ends or len(docs) < len(documents):
                    docs = document_facts(reader(), uuids=set(documents) | {e for st in ends.values() for e in st})
                for pid in {d.patient_id for d in docs.values() if d.patient_id not in known}:
                    self.decide(caller, pid, READ, reader(), known=known)
            hidden = {u for u, d in docs.items() if not known[d.patient_id].sees(d)}
            packages = {u: owner for u, k in zip(ids, result.kinds)
                        if k in PACKAGE_KINDS and (owner := owners.get(u)) and known[owner].allowed}
            if ends:
                for end, (kind, pid) in registry_facts.object_patients(
                        reader(), {e for st in ends.values() for e in st} - packages.keys() - docs.keys()).items():
                    if kind in PACKAGE_KINDS:
                        if pid not in known:
                            self.decide(caller, pid, READ, reader(), known=known)
                        packages[end] = pid
            packages = {u: p for u, p in packages.items() if known[p].allowed and known[p].view not in (ALL, FULL)}
            if packages:
                hidden |= self._hidden_packages(caller, packages, known, reader())
        keep = []
        for i, uid in enumerate(ids):
            owner = owners.get(uid)
            if uid in hidden or (owner and not known[owner].allowed):
                continue
            if uid in ends and (ends[uid][0] in hidden or ends[uid][1] in hidden):
                continue
            keep.append(i)
        if len(keep) != len(ids):
            result.ids = [result.ids[i] for i in keep]
            result.objects = [result.objects[i] for i in keep]
            result.patients = [result.patients[i] for i in keep]
            result.kinds = [result.kinds[i] for i in keep]

    def _hidden_packages(self, caller: Caller, packages: dict[str, str], known: dict[str, Decision],
                         conn: Connection) -> set[str]:
        """The SubmissionSets and Folders (uuid -> patient) the caller may not see: a package is
        visible only if at least one of its DocumentEntries is, or the caller authored it (a
        SubmissionSet's author); otherwise its time, author and institution would tell of a
        document hidden from the caller (issue 17, DMP rules 3 and 7)."""
        members = registry_facts.package_members(conn, packages)
        facts = document_facts(conn, uuids={m for ms in members.values() for m in ms})
        authors = registry_facts.object_authors(conn, packages) if caller.user_id else {}
        hidden: set[str] = set()
        for package, pid in packages.items():
            decision = known[pid]
            if caller.user_id and caller.user_id in authors.get(package, ()):
                continue
            if not any(m in facts and decision.sees(facts[m]) for m in members.get(package, ())):
                hidden.add(package)
        return hidden

    def package_visible(self, caller: Caller, package_uuid: str, patient_id: str, decision: Decision,
                        conn: Connection) -> bool:
        """Whether the caller sees one SubmissionSet or Folder (:meth:`_hidden_packages`)."""
        if not decision.allowed:
            return False
        if decision.view in (ALL, FULL):
            return True
        return not self._hidden_packages(caller, {package_uuid: patient_id}, {patient_id: decision}, conn)

    @staticmethod
    def _facts_of_entries(result: QueryResult, known: dict[str, Decision]) -> dict[str, DocumentFacts]:
        """Facts of the answer's documents: from the registry's index when the query returned them
        (``QueryResult.entry_facts``), else from their LeafClass elements; {} if one is not one."""
        docs: dict[str, DocumentFacts] = {}
        indexed = result.entry_facts
        for i, (uid, kind, pid) in enumerate(zip(result.ids, result.kinds, result.patients)):
            if kind != "document":
                continue
            decision = known.get(pid) if pid else None
            record = decision.record if decision is not None else None
            if not pid:
                return {}
            facts: DocumentFacts | None
            if indexed is not None:
                facts = indexed_facts(*indexed[i], pid, record)
            else:
                facts = entry_facts(result.objects[i], pid, record)
                if facts is None:
                    return {}
            docs[uid] = facts
        return docs

    # ITI-41 and ITI-42: what a submission's associations reach in the registry -----------------------
    def refused_references(self, caller: Caller, associations: list[Association], in_message: set[str],
                           conn: Connection | None = None) -> list[tuple[str, str]]:
        """(association entryUUID, referenced uuid) for each registered object a submission's
        associations act on that the caller may not act on (:func:`may_amend`,
        :func:`may_file_into`) or name as a member (:meth:`Decision.sees`); the registry answers
        them exactly as unknown entryUUIDs.

        Replacing, transforming, appending to or signing a document changes what every reader of
        the record sees (a replaced document is Deprecated, ITI TF-3 4.1.6.1); adding to a folder
        changes what the folder shows; a registered document named as a member of a new Folder or
        SubmissionSet (ITI TF-3 4.1.4) would, if accepted, confirm that a document hidden from the
        caller exists. A refused reference is reported to the audit trail.
        """
        if not self.is_dmp:
            return []
        amended = {a.target for a in associations if a.is_relationship and a.target not in in_message}
        filed = {a.source for a in associations
                 if a.association_type == AssocType.HAS_MEMBER and a.source not in in_message}
        referenced = {a.target for a in associations
                      if a.association_type == AssocType.HAS_MEMBER and a.target not in in_message}
        if not amended and not filed and not referenced:
            return []
        if conn is None:
            with self.database.quick_read() as conn:
                return self.refused_references(caller, associations, in_message, conn)
        known: dict[str, Decision] = {}
        docs = document_facts(conn, uuids=amended | referenced) if amended or referenced else {}
        packages = {u: pid for u, (kind, pid) in registry_facts.object_patients(conn, filed).items()
                    if kind in PACKAGE_KINDS} if filed else {}
        for pid in {d.patient_id for d in docs.values()} | set(packages.values()):
            self.decide(caller, pid, READ, conn, known=known)
        refused: list[tuple[str, str]] = []
        for a in associations:
            target = docs.get(a.target)
            if target is not None and a.is_relationship and not may_amend(known[target.patient_id], target):
                refused.append((a.entry_uuid, a.target))
            elif target is not None and a.association_type == AssocType.HAS_MEMBER \
                    and not known[target.patient_id].sees(target):
                refused.append((a.entry_uuid, a.target))
            elif a.source in packages and a.association_type == AssocType.HAS_MEMBER:
                pid = packages[a.source]
                if not may_file_into(known[pid], self.package_visible(caller, a.source, pid, known[pid], conn)):
                    refused.append((a.entry_uuid, a.source))
        for association, ref in refused:
            self._alert(caller, f"submission refused: association {association} acts on {ref}, which the caller "
                                "may not amend, file into or see", "restricted",
                        docs[ref].patient_id if ref in docs else packages.get(ref))
        return refused

    # ITI-62 and ITI-86 -----------------------------------------------------------------------------------
    def refused_removals(self, caller: Caller, named: dict[str, tuple[str, str | None]], conn: Connection,
                         transaction: str = "ITI-62") -> set[str]:
        """Of the registered objects ``named`` (uuid -> (kind, patient id)), those the caller may not
        remove (:func:`may_remove`, :func:`may_remove_package`); an Association goes with its
        sourceObject (the SubmissionSet, Folder or DocumentEntry that made it). Each refusal is a
        security alert; the registry answers a refused object exactly as an unknown one."""
        if not self.is_dmp or not named:
            return set()
        ends = registry_facts.association_ends(conn, [u for u, (k, _) in named.items() if k == "association"])
        sources = {u: ends[u][0] for u in ends}
        kinds = {u: k for u, (k, _) in named.items() if k != "association"}
        unknown = set(sources.values()) - kinds.keys()
        kinds.update({u: k for u, (k, _) in registry_facts.object_patients(conn, unknown).items()})
        docs = document_facts(conn, uuids=[u for u, k in kinds.items() if k == "document"])
        authors = registry_facts.object_authors(conn, [u for u, k in kinds.items() if k == "submission_set"])
        patients = {u: p for u, (_, p) in registry_facts.object_patients(conn, kinds).items()}
        known: dict[str, Decision] = {}

        def may(ref: str) -> bool:
            pid = patients.get(ref)
            if pid is None:
                return False
            decision = self.decide(caller, pid, READ, conn, known=known)
            if kinds.get(ref) == "document":
                return ref in docs and may_remove(decision, docs[ref])
            return may_remove_package(decision, authors.get(ref, frozenset()))

        refused = {u for u in named if not may(sources.get(u, u))}
        for ref in sorted(refused):
            self._alert(caller, f"{transaction}: removal of {named[ref][0]} {ref} refused: only the author of a "
                                "document or the patient may remove it", "restricted", named[ref][1])
        return refused

    def removable_documents(self, caller: Caller, unique_ids: Iterable[str]) -> set[str]:
        """ITI-86: the document uniqueIds whose bytes the caller may remove. A document the registry
        still holds follows :func:`may_remove`; one whose metadata is gone (removed by ITI-62, as
        ITI TF-2 3.86.1 expects first) is reachable by no reader and may be removed."""
        wanted = set(unique_ids)
        if not self.is_dmp or not wanted:
            return wanted
        with self.database.quick_read() as conn:
            docs = document_facts(conn, unique_ids=wanted)
            known: dict[str, Decision] = {}
            refused = {d.unique_id for d in docs.values()
                       if not may_remove(self.decide(caller, d.patient_id, READ, conn, known=known), d)}
        for d in docs.values():
            if d.unique_id in refused:
                self._alert(caller, f"ITI-86: removal of document {d.unique_id} refused: only its author or the "
                                    "patient may remove it", "restricted", d.patient_id)
        return wanted - refused

    # ITI-41 --------------------------------------------------------------------------------------------
    def check_submission(self, caller: Caller, patient_ids: Iterable[str | None], transaction: str = "ITI-41",
                         error_code: ErrorCode | str = ErrorCode.REPOSITORY_ERROR) -> ErrorList | None:
        if not self.is_dmp:
            return None
        errors = ErrorList()
        for pid in sorted({p for p in patient_ids if p}):
            decision = self.decide(caller, pid, SUBMIT)
            if decision.allowed:
                self._granted(caller, pid, decision, transaction)
                continue
            self._refused(caller, pid, decision, transaction)
            code = ErrorCode.UNKNOWN_PATIENT_ID if decision.refusal == NO_RECORD else error_code
            errors.add(code, f"submission refused: {decision.reason}", pid)
        return errors if errors.has_errors else None

    # ITI-43 --------------------------------------------------------------------------------------------
    def visible_documents(self, caller: Caller, unique_ids: Iterable[str | None]) -> set[str]:
        """The document uniqueIds among ``unique_ids`` the caller may retrieve."""
        wanted = [u for u in unique_ids if u]
        if not self.is_dmp:
            return set(wanted)
        if not wanted:
            return set()
        out: set[str] = set()
        with self.database.quick_read() as conn:
            docs = document_facts(conn, unique_ids=wanted)
            decisions = {pid: self.decide(caller, pid, READ, conn) for pid in {d.patient_id for d in docs.values()}}
        for d in docs.values():
            if decisions[d.patient_id].sees(d):
                out.add(d.unique_id)
        refused = {d.patient_id: decisions[d.patient_id] for d in docs.values() if d.unique_id not in out}
        for pid, decision in refused.items():
            self._alert(caller, "ITI-43: retrieve refused: " + (decision.reason or "document not visible to "
                                                                 f"{caller.user_id}"), "restricted", pid)
        for pid, decision in decisions.items():
            if pid not in refused:
                self._granted(caller, pid, decision, "ITI-43")
        return out
