"""HL7 v2.5 data types used in XDS metadata (ITI TF-3 4.2.3.1.7): CX, XCN, XON, XTN and DTM.

Only parsing and the value checks the TF asks for; nothing here knows of ebRIM or SOAP.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeGuard

OID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$")
"""The lexical OID of ITI TF-2x Appendix B: dotted decimal arcs without leading zeros.

The ISO rule that the first arc is 0, 1 or 2 is not part of the IHE format, and real affinity
domains (the NIST XDS Toolkit's ``129.6.58.92`` among them) use other first arcs."""
UUID_URN_RE = re.compile(r"^urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
DTM_RE = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?$")
LANGUAGE_RE = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")
MIME_RE = re.compile(r"^[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*(\s*;.*)?$")
SHA1_RE = re.compile(r"^[0-9a-fA-F]{40}$")
INTEGER_RE = re.compile(r"^[0-9]+$")


def is_oid(value: str | None, max_length: int = 64) -> TypeGuard[str]:
    return bool(value and len(value) <= max_length and OID_RE.match(value) is not None)


def is_uuid_urn(value: str | None) -> TypeGuard[str]:
    return bool(value and UUID_URN_RE.match(value) is not None)


def is_dtm(value: str | None) -> TypeGuard[str]:
    """DTM as XDS restricts it: UTC, precision from year to second (TF-3 4.2.3.1.7 Table 4.2.3.1.7-2)."""
    if not value:
        return False
    m = DTM_RE.match(value)
    if not m:
        return False
    month, day, hour, minute, second = (int(g) if g is not None else None for g in m.groups()[1:])
    if m.group(3) is not None and m.group(2) is None:
        return False
    return ((month is None or 1 <= month <= 12) and (day is None or 1 <= day <= 31)
            and (hour is None or hour <= 23) and (minute is None or minute <= 59)
            and (second is None or second <= 59))


def dtm_bounds(value: str) -> tuple[str, str]:
    """The first and last instants a DTM of any precision stands for, as 14-digit strings.

    Stored query time ranges compare at any precision (ITI TF-2 3.18.4.1.2.3.7.4): a creation
    time of ``2004`` covers ``20040101000000`` to ``20041231235959``.
    """
    low = (value + "00000000000000")[:14]
    low = low[:4] + (low[4:6] if low[4:6] != "00" else "01") + (low[6:8] if low[6:8] != "00" else "01") + low[8:]
    if len(value) <= 4:
        return low, value[:4] + "1231235959"
    high = value + "1231235959"[len(value) - 4:]
    if len(value) == 6:
        high = value + "31235959"
    return low, high[:14]


def normalize_dtm(value: str) -> str:
    """A sortable 14-digit form (the lowest instant) used for the indexed time columns."""
    return dtm_bounds(value)[0]


@dataclass(frozen=True)
class CX:
    """Patient identifier ``id^^^&oid&ISO`` (TF-3 4.2.3.1.7, CX)."""
    id: str
    authority_oid: str
    id_type: str = ""

    @classmethod
    def parse(cls, value: str) -> CX:
        """Parse and check: only CX.1, CX.4 (with CX.4.2 an OID and CX.4.3 ``ISO``) and CX.5.

        The DMP's INS carries CX.5 = ``NH``/``INS`` (ANS CI-SIS volet structuration minimale);
        other components must be empty. Raises ``ValueError`` naming what is wrong.
        """
        parts = value.split("^")
        if len(parts) < 4 or not parts[0]:
            raise ValueError(f"'{value}' is not a CX patient id: expected id^^^&OID&ISO")
        if parts[1] or parts[2]:
            raise ValueError(f"patient id '{value}': components CX.2 and CX.3 must be empty")
        if any(parts[5:]):
            raise ValueError(f"patient id '{value}': only CX.1, CX.4 and CX.5 are allowed")
        sub = parts[3].split("&")
        if len(sub) != 3 or sub[0] or not is_oid(sub[1]) or sub[2] != "ISO":
            raise ValueError(f"patient id '{value}': the assigning authority must be &OID&ISO")
        return cls(parts[0], sub[1], parts[4] if len(parts) > 4 else "")

    def __str__(self) -> str:
        base = f"{self.id}^^^&{self.authority_oid}&ISO"
        return base + (f"^{self.id_type}" if self.id_type else "")


@dataclass(frozen=True)
class XCN:
    """A person: ``id^family^given^middle^suffix^prefix^degree^^^&oid&ISO``."""
    id: str = ""
    family: str = ""
    given: str = ""
    authority_oid: str = ""

    @classmethod
    def parse(cls, value: str) -> XCN:
        parts = value.split("^")
        parts += [""] * (10 - len(parts))
        authority = parts[8].split("&") if parts[8] else []
        return cls(parts[0], parts[1], parts[2], authority[1] if len(authority) > 1 else "")

    @staticmethod
    def check(value: str) -> str | None:
        """Why ``value`` is not a valid XCN, or None (TF-3 4.2.3.1.7: an id or a family name)."""
        parts = value.split("^")
        if not parts[0] and (len(parts) < 2 or not parts[1]):
            return f"XCN '{value}' has neither an identifier (XCN.1) nor a family name (XCN.2)"
        if len(parts) > 23:
            return f"XCN '{value}' has too many components"
        return None

    def display(self) -> str:
        name = " ".join(p for p in (self.given, self.family) if p)
        return name or self.id


@dataclass(frozen=True)
class XON:
    """An organisation: ``name^^^^^&oid&ISO^^^^id``."""
    name: str
    id: str = ""

    @classmethod
    def parse(cls, value: str) -> XON:
        parts = value.split("^")
        return cls(parts[0], parts[9] if len(parts) > 9 else "")

    @staticmethod
    def check(value: str) -> str | None:
        parts = value.split("^")
        if not parts[0]:
            return f"XON '{value}' has no organization name (XON.1)"
        if len(parts) > 10:
            return f"XON '{value}' has too many components"
        if len(parts) == 10 and parts[9] and not is_oid(parts[9]):
            sub = parts[5].split("&") if len(parts) > 5 else []
            if len(sub) < 2 or not is_oid(sub[1]):
                return f"XON '{value}': XON.10 is not an OID, so XON.6.2 must be the OID of its authority"
        return None


def check_xtn(value: str) -> str | None:
    """TF-3 4.2.3.1.7 XTN: telecommunication, with XTN.3 ``Internet`` and XTN.4 the address."""
    parts = value.split("^")
    if len(parts) >= 4 and parts[2] == "Internet":
        return None if parts[3] else f"XTN '{value}': Internet address (XTN.4) is empty"
    if (len(parts) >= 7 and parts[5]) or (len(parts) >= 7 and parts[6]):
        return None
    if len(parts) >= 12 and parts[11]:
        return None
    return f"XTN '{value}' has neither an Internet address nor a telephone number"
