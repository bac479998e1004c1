"""The XDS-on-FHIR mapping of MHD 4.2 (ITI TF-3 4.5 / MHD "XDS on FHIR"): DocumentEntry ->
DocumentReference, SubmissionSet and Folder -> List, as the profiles' ``Mapping:`` tables say
(``../shared/fhir/mhd/input/fsh``: documentReference.fsh, submissionSet.fsh, folder.fsh), with the
PDSm extension ``isArchived``.

Values keep what the XDS metadata says so that the mapping can be checked both ways:

* a coding scheme that is an OID becomes ``urn:oid:<oid>`` (LOINC, SNOMED CT and the HL7
  confidentiality codes their FHIR URIs); another scheme, which XDS allows as free text, becomes
  ``urn:ihe:xds:scheme:<percent-encoded scheme>``; :func:`xds_scheme` reverses both;
* a DTM (UTC, ITI TF-3 4.2.3.1.6) becomes a FHIR date or dateTime of the same precision;
* a patient CX ``id^^^&oid&ISO`` becomes the Identifier (``urn:oid:<oid>``, ``id``) and the
  Patient resource id ``<oid>-<id>`` (:func:`patient_resource_id`);
* authors (XCN, XON, roles, specialties, telecoms) become contained Practitioner, Organization and
  PractitionerRole resources, the legal authenticator a contained Practitioner, the
  sourcePatientInfo a contained Patient (PID-3, PID-5, PID-7, PID-8).
"""
from __future__ import annotations

import base64
import datetime as dt
import re
from urllib.parse import quote, unquote

from xds.metadata import Author, Code, DocumentEntry, Folder, SubmissionSet

MHD = "https://profiles.ihe.net/ITI/MHD"
PDSM = "https://interop.esante.gouv.fr/ig/fhir/pdsm"
PROFILE_DOCUMENT_REFERENCE = f"{MHD}/StructureDefinition/IHE.MHD.Comprehensive.DocumentReference"
PROFILE_SUBMISSION_SET = f"{MHD}/StructureDefinition/IHE.MHD.Comprehensive.SubmissionSet"
PROFILE_FOLDER = f"{MHD}/StructureDefinition/IHE.MHD.Comprehensive.Folder"
EXT_DESIGNATION_TYPE = f"{MHD}/StructureDefinition/ihe-designationType"
EXT_SOURCE_ID = f"{MHD}/StructureDefinition/ihe-sourceId"
EXT_INTENDED_RECIPIENT = f"{MHD}/StructureDefinition/ihe-intendedRecipient"
EXT_IS_ARCHIVED = f"{PDSM}/StructureDefinition/pdsm-ext-is-archived"
LIST_TYPES = f"{MHD}/CodeSystem/MHDlistTypes"
IDENTIFIER_TYPES = f"{MHD}/CodeSystem/IHE.MHD.MHDIdentifierType"
RFC3986 = "urn:ietf:rfc:3986"
OID_PREFIX = "urn:oid:"
SCHEME_PREFIX = "urn:ihe:xds:scheme:"

APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
ARCHIVED = "urn:asip:ci-sis:2010:StatusType:Archived"
"""The DMP's availabilityStatus of an archived entry (CI-SIS), PDSm ``isArchived``."""
FHIR_STATUS = {APPROVED: "current", DEPRECATED: "superseded", ARCHIVED: "current"}
XDS_STATUS = {"current": [APPROVED], "superseded": [DEPRECATED], "entered-in-error": []}

KNOWN_SYSTEMS = {
    "2.16.840.1.113883.6.1": "http://loinc.org",
    "2.16.840.1.113883.6.96": "http://snomed.info/sct",
    "2.16.840.1.113883.5.25": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
}
KNOWN_OIDS = {uri: oid for oid, uri in KNOWN_SYSTEMS.items()}
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_GENDERS = {"M": "male", "F": "female", "O": "other", "U": "unknown", "A": "other", "N": "unknown"}


# ----------------------------------------------------------------------------- codes

def fhir_system(scheme: str) -> str:
    if scheme in KNOWN_SYSTEMS:
        return KNOWN_SYSTEMS[scheme]
    if _OID.match(scheme):
        return OID_PREFIX + scheme
    return SCHEME_PREFIX + quote(scheme, safe="")


