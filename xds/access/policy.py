"""The one module that decides who sees what (DMP patient-controlled access, or an open domain).

Two layers:

* :func:`decide` and :meth:`Decision.sees`: pure functions of the caller, the patient's
  decisions (:class:`~xds.access.store.RecordPolicy`) and a document's facts. No database, no
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
from contextlib import ExitStack
from dataclasses import dataclass, field

from sqlalchemy import bindparam, or_, select, text

from xds.context import Caller
from xds.errors import ErrorCode, ErrorList
from xds.vocabulary import DOC, NS_RIM, QUERY_PATIENT_PARAMETERS, STORED_QUERIES, q

from registry.store.schema import FACTS_SEPARATOR
from registry.store.db import driver_execute

from .store import NO_DECISION, AccessStore, DocumentPolicy, RecordPolicy

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


@dataclass(frozen=True)
class Decision:
    allowed: bool
    view: str = ""
    reason: str = ""
    emergency: bool = False
    caller_id: str | None = None
    record: RecordPolicy | None = field(default=None, compare=False, repr=False)
    """The patient's decisions it was taken on (their document decisions serve the filter)."""

    def sees(self, doc: DocumentFacts) -> bool:
        if not self.allowed:
            return False
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


def refuse(reason: str, caller_id: str | None = None) -> Decision:
    return Decision(False, reason=reason, caller_id=caller_id)


def caller_kind(caller: Caller) -> str:
    return caller.kind if caller.kind in (PATIENT, REPRESENTATIVE) else PROFESSIONAL


def decide(caller: Caller, record: RecordPolicy, action: str = READ, *, care_team_may_submit: bool = True,
           authored: bool = False) -> Decision:
    """May ``caller`` read (or submit to) ``record``, and with which view (the rules above)."""
    pid = record.patient_id
    who = caller.user_id
    if record.state is None:
        return refuse(f"patient {pid} has no DMP record (a record exists only once created with the "
                      "patient's consent)", who)
    if record.state != "open":
        return refuse(f"the DMP record of patient {pid} is closed: it refuses submissions and queries", who)
    kind = caller_kind(caller)
    if kind == PATIENT:
        if who == pid:
            return Decision(True, PATIENT_VIEW, "the patient", caller_id=who)
        return refuse(f"a patient has access to their own record only, not to {pid}", who)
    if caller.patient_id and caller.patient_id != pid:
        return refuse(f"the assertion is for patient {caller.patient_id}, not {pid}", who)
    if kind == REPRESENTATIVE:
        if caller.patient_id == pid and who:
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


def author_id(person: str) -> str:
    """The national id of an authorPerson XCN (its first component)."""
    return person.split("^", 1)[0].strip()


# ----------------------------------------------------------------------------- facts from the registry

_FACTS_OF = {
    "uuid": "SELECT uuid, unique_id, patient_id FROM document_entries WHERE uuid IN :ids",
    "unique_id": "SELECT uuid, unique_id, patient_id FROM document_entries WHERE unique_id IN :ids",
}
_FACTS_SQL = ("WITH e AS ({entries}) "
              "SELECT 'e' AS k, e.uuid, e.unique_id AS v, e.patient_id AS w FROM e "
              "UNION ALL SELECT 'c', c.entry_uuid, c.code, NULL FROM entry_codes c "
              "WHERE c.entry_uuid IN (SELECT uuid FROM e) AND c.kind = 'confidentiality' "
              "UNION ALL SELECT 'a', a.entry_uuid, a.person, NULL FROM entry_authors a "
              "WHERE a.entry_uuid IN (SELECT uuid FROM e) "
              "UNION ALL SELECT 'd', e.uuid, CASE WHEN d.masked IS NULL THEN NULL WHEN d.masked THEN '1' ELSE '0' END, "
              "CASE WHEN d.disclosed THEN '1' ELSE '0' END FROM e, access_documents d WHERE d.unique_id = e.unique_id")
"""A DocumentEntry's access facts in one round trip: the entry (``e``: uniqueId, patient), its
confidentiality codes (``c``), its authors (``a``) and the patient's decisions on it (``d``)."""
# IN (SELECT ...) rather than a join with e: SQLite would build a Bloom filter over the whole
# child table for a join (12 ms at 100,000 entries against 0.1 ms).
_FACTS = {key: text(_FACTS_SQL.format(entries=entries)).bindparams(bindparam("ids", expanding=True))
          for key, entries in _FACTS_OF.items()}
