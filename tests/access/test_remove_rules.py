"""The DMP's removal rules (issue 21: "the author may delete their document; the patient may delete
a document from her record; nobody else"), one test per rule: :func:`access.policy.may_remove` for a
DocumentEntry (ITI-62) or its bytes (ITI-86), :func:`access.policy.may_remove_package` for a
SubmissionSet or Folder. Pure functions of the decision on the caller and the target's facts."""
from __future__ import annotations

from access.policy import ALL, Decision, decide, may_remove, may_remove_package
from tests.access.test_write_rules import (
    AUTHOR,
    AUTHORISED,
    BLOCKED_AUTHOR,
    MASKED,
    OTHER_AUTHOR,
    PATIENT,
    RECORD,
    STRANGER,
    TREATING,
    doc,
    patient,
    professional,
)
from xds.context import Caller


def representative() -> Decision:
    return decide(Caller(user_id="REP-0001", kind="representative", patient_id=PATIENT, authenticated=True), RECORD)


def test_may_remove_the_author_removes_own_document():
    assert may_remove(professional(AUTHOR, authored=True), doc(AUTHOR))
    assert may_remove(professional(AUTHOR, authored=True), doc(AUTHOR, OTHER_AUTHOR, codes=MASKED))
    assert may_remove(professional(AUTHORISED), doc(AUTHORISED))


def test_may_remove_the_patient_removes_from_her_record():
    assert may_remove(patient(), doc(AUTHOR))
    assert may_remove(patient(), doc(AUTHOR, codes=MASKED))


def test_may_remove_nobody_else():
    """Not the treating physician, not an authorised professional, not a co-author's colleague, not a
    stranger, not a blocked author, not a legal representative."""
    assert not may_remove(professional(TREATING), doc(AUTHOR))
    assert not may_remove(professional(AUTHORISED), doc(AUTHOR))
    assert not may_remove(professional(OTHER_AUTHOR, authored=True), doc(AUTHOR))
    assert not may_remove(professional(STRANGER), doc(AUTHOR))
    assert not may_remove(professional(BLOCKED_AUTHOR, authored=True), doc(BLOCKED_AUTHOR))
    assert not may_remove(representative(), doc(AUTHOR))


def test_may_remove_never_a_document_the_caller_may_not_see():
    """The patient may not remove a document hidden from her until disclosed (she cannot see it)."""
    assert not may_remove(patient(), doc(AUTHOR, codes=frozenset({"INVISIBLE_PATIENT"})))


def test_may_remove_anyone_in_an_open_domain():
    assert may_remove(Decision(True, ALL, "open affinity domain", caller_id=STRANGER), doc(AUTHOR))


def test_may_remove_package_the_patient_or_an_author_of_the_submission_set():
    assert may_remove_package(patient(), frozenset())
    assert may_remove_package(professional(AUTHOR, authored=True), frozenset({AUTHOR}))
    assert not may_remove_package(professional(TREATING), frozenset({AUTHOR}))
    assert not may_remove_package(professional(STRANGER), frozenset({STRANGER}))
    assert not may_remove_package(representative(), frozenset({"REP-0001"}))
    assert may_remove_package(Decision(True, ALL, "open affinity domain"), frozenset())
