"""The DMP policy, table-driven: every caller kind x document visibility x record state.

Real registrations in the registry (SQLite and PostgreSQL), the patient's decisions through
PolicyAdmin, then what ITI-18 answers (check_query + filter_query around the stored query engine)
and what ITI-43 may return (visible_documents), as the actors ask them.
"""
from __future__ import annotations

import dataclasses

import pytest

import registry.facts
from access.policy import AccessPolicy, Decision, DocumentFacts, decide
from access.store import NO_DECISION, DocumentPolicy, RecordPolicy, migrate
from config import Settings
from registry.query import run_stored_query
from registry.register import Registry
from registry.store import migrate as migrate_registry
from tests.access import matrix as m
from tests.support.databases import BACKENDS, database_url
from tests.support.metadata import SubmissionDraft, document_entry, fresh_patient, submission_set
from transactions.policy_admin import PolicyAdmin
from xds.context import Caller

FIND = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
APPROVED = "('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')"
ACTOR = Caller(user_id="test", kind="node", authenticated=True)


def caller(kind: str, patient: str, other: str) -> Caller:
    user, role, mode, for_patient = m.CALLERS[kind]
    c = Caller(user_id=user or patient, access_mode=mode, authenticated=True)
    c.kind = {"PATIENT": "patient", "REPRESENTANT_LEGAL": "legal_representative"}.get(role, "professional")
    c.patient_id = other if for_patient == "other" else (patient if for_patient else None)
    return c


@pytest.fixture(scope="module", params=BACKENDS)
def world(request, tmp_path_factory):
    """One registry per back-end for the module: building it is the slow part."""
    from storage.database import Database
    tmp_path = tmp_path_factory.mktemp("access-" + request.param)
    url, handle = database_url(request.param, tmp_path)
    db = Database(url)
    migrate_registry(db)
    request.addfinalizer(lambda: (db.dispose(), handle.close() if handle is not None else None))
    migrate(db)
    registry = Registry(db)
    admin = PolicyAdmin(db)
    records = {}
    for state in m.STATES:
        patient = fresh_patient()
        uids = {}
        if state != m.ABSENT:
            registry.add_patient(patient)
            draft = SubmissionDraft(patient, submission_set(patient))
            for case in m.CASES:
                doc = document_entry(patient, confidentiality_codes=m.confidentiality(case), authors=m.authors())
                draft.add_document(doc)
                uids[case] = doc.unique_id
            errors = registry.register(draft.objects())
            assert not errors.has_errors, errors
            m.configure(admin, ACTOR, patient, state, uids)
        records[state] = (patient, uids)
    settings = Settings(data_dir=tmp_path, access_policy="dmp")
    return db, AccessPolicy(settings, db), records


def find(db, patient):
    return {"$XDSDocumentEntryPatientId": [[f"'{patient}'"]], "$XDSDocumentEntryStatus": [[APPROVED]]}