_FACTS_PG = {key: _FACTS_SQL.format(entries=entries.replace("IN :ids", "= ANY(:ids)"))
             for key, entries in _FACTS_OF.items()}
"""PostgreSQL: the ids as one array parameter, run by the driver (one statement text)."""


def document_facts(conn, *, uuids=None, unique_ids=None) -> dict[str, DocumentFacts]:
    """DocumentFacts by entry uuid, for the given entry uuids or document uniqueIds."""
    key = "uuid" if uuids is not None else "unique_id"
    postgres = conn.dialect.name == "postgresql"
    values = list(dict.fromkeys(uuids if uuids is not None else unique_ids))
    entries: dict[str, tuple[str, str]] = {}
    conf: dict[str, set[str]] = {}
    people: dict[str, set[str]] = {}
    states: dict[str, DocumentPolicy] = {}
    for i in range(0, len(values), 500):
        chunk = {"ids": values[i:i + 500]}
        rows = driver_execute(conn, _FACTS_PG[key], chunk)[0] if postgres else conn.execute(_FACTS[key], chunk)
        for k, uuid, v, w in rows:
            if k == "e":
                entries[uuid] = (v, w)
            elif k == "c":
                conf.setdefault(uuid, set()).add(v.split("^", 1)[0])
            elif k == "a":
                people.setdefault(uuid, set()).add(author_id(v))
            else:
                states[uuid] = DocumentPolicy(None if v is None else v == "1", w == "1")
    return {u: DocumentFacts(uid, pid, frozenset(conf.get(u, ())), frozenset(people.get(u, ())),
                             states.get(u, NO_DECISION))
            for u, (uid, pid) in entries.items()}


_EXTRINSIC_OBJECT = q(NS_RIM, "ExtrinsicObject")
_CLASSIFICATION = q(NS_RIM, "Classification")
_EXTERNAL_IDENTIFIER = q(NS_RIM, "ExternalIdentifier")
_SLOT = q(NS_RIM, "Slot")
_VALUE = q(NS_RIM, "Value")


def entry_facts(entry, patient_id: str, record: RecordPolicy | None) -> DocumentFacts | None:
    """A DocumentEntry's facts read from its LeafClass element, as the registry stored it.

    The same values the registration wrote to ``entry_codes`` and ``entry_authors`` (the
    confidentialityCode classifications' codes, the first authorPerson of each author), so a
    LeafClass answer needs no second read; None when ``entry`` is not an ExtrinsicObject.
    """
    if entry.tag != _EXTRINSIC_OBJECT:
        return None
    unique_id, codes, authors = "", set(), set()
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


def _first_value(obj, name: str) -> str | None:
    """The first Value of the Slot ``name`` (walked by hand: an ElementPath with a predicate is
    interpreted in Python on every call, ten times per answer)."""
    for slot in obj.iterchildren(_SLOT):
        if slot.get("name") == name:
            for value in slot.iter(_VALUE):
                return value.text
            return None
    return None


def has_authored(conn, patient_id: str, professional_id: str) -> bool:
    from registry.store import schema as t
    de, authors = t.document_entries, t.entry_authors
    escaped = professional_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    stmt = (select(de.c.uuid).join(authors, authors.c.entry_uuid == de.c.uuid)
            .where(de.c.patient_id == patient_id,
                   or_(authors.c.person == professional_id, authors.c.person.like(escaped + "^%", escape="\\")))
            .limit(1))
    return conn.execute(stmt).first() is not None


# ----------------------------------------------------------------------------- what the actors ask

CALLER_KEY = "xds.caller"
"""Where the transport keeps the request's Caller (shared with the audit edges)."""



FIND_DOCUMENTS = frozenset({STORED_QUERIES["FindDocuments"], STORED_QUERIES["FindDocumentsByReferenceId"]})
"""The stored queries whose statement can carry the record read (``run_stored_query``'s ``also``)."""