def xds_scheme(system: str) -> str:
    if system in KNOWN_OIDS:
        return KNOWN_OIDS[system]
    if system.startswith(OID_PREFIX):
        return system[len(OID_PREFIX):]
    if system.startswith(SCHEME_PREFIX):
        return unquote(system[len(SCHEME_PREFIX):])
    return system


def coding(code: Code) -> dict:
    out = {"system": fhir_system(code.scheme), "code": code.code}
    if code.display_name:
        out["display"] = code.display_name
    return out


def concept(code: Code) -> dict:
    return {"coding": [coding(code)]}


# ----------------------------------------------------------------------------- times

def fhir_time(dtm: str | None) -> str | None:
    """A DTM (YYYY[MM[DD[HH[MM[SS]]]]], UTC) as FHIR: a date of its precision, or a dateTime in Z."""
    if not dtm:
        return None
    digits = dtm.strip()
    if not digits.isdigit() or len(digits) not in (4, 6, 8, 10, 12, 14):
        return None
    year, month, day = digits[:4], digits[4:6], digits[6:8]
    if len(digits) <= 8:
        return "-".join(p for p in (year, month, day) if p)
    hour, minute, second = digits[8:10], digits[10:12] or "00", digits[12:14] or "00"
    return f"{year}-{month}-{day}T{hour}:{minute}:{second}Z"


def dtm_of(value: str) -> str:
    """A FHIR date/dateTime/instant as a DTM of its precision (UTC; an offset is applied)."""
    text = value.strip()
    match = re.fullmatch(r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?"
                         r"(Z|[+-]\d{2}:\d{2})?)?)?)?", text)
    if match is None:
        raise ValueError(f"{value!r} is not a FHIR date or dateTime")
    year, month, day, hour, minute, second, zone = match.groups()
    if hour is None:
        return "".join(p for p in (year, month, day) if p)
    moment = dt.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0),
                         tzinfo=dt.UTC if zone in (None, "Z") else dt.datetime.strptime(zone, "%z").tzinfo)
    return moment.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S" if second else "%Y%m%d%H%M")


# ----------------------------------------------------------------------------- identities

def split_cx(cx: str) -> tuple[str, str | None]:
    """(CX.1, the assigning authority's OID or None) of a CX."""
    parts = cx.split("^")
    authority = parts[3].split("&") if len(parts) > 3 else []
    return parts[0], (authority[1] if len(authority) > 1 and authority[1] else None)


def cx_identifier(cx: str) -> dict:
    value, oid = split_cx(cx)
    return {"system": OID_PREFIX + oid, "value": value} if oid else {"value": cx}


def patient_resource_id(cx: str) -> str | None:
    """The Patient id of a patient CX: ``<assigning authority OID>-<CX.1>`` (a FHIR id), or None
    when the CX cannot make one (no OID, characters a FHIR id refuses, over 64 characters)."""
    value, oid = split_cx(cx)
    rid = f"{oid}-{value}" if oid else ""
    return rid if oid and FHIR_ID.match(rid) else None


def patient_cx(resource_id: str) -> str | None:
    """The CX of a Patient id made by :func:`patient_resource_id`."""
    oid, sep, value = resource_id.partition("-")
    if not sep or not value or not _OID.match(oid):
        return None
    return f"{value}^^^&{oid}&ISO"


def patient_reference(cx: str) -> dict:
    out: dict = {}
    rid = patient_resource_id(cx)
    if rid:
        out["reference"] = f"Patient/{rid}"
    out["identifier"] = cx_identifier(cx)
    return out


def _xcn(value: str) -> tuple[dict | None, dict | None]:
    """(Identifier, HumanName) of an XCN (id^family^given^second^suffix^prefix^^^&oid&ISO)."""
    parts = value.split("^")
    ident = None
    if parts[0]:
        authority = parts[8].split("&") if len(parts) > 8 else []
        ident = {"value": parts[0]}
        if len(authority) > 1 and authority[1]:
            ident = {"system": OID_PREFIX + authority[1], "value": parts[0]}
    name: dict = {}
    if len(parts) > 1 and parts[1]:
        name["family"] = parts[1]
    given = [p for p in parts[2:4] if p] if len(parts) > 2 else []
    if given:
        name["given"] = given
    if len(parts) > 5 and parts[5]:
        name["prefix"] = [parts[5]]
    if len(parts) > 4 and parts[4]:
        name["suffix"] = [parts[4]]
    if not ident and not name:
        name["text"] = value
    return ident, (name or None)


