"""The DMP's write rules, one test per rule: :func:`access.policy.may_amend` (RPLC, XFRM, APND,
XFRM_RPLC, signs on a registered document, ITI TF-3 4.1.6) and :func:`access.policy.may_file_into`
(HasMember from a registered Folder, ITI TF-3 4.1.5).

Pure functions of the decision on the caller (:func:`access.policy.decide` over the patient's
record) and of the target document's facts: no database, no transport. ``tests/access/
test_write_side.py`` holds the same rules to the live server.
"""
from __future__ import annotations

from access.policy import ALL, Decision, DocumentFacts, decide, may_amend, may_file_into
from access.store import DocumentPolicy, RecordPolicy
from xds.context import Caller

PATIENT = "123456789012311^^^&1.2.250.1.213.1.4.10&ISO^NH"
TREATING, AUTHORISED, AUTHOR, OTHER_AUTHOR, STRANGER, BLOCKED_AUTHOR = (
    "810000000001", "810000000002", "810000000005", "810000000006", "810000000003", "810000000004")
RECORD = RecordPolicy(PATIENT, "open", treating_physician=TREATING, authorised=frozenset({AUTHORISED}),
                      blocked=frozenset({BLOCKED_AUTHOR}))


def professional(pid: str, mode: str = "normal", **kw) -> Decision:
    """The read decision on the record for professional ``pid`` (``authored``: they wrote one of
    its documents)."""
    return decide(Caller(user_id=pid, kind="professional", access_mode=mode, authenticated=True), RECORD, **kw)


def patient() -> Decision:
    return decide(Caller(user_id=PATIENT, kind="patient", patient_id=PATIENT, authenticated=True), RECORD)


def doc(*authors: str, codes: frozenset[str] = frozenset({"N"}), masked: bool | None = None) -> DocumentFacts:
    state = DocumentPolicy(masked=masked) if masked is not None else DocumentPolicy()
    return DocumentFacts("1.2.250.1.999.1", PATIENT, codes, frozenset(authors), state)


MASKED = frozenset({"MASQUE_PS"})


# -- may_amend -------------------------------------------------------------------------------------------

def test_may_amend_never_a_document_the_caller_may_not_see():
    """Never a caller who may not see the target: not a professional outside the patient's list,
    not a blocked professional who wrote it, not an authorised professional its author wrote and
    masked to professionals (authorship aside)."""
    assert not may_amend(professional(STRANGER), doc(AUTHOR))
    assert not may_amend(professional(BLOCKED_AUTHOR, authored=True), doc(BLOCKED_AUTHOR))
    assert not may_amend(professional(AUTHORISED), doc(AUTHOR, codes=MASKED))
    assert not may_amend(professional(OTHER_AUTHOR, authored=True), doc(AUTHOR))


def test_may_amend_the_author_amends_own_document():
    """Its author may, whatever their view of the rest of the record: a professional outside the
    list who wrote it (view of own documents), or an authorised one, masked document included."""
    assert may_amend(professional(AUTHOR, authored=True), doc(AUTHOR))
    assert may_amend(professional(AUTHOR, authored=True), doc(AUTHOR, OTHER_AUTHOR, codes=MASKED))
    assert may_amend(professional(AUTHORISED), doc(AUTHORISED, codes=MASKED))


def test_may_amend_the_treating_physician_amends_any_document():
    """The treating physician: the whole record is theirs, another's masked documents included."""
    assert may_amend(professional(TREATING), doc(AUTHOR))
    assert may_amend(professional(TREATING), doc(AUTHOR, codes=MASKED))
    assert may_amend(professional(TREATING), doc(AUTHOR, masked=True))


def test_may_amend_anyone_in_an_open_domain():
    """In an open affinity domain (view ``all``) every caller may."""
    assert may_amend(Decision(True, ALL, "open affinity domain"), doc(AUTHOR, codes=MASKED))
    assert may_amend(Decision(True, ALL, "open affinity domain", caller_id=STRANGER), doc(AUTHOR))


def test_may_amend_not_a_reader_who_is_not_the_author():
    """Seeing a document is not enough: an authorised professional, an emergency access and the
    patient read another's document but may not replace, transform, append to or sign it."""
    assert not may_amend(professional(AUTHORISED), doc(AUTHOR))
    assert not may_amend(professional("810000000007", "bris_de_glace"), doc(AUTHOR))
    assert not may_amend(patient(), doc(AUTHOR))


# -- may_file_into ---------------------------------------------------------------------------------------

def test_may_file_into_never_when_the_record_is_refused():
    """A caller refused the record may not, even told the folder is visible."""
    assert not may_file_into(professional(STRANGER), folder_visible=True)
    assert not may_file_into(professional(BLOCKED_AUTHOR, authored=True), folder_visible=True)


def test_may_file_into_never_a_folder_the_caller_may_not_see():
    """A folder the caller may not see (none of its documents is visible to them) is not theirs to
    add to, whatever their view."""
    for decision in (professional(TREATING), professional(AUTHORISED), patient()):
        assert not may_file_into(decision, folder_visible=False)


def test_may_file_into_with_a_view_of_the_whole_record():
    """The treating physician, an authorised professional, an emergency access, the patient, and
    anyone in an open domain may add to a folder they see."""
    for decision in (professional(TREATING), professional(AUTHORISED), professional("810000000007", "centre_15"),
                     patient(), Decision(True, ALL, "open affinity domain")):
        assert may_file_into(decision, folder_visible=True), decision.reason


def test_may_file_into_not_with_a_view_of_own_documents_only():
    """A professional outside the list who wrote documents of the record (or feeds it as care
    team) sees the folders holding them, but may not change what the folder shows everyone."""
    assert not may_file_into(professional(AUTHOR, authored=True), folder_visible=True)
    assert not may_file_into(decide(Caller(user_id=STRANGER, kind="professional"), RECORD, "submit"),
                             folder_visible=True)


def test_may_file_into_for_the_legal_representative_who_acts_for_the_patient():
    """A legal representative (resource-id = the patient) files for the patient, as she would."""
    representative = decide(Caller(user_id="REP-0001", kind="legal_representative", patient_id=RECORD.patient_id),
                            RECORD)
    assert representative.allowed
    assert may_file_into(representative, folder_visible=True)
