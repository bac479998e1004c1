"""Files -> documents to submit: CDA R2 read from its header, other formats from flags.

The bytes are checked against the format they claim (a ``.pdf`` must start with ``%PDF-``, an XML
file must be well-formed) so that nothing the registry or a reader would choke on is sent.
"""
from __future__ import annotations

import logging
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path

from client.cda import (
    CLASS_NAMES,
    CLASS_SCHEME,
    GENERIC_STRUCTURED,
    INS_ROOTS,
    SELF_DISPLAYING_MIME,
    H,
    class_for_type,
    cx,
    cx_identity,
    document_from_cda,
    missing_fields,
    ts_to_dtm,
)
from client.client import Document, XdsClient, new_oid
from client.errors import InputError, MissingMetadata, PatientMismatch
from xds.metadata import Author, Code, DocumentEntry, new_uuid
from xds.vocabulary import AssocType, Status

log = logging.getLogger(__name__)

MAGIC = {"application/pdf": b"%PDF-", "image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}
FLAG_FOR = {"uniqueId": "--unique-id", "patientId": "--patient", "classCode": "--class-code",
            "typeCode": "--type-code", "formatCode": "--format-code", "confidentialityCode": "--confidentiality-code",
            "creationTime": "--creation-time", "healthcareFacilityTypeCode": "--facility-type-code",
            "practiceSettingCode": "--practice-setting-code", "languageCode": "--language",
            "mimeType": "--mime-type", "sourcePatientId": "--patient", "title": "--title", "author": "--author"}
CONFIDENTIALITY_SCHEME = "2.16.840.1.113883.5.25"
TRE_A07 = "1.2.250.1.213.1.1.4.13"
XML_TYPES = ("text/xml", "application/xml", SELF_DISPLAYING_MIME)
ASSOCIATION_FOR = {"RPLC": AssocType.RPLC, "APND": AssocType.APND, "XFRM": AssocType.XFRM}


@dataclass
class SourceDocument(Document):
    """A Document read from a file, with what must still be looked up before it is sent."""
    source: str = ""
    references: list[tuple[str, str]] = field(default_factory=list)
    """(RPLC|APND|XFRM, parent uniqueId or urn:uuid entryUUID): the header's relatedDocument and --replaces."""
    warnings: list[str] = field(default_factory=list)
    """Guesses the user must hear about (logged and printed by the commands)."""


def parse_code(text: str | None, default_scheme: str | None = None) -> Code | None:
    """``code|scheme|display name`` (scheme optional when the flag has a natural one)."""
    if not text:
        return None
    parts = text.split("|")
    code = parts[0]
    scheme = parts[1] if len(parts) > 1 and parts[1] else default_scheme
    if not scheme:
        raise InputError(f"code {text!r} needs a coding scheme: CODE|SCHEME[|display name]")
    return Code(code, scheme, parts[2] if len(parts) > 2 else code)


@dataclass
class Overrides:
    """Metadata given by flags: fill what a CDA header lacks, give everything for other formats."""
    patient: str | None = None
    unique_id: str | None = None
    title: str | None = None
    type_code: str | None = None
    class_code: str | None = None
    format_code: str | None = None
    confidentiality_code: str | None = None
    facility_type_code: str | None = None
    practice_setting_code: str | None = None
    creation_time: str | None = None
    language: str | None = None
    mime_type: str | None = None
    authors: list[str] = field(default_factory=list)
    institutions: list[str] = field(default_factory=list)
    replaces: list[str] = field(default_factory=list)
    """uniqueIds or entryUUIDs (urn:uuid:...) of documents this one replaces (RPLC)."""
    override_patient: bool = False
    """File under ``patient`` a CDA whose header names another patient (sourcePatientId keeps the header's)."""


def _is_cda(content: bytes) -> bool:
    head = content[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<") and b"ClinicalDocument" in content[:20000]


def load_document(path: Path, o: Overrides | None = None, content: bytes | None = None) -> SourceDocument:
    """Read ``path`` and build its Document; raise MissingMetadata/InputError instead of sending junk."""
    o = o or Overrides()
    if content is None:
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise InputError(f"{path}: {exc.strerror}") from None
    if not content:
        raise InputError(f"{path}: empty file")
    guessed = mimetypes.guess_type(path.name)[0]
    claimed = o.mime_type or guessed
    header_patients: list[tuple[str, str]] = []
    related: list[tuple[str, str]] = []
    mapping_warnings: list[str] = []
    cda_mime = None
    if claimed in XML_TYPES or (claimed != o.mime_type and _is_cda(content)) or (claimed is None and _is_cda(content)):
        cda = document_from_cda(content, str(path))  # raises InputError for non-XML or non-CDA
        entry = cda.entry
        header_patients, related, mapping_warnings, cda_mime = (cda.header_patients, cda.related, cda.warnings,
                                                                 entry.mime_type)
    else:
        if claimed is None:
            raise InputError(f"{path}: unknown format; give --mime-type")
        magic = MAGIC.get(claimed)
        if magic and not content.startswith(magic):
            raise InputError(f"{path}: not a {claimed} file (its first bytes are {content[:8]!r})")
        if _is_cda(content):
            raise InputError(f"{path}: a CDA document given --mime-type {claimed}: its mimeType is text/xml, "
                             f"or {SELF_DISPLAYING_MIME} when self-displaying (drop --mime-type)")
        entry = DocumentEntry(entry_uuid=new_uuid(), unique_id=new_oid(), mime_type=claimed,
                              format_code=GENERIC_STRUCTURED,
                              confidentiality_codes=[Code("N", CONFIDENTIALITY_SCHEME, "Normal")],
                              language_code="fr-FR")
    header_pid = entry.patient_id
    _check_patient(str(path), o, header_patients)
    apply_overrides(entry, o)
    entry.mime_type = cda_mime or entry.mime_type
    if o.patient and header_patients and o.override_patient:
        _keep_header_patient(entry, header_pid, header_patients)
    missing = missing_fields(entry)
    if missing:
        note = ""
        if "patientId" in missing and header_patients:
            note = (f"the header names the patient ids {', '.join(cx(e, r, '') for r, e in header_patients)}, "
                    f"none an INS ({', '.join(INS_ROOTS)}): give --patient")
        raise MissingMetadata(str(path), [f"{m} ({FLAG_FOR[m]})" for m in missing], note)
    warnings = [f"{path}: {w}" for w in mapping_warnings if not o.format_code]
    for w in warnings:
        log.warning("%s", w)
    references = [(kind, uid) for kind, uid in related]
    references += [("RPLC", r) for r in o.replaces if ("RPLC", r) not in references]
    return SourceDocument(content, entry, source=str(path), references=references, warnings=warnings)


def _check_patient(source: str, o: Overrides, header_patients: list[tuple[str, str]]) -> None:
    """``--patient`` must name the header's patient (CX.1 + assigning authority) unless overridden."""
    if not o.patient or not header_patients:
        return
    if cx_identity(o.patient) in {(ext, root) for root, ext in header_patients}:
        return
    if not o.override_patient:
        raise PatientMismatch(source, o.patient, [cx(e, r, "") for r, e in header_patients])


def _keep_header_patient(e: DocumentEntry, header_pid: str | None, header_patients: list[tuple[str, str]]) -> None:
    """The override shows in the metadata: sourcePatientId is the header's patient (ITI TF-3 4.2.3.2.23)."""
    root, ext = header_patients[0]
    e.source_patient_id = header_pid or cx(ext, root, "")
    e.source_patient_info = [f"PID-3|{e.source_patient_id}"] + [
        i for i in e.source_patient_info if not i.startswith("PID-3|")]


def resolve_references(client: XdsClient, doc: SourceDocument,
                       known: dict[str, str] | None = None) -> None:
    """Turn the parents' uniqueIds into entryUUIDs (ITI-18 GetDocuments by uniqueId), into associations.

    ``known``: uniqueId -> entryUUID of documents submitted earlier in the same run. A parent must
    be registered, and Approved for RPLC and APND (ITI TF-3 4.2.2.2: a deprecated document is not
    replaced or appended to again).
    """
    for kind, ref in doc.references:
        if ref.startswith("urn:uuid:"):
            target = ref
        elif known and ref in known:
            target = known[ref]
        else:
            entry = client.find_document(ref)
            if entry is None:
                raise InputError(f"{doc.source}: its {kind} parent {ref} is not in the registry "
                                 "(ITI-18 GetDocuments by uniqueId found nothing): submit the parent first")
            if kind in ("RPLC", "APND") and entry.status != Status.APPROVED:
                raise InputError(f"{doc.source}: its {kind} parent {ref} is {(entry.status or '').rsplit(':', 1)[-1]}"
                                 ", not Approved: it was already replaced")
            target = entry.entry_uuid
        if kind == "RPLC":
            if target not in doc.replaces:
                doc.replaces.append(target)
        elif (ASSOCIATION_FOR[kind], target) not in doc.related:
            doc.related.append((ASSOCIATION_FOR[kind], target))


def apply_overrides(e: DocumentEntry, o: Overrides) -> None:
    if o.patient:
        e.patient_id = o.patient
        e.source_patient_id = o.patient
        e.source_patient_info = [i for i in e.source_patient_info if not i.startswith("PID-3|")]
    if o.unique_id:
        e.unique_id = o.unique_id
    if o.title:
        e.title = o.title
    if o.type_code:
        e.type_code = parse_code(o.type_code, "2.16.840.1.113883.6.1")
        if not o.class_code:
            e.class_code = class_for_type(e.type_code) or e.class_code
    if o.class_code:
        c = parse_code(o.class_code, CLASS_SCHEME)
        assert c is not None  # o.class_code is not empty
        if c.scheme == CLASS_SCHEME and c.display_name == c.code:
            c.display_name = CLASS_NAMES.get(c.code, c.code)
        e.class_code = c
    if o.format_code:
        e.format_code = parse_code(o.format_code, "1.3.6.1.4.1.19376.1.2.3")
    if o.confidentiality_code:
        e.confidentiality_codes = [
            code for c in o.confidentiality_code.split(",")
            if (code := parse_code(c, TRE_A07 if c.isupper() and len(c) > 1 else CONFIDENTIALITY_SCHEME))]
    if o.facility_type_code:
        e.healthcare_facility_type_code = parse_code(o.facility_type_code, "1.2.250.1.71.4.2.4")
    if o.practice_setting_code:
        e.practice_setting_code = parse_code(o.practice_setting_code, "1.2.250.1.213.1.1.4.9")
    if o.creation_time:
        value = ts_to_dtm(o.creation_time)
        if not value:
            raise InputError(f"--creation-time {o.creation_time!r} is not a date-time (YYYYMMDD[HHMM[SS]][+ZZZZ])")
        e.creation_time = value
    if o.language:
        e.language_code = o.language
    if o.mime_type:
        e.mime_type = o.mime_type
    if o.authors or o.institutions:
        e.authors = [Author(a, list(o.institutions)) for a in o.authors] or [Author(None, list(o.institutions))]


def is_cda_root(tag: str) -> bool:
    return tag == H + "ClinicalDocument"