def practitioner(rid: str, xcn: str) -> dict:
    ident, name = _xcn(xcn)
    out: dict = {"resourceType": "Practitioner", "id": rid}
    if ident:
        out["identifier"] = [ident]
    if name:
        out["name"] = [name]
    return out


def organization(rid: str, xon: str) -> dict:
    """An XON (name^^^^^&oid&ISO^^^^id) as an Organization."""
    parts = xon.split("^")
    out: dict = {"resourceType": "Organization", "id": rid}
    if len(parts) > 9 and parts[9]:
        authority = parts[5].split("&") if len(parts) > 5 else []
        ident = {"value": parts[9]}
        if len(authority) > 1 and authority[1]:
            ident = {"system": OID_PREFIX + authority[1], "value": parts[9]}
        out["identifier"] = [ident]
    out["name"] = parts[0] or xon
    return out


def _role_concept(value: str) -> dict:
    """An authorRole / authorSpecialty: a coded CE/CX (code^display^^^^^^^&oid&ISO or
    code^display^oid) or a plain text."""
    parts = value.split("^")
    if len(parts) >= 3 and parts[0]:
        system = ""
        if len(parts) > 8 and "&" in parts[8]:
            system = parts[8].split("&")[1]
        elif len(parts) >= 3 and _OID.match(parts[2]):
            system = parts[2]
        if system:
            c: dict = {"system": fhir_system(system), "code": parts[0]}
            if parts[1]:
                c["display"] = parts[1]
            return {"coding": [c], "text": value}
    return {"text": value}


def _telecom(xtn: str) -> dict:
    parts = xtn.split("^")
    email = parts[3] if len(parts) > 3 and parts[3] else ""
    if email:
        return {"system": "email", "value": email}
    return {"system": "phone", "value": parts[0] or xtn}


def author_resources(prefix: str, authors: list[Author]) -> tuple[list[dict], list[dict]]:
    """(contained resources, references) of the authors: a PractitionerRole per author carrying
    its person, its first institution, its roles, specialties and telecoms; an author that is only
    an institution is an Organization."""
    contained: list[dict] = []
    refs: list[dict] = []
    for n, author in enumerate(authors, 1):
        base = f"{prefix}{n}"
        person = practitioner(f"{base}-person", author.person) if author.person else None
        orgs = [organization(f"{base}-org{i}", xon) for i, xon in enumerate(author.institutions, 1)]
        if person is None and not author.roles and not author.specialties and not author.telecommunications:
            contained += orgs
            refs += [{"reference": f"#{o['id']}"} for o in orgs]
            continue
        role: dict = {"resourceType": "PractitionerRole", "id": base}
        if person is not None:
            contained.append(person)
            role["practitioner"] = {"reference": f"#{person['id']}"}
        if orgs:
            contained += orgs
            role["organization"] = {"reference": f"#{orgs[0]['id']}"}
        if author.roles:
            role["code"] = [_role_concept(r) for r in author.roles]
        if author.specialties:
            role["specialty"] = [_role_concept(s) for s in author.specialties]
        if author.telecommunications:
            role["telecom"] = [_telecom(t) for t in author.telecommunications]
        contained.append(role)
        refs.append({"reference": f"#{base}"})
    return contained, refs


def source_patient(entry: DocumentEntry) -> dict | None:
    """The contained Patient of sourcePatientId and sourcePatientInfo (PID-3, -5, -7, -8)."""
    if not entry.source_patient_id and not entry.source_patient_info:
        return None
    patient: dict = {"resourceType": "Patient", "id": "sourcePatient"}
    identifiers = [cx_identifier(entry.source_patient_id)] if entry.source_patient_id else []
    names, birth, gender = [], None, None
    for line in entry.source_patient_info:
        field_name, _, value = line.partition("|")
        if field_name == "PID-3" and value and value != entry.source_patient_id:
            identifiers.append(cx_identifier(value))
        elif field_name == "PID-5" and value:
            parts = value.split("^")
            name: dict = {"family": parts[0]} if parts[0] else {}
            given = [p for p in parts[1:3] if p]
            if given:
                name["given"] = given
            names.append(name or {"text": value})
        elif field_name == "PID-7" and value:
            birth = fhir_time(value[:8])
        elif field_name == "PID-8" and value:
            gender = _GENDERS.get(value.strip().upper())
    if identifiers:
        patient["identifier"] = identifiers
    if names:
        patient["name"] = names
    if gender:
        patient["gender"] = gender
    if birth:
        patient["birthDate"] = birth
    return patient