def query_patient(params: dict[str, list[list[str]]]) -> str | None:
    """The patient a Find/GetAll stored query is about (its patient parameter, unquoted)."""
    for name in QUERY_PATIENT_PARAMETERS:
        for slot in params.get(name, ()):
            for text in slot:
                values = (_values_of if len(text) <= _KEPT_TEXT else _parse_values)(name, text)
                if values is None:
                    return None
                if values:
                    return values[0]
    return None


def _parse_values(name: str, text: str) -> tuple[str, ...] | None:
    """The values of a patient parameter's Value text, None when it does not parse."""
    from registry.query.params import split_value
    try:
        return tuple(value[0] for value in split_value(name, text))
    except Exception:  # noqa: BLE001 - the engine reports bad values itself
        return None


_values_of = functools.lru_cache(maxsize=1024)(_parse_values)
""":func:`_parse_values` remembered: a dmp FindDocuments asks three times (record read,
decision, filter)."""
_KEPT_TEXT = 512
"""Only texts of a patient id's size are remembered, so requests cannot fill a worker's memory."""


class AccessPolicy:
    """What the actors ask. ``mode``: ``open`` or ``dmp``. Safe to share between threads."""

    def __init__(self, settings, database, store: AccessStore | None = None, xua=None, services=None) -> None:
        self.settings = settings
        self.mode = getattr(settings, "access_policy", "open") or "open"
        if self.mode not in ("open", "dmp"):
            raise ValueError(f"access_policy must be 'open' or 'dmp', not {self.mode!r}")
        self.database = database
        self.store = store or AccessStore(database)
        self.xua = xua
        self.services = services
        self.care_team_may_submit = bool(getattr(settings, "care_team_may_submit", True))

    @property
    def is_dmp(self) -> bool:
        return self.mode == "dmp"

    # -- audit (through services.auditor when the audit package provides one) ------------------------
    def _alert(self, caller: Caller, description: str, kind: str = "restricted", patient_id: str | None = None,
               success: bool = False) -> None:
        from .alerts import security_alert
        security_alert(self.services, caller, description, kind, patient_id, success)

    # -- who is calling --------------------------------------------------------------------------------
    def identify(self, request, defer_replay: bool = False) -> Caller:
        """The Caller of a SOAP request: TLS node, XUA assertion (verified); SoapFault when refused.

        ``defer_replay``: the assertion's replay check waits for the first read of the patient's
        record (:meth:`decide`) or :meth:`settle`, whichever comes first (ITI-18).
        """
        from xds.context import caller_from_environ
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
        owed = caller.pending_assertion if caller is not None else None
        if owed is not None:
            caller.pending_assertion = None
        return owed

    def settle(self, caller: Caller) -> None:
        """Do the replay check ``identify`` deferred, if it is still owed; SoapFault on a replay."""
        owed = self._owed_replay_check(caller)
        if owed is not None and not self.store.first_use(*owed):
            self._replayed(caller, owed[0])

    def _replayed(self, caller: Caller, assertion_id: str) -> None:
        from .xua import replayed
        error = replayed(assertion_id)
        self._alert(caller, f"XUA assertion refused: {error.reason}", "authentication")
        raise error.fault()

    @property
    def xua_required(self) -> bool:
        value = str(getattr(self.settings, "xua_required", "auto")).strip().lower()
        if value in ("", "auto"):
            return self.is_dmp
        return value in ("1", "true", "yes", "on")

    # -- decisions ---------------------------------------------------------------------------------------
    def decide(self, caller: Caller, patient_id: str, action: str = READ, conn=None,
               known: dict[str, Decision] | None = None, record: RecordPolicy | None = None) -> Decision:
        """``known``: the read decisions already taken in this request, by patient (filled in).
        ``record``: the patient's record, already read in this request (:meth:`record_expression`)."""
        if not self.is_dmp:
            return Decision(True, ALL, "open affinity domain", caller_id=caller.user_id)
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
                and not (caller.patient_id and caller.patient_id != patient_id) \
                and has_authored(conn, patient_id, caller.user_id):
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
                          conn) -> tuple[str, dict] | None:
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

    def record_of_value(self, params: dict[str, list[list[str]]], value) -> RecordPolicy | None:
        """The record a FindDocuments carried (:meth:`record_expression`); None without one."""
        patient = query_patient(params)
        return self.store.record_of_value(patient, value) if patient and value is not None else None

    def check_query(self, caller: Caller, params: dict[str, list[list[str]]],
                    known: dict[str, Decision] | None = None, conn=None,
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
            code = ErrorCode.UNKNOWN_PATIENT_ID if "no DMP record" in decision.reason else ErrorCode.REGISTRY_ERROR
            errors.add(code, f"access refused: {decision.reason}", patient)
            return errors
        self._granted(caller, patient, decision, "ITI-18")
        return None

    def filter_query(self, caller: Caller, result, known: dict[str, Decision] | None = None, conn=None) -> None:
        """Drop from a QueryResult (ids, objects) what the caller may not see, and associations to it.

        The owners and kinds of the objects come with the result; only associations need their
        ends read. Documents' facts come from their LeafClass elements and the patients'
        decisions (:func:`entry_facts`); an ObjectRef answer or one with associations reads them
        (:func:`document_facts`), unless every patient concerned is seen in full (treating
        physician) or not at all.
        """
        if not self.is_dmp or not result.ids:
            return
        from registry.store import schema as t
        assoc = t.associations
        ids = list(result.ids)
        known = {} if known is None else known
        owners = dict(zip(ids, result.patients))
        links = [u for u, k in zip(ids, result.kinds) if k == "association"]
        documents = [u for u, k in zip(ids, result.kinds) if k == "document"]
        with ExitStack() as stack:
            opened: list = []

            if conn is not None:
                opened.append(conn)

            def reader():
                """A connection only when something is left to read (often nothing is)."""
                if not opened:
                    opened.append(stack.enter_context(self.database.quick_read()))
                return opened[0]

            ends: dict[str, tuple[str, str]] = {}
            for i in range(0, len(links), 500):
                for r in reader().execute(select(assoc.c.uuid, assoc.c.source, assoc.c.target)
                                        .where(assoc.c.uuid.in_(links[i:i + 500]))):
                    ends[r.uuid] = (r.source, r.target)
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
        keep = []
        for i, uid in enumerate(ids):
            pid = owners.get(uid)
            if uid in hidden or (pid and not known[pid].allowed):
                continue
            if uid in ends and (ends[uid][0] in hidden or ends[uid][1] in hidden):
                continue
            keep.append(i)
        if len(keep) != len(ids):
            result.ids = [result.ids[i] for i in keep]
            result.objects = [result.objects[i] for i in keep]
            result.patients = [result.patients[i] for i in keep]
            result.kinds = [result.kinds[i] for i in keep]

    @staticmethod
    def _facts_of_entries(result, known: dict[str, Decision]) -> dict[str, DocumentFacts]:
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
            if indexed is not None:
                facts = indexed_facts(*indexed[i], pid, record)
            else:
                facts = entry_facts(result.objects[i], pid, record)
                if facts is None:
                    return {}
            docs[uid] = facts
        return docs

    # ITI-41 --------------------------------------------------------------------------------------------
    def check_submission(self, caller: Caller, patient_ids) -> ErrorList | None:
        if not self.is_dmp:
            return None
        errors = ErrorList()
        for pid in sorted({p for p in patient_ids if p}):
            decision = self.decide(caller, pid, SUBMIT)
            if decision.allowed:
                self._granted(caller, pid, decision, "ITI-41")
                continue
            self._refused(caller, pid, decision, "ITI-41")
            code = ErrorCode.UNKNOWN_PATIENT_ID if "no DMP record" in decision.reason else ErrorCode.REPOSITORY_ERROR
            errors.add(code, f"submission refused: {decision.reason}", pid)
        return errors if errors.has_errors else None

    # ITI-43 --------------------------------------------------------------------------------------------
    def visible_documents(self, caller: Caller, unique_ids) -> set[str]:
        """The document uniqueIds among ``unique_ids`` the caller may retrieve."""
        unique_ids = [u for u in unique_ids if u]
        if not self.is_dmp:
            return set(unique_ids)
        if not unique_ids:
            return set()
        out: set[str] = set()
        with self.database.quick_read() as conn:
            docs = document_facts(conn, unique_ids=unique_ids)
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