@pytest.mark.parametrize("facts_from", ["elements", "index", "index, record carried"])
@pytest.mark.parametrize("state,kind,visible", m.MATRIX, ids=[f"{s}-{c}" for s, c, _ in m.MATRIX])
def test_visibility_matrix(world, state, kind, visible, facts_from):
    """``facts_from``: the documents' facts read from the LeafClass elements, or from the
    registry's index as FindDocuments returns them to the dmp mode (``entry_facts``); and on
    PostgreSQL the patient's record read by the FindDocuments statement itself, the query
    running before the decision (``record_expression``), as the dmp mode's ITI-18 does."""
    db, policy, records = world
    patient, uids = records[state]
    who = caller(kind, patient, records[m.OPEN][0] if state != m.OPEN else records[m.OPPOSED][0])
    params = find(db, patient)
    result = record = None
    if facts_from == "index, record carried":
        with db.quick_read() as conn:
            carried = policy.record_expression(who, FIND, params, conn)
            assert (carried is not None) is (conn.dialect.name == "postgresql")
            if carried is not None:
                result = run_stored_query(conn, FIND, params, "LeafClass", entry_facts=True, also=carried)
                record = policy.record_of_value(params, result.also)
                assert (record is not None) is bool(uids)  # carried by the answer's rows
    refused = policy.check_query(who, params, record=record)
    if visible is None:
        assert refused is not None and refused.has_errors, f"{kind} must be refused on a {state} record"
        assert "access refused" in refused.errors[0].context
        assert policy.visible_documents(who, list(uids.values())) == set()
        return
    assert refused is None, refused
    if result is None:
        result = run_stored_query(db, FIND, params, "LeafClass", entry_facts=facts_from != "elements")
    assert result.ok, result.errors
    assert (result.entry_facts is not None) is (facts_from != "elements")
    policy.filter_query(who, result)
    by_uid = {uid: case for case, uid in uids.items()}
    seen = {by_uid[el.find(".//{urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0}ExternalIdentifier"
                           "[@identificationScheme='urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab']").get("value")]
            for el in result.objects}
    assert seen == set(visible)
    assert len(result.ids) == len(result.objects)
    assert {by_uid[u] for u in policy.visible_documents(who, list(uids.values()))} == set(visible)


def test_the_record_a_find_documents_carries_is_the_record_read(world):
    """The record read in the FindDocuments statement equals the record read on its own, for
    every state of the matrix (PostgreSQL; SQLite reads it on its own)."""
    db, policy, records = world
    for state, (patient, uids) in records.items():
        with db.quick_read() as conn:
            carried = policy.record_expression(Caller(user_id="810000000011"), FIND, find(db, patient), conn)
            if conn.dialect.name != "postgresql":
                assert carried is None
                continue
            result = run_stored_query(conn, FIND, find(db, patient), "LeafClass", also=carried)
        assert result.ok
        if uids:
            assert policy.record_of_value(find(db, patient), result.also) == policy.store.record(patient), state
        else:
            assert result.also is None


def test_no_record_is_carried_while_a_replay_check_is_owed(world):
    """The replay check of a strict assertion is made with the record (one statement of its own)."""
    db, policy, records = world
    patient, _uids = records[m.OPEN]
    who = Caller(user_id="810000000011", pending_assertion=("_a1", 4_000_000_000.0))
    with db.quick_read() as conn:
        assert policy.record_expression(who, FIND, find(db, patient), conn) is None
        assert policy.record_expression(Caller(user_id="810000000011"), "urn:uuid:ff", find(db, patient),
                                        conn) is None  # not a FindDocuments


def test_indexed_entry_facts_equal_those_read_from_the_elements(world):
    """What FindDocuments returns from ``entry_codes``/``entry_authors`` is what the policy would
    read from each LeafClass element: uniqueId, confidentiality codes, authors."""
    from access.policy import entry_facts, indexed_facts
    db, policy, records = world
    compared = 0
    for patient, _uids in records.values():
        record = policy.store.record(patient)
        result = run_stored_query(db, FIND, find(db, patient), "LeafClass", entry_facts=True)
        assert result.ok and len(result.entry_facts) == len(result.objects)
        for element, indexed in zip(result.objects, result.entry_facts):
            expected = entry_facts(element, patient, record)
            assert indexed_facts(*indexed, patient, record) == expected
            compared += bool(expected.confidentiality) and len(expected.authors) == 2
    assert compared >= 10


def test_objectref_answers_are_filtered_too(world):
    db, policy, records = world
    patient, _uids = records[m.OPEN]
    who = caller("authorised", patient, "x")
    result = run_stored_query(db, FIND, find(db, patient), "ObjectRef")
    before = len(result.ids)
    policy.filter_query(who, result)
    assert len(result.ids) == before - 3 == len(result.objects)


