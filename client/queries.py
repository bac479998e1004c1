"""The fourteen stored queries of ITI TF-2 3.18.4.1.2.3.7 by friendly name, and friendly parameters.

``xds query find-documents --patient CX --status approved`` becomes a FindDocuments AdhocQuery
with ``$XDSDocumentEntryPatientId`` and ``$XDSDocumentEntryStatus``; the value grammar (quotes,
``('a','b')`` lists, ``code^^scheme``) is written here, once.
"""
from __future__ import annotations

from lxml import etree

from xds.vocabulary import NS_QUERY, NS_RIM, STORED_QUERIES, AssocType, ObjectType, Status, q

QUERY_IDS = STORED_QUERIES


def friendly(name: str) -> str:
    """FindDocuments -> find-documents."""
    out = "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")
    return out.replace("-by-reference-id", "-by-reference-id")


BY_FRIENDLY = {friendly(n): n for n in QUERY_IDS}

ENTITY = {"FindDocuments": "DocumentEntry", "FindDocumentsByReferenceId": "DocumentEntry", "GetAll": None,
          "FindSubmissionSets": "SubmissionSet", "FindFolders": "Folder", "GetFolders": "Folder",
          "GetSubmissionSets": None, "GetSubmissionSetAndContents": "SubmissionSet",
          "GetFolderAndContents": "Folder", "GetFoldersForDocument": "DocumentEntry",
          "GetDocuments": "DocumentEntry", "GetDocumentsAndAssociations": "DocumentEntry",
          "GetRelatedDocuments": "DocumentEntry", "GetAssociations": None}
"""Which object the friendly --uuid / --unique-id / --status / --patient options name in each query."""

PATIENT_PARAM = {"FindDocuments": "$XDSDocumentEntryPatientId",
                 "FindDocumentsByReferenceId": "$XDSDocumentEntryPatientId",
                 "FindSubmissionSets": "$XDSSubmissionSetPatientId", "FindFolders": "$XDSFolderPatientId",
                 "GetAll": "$patientId"}

STATUS_WORDS = {"approved": Status.APPROVED, "deprecated": Status.DEPRECATED, "submitted": Status.SUBMITTED}
ASSOC_WORDS = {"rplc": AssocType.RPLC, "xfrm": AssocType.XFRM, "apnd": AssocType.APND,
               "xfrm_rplc": AssocType.XFRM_RPLC, "signs": AssocType.SIGNS, "hasmember": AssocType.HAS_MEMBER}
OBJECT_TYPE_WORDS = {"stable": ObjectType.STABLE_DOCUMENT, "on-demand": ObjectType.ON_DEMAND_DOCUMENT}

DOC_CODES = {"class_code": "ClassCode", "type_code": "TypeCode", "format_code": "FormatCode",
             "practice_setting_code": "PracticeSettingCode", "facility_type_code": "HealthcareFacilityTypeCode",
             "event_code": "EventCodeList", "confidentiality_code": "ConfidentialityCode"}
DOC_TIMES = {"creation_time_from": "CreationTimeFrom", "creation_time_to": "CreationTimeTo",
             "service_start_from": "ServiceStartTimeFrom", "service_start_to": "ServiceStartTimeTo",
             "service_stop_from": "ServiceStopTimeFrom", "service_stop_to": "ServiceStopTimeTo"}

FRIENDLY_PARAMS = ("patient", "status", "uuid", "unique_id", "class_code", "type_code", "format_code",
                   "practice_setting_code", "facility_type_code", "event_code", "confidentiality_code",
                   "author", "creation_time_from", "creation_time_to", "service_start_from", "service_start_to",
                   "service_stop_from", "service_stop_to", "reference_id", "association_type", "source_id",
                   "content_type", "document_type")


def resolve_name(name: str) -> str:
    """A friendly name, a TF name or a query UUID -> the TF name."""
    if name in QUERY_IDS:
        return name
    if name in BY_FRIENDLY:
        return BY_FRIENDLY[name]
    for n, uid in QUERY_IDS.items():
        if uid == name:
            return n
    raise KeyError(name)


def _as_list(value) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def _code(value: str) -> str:
    """``code^^scheme`` as queries want it; ``code|scheme`` and ``code`` alone are accepted too."""
    if "^^" in value:
        return value
    if "|" in value:
        code, scheme = value.split("|", 1)
        return f"{code}^^{scheme}"
    return value


