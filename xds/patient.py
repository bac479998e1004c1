"""Patient identity: when two patient ids name the same patient, and what a valid INS is.

ITI TF-3 4.2.3.1.7 codes a patientId as an HL7 v2 CX whose identity is the identifier (CX.1)
within its assigning authority (CX.4, an ISO OID: its universal id CX.4.2 and universal id type
CX.4.3). The identifier type code (CX.5, ``NH`` or ``INS`` in the French CI-SIS) says what kind
of number it is, not whose: ``id^^^&1.2.250.1.213.1.4.8&ISO`` and
``id^^^&1.2.250.1.213.1.4.8&ISO^NH`` are one patient. :func:`patient_key` is the one form the
registry and the access policy store and compare; the metadata XML keeps the id as sent.

The INS (Identifiant National de Santé, ANS referentiel INS) is the NIR (INS-NIR, its test and
demonstration arcs) or the NIA: 13 characters and a 2-digit check key, key = 97 - (number mod
97), with Corsica's departments 2A and 2B counted as 19 and 18.
"""
from __future__ import annotations

import re

INS_AUTHORITIES = {
    "1.2.250.1.213.1.4.8": "INS-NIR",
    "1.2.250.1.213.1.4.9": "INS-NIA",
    "1.2.250.1.213.1.4.10": "INS-NIR test",
    "1.2.250.1.213.1.4.11": "INS-NIR demonstration",
}
"""The assigning authorities whose identifiers are INS (../shared/valuesets/README.md)."""

_INS_RE = re.compile(r"^[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{6}[0-9]{2}$")


def _split(value: str) -> tuple[str, str, str] | None:
    """(CX.1, CX.4.2, CX.4.3) of a CX, None when it has no assigning authority."""
    parts = value.split("^")
    if len(parts) < 4 or not parts[0]:
        return None
    authority = parts[3].split("&")
    if len(authority) < 3 or not authority[1]:
        return None
    return parts[0], authority[1], authority[2]


def patient_key(value: str) -> str:
    """The patient a CX names, as ``CX.1^^^&CX.4.2&CX.4.3`` (TF-3 4.2.3.1.7: identity is the id in its
    assigning authority; CX.5 and CX.4.1 do not split a patient).

    A value that is not a CX with an ISO assigning authority is its own key: it matches only itself.
    """
    parts = _split(value)
    if parts is None:
        return value
    return f"{parts[0]}^^^&{parts[1]}&{parts[2]}"


def same_patient(a: str | None, b: str | None) -> bool:
    """Whether two patient ids name the same patient (:func:`patient_key`)."""
    if a is None or b is None:
        return a is b
    return patient_key(a) == patient_key(b)


def ins_check_key(number: str) -> int:
    """The check key of a 13-character NIR/NIA: 97 - (number mod 97), 2A as 19 and 2B as 18."""
    digits = number[:5] + {"2A": "19", "2B": "18"}.get(number[5:7], number[5:7]) + number[7:]
    return 97 - int(digits) % 97


def ins_problem(value: str) -> str | None:
    """Why ``value`` is not a valid INS, or None (also None when its authority is not an INS one)."""
    parts = _split(value)
    if parts is None or parts[1] not in INS_AUTHORITIES:
        return None
    number, authority = parts[0], parts[1]
    label = INS_AUTHORITIES[authority]
    if not _INS_RE.match(number):
        return (f"'{number}' is not an INS ({label}, {authority}): an INS is 15 characters, 13 digits "
                "(2A or 2B for Corsica at positions 6-7) and a 2-digit check key")
    expected = ins_check_key(number[:13])
    if int(number[13:]) != expected:
        return (f"'{number}' is not an INS ({label}, {authority}): its check key is {number[13:]}, "
                f"the number's key is {expected:02d} (97 - number mod 97)")
    return None
