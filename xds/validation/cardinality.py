"""Cardinalities (ITI TF-3 4.2.3.1.1 and the attribute tables 4.3.1-1 to 4.3.1-3; ebRIM 3.0 2.5.3)."""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

from xds.metadata import Submission
from xds.validation.core import Context, Problem, all_objects, classifications, identifiers
from xds.vocabulary import DOC, FOL, SS

SINGLE_CODES = {
    "DocumentEntry": (("classCode", DOC.CLASS_CODE), ("formatCode", DOC.FORMAT_CODE),
                      ("healthcareFacilityTypeCode", DOC.HEALTHCARE_FACILITY_TYPE_CODE),
                      ("practiceSettingCode", DOC.PRACTICE_SETTING_CODE), ("typeCode", DOC.TYPE_CODE)),
    "SubmissionSet": (("contentTypeCode", SS.CONTENT_TYPE_CODE),),
    "Folder": (),
}
SINGLE_SLOTS = {
    "DocumentEntry": ("creationTime", "hash", "size", "languageCode", "legalAuthenticator", "repositoryUniqueId",
                      "serviceStartTime", "serviceStopTime", "sourcePatientId"),
    "SubmissionSet": ("submissionTime",),
    "Folder": (),
}
IDENTIFIERS = {
    "DocumentEntry": (("patientId", DOC.PATIENT_ID), ("uniqueId", DOC.UNIQUE_ID)),
    "SubmissionSet": (("patientId", SS.PATIENT_ID), ("sourceId", SS.SOURCE_ID), ("uniqueId", SS.UNIQUE_ID)),
    "Folder": (("patientId", FOL.PATIENT_ID), ("uniqueId", FOL.UNIQUE_ID)),
}
URI_PART_RE = re.compile(r"^([1-9][0-9]*)\|(.*)$", re.S)


def single_valued_codes(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """Single-valued codes appear at most once (TF-3 Tables 4.3.1-1, 4.3.1-2: cardinality 1)."""
    for label, _, o in ctx.entries():
        for attr, scheme in SINGLE_CODES[label.split()[0]]:
            n = len(classifications(o, scheme))
            if n > 1:
                yield Problem(f"{label}: {attr} is given {n} times; it is single-valued (TF-3 4.2.3.1.1)", o.id)


def single_valued_slots(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """Single-valued slots carry at most one value (TF-3 4.2.3.1.1; 4.2.3.2 and 4.2.3.3 per attribute)."""
    for label, _, o in ctx.entries():
        for name in SINGLE_SLOTS[label.split()[0]]:
            n = len(o.slot_values(name))
            if n > 1:
                yield Problem(f"{label}: {name} has {n} values; it is single-valued (TF-3 4.2.3.1.1)", o.id)


def document_entry_uri(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """URI is one value, or split over several values ``1|...``, ``2|...`` numbered from 1 without gaps (TF-3 4.2.3.2.27)."""
    for d, o in ctx.documents:
        values = o.slot_values("URI")
        if len(values) <= 1:
            if values and not values[0].strip():
                yield Problem(f"DocumentEntry {d.entry_uuid}: URI is empty (TF-3 4.2.3.2.27)", d.entry_uuid)
            continue
        indexes = []
        for v in values:
            m = URI_PART_RE.match(v)
            if not m:
                yield Problem(f"DocumentEntry {d.entry_uuid}: URI has several values but '{v}' is not of the form "
                              f"'n|part' (TF-3 4.2.3.2.27)", d.entry_uuid)
                break
            indexes.append(int(m.group(1)))
        else:
            if sorted(indexes) != list(range(1, len(values) + 1)):
                yield Problem(f"DocumentEntry {d.entry_uuid}: URI parts are numbered {sorted(indexes)}; they must "
                              f"run 1..{len(values)} once each (TF-3 4.2.3.2.27)", d.entry_uuid)


def single_localized_string(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """title (rim:Name) and comments (rim:Description) hold at most one LocalizedString (TF-3 4.2.3.2.24, 4.2.3.2.4)."""
    for label, _, o in ctx.entries():
        for attr, strings in (("title", o.name), ("comments", o.description)):
            if strings is not None and len(strings) > 1:
                yield Problem(f"{label}: {attr} has {len(strings)} LocalizedStrings; at most one is allowed "
                              f"(TF-3 4.2.3.1.1)", o.id)


def duplicate_slot_names(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """Slot names are unique within one object (ebRIM 3.0 2.5.3; TF-3 4.2.3.1.1)."""
    for o, parent in all_objects(sub):
        for name, n in Counter(s.name for s in o.slots).items():
            if n > 1:
                where = f"{parent.tag} {parent.id} {o.tag} {o.id}" if parent is not None else f"{o.tag} {o.id}"
                yield Problem(f"{where}: slot {name} is given {n} times; slot names must be unique within an "
                              f"object (ebRIM 3.0 2.5.3)", parent.id if parent is not None else o.id)


def external_identifier_once(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """patientId, uniqueId (and the SubmissionSet's sourceId) are each one ExternalIdentifier (TF-3 4.2.3.1.1)."""
    for label, _, o in ctx.entries():
        for attr, scheme in IDENTIFIERS[label.split()[0]]:
            n = len(identifiers(o, scheme))
            if n > 1:
                yield Problem(f"{label}: {attr} is given by {n} ExternalIdentifiers; exactly one is allowed "
                              f"(TF-3 4.2.3.1.1)", o.id)