def build_params(name: str, params: dict) -> dict[str, list[str]]:
    """Friendly keyword arguments (and raw ``$Xxx`` names) -> {slot name: [python values]}.

    Values are lists of strings; ``format_value`` quotes them. Statuses default to Approved where the
    query requires them.
    """
    entity = ENTITY[name]
    out: dict[str, list[str]] = {}
    for key, value in params.items():
        values = _as_list(value)
        if not values:
            continue
        if key.startswith("$"):
            out[key] = values
        elif key == "patient":
            out[PATIENT_PARAM.get(name, "$XDSDocumentEntryPatientId")] = values
        elif key == "status":
            full = [STATUS_WORDS.get(v.lower(), v) for v in values]
            if name == "GetAll":
                for e in ("DocumentEntry", "SubmissionSet", "Folder"):
                    out[f"$XDS{e}Status"] = full
            else:
                out[f"$XDS{entity}Status"] = full
        elif key == "uuid":
            if name in ("GetAssociations", "GetSubmissionSets"):
                out["$uuid"] = values
            else:
                out[f"$XDS{entity}EntryUUID"] = values
        elif key == "unique_id":
            out[f"$XDS{entity}UniqueId"] = values
        elif key in DOC_CODES:
            slot = f"$XDSDocumentEntry{DOC_CODES[key]}"
            if name == "FindFolders" and key == "class_code":
                slot = "$XDSFolderCodeList"
            out[slot] = [_code(v) for v in values]
        elif key in DOC_TIMES:
            out[f"$XDSDocumentEntry{DOC_TIMES[key]}"] = values
        elif key == "author":
            out["$XDSSubmissionSetAuthorPerson" if name == "FindSubmissionSets"
                else "$XDSDocumentEntryAuthorPerson"] = values
        elif key == "reference_id":
            out["$XDSDocumentEntryReferenceIdList"] = values
        elif key == "association_type":
            out["$AssociationTypes"] = [ASSOC_WORDS.get(v.lower(), v) for v in values]
        elif key == "source_id":
            out["$XDSSubmissionSetSourceId"] = values
        elif key == "content_type":
            out["$XDSSubmissionSetContentType"] = [_code(v) for v in values]
        elif key == "document_type":
            out["$XDSDocumentEntryType"] = [OBJECT_TYPE_WORDS.get(v.lower(), v) for v in values]
        else:
            raise ValueError(f"unknown query parameter {key!r}")
    if name == "GetAll":
        for e in ("DocumentEntry", "SubmissionSet", "Folder"):
            out.setdefault(f"$XDS{e}Status", [Status.APPROVED])
    elif entity and name.startswith("Find"):
        out.setdefault(f"$XDS{entity}Status", [Status.APPROVED])
    if name == "GetRelatedDocuments":
        out.setdefault("$AssociationTypes", list(AssocType.RELATIONSHIPS))
    return out


SINGLE = {"$XDSDocumentEntryPatientId", "$XDSSubmissionSetPatientId", "$XDSFolderPatientId", "$patientId",
          "$XDSSubmissionSetEntryUUID", "$XDSSubmissionSetUniqueId", "$XDSFolderLastUpdateTimeFrom",
          "$XDSFolderLastUpdateTimeTo", "$XDSSubmissionSetSubmissionTimeFrom", "$XDSSubmissionSetSubmissionTimeTo",
          "$XDSSubmissionSetAuthorPerson", "$homeCommunityId", "$MetadataLevel"}
NUMERIC = {"$MetadataLevel"}


def format_value(slot: str, values: list[str], name: str) -> list[str]:
    def quote(v: str) -> str:
        if slot in NUMERIC or (slot.endswith(("From", "To")) and v.isdigit()):
            return v
        return "'" + v.replace("'", "''") + "'"
    single = slot in SINGLE or slot.endswith(("From", "To")) or (
        name in ("GetFolderAndContents",) and slot.startswith("$XDSFolder")) or (
        name in ("GetFoldersForDocument", "GetRelatedDocuments") and slot.startswith("$XDSDocumentEntry")
        and slot != "$XDSDocumentEntryType")
    if single:
        return [quote(v) for v in values]
    return ["(" + ",".join(quote(v) for v in values) + ")"]


def adhoc_query_request(name: str, slots: dict[str, list[str]], return_type: str = "LeafClass") -> etree._Element:
    root = etree.Element(q(NS_QUERY, "AdhocQueryRequest"), nsmap={"query": NS_QUERY, "rim": NS_RIM})
    etree.SubElement(root, q(NS_QUERY, "ResponseOption"), returnComposedObjects="true", returnType=return_type)
    aq = etree.SubElement(root, q(NS_RIM, "AdhocQuery"), id=QUERY_IDS[name])
    for slot, values in slots.items():
        s = etree.SubElement(aq, q(NS_RIM, "Slot"), name=slot)
        vl = etree.SubElement(s, q(NS_RIM, "ValueList"))
        for v in format_value(slot, values, name):
            etree.SubElement(vl, q(NS_RIM, "Value")).text = v
    return root
