"""Finding a patient for a professional (issue 23): the INS as typed, the rule that refused, who the patient is.

A professional types the 15-character INS (ANS referentiel INS: the NIR or NIA, 13 characters and a 2-digit
check key, key = 97 - (number mod 97), Corsica's 2A and 2B counted as 19 and 18, :func:`xds.patient.ins_check_key`)
or the full CX of the patientId (ITI TF-3 4.2.3.1.7). A bare INS is looked for under each INS assigning
authority (:data:`xds.patient.INS_AUTHORITIES`): the first under which a record exists, else the INS-NIR.

The identity shown is what the record's documents say of the patient: the registry keeps no demographics of its
own (its ``patients`` table holds the id and the record's state), and each DocumentEntry carries the source's
sourcePatientInfo (PID-5 name, PID-7 birth date, PID-8 sex, ITI TF-3 4.2.3.2.23), read from the documents the
professional may see.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from xds.patient import INS_AUTHORITIES, ins_check_key, ins_problem

INS_NIR = "1.2.250.1.213.1.4.8"
_INS = re.compile(r"^[0-9]{5}(?:[0-9]{2}|2[ABab])[0-9]{8}$")
_CX = re.compile(r"^[^^&\s]+\^\^\^&[0-9.]+&ISO(\^[A-Z]*)?$")


class BadIdentifier(ValueError):
    """What was typed is no INS and no patient CX (the message says why, in the reader's language)."""


def parse_ins(typed: str, _: Callable[[str], str]) -> tuple[str | None, str | None]:
    """(bare 15-character INS, None) or (None, full CX) of what was typed; :class:`BadIdentifier` otherwise."""
    value = "".join(typed.split()) if "^" not in typed else typed.strip()
    if "^" in value:
        if not _CX.match(value):
            raise BadIdentifier(_("“{value}” is not a patient identifier: give the 15-character INS or the full "
                                  "identifier id^^^&authority&ISO.").format(value=value))
        problem = ins_problem(value)
        if problem:
            number = value.split("^", 1)[0]
            raise BadIdentifier(_ins_message(number, _) or problem)
        return None, value
    problem = _ins_message(value, _)
    if problem:
        raise BadIdentifier(problem)
    return value.upper(), None


def _ins_message(number: str, _: Callable[[str], str]) -> str | None:
    if not _INS.match(number):
        digits = sum(c.isdigit() for c in number)
        return _("An INS has 15 characters (13 for the number, 2A or 2B for Corsica, then a 2-digit key); "
                 "“{value}” has {count}.").format(value=number, count=len(number) if number else digits)
    key = ins_check_key(number[:13].upper())
    if int(number[13:]) != key:
        return _("The check key of INS {value} is wrong: it should be {key:02d}. Check the number typed.") \
            .format(value=number, key=key)
    return None


def candidates(number: str) -> list[str]:
    """The patient ids a bare INS may be: the number under each INS assigning authority (INS-NIR first)."""
    authorities = [INS_NIR] + [a for a in INS_AUTHORITIES if a != INS_NIR]
    return [f"{number}^^^&{oid}&ISO" for oid in authorities]


@dataclass
class Identity:
    name: str = ""
    birth: str = ""
    """HL7 date (YYYYMMDD), formatted by the page."""
    sex: str = ""
    """Administrative sex (HL7 table 0001): F, M, U..."""

    @property
    def known(self) -> bool:
        return bool(self.name or self.birth or self.sex)


def identity_of(docs) -> Identity:
    """Name, birth date and sex from the newest sourcePatientInfo of ``docs`` (DocumentEntries, newest first)."""
    for d in docs:
        found = Identity()
        for item in d.source_patient_info or []:
            field, _sep, value = item.partition("|")
            if field == "PID-5" and not found.name:
                parts = value.split("^")
                found.name = " ".join(p for p in (parts[1] if len(parts) > 1 else "", parts[0]) if p)
            elif field == "PID-7" and not found.birth:
                found.birth = value[:8]
            elif field == "PID-8" and not found.sex:
                found.sex = value[:1].upper()
        if found.known:
            return found
    return Identity()