def entry_identifiers(entry_uuid: str, unique_id: str | None) -> list[dict]:
    out = [{"use": "official", "type": {"coding": [{"system": IDENTIFIER_TYPES, "code": "entryUUID"}]},
            "system": RFC3986, "value": entry_uuid if entry_uuid.startswith("urn:") else f"urn:uuid:{entry_uuid}"}]
    if unique_id:
        out.append({"use": "usual", "type": {"coding": [{"system": IDENTIFIER_TYPES, "code": "uniqueId"}]},
                    **unique_identifier(unique_id)})
    return out


def unique_identifier(unique_id: str) -> dict:
    """``urn:oid:`` for an OID, ``urn:uuid:`` for a UUID, else the value as given."""
    if _OID.match(unique_id):
        return {"system": RFC3986, "value": OID_PREFIX + unique_id}
    if re.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", unique_id):
        return {"system": RFC3986, "value": f"urn:uuid:{unique_id}"}
    return {"system": RFC3986, "value": unique_id} if ":" in unique_id else {"value": unique_id}


def resource_id(entry_uuid: str) -> str:
    """The logical id of an entry: its entryUUID without ``urn:uuid:`` (a FHIR id)."""
    return entry_uuid[len("urn:uuid:"):] if entry_uuid.startswith("urn:uuid:") else entry_uuid


def binary_url(base: str, unique_id: str) -> str:
    return f"{base}/Binary/{quote(unique_id, safe='')}"


# ----------------------------------------------------------------------------- resources

def document_reference(entry: DocumentEntry, base: str) -> dict:
    """A DocumentEntry as an MHD Comprehensive DocumentReference (documentReference.fsh mapping)."""
    contained, author_refs = author_resources("author", entry.authors)
    doc: dict = {"resourceType": "DocumentReference", "id": resource_id(entry.entry_uuid),
                 "meta": {"profile": [PROFILE_DOCUMENT_REFERENCE]}}
    if entry.legal_authenticator:
        contained.append(practitioner("authenticator", entry.legal_authenticator))
    spi = source_patient(entry)
    if spi is not None:
        contained.append(spi)
    if contained:
        doc["contained"] = contained
    doc["extension"] = [{"url": EXT_IS_ARCHIVED, "valueBoolean": entry.status == ARCHIVED}]
    if entry.unique_id:
        doc["masterIdentifier"] = unique_identifier(entry.unique_id)
    doc["identifier"] = entry_identifiers(entry.entry_uuid, entry.unique_id)
    doc["status"] = FHIR_STATUS.get(entry.status or "", "current")
    if entry.type_code:
        doc["type"] = concept(entry.type_code)
    if entry.class_code:
        doc["category"] = [concept(entry.class_code)]
    if entry.patient_id:
        doc["subject"] = patient_reference(entry.patient_id)
    created = fhir_time(entry.creation_time)
    if created and "T" in created:
        doc["date"] = created
    if author_refs:
        doc["author"] = author_refs
    if entry.legal_authenticator:
        doc["authenticator"] = {"reference": "#authenticator"}
    if entry.comments:
        doc["description"] = entry.comments
    if entry.confidentiality_codes:
        doc["securityLabel"] = [concept(c) for c in entry.confidentiality_codes]
    attachment: dict = {}
    if entry.mime_type:
        attachment["contentType"] = entry.mime_type
    if entry.language_code:
        attachment["language"] = entry.language_code
    if entry.unique_id:
        attachment["url"] = entry.uri or binary_url(base, entry.unique_id)
    if entry.size is not None:
        attachment["size"] = entry.size
    if entry.hash:
        try:
            attachment["hash"] = base64.b64encode(bytes.fromhex(entry.hash)).decode()
        except ValueError:
            pass
    if entry.title:
        attachment["title"] = entry.title
    if created:
        attachment["creation"] = created
    content: dict = {"attachment": attachment}
    if entry.format_code:
        content["format"] = coding(entry.format_code)
    doc["content"] = [content]
    context: dict = {}
    if entry.event_codes:
        context["event"] = [concept(c) for c in entry.event_codes]
    period = {k: v for k, v in (("start", fhir_time(entry.service_start_time)),
                                ("end", fhir_time(entry.service_stop_time))) if v}
    if period:
        context["period"] = period
    if entry.healthcare_facility_type_code:
        context["facilityType"] = concept(entry.healthcare_facility_type_code)
    if entry.practice_setting_code:
        context["practiceSetting"] = concept(entry.practice_setting_code)
    if spi is not None:
        context["sourcePatientInfo"] = {"reference": "#sourcePatient"}
    if entry.reference_ids:
        context["related"] = [{"identifier": _reference_id(r)} for r in entry.reference_ids]
    if context:
        doc["context"] = context
    return doc


