"""Value formats (ITI TF-3 4.2.3.1.7 data types and 4.2.3.2 to 4.2.3.4 per attribute).

Each rule checks a value only when it is present: absence is the business of the required rules.
"""
from __future__ import annotations

from collections.abc import Iterator

from xds.hl7v2 import CX, INTEGER_RE, LANGUAGE_RE, MIME_RE, SHA1_RE, XCN, XON, check_xtn, dtm_bounds, is_dtm, is_oid
from xds.metadata import CODING_SCHEME, REFERENCE_ID_LIST, Submission
from xds.patient import ins_problem
from xds.validation.core import Context, Problem, classifications, identifiers
from xds.vocabulary import DOC, FOL, SS

CODE_SCHEMES = {
    "DocumentEntry": (("classCode", DOC.CLASS_CODE), ("confidentialityCode", DOC.CONFIDENTIALITY_CODE),
                      ("eventCodeList", DOC.EVENT_CODE), ("formatCode", DOC.FORMAT_CODE),
                      ("healthcareFacilityTypeCode", DOC.HEALTHCARE_FACILITY_TYPE_CODE),
                      ("practiceSettingCode", DOC.PRACTICE_SETTING_CODE), ("typeCode", DOC.TYPE_CODE)),
    "SubmissionSet": (("contentTypeCode", SS.CONTENT_TYPE_CODE),),
    "Folder": (("codeList", FOL.CODE_LIST),),
}
AUTHOR_SCHEMES = {"DocumentEntry": DOC.AUTHOR, "SubmissionSet": SS.AUTHOR}
PATIENT_ID_SCHEMES = {"DocumentEntry": (DOC.PATIENT_ID, "4.2.3.2.16"), "SubmissionSet": (SS.PATIENT_ID, "4.2.3.3.9"),
                      "Folder": (FOL.PATIENT_ID, "4.2.3.4 (patientId)")}


def _kind(label: str) -> str:
    return label.split()[0]