def test_get_all_drops_associations_to_hidden_documents(world):
    db, policy, records = world
    patient, _uids = records[m.OPEN]
    who = caller("authorised", patient, "x")
    params = {"$patientId": [[f"'{patient}'"]], "$XDSDocumentEntryStatus": [[APPROVED]],
              "$XDSSubmissionSetStatus": [[APPROVED]], "$XDSFolderStatus": [[APPROVED]]}
    result = run_stored_query(db, "urn:uuid:10b545ea-725c-446d-9b95-8aeb444eddf3", params, "LeafClass")
    assert result.ok
    policy.filter_query(who, result)
    docs = [el for el in result.objects if el.tag.endswith("ExtrinsicObject")]
    assocs = [el for el in result.objects if el.tag.endswith("Association")]
    assert len(docs) == len(m.NOT_MASKED)
    assert len(assocs) == len(m.NOT_MASKED)  # HasMember of the hidden documents are gone
    kept = {el.get("id") for el in docs}
    assert all(a.get("targetObject") in kept for a in assocs)


def test_open_mode_sees_everything(world):
    db, _policy, records = world
    patient, uids = records[m.CLOSED]
    policy = AccessPolicy(Settings(access_policy="open"), db)
    who = Caller(remote_addr="127.0.0.1")
    assert policy.check_query(who, find(db, patient)) is None
    assert policy.visible_documents(who, list(uids.values())) == set(uids.values())


def test_emergency_access_is_listed_for_the_patient(world):
    db, policy, records = world
    patient, _uids = records[m.OPEN]
    who = caller("break_glass", patient, "x")
    who.user_name, who.organization = "Dr Urgence", "SAMU 75"
    assert policy.check_query(who, find(db, patient)) is None
    accesses = PolicyAdmin(db).emergency_accesses(patient)
    assert (m.EMERGENCY, "bris_de_glace", "SAMU 75") in \
        [(a["professional_id"], a["mode"], a["organization"]) for a in accesses]


def test_care_team_submission_configurable(world, tmp_path):
    db, policy, records = world
    patient, _ = records[m.OPEN]
    stranger = caller("unauthorised", patient, "x")
    assert policy.check_submission(stranger, [patient]) is None
    strict = AccessPolicy(Settings(data_dir=tmp_path, access_policy="dmp", care_team_may_submit=False), db)
    assert strict.check_submission(stranger, [patient]).has_errors
    assert policy.check_submission(caller("blocked", patient, "x"), [patient]).has_errors
    assert policy.check_submission(caller("authorised", patient, "x"), [records[m.CLOSED][0]]).has_errors
    errors = policy.check_submission(caller("authorised", patient, "x"), [records[m.ABSENT][0]])
    assert errors.errors[0].code == "XDSUnknownPatientId"


# -- the pure decision, without a database ---------------------------------------------------------------

def test_block_outranks_treating_author_and_emergency():
    record = RecordPolicy("P", "open", treating_physician="X", authorised=frozenset({"X"}), blocked=frozenset({"X"}))
    for mode in ("normal", "bris_de_glace", "centre_15"):
        d = decide(Caller(user_id="X", access_mode=mode), record, authored=True)
        assert not d.allowed and "blocked" in d.reason


def test_author_sees_own_masked_document_even_with_a_standard_view():
    doc = DocumentFacts("1.2", "P", frozenset({"MASQUE_PS"}), frozenset({"A"}))
    assert Decision(True, "standard", caller_id="A").sees(doc)
    assert not Decision(True, "standard", caller_id="B").sees(doc)
    assert Decision(True, "standard", caller_id="B").sees(
        DocumentFacts("1.2", "P", frozenset({"MASQUE_PS"}), frozenset(), DocumentPolicy(masked=False)))


def test_node_without_person_is_refused_in_dmp_mode():
    d = decide(Caller(node_subject="CN=node"), RecordPolicy("P", "open"))
    assert not d.allowed and "XUA" in d.reason


