"""The DMP visibility matrix shared by the policy tests and the SOAP tests.

One record holds one document per visibility case (all authored by AUTHOR and BLOCKED_AUTHOR);
each caller kind gets the set of cases it sees, or None: the record is refused to it.
"""
from __future__ import annotations

from xds.metadata import Author, Code

VIS = "1.2.250.1.213.1.1.4.13"
HL7 = "2.16.840.1.113883.5.25"

TREATING, AUTHORISED, UNAUTHORISED, BLOCKED = "810000000001", "810000000002", "810000000003", "810000000004"
AUTHOR, BLOCKED_AUTHOR, EMERGENCY = "810000000005", "810000000006", "810000000007"
REPRESENTATIVE = "REP-0001"
INSTITUTION = "CHU Test^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1234567890"


def person(pid: str) -> str:
    return f"{pid}^TEST^Pro^^^Dr^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"


# case -> (confidentiality codes, patient's mask override, disclosed)
CASES = {
    "N": (["N"], None, False),
    "MASQUE_PS": (["MASQUE_PS"], None, False),
    "INVISIBLE_PATIENT": (["INVISIBLE_PATIENT"], None, False),
    "INVISIBLE_RL": (["INVISIBLE_REPRESENTANTS_LEGAUX"], None, False),
    "MASKED_BY_PATIENT": (["N"], True, False),
    "UNMASKED_BY_PATIENT": (["MASQUE_PS"], False, False),
    "DISCLOSED": (["INVISIBLE_PATIENT"], None, True),
    "R_AND_MASQUE_PS": (["R", "MASQUE_PS"], None, False),
}
ALL = frozenset(CASES)
NOT_MASKED = ALL - {"MASQUE_PS", "MASKED_BY_PATIENT", "R_AND_MASQUE_PS"}

# caller kind -> (NameID, role code, access mode, resource-id is the patient?)
CALLERS = {
    "patient": (None, "PATIENT", "normal", True),
    "legal_representative": (REPRESENTATIVE, "REPRESENTANT_LEGAL", "normal", True),
    "treating": (TREATING, "10", "normal", False),
    "authorised": (AUTHORISED, "10", "normal", False),
    "unauthorised": (UNAUTHORISED, "10", "normal", False),
    "blocked": (BLOCKED, "10", "normal", False),
    "author": (AUTHOR, "10", "normal", False),
    "blocked_author": (BLOCKED_AUTHOR, "10", "normal", False),
    "blocked_break_glass": (BLOCKED, "10", "bris_de_glace", False),
    "break_glass": (EMERGENCY, "10", "bris_de_glace", False),
    "centre_15": (EMERGENCY, "10", "centre_15", False),
    "authorised_other_patient": (AUTHORISED, "10", "normal", "other"),
}

OPEN, OPPOSED, CLOSED, ABSENT = "open", "emergency_opposed", "closed", "no_record"
STATES = (OPEN, OPPOSED, CLOSED, ABSENT)

_OPEN = {
    "patient": ALL - {"INVISIBLE_PATIENT"},
    "legal_representative": ALL - {"INVISIBLE_PATIENT", "INVISIBLE_RL"},
    "treating": ALL,
    "authorised": NOT_MASKED,
    "unauthorised": None,
    "blocked": None,
    "author": ALL,
    "blocked_author": None,
    "blocked_break_glass": None,
    "break_glass": NOT_MASKED,
    "centre_15": NOT_MASKED,
    "authorised_other_patient": None,
}


def expected(state: str, caller: str):
    """The cases ``caller`` sees on a record in ``state``; None when refused."""
    if state in (CLOSED, ABSENT):
        return None
    if state == OPPOSED and caller in ("break_glass", "centre_15"):
        return None
    return _OPEN[caller]


MATRIX = [(state, caller, expected(state, caller)) for state in STATES for caller in CALLERS]


def confidentiality(case: str) -> list[Code]:
    return [Code(c, HL7 if c in ("N", "R", "V") else VIS, c) for c in CASES[case][0]]


def authors() -> list[Author]:
    return [Author(person(AUTHOR), [INSTITUTION], ["Medecin"]), Author(person(BLOCKED_AUTHOR), [INSTITUTION])]