def document_entry_times(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """creationTime, serviceStartTime, serviceStopTime are DTM in UTC (TF-3 4.2.3.2.6, .19, .20; 4.2.3.1.7)."""
    for d, o in ctx.documents:
        for name in ("creationTime", "serviceStartTime", "serviceStopTime"):
            for v in o.slot_values(name):
                if not is_dtm(v):
                    yield Problem(f"DocumentEntry {d.entry_uuid}: {name} '{v}' is not a DTM YYYY[MM[DD[hh[mm[ss]]]]] "
                                  f"(TF-3 4.2.3.1.7)", d.entry_uuid)


def document_entry_service_time_order(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """serviceStartTime is not after serviceStopTime (TF-3 4.2.3.2.19, 4.2.3.2.20)."""
    for d, _ in ctx.documents:
        start, stop = d.service_start_time, d.service_stop_time
        if is_dtm(start) and is_dtm(stop) and dtm_bounds(start)[0] > dtm_bounds(stop)[1]:
            yield Problem(f"DocumentEntry {d.entry_uuid}: serviceStartTime {start} is after serviceStopTime {stop} "
                          f"(TF-3 4.2.3.2.19)", d.entry_uuid)


def document_entry_hash(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """hash is the SHA-1 of the document as 40 hexadecimal digits (TF-3 4.2.3.2.10)."""
    for d, o in ctx.documents:
        for v in o.slot_values("hash"):
            if not SHA1_RE.match(v):
                yield Problem(f"DocumentEntry {d.entry_uuid}: hash '{v}' is not a SHA-1 of 40 hexadecimal digits "
                              f"(TF-3 4.2.3.2.10)", d.entry_uuid)


def document_entry_size(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """size is a non-negative integer number of bytes (TF-3 4.2.3.2.21)."""
    for d, o in ctx.documents:
        for v in o.slot_values("size"):
            if not INTEGER_RE.match(v):
                yield Problem(f"DocumentEntry {d.entry_uuid}: size '{v}' is not a non-negative integer "
                              f"(TF-3 4.2.3.2.21)", d.entry_uuid)


def document_entry_language_code(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """languageCode is an RFC 5646 language tag (TF-3 4.2.3.2.13)."""
    for d, o in ctx.documents:
        for v in o.slot_values("languageCode"):
            if not LANGUAGE_RE.match(v):
                yield Problem(f"DocumentEntry {d.entry_uuid}: languageCode '{v}' is not an RFC 5646 tag "
                              f"(TF-3 4.2.3.2.13)", d.entry_uuid)


def document_entry_mime_type(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """mimeType is an RFC 2045 type/subtype (TF-3 4.2.3.2.15)."""
    for d, _ in ctx.documents:
        if d.mime_type and not MIME_RE.match(d.mime_type):
            yield Problem(f"DocumentEntry {d.entry_uuid}: mimeType '{d.mime_type}' is not of the form type/subtype "
                          f"(TF-3 4.2.3.2.15)", d.entry_uuid)


def patient_id_format(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """patientId of every entry is a CX ``id^^^&OID&ISO`` (TF-3 4.2.3.2.16, 4.2.3.3.9, 4.2.3.4; 4.2.3.1.7)."""
    for label, _, o in ctx.entries():
        scheme, section = PATIENT_ID_SCHEMES[_kind(label)]
        for e in identifiers(o, scheme):
            value = e.get("value") or ""
            if not value:
                continue
            try:
                CX.parse(value)
            except ValueError as exc:
                yield Problem(f"{label}: patientId is not a valid CX: {exc} (TF-3 {section})", o.id)


def patient_id_ins(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """A patientId under an INS assigning authority is an INS: 13 digits and their check key (TF-3
    4.2.3.1.7, CX.1 in the authority of CX.4; ANS referentiel INS; ../shared/valuesets/README.md)."""
    for label, _, o in ctx.entries():
        scheme, section = PATIENT_ID_SCHEMES[_kind(label)]
        for e in identifiers(o, scheme):
            why = ins_problem(e.get("value") or "")
            if why is not None:
                yield Problem(f"{label}: patientId {why} (TF-3 {section})", o.id)


def document_entry_source_patient_id(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """sourcePatientId is a CX ``id^^^&OID&ISO`` (TF-3 4.2.3.2.22)."""
    for d, o in ctx.documents:
        for v in o.slot_values("sourcePatientId"):
            try:
                CX.parse(v)
            except ValueError as exc:
                yield Problem(f"DocumentEntry {d.entry_uuid}: sourcePatientId is not a valid CX: {exc} "
                              f"(TF-3 4.2.3.2.22)", d.entry_uuid)


def document_entry_source_patient_info(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """sourcePatientInfo values are ``PID-n|value`` (TF-3 4.2.3.2.23)."""
    for d, o in ctx.documents:
        for v in o.slot_values("sourcePatientInfo"):
            field, bar, _ = v.partition("|")
            if not bar or not field.startswith("PID-") or not field[4:].isdigit():
                yield Problem(f"DocumentEntry {d.entry_uuid}: sourcePatientInfo value '{v}' is not of the form "
                              f"'PID-n|value' (TF-3 4.2.3.2.23)", d.entry_uuid)


def _document_unique_id_problem(value: str) -> str | None:
    root, caret, ext = value.partition("^")
    if not is_oid(root, 64):
        return f"its root '{root}' is not an OID of at most 64 characters"
    if caret and not ext:
        return "it ends with '^' but has no extension"
    if len(ext) > 16:
        return f"its extension '{ext}' is longer than 16 characters"
    if "^" in ext:
        return "it has more than one '^'"
    return None


def document_entry_unique_id(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """uniqueId is ``OID`` or ``OID^extension`` (root <= 64, extension <= 16 characters) (TF-3 4.2.3.2.26)."""
    for d, o in ctx.documents:
        for e in identifiers(o, DOC.UNIQUE_ID):
            value = e.get("value") or ""
            why = _document_unique_id_problem(value) if value else None
            if why:
                yield Problem(f"DocumentEntry {d.entry_uuid}: uniqueId '{value}' is invalid: {why} "
                              f"(TF-3 4.2.3.2.26)", d.entry_uuid)


def document_entry_repository_unique_id(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """repositoryUniqueId is an OID of at most 64 characters (TF-3 4.2.3.2.18)."""
    for d, o in ctx.documents:
        for v in o.slot_values("repositoryUniqueId"):
            if not is_oid(v):
                yield Problem(f"DocumentEntry {d.entry_uuid}: repositoryUniqueId '{v}' is not an OID "
                              f"(TF-3 4.2.3.2.18)", d.entry_uuid)


def document_entry_legal_authenticator(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """legalAuthenticator is an XCN (TF-3 4.2.3.2.14)."""
    for d, o in ctx.documents:
        for v in o.slot_values("legalAuthenticator"):
            why = XCN.check(v)
            if why:
                yield Problem(f"DocumentEntry {d.entry_uuid}: legalAuthenticator: {why} (TF-3 4.2.3.2.14)",
                              d.entry_uuid)


def _cxi_problem(value: str) -> str | None:
    parts = value.split("^")
    if not parts[0]:
        return "CXi.1 (the identifier) is empty"
    if len(parts) < 5 or not parts[4]:
        return "CXi.5 (the identifier type) is missing"
    if parts[1] or parts[2]:
        return "CXi.2 and CXi.3 must be empty"
    if len(parts) > 6:
        return "only CXi.1, CXi.4, CXi.5 and CXi.6 are allowed"
    if parts[3]:
        hd = parts[3].split("&")
        if len(hd) == 3 and hd[1] and (not is_oid(hd[1]) or hd[2] != "ISO"):
            return f"the assigning authority '{parts[3]}' must be &OID&ISO"
        if len(hd) not in (1, 3):
            return f"the assigning authority '{parts[3]}' is not an HD"
    return None


def document_entry_reference_id_list(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """referenceIdList values are CXi ``id^^^&OID&ISO^type`` with a type (TF-3 4.2.3.2.28)."""
    for d, o in ctx.documents:
        for v in o.slot_values(REFERENCE_ID_LIST):
            why = _cxi_problem(v)
            if why:
                yield Problem(f"DocumentEntry {d.entry_uuid}: referenceIdList value '{v}' is not a CXi: {why} "
                              f"(TF-3 4.2.3.2.28)", d.entry_uuid)


def author_person_or_institution(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """An author has an authorPerson or at least one authorInstitution (TF-3 4.2.3.1.4)."""
    for label, _, o in ctx.entries():
        scheme = AUTHOR_SCHEMES.get(_kind(label))
        for c in classifications(o, scheme) if scheme else ():
            if not any(v.strip() for v in c.slot_values("authorPerson") + c.slot_values("authorInstitution")):
                yield Problem(f"{label}: author {c.id} has neither authorPerson nor authorInstitution "
                              f"(TF-3 4.2.3.1.4)", o.id)


def author_person_single(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """An author classification holds at most one authorPerson value (TF-3 4.2.3.1.4)."""
    for label, _, o in ctx.entries():
        scheme = AUTHOR_SCHEMES.get(_kind(label))
        for c in classifications(o, scheme) if scheme else ():
            n = len(c.slot_values("authorPerson"))
            if n > 1:
                yield Problem(f"{label}: author {c.id}: authorPerson has {n} values; at most one is allowed "
                              f"(TF-3 4.2.3.1.4)", o.id)


def author_values(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """authorPerson is an XCN, authorInstitution an XON, authorTelecommunication an XTN (TF-3 4.2.3.1.4)."""
    checks = (("authorPerson", XCN.check), ("authorInstitution", XON.check), ("authorTelecommunication", check_xtn))
    for label, _, o in ctx.entries():
        scheme = AUTHOR_SCHEMES.get(_kind(label))
        for c in classifications(o, scheme) if scheme else ():
            for name, check in checks:
                for v in c.slot_values(name):
                    why = check(v)
                    if why:
                        yield Problem(f"{label}: author {c.id}: {name}: {why} (TF-3 4.2.3.1.4)", o.id)


def code_classification(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """A coded value has a non-empty nodeRepresentation and one codingScheme slot value (TF-3 4.2.3.1.2)."""
    for label, _, o in ctx.entries():
        for attr, scheme in CODE_SCHEMES[_kind(label)]:
            for c in classifications(o, scheme):
                if not (c.get("nodeRepresentation") or "").strip():
                    yield Problem(f"{label}: {attr} classification {c.id}: nodeRepresentation (the code) is empty "
                                  f"(TF-3 4.2.3.1.2)", o.id)
                values = c.slot_values(CODING_SCHEME)
                if len(values) != 1 or not values[0].strip():
                    yield Problem(f"{label}: {attr} classification {c.id}: the {CODING_SCHEME} slot must have exactly "
                                  f"one value, got {values} (TF-3 4.2.3.1.2)", o.id)


def submission_set_unique_id(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """The SubmissionSet uniqueId is an OID of at most 64 characters (TF-3 4.2.3.3.13)."""
    for s, o in ctx.submission_sets:
        for e in identifiers(o, SS.UNIQUE_ID):
            v = e.get("value") or ""
            if v and not is_oid(v, 64):
                yield Problem(f"SubmissionSet {s.entry_uuid}: uniqueId '{v}' is not an OID of at most 64 characters "
                              f"(TF-3 4.2.3.3.13)", s.entry_uuid)


def submission_set_source_id(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """The SubmissionSet sourceId is an OID (TF-3 4.2.3.3.10)."""
    for s, o in ctx.submission_sets:
        for e in identifiers(o, SS.SOURCE_ID):
            v = e.get("value") or ""
            if v and not is_oid(v, 64):
                yield Problem(f"SubmissionSet {s.entry_uuid}: sourceId '{v}' is not an OID (TF-3 4.2.3.3.10)",
                              s.entry_uuid)


def submission_set_submission_time(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """submissionTime is a DTM (TF-3 4.2.3.3.11)."""
    for s, o in ctx.submission_sets:
        for v in o.slot_values("submissionTime"):
            if not is_dtm(v):
                yield Problem(f"SubmissionSet {s.entry_uuid}: submissionTime '{v}' is not a DTM (TF-3 4.2.3.3.11)",
                              s.entry_uuid)


def _recipient_problem(value: str) -> str | None:
    parts = value.split("|")
    if len(parts) > 3:
        return "more than three '|'-separated parts (XON|XCN|XTN)"
    if not any(p.strip() for p in parts):
        return "none of XON, XCN, XTN is given"
    for part, check in zip(parts, (XON.check, XCN.check, check_xtn)):
        if part:
            why = check(part)
            if why:
                return why
    return None


def submission_set_intended_recipient(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """intendedRecipient values are ``XON|XCN|XTN`` with at least one part (TF-3 4.2.3.3.7)."""
    for s, o in ctx.submission_sets:
        for v in o.slot_values("intendedRecipient"):
            why = _recipient_problem(v)
            if why:
                yield Problem(f"SubmissionSet {s.entry_uuid}: intendedRecipient '{v}' is invalid: {why} "
                              f"(TF-3 4.2.3.3.7)", s.entry_uuid)


def folder_unique_id(sub: Submission, ctx: Context) -> Iterator[Problem]:
    """The Folder uniqueId is an OID of at most 64 characters (TF-3 4.2.3.4, uniqueId)."""
    for f, o in ctx.folders:
        for e in identifiers(o, FOL.UNIQUE_ID):
            v = e.get("value") or ""
            if v and not is_oid(v, 64):
                yield Problem(f"Folder {f.entry_uuid}: uniqueId '{v}' is not an OID of at most 64 characters "
                              f"(TF-3 4.2.3.4)", f.entry_uuid)