def _statements(db, monkeypatch):
    """SQL statements run on ``db`` inside the block (BEGIN/COMMIT excluded): through SQLAlchemy,
    and those the hot paths hand to the driver directly."""
    from contextlib import contextmanager

    from sqlalchemy import event

    import access.policy
    import access.store

    @contextmanager
    def counting():
        seen: list[str] = []

        def capture(_conn, _cursor, statement, *_args):
            if statement.split(None, 1)[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK"):
                seen.append(statement)

        def driver(real):
            def run(conn, sql, values):
                if conn.dialect.name == "postgresql":  # on SQLite the events above see it
                    seen.append(sql)
                return real(conn, sql, values)
            return run

        for module in (registry.facts, access.store):
            monkeypatch.setattr(module, "driver_execute", driver(module.driver_execute))
        engines = {db.reader, db.writer}
        for engine in engines:
            event.listen(engine, "before_cursor_execute", capture)
        try:
            yield seen
        finally:
            for engine in engines:
                event.remove(engine, "before_cursor_execute", capture)
            monkeypatch.undo()
    return counting()


def _find_as(world, kind: str, monkeypatch):
    """FindDocuments on the open record as ITI-18 runs it (check, query, filter sharing one
    decision dict): (the filtered result, its size before filtering, the statements run)."""
    db, policy, records = world
    patient, _uids = records[m.OPEN]
    who = caller(kind, patient, "x")
    decisions: dict = {}
    params = find(db, patient)
    with _statements(db, monkeypatch) as seen:
        assert policy.check_query(who, params, decisions) is None
        result = run_stored_query(db, FIND, params, "LeafClass")
        before = len(result.ids)
        policy.filter_query(who, result, decisions)
    return result, before, seen


def test_a_dmp_find_documents_reads_the_policy_in_one_statement(world, monkeypatch):
    """The patient's decisions once (check_query, reused by filter_query), the documents' facts
    from the LeafClass answer itself: ITI-18 is the hot path, one statement beside the query."""
    result, _before, seen = _find_as(world, "authorised", monkeypatch)
    assert len(result.ids) == len(m.NOT_MASKED) == len(result.objects)
    assert len(seen) == 2, seen  # record (with the patient's document decisions), FindDocuments


def test_entry_facts_of_a_leaf_class_answer_equal_the_stored_facts(world):
    """What the filter reads from the LeafClass elements is what the registry indexed."""
    from access.policy import document_facts, entry_facts
    db, policy, records = world
    patient, _uids = records[m.OPEN]
    result = run_stored_query(db, FIND, find(db, patient), "LeafClass")
    record = policy.store.record(patient)
    with db.read() as conn:
        stored = {u: dataclasses.replace(f, state=record.documents.get(f.unique_id, NO_DECISION))
                  for u, f in document_facts(conn, uuids=result.ids).items()}
    read = {u: entry_facts(el, p, record) for u, el, p in zip(result.ids, result.objects, result.patients)}
    assert len(read) == len(m.CASES) and read == stored
    assert any(f.state.masked is not None for f in read.values()) and any(f.state.disclosed for f in read.values())


@pytest.mark.parametrize("sync_commit", [True, False])
def test_the_deferred_replay_check_goes_with_the_record(world, monkeypatch, sync_commit):
    """identify(defer_replay=True) leaves the assertion's replay check to the first read of the
    record: on PostgreSQL both in one statement; a second use of the id is refused either way,
    whether the check waits for the WAL flush or not (``xua_replay_sync_commit``)."""
    from xds.soap.faults import SoapFault
    db, policy, records = world
    monkeypatch.setattr(policy.store, "replay_sync_commit", sync_commit)
    patient, _uids = records[m.OPEN]
    aid = "_deferred-" + fresh_patient().split("^")[0]
    who = caller("authorised", patient, "x")
    who.pending_assertion = (aid, 4102444800.0)
    policy.store._next_purge = float("inf")  # the once-a-minute purge of expired ids is not at issue
    with _statements(db, monkeypatch) as seen:
        assert policy.check_query(who, find(db, patient), {}) is None
    assert who.pending_assertion is None
    if db.url.startswith("postgresql"):
        assert len(seen) == 1 and "INSERT INTO access_assertions" in seen[0], seen
    again = caller("authorised", patient, "x")
    again.pending_assertion = (aid, 4102444800.0)
    with pytest.raises(SoapFault) as refused:
        policy.check_query(again, find(db, patient), {})
    assert "replay" in refused.value.reason


@pytest.mark.parametrize("sync_commit", [True, False])
def test_a_get_query_settles_the_deferred_replay_check_itself(world, monkeypatch, sync_commit):
    """A query without a patient parameter reads no record first: the check is done on its own."""
    from xds.soap.faults import SoapFault
    _db, policy, records = world
    monkeypatch.setattr(policy.store, "replay_sync_commit", sync_commit)
    patient, uids = records[m.OPEN]
    aid = "_get-" + fresh_patient().split("^")[0]
    params = {"$XDSDocumentEntryUniqueId": [[f"('{next(iter(uids.values()))}')"]]}
    for attempt in range(2):
        who = caller("authorised", patient, "x")
        who.pending_assertion = (aid, 4102444800.0)
        if attempt == 0:
            assert policy.check_query(who, params, {}) is None
        else:
            with pytest.raises(SoapFault):
                policy.check_query(who, params, {})


@pytest.mark.parametrize("sync_commit", [True, False])
def test_a_replay_check_waits_for_the_wal_flush_only_when_asked(world, sync_commit):
    """On PostgreSQL the replay check's own transaction runs with ``synchronous_commit`` off
    unless ``xua_replay_sync_commit``; SQLite (synchronous=NORMAL) has no flush to skip."""
    from sqlalchemy import text

    from access.store import _FIRST_USE_ALONE, _RECORD_AND_FIRST_USE
    from storage.database import driver_execute
    db, _policy, records = world
    if db.is_sqlite:
        return
    patient, _uids = records[m.OPEN]
    for statement in (_FIRST_USE_ALONE[sync_commit], _RECORD_AND_FIRST_USE[sync_commit]):
        values = {"assertion_id": "_wal-" + fresh_patient().split("^")[0], "expires_at": 4102444800.0,
                  "patient": patient}
        with db.write() as conn:
            driver_execute(conn, statement, values)
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == ("on" if sync_commit else "off")
        with db.write() as conn:
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"


def test_the_replay_check_takes_xua_replay_sync_commit_from_the_settings(world, tmp_path):

    from access.wiring import build_access
    db, _policy, _records = world
    assert build_access(Settings(data_dir=tmp_path), db
                        ).store.replay_sync_commit is False
    strict = Settings(data_dir=tmp_path, xua_replay_sync_commit=True)
    assert build_access(strict, db).store.replay_sync_commit is True


def test_a_treating_physician_query_needs_no_document_facts(world, monkeypatch):
    """The treating physician sees every document: no facts to read once the record is known."""
    result, before, seen = _find_as(world, "treating", monkeypatch)
    assert len(result.ids) == before == len(m.CASES)
    assert len(seen) == 2, seen  # record, FindDocuments


def test_the_patient_of_a_query_is_parsed_once_per_text_and_long_texts_are_not_kept():
    """A dmp FindDocuments asks for its patient three times; the parse of a patient parameter's
    text is kept, but only for texts of a patient id's size (a request cannot fill memory)."""
    from access import policy as p
    p._values_of.cache_clear()
    params = {"$XDSDocumentEntryPatientId": [["'1234^^^&1.2.250.1.213.1.4.10&ISO'"]]}
    assert [p.query_patient(params) for _ in range(3)] == ["1234^^^&1.2.250.1.213.1.4.10&ISO"] * 3
    assert p._values_of.cache_info().misses == 1 and p._values_of.cache_info().hits == 2
    long = "'" + "9" * 5000 + "^^^&1.2.3&ISO'"
    assert p.query_patient({"$XDSDocumentEntryPatientId": [[long]]}) == long.strip("'")
    assert p._values_of.cache_info().currsize == 1
    assert p.query_patient({"$XDSDocumentEntryPatientId": [["'unclosed"]]}) is None
