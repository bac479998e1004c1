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
    from access.store import AUTHORISED as A, BLOCKED as B
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