def _reference_id(cxi: str) -> dict:
    """A referenceIdList value (CXi): the Identifier, its whole CXi kept as the value when it
    names more than an id in an OID authority (a type, an assigning facility)."""
    value, oid = split_cx(cxi)
    if oid and cxi == f"{value}^^^&{oid}&ISO":
        return {"system": OID_PREFIX + oid, "value": value}
    return {"value": cxi}


def submission_set_list(ss: SubmissionSet, members: list[str]) -> dict:
    """A SubmissionSet as an MHD Comprehensive SubmissionSet List (submissionSet.fsh mapping)."""
    contained, author_refs = author_resources("author", ss.authors)
    out: dict = {"resourceType": "List", "id": resource_id(ss.entry_uuid),
                 "meta": {"profile": [PROFILE_SUBMISSION_SET]}}
    extensions: list[dict] = []
    if ss.content_type_code:
        extensions.append({"url": EXT_DESIGNATION_TYPE, "valueCodeableConcept": concept(ss.content_type_code)})
    if ss.source_id:
        extensions.append({"url": EXT_SOURCE_ID, "valueIdentifier": unique_identifier(ss.source_id)})
    for n, recipient in enumerate(ss.intended_recipients, 1):
        xon, _, rest = recipient.partition("|")
        xcn = rest.partition("|")[0]
        rid = f"recipient{n}"
        contained.append(practitioner(rid, xcn) if xcn else organization(rid, xon))
        extensions.append({"url": EXT_INTENDED_RECIPIENT, "valueReference": {"reference": f"#{rid}"}})
    extensions.append({"url": EXT_IS_ARCHIVED, "valueBoolean": ss.status == ARCHIVED})
    if contained:
        out["contained"] = contained
    out["extension"] = extensions
    out["identifier"] = entry_identifiers(ss.entry_uuid, ss.unique_id)
    out["status"] = "current"
    out["mode"] = "working"
    if ss.title:
        out["title"] = ss.title
    out["code"] = {"coding": [{"system": LIST_TYPES, "code": "submissionset"}]}
    if ss.patient_id:
        out["subject"] = patient_reference(ss.patient_id)
    submitted = fhir_time(ss.submission_time)
    if submitted:
        out["date"] = submitted
    if author_refs:
        out["source"] = author_refs[0]
    if ss.comments:
        out["note"] = [{"text": ss.comments}]
    if members:
        out["entry"] = [{"item": {"reference": f"DocumentReference/{resource_id(m)}"}} for m in members]
    return out


def folder_list(folder: Folder, members: list[str]) -> dict:
    """A Folder as an MHD Comprehensive Folder List (folder.fsh mapping)."""
    out: dict = {"resourceType": "List", "id": resource_id(folder.entry_uuid),
                 "meta": {"profile": [PROFILE_FOLDER]}}
    out["extension"] = [{"url": EXT_DESIGNATION_TYPE, "valueCodeableConcept": concept(c)} for c in folder.codes]
    out["identifier"] = entry_identifiers(folder.entry_uuid, folder.unique_id)
    out["status"] = "current"
    out["mode"] = "working"
    if folder.title:
        out["title"] = folder.title
    out["code"] = {"coding": [{"system": LIST_TYPES, "code": "folder"}]}
    if folder.patient_id:
        out["subject"] = patient_reference(folder.patient_id)
    updated = fhir_time(folder.last_update_time)
    if updated:
        out["date"] = updated
    if folder.comments:
        out["note"] = [{"text": folder.comments}]
    if members:
        out["entry"] = [{"item": {"reference": f"DocumentReference/{resource_id(m)}"}} for m in members]
    return out
