"""Stored query parameters: the value grammar, the parameter definitions and one generic checker.

ITI TF-2 3.18.4.1.2.3 (parameter coding):

* a parameter is a ``rim:Slot`` whose ``rim:Value`` elements hold the values;
* a string is quoted with single quotes (``'abc'``); a quote inside a string is doubled
  (``'O''Brien'``, the SQL convention the TF examples follow); numbers (times, ``$MetadataLevel``)
  are unquoted — we also accept a quoted number, as several clients send ``'20221015151515'``;
* several values: a list ``('a','b')`` in one Value, several Value elements, or both; all the
  values of one Slot are OR-ed;
* a parameter given in several Slots of the same name: for ``$XDSDocumentEntryEventCodeList``,
  ``$XDSDocumentEntryConfidentialityCode`` and ``$XDSFolderCodeList`` the Slots are AND-ed
  (TF-2 3.18.4.1.2.3.5, AND/OR semantics); for every other multi-valued parameter the Slots are
  merged, which is the only meaning a single-valued attribute allows (an entry has one classCode);
  a single-valued parameter in several Slots or with several values is XDSStoredQueryParamNumber.

Nothing here touches the database: values are checked and typed, then bound by the engine.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from xds.errors import ErrorCode, XDSError
from xds.hl7v2 import is_dtm
from xds.patient import ins_problem, patient_key
from xds.vocabulary import AssocType, MetadataUpdate, ObjectType, Status

# Parameter types.
STRING = "string"        # a quoted string, compared exactly
CODE = "code"            # 'code^^scheme' (HL7 CE)
TIME = "time"            # DTM, unquoted (quoted tolerated)
STATUS = "status"        # an ebRS StatusType URN
PATTERN = "pattern"      # a string with SQL LIKE wildcards % and _
PATIENT = "patient"      # a patient id (CX), compared by patient key (xds.patient)
OBJECT_TYPE = "objecttype"  # stable / on-demand DocumentEntry objectType UUID
ASSOC_TYPE = "assoctype"    # an association type URN
INTEGER = "integer"      # unquoted number ($MetadataLevel)

STATUSES = (Status.APPROVED, Status.DEPRECATED, Status.SUBMITTED)
ENTRY_TYPES = (ObjectType.STABLE_DOCUMENT, ObjectType.ON_DEMAND_DOCUMENT)

_NUMBER = re.compile(r"[0-9]+")

MAX_AND_SLOTS = 8
"""Most Slots a query may AND (eventCodeList, confidentialityCode, codeList together). Each is an
EXISTS the database joins, and PostgreSQL's planning grows faster than exponentially with their
number: 8 take it ~25 ms, 20 ~370 ms, and 200 made one backend take 24 GB until the kernel killed
it, restarting the whole server. Clients AND two or three; more is refused (XDSRegistryError)."""

MAX_PATTERNS = 100
"""Most patterns a query may give one parameter (``$XDSDocumentEntryAuthorPerson``): each is a
LIKE OR-ed to the others, and SQLite refuses an expression 1,000 deep. Clients give one or a
few; more is refused (XDSRegistryError)."""


MAX_PATTERN_BYTES = 2048
"""Longest LIKE pattern (UTF-8 bytes) a query may give. The author column holds 512 characters, so
a longer pattern of literal characters matches nothing; and the databases have limits of their own
(SQLite refuses a LIKE pattern over 50,000 bytes, SQLITE_MAX_LIKE_PATTERN_LENGTH, with an error the
registry would answer as a fault). Refused up front as XDSRegistryError naming the parameter."""


@dataclass(frozen=True)
class Param:
    """One row of a TF-2 3.18.4.1.2.3.7.x parameter table."""
    name: str
    type: str
    required: bool = False
    multiple: bool = False
    and_slots: bool = False
    """Several Slots of this name are AND-ed (eventCodeList, confidentialityCode, codeList)."""


def R(name: str, type_: str = STRING, multiple: bool = False, and_slots: bool = False) -> Param:
    return Param(name, type_, True, multiple, and_slots)


def O(name: str, type_: str = STRING, multiple: bool = False, and_slots: bool = False) -> Param:  # noqa: E743 - R/O as in TF-2
    return Param(name, type_, False, multiple, and_slots)


@dataclass(frozen=True)
class CodeValue:
    code: str
    scheme: str

    @property
    def key(self) -> str:
        return f"{self.code}^^{self.scheme}"


class ParamError(XDSError):
    pass


def _registry_error(name: str, why: str) -> ParamError:
    return ParamError(ErrorCode.REGISTRY_ERROR, f"parameter {name}: {why}", name)


# ----------------------------------------------------------------------------- value grammar

def split_value(name: str, text: str) -> list[tuple[str, bool]]:
    """The items of one ``rim:Value``: ``'a'``, ``12``, ``('a','b')``, ``(1, 2)``.

    Returns ``(item, was_quoted)`` pairs; anything not matching the grammar (an unclosed quote,
    text after the closing quote, a missing comma) is an error naming the parameter.
    """
    s = text.strip()
    if not s:
        raise _registry_error(name, "empty Value")
    in_list = s.startswith("(")
    if in_list:
        if not s.endswith(")"):
            raise _registry_error(name, f"list value {text!r} does not end with ')'")
        s = s[1:-1]
    items: list[tuple[str, bool]] = []
    i, n = 0, len(s)
    while True:
        while i < n and s[i] in " \t\r\n":
            i += 1
        if i >= n:
            raise _registry_error(name, f"value {text!r}: a value is missing" if items or in_list
                                  else f"empty value {text!r}")
        if s[i] == "'":
            i += 1
            buf = []
            while True:
                j = s.find("'", i)
                if j < 0:
                    raise _registry_error(name, f"value {text!r}: unterminated quoted string")
                buf.append(s[i:j])
                if j + 1 < n and s[j + 1] == "'":
                    buf.append("'")
                    i = j + 2
                    continue
                i = j + 1
                break
            items.append(("".join(buf), True))
        else:
            j = i
            while j < n and s[j] not in ", \t\r\n":
                j += 1
            token = s[i:j]
            if "'" in token or "(" in token or ")" in token:
                raise _registry_error(name, f"value {text!r}: malformed token {token!r}")
            items.append((token, False))
            i = j
        while i < n and s[i] in " \t\r\n":
            i += 1
        if i >= n:
            break
        if s[i] != ",":
            raise _registry_error(name, f"value {text!r}: unexpected text {s[i:]!r} after a value "
                                        "(strings are single-quoted, lists are ('a','b'))")
        if not in_list:
            raise _registry_error(name, f"value {text!r}: several values must be given as a list ('a','b')")
        i += 1
    return items


def _typed(param: Param, item: str, quoted: bool):
    name = param.name
    if param.type in (TIME, INTEGER):
        if not _NUMBER.fullmatch(item):
            raise _registry_error(name, f"{item!r} is not a number")
        if param.type == INTEGER:
            return int(item)
        if not is_dtm(item):
            raise _registry_error(name, f"{item!r} is not a DTM time (YYYY[MM[DD[hh[mm[ss]]]]], UTC)")
        return item
    if not quoted:
        raise _registry_error(name, f"string value {item!r} must be in single quotes ('{item}')")
    if param.type == STATUS:
        if item not in STATUSES:
            raise _registry_error(name, f"{item!r} is not a status (expected one of {', '.join(STATUSES)})")
        return item
    if param.type == OBJECT_TYPE:
        if item not in ENTRY_TYPES:
            raise _registry_error(name, f"{item!r} is neither the stable ({ObjectType.STABLE_DOCUMENT}) nor the "
                                        f"on-demand ({ObjectType.ON_DEMAND_DOCUMENT}) DocumentEntry type")
        return item
    if param.type == ASSOC_TYPE:
        if item not in AssocType.ALL:
            raise _registry_error(name, f"{item!r} is not an association type")
        return item
    if param.type == PATIENT:
        if not item:
            raise _registry_error(name, "empty patient id")
        why = ins_problem(item)
        if why is not None:
            raise ParamError(ErrorCode.UNKNOWN_PATIENT_ID, f"parameter {name}: {why}; no patient has this id "
                                                           "(ITI TF-2 3.18.4.1.3)", name)
        return patient_key(item)
    if param.type == PATTERN:
        size = len(item.encode())
        if size > MAX_PATTERN_BYTES:
            raise _registry_error(name, f"a pattern of {size} bytes; this registry accepts patterns of at most "
                                        f"{MAX_PATTERN_BYTES} bytes")
    if param.type == CODE:
        code, sep, scheme = item.partition("^^")
        if not code or not sep or not scheme or "^" in scheme:
            raise _registry_error(name, f"{item!r} is not a coded value: ITI TF-2 3.18.4.1.2.3.7 asks for the "
                                        "HL7 CE form 'code^^codingScheme'")
        return CodeValue(code, scheme)
    if not item:
        raise _registry_error(name, "empty string value")
    return item


# ----------------------------------------------------------------------------- the checker

@dataclass
class Params:
    """Checked, typed parameter values; ``slots[name]`` is one list of values per Slot."""
    slots: dict[str, list[list]] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.slots

    def one(self, name: str, default=None):
        s = self.slots.get(name)
        return s[0][0] if s else default

    def values(self, name: str) -> list:
        """All values of every Slot, merged (OR)."""
        return [v for slot in self.slots.get(name, []) for v in slot]

    def groups(self, name: str) -> list[list]:
        """One list per Slot: AND between them, OR inside each."""
        return list(self.slots.get(name, []))


def check_params(params: Sequence[Param], one_of: tuple[tuple[str, ...], ...],
                 raw: dict[str, list[list[str]]]) -> Params:
    """Check ``raw`` (name -> one list of Value texts per Slot) against a query's parameter table.

    Order of the checks follows TF-2 3.18.4.1.2.3.7 and table 4.2.4.1-2: number of Slots and
    values first (XDSStoredQueryParamNumber), then presence (XDSStoredQueryMissingParam), then
    the values themselves (XDSRegistryError). Parameters the query does not define are ignored
    (ebRS 3.0 6.3.2.1: "a registry MUST ignore any parameters ... that do not match").
    """
    out = Params()
    and_slots = 0
    for p in params:
        slots = raw.get(p.name)
        if not slots:
            continue
        if p.and_slots:
            and_slots += len(slots)
            if and_slots > MAX_AND_SLOTS:
                raise _registry_error(p.name, f"{and_slots} Slots AND-ed in this query; this registry accepts at "
                                              f"most {MAX_AND_SLOTS} (eventCodeList, confidentialityCode and "
                                              "codeList together)")
        if not p.multiple and len(slots) > 1:
            raise ParamError(ErrorCode.STORED_QUERY_PARAM_NUMBER,
                             f"parameter {p.name} is single-valued but given in {len(slots)} Slots", p.name)
        typed_slots = []
        for values in slots:
            items = [it for v in values for it in split_value(p.name, v)]
            if not items:
                raise _registry_error(p.name, "Slot has no Value")
            if not p.multiple and len(items) > 1:
                raise ParamError(ErrorCode.STORED_QUERY_PARAM_NUMBER,
                                 f"parameter {p.name} is single-valued but has {len(items)} values", p.name)
            typed_slots.append([_typed(p, item, quoted) for item, quoted in items])
        patterns = sum(map(len, typed_slots)) if p.type == PATTERN else 0
        if patterns > MAX_PATTERNS:
            raise _registry_error(p.name, f"{patterns} patterns; this registry accepts at most {MAX_PATTERNS}")
        if p.and_slots:
            out.slots[p.name] = typed_slots
        else:
            out.slots[p.name] = [[v for s in typed_slots for v in s]]
    for names in one_of:
        given = [n for n in names if out.has(n)]
        if len(given) > 1:
            raise ParamError(ErrorCode.STORED_QUERY_PARAM_NUMBER,
                             f"parameters {' and '.join(given)} are mutually exclusive: give exactly one", given[0])
        if not given:
            raise ParamError(ErrorCode.STORED_QUERY_PARAM_NUMBER,
                             f"one of the parameters {' or '.join(names)} is required", names[0])
    for p in params:
        if p.required and not out.has(p.name):
            raise ParamError(ErrorCode.STORED_QUERY_MISSING_PARAM, f"required parameter {p.name} is missing", p.name)
    for p in params:
        if p.name == "$MetadataLevel" and out.has(p.name) and out.one(p.name) not in MetadataUpdate.LEVELS:
            raise _registry_error(p.name, f"metadata level {out.one(p.name)} is not a level: 1 (without) or 2 "
                                          "(with XDS Metadata Update) (ITI TF-2 3.18.4.1.2.3.5.1)")
    return out