def configure(admin, actor, patient: str, state: str, unique_ids: dict[str, str]) -> None:
    """Apply the patient's decisions of the matrix to a record with documents ``unique_ids`` (case -> uid)."""
    from access.store import AUTHORISED as A
    from access.store import BLOCKED as B
    admin.set_treating_physician(actor, patient, TREATING)
    admin.set_professional(actor, patient, AUTHORISED, A)
    admin.set_professional(actor, patient, BLOCKED, B)
    admin.set_professional(actor, patient, BLOCKED_AUTHOR, B)
    for case, uid in unique_ids.items():
        _codes, masked, disclosed = CASES[case]
        if masked is not None:
            admin.mask(actor, uid, masked)
        if disclosed:
            admin.disclose(actor, uid, True)
    if state == OPPOSED:
        admin.set_emergency(actor, patient, "bris_de_glace", False)
        admin.set_emergency(actor, patient, "centre_15", False)
    if state == CLOSED:
        admin.set_state(actor, patient, "closed")


# ----------------------------------------------------------------------------- the write side
#
# What a submission may do to the record, in the words of the README ("The DMP policy", the
# table of operations). Stated here from the rules, not by asking access.policy: the SOAP tests
# hold the server to this table.

SUBMIT, REPLACE, TRANSFORM, APPEND, SIGN, ADD_TO_FOLDER = "submit", "replace", "transform", "append", "sign", \
    "add_to_folder"
AMEND = (REPLACE, TRANSFORM, APPEND, SIGN)
"""Operations on a registered document: RPLC, XFRM, APND, signs (ITI TF-3 4.1.6)."""
NEW_VERSION, DEPRECATE = "new_version", "deprecate"
METADATA_UPDATE = (NEW_VERSION, DEPRECATE)
"""ITI-57 Update Document Set on a registered document: a new version of its DocumentEntry (ITI TF-2
3.57.4.1.3.3.1) or an UpdateAvailabilityStatus Approved -> Deprecated (3.57.4.1.3.3.2). Either
changes what every reader sees, as a replacement does: the same rule as AMEND."""
OPERATIONS = (SUBMIT,) + AMEND + (ADD_TO_FOLDER,) + METADATA_UPDATE

WROTE_THE_DOCUMENTS = frozenset({"author", "blocked_author"})
"""Callers who are authors of every document of the matrix (AUTHOR, BLOCKED_AUTHOR)."""
FULL_VIEW = frozenset({"treating"})
"""The treating physician: the whole record is theirs, masked documents included."""
WHOLE_RECORD = frozenset({"treating", "authorised", "break_glass", "centre_15", "patient", "legal_representative"})
"""A view of the whole record (not one limited to the caller's own documents): the treating
physician, an authorised professional, an emergency access, the patient, her legal representative."""
CARE_TEAM = frozenset({"unauthorised", "author"})
"""Professionals outside the patient's list, neither blocked nor in emergency mode, with an assertion
for this patient: with ``care_team_may_submit`` (on by default) they may feed the record."""


def sees(state: str, caller: str, case: str) -> bool:
    """``caller`` sees the matrix's document of ``case`` on a record in ``state``."""
    visible = expected(state, caller)
    return visible is not None and case in visible


def may_submit(state: str, caller: str) -> bool:
    """Submit a new document: anyone the read table lets read the record, and a professional
    outside the list (care team feeding); never to a closed record or a patient without one."""
    if state in (CLOSED, ABSENT):
        return False
    return expected(state, caller) is not None or caller in CARE_TEAM


def expected_write(state: str, caller: str, case: str, operation: str) -> bool:
    """Whether ``caller`` may do ``operation`` on a record in ``state`` (``case``: the document's
    visibility case; for ``submit``, the new document's, which the rule does not look at).

    * submit a new document: :func:`may_submit`;
    * replace (RPLC, XFRM_RPLC), transform (XFRM), append to (APND) or sign (signs) a document: a
      caller who may submit to the record and sees the document, and is its author or the
      treating physician;
    * add a new document to an existing folder (the folder holds the case's document only): a
      caller who may submit to the record, sees the folder (it sees one of its documents) and has
      a view of the whole record;
    * ITI-57: a new version of a document's entry, or its deprecation: as replacing it.
    """
    if operation not in OPERATIONS:
        raise ValueError(operation)
    if not may_submit(state, caller):
        return False
    if operation == SUBMIT:
        return True
    if not sees(state, caller, case):
        return False
    if operation in AMEND or operation in METADATA_UPDATE:
        return caller in WROTE_THE_DOCUMENTS or caller in FULL_VIEW
    return caller in WHOLE_RECORD


WRITE_MATRIX = [(state, caller, case, op, expected_write(state, caller, case, op))
                for state in STATES for caller in CALLERS for case in CASES for op in OPERATIONS
                if state == OPEN or (op == SUBMIT and case == "N")]
"""Every caller x case x operation on the open record; submit on every record state."""
