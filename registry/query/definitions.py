"""The fourteen stored queries of ITI TF-2 3.18.4.1.2.3.7, as data.

Each table lists the parameters as the TF does (name, R/O, single/multiple, type). ``one_of``
pairs are the "either ... or ..." parameters of the Get* queries (exactly one of the two,
XDSStoredQueryParamNumber otherwise). ``single_patient``: the query's answer must concern one
patient (TF-2 3.18.4.1.3, XDSResultNotSinglePatient).
"""
from __future__ import annotations

from dataclasses import dataclass

from .params import (ASSOC_TYPE, CODE, INTEGER, O, OBJECT_TYPE, PATTERN, R, STATUS, STRING, TIME, Param)

HOME = O("$homeCommunityId")
LEVEL = O("$MetadataLevel", INTEGER)

DOC_FILTERS = (
    O("$XDSDocumentEntryClassCode", CODE, multiple=True),
    O("$XDSDocumentEntryTypeCode", CODE, multiple=True),
    O("$XDSDocumentEntryPracticeSettingCode", CODE, multiple=True),
    O("$XDSDocumentEntryCreationTimeFrom", TIME),
    O("$XDSDocumentEntryCreationTimeTo", TIME),
    O("$XDSDocumentEntryServiceStartTimeFrom", TIME),
    O("$XDSDocumentEntryServiceStartTimeTo", TIME),
    O("$XDSDocumentEntryServiceStopTimeFrom", TIME),
    O("$XDSDocumentEntryServiceStopTimeTo", TIME),
    O("$XDSDocumentEntryHealthcareFacilityTypeCode", CODE, multiple=True),
    O("$XDSDocumentEntryEventCodeList", CODE, multiple=True, and_slots=True),
    O("$XDSDocumentEntryConfidentialityCode", CODE, multiple=True, and_slots=True),
    O("$XDSDocumentEntryAuthorPerson", PATTERN, multiple=True),
    O("$XDSDocumentEntryFormatCode", CODE, multiple=True),
    R("$XDSDocumentEntryStatus", STATUS, multiple=True),
    O("$XDSDocumentEntryType", OBJECT_TYPE, multiple=True),
)

CONTENT_FILTERS = (
    O("$XDSDocumentEntryFormatCode", CODE, multiple=True),
    O("$XDSDocumentEntryConfidentialityCode", CODE, multiple=True, and_slots=True),
    O("$XDSDocumentEntryType", OBJECT_TYPE, multiple=True),
)

DOC_UUID = O("$XDSDocumentEntryEntryUUID", STRING, multiple=True)
DOC_UID = O("$XDSDocumentEntryUniqueId", STRING, multiple=True)
DOC_ONE = O("$XDSDocumentEntryEntryUUID", STRING)
DOC_ONE_UID = O("$XDSDocumentEntryUniqueId", STRING)


@dataclass(frozen=True)
class StoredQuery:
    id: str
    name: str
    params: tuple[Param, ...]
    one_of: tuple[tuple[str, str], ...] = ()
    single_patient: bool = False


QUERIES: dict[str, StoredQuery] = {q.id: q for q in (
    # 3.18.4.1.2.3.7.1
    StoredQuery("urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d", "FindDocuments", (
        R("$XDSDocumentEntryPatientId"), *DOC_FILTERS, LEVEL, HOME)),
    # 3.18.4.1.2.3.7.2
    StoredQuery("urn:uuid:f26abbcb-ac74-4422-8a30-edb644bbc1a9", "FindSubmissionSets", (
        R("$XDSSubmissionSetPatientId"),
        O("$XDSSubmissionSetSourceId", STRING, multiple=True),
        O("$XDSSubmissionSetSubmissionTimeFrom", TIME),
        O("$XDSSubmissionSetSubmissionTimeTo", TIME),
        O("$XDSSubmissionSetAuthorPerson", PATTERN),
        O("$XDSSubmissionSetContentType", CODE, multiple=True),
        R("$XDSSubmissionSetStatus", STATUS, multiple=True),
        LEVEL, HOME)),
    # 3.18.4.1.2.3.7.3
    StoredQuery("urn:uuid:958f3006-baad-4929-a4de-ff1114824431", "FindFolders", (
        R("$XDSFolderPatientId"),
        O("$XDSFolderLastUpdateTimeFrom", TIME),
        O("$XDSFolderLastUpdateTimeTo", TIME),
        O("$XDSFolderCodeList", CODE, multiple=True, and_slots=True),
        R("$XDSFolderStatus", STATUS, multiple=True),
        LEVEL, HOME)),
    # 3.18.4.1.2.3.7.4
    StoredQuery("urn:uuid:10b545ea-725c-446d-9b95-8aeb444eddf3", "GetAll", (
        R("$patientId"),
        R("$XDSDocumentEntryStatus", STATUS, multiple=True),
        R("$XDSSubmissionSetStatus", STATUS, multiple=True),
        R("$XDSFolderStatus", STATUS, multiple=True),
        *CONTENT_FILTERS, LEVEL, HOME)),
    # 3.18.4.1.2.3.7.5
    StoredQuery("urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4", "GetDocuments", (
        DOC_UUID, DOC_UID, LEVEL, HOME),
        one_of=(("$XDSDocumentEntryEntryUUID", "$XDSDocumentEntryUniqueId"),), single_patient=True),
    # 3.18.4.1.2.3.7.6
    StoredQuery("urn:uuid:5737b14c-8a1a-4539-b659-e03a34a5e1e4", "GetFolders", (
        O("$XDSFolderEntryUUID", STRING, multiple=True), O("$XDSFolderUniqueId", STRING, multiple=True),
        LEVEL, HOME),
        one_of=(("$XDSFolderEntryUUID", "$XDSFolderUniqueId"),), single_patient=True),
    # 3.18.4.1.2.3.7.7
    StoredQuery("urn:uuid:a7ae438b-4bc2-4642-93e9-be891f7bb155", "GetAssociations", (
        R("$uuid", STRING, multiple=True), LEVEL, HOME), single_patient=True),
    # 3.18.4.1.2.3.7.8
    StoredQuery("urn:uuid:bab9529a-4a10-40b3-a01f-f68a615d247a", "GetDocumentsAndAssociations", (
        DOC_UUID, DOC_UID, LEVEL, HOME),
        one_of=(("$XDSDocumentEntryEntryUUID", "$XDSDocumentEntryUniqueId"),), single_patient=True),
    # 3.18.4.1.2.3.7.9
    StoredQuery("urn:uuid:51224314-5390-4169-9b91-b1980040715a", "GetSubmissionSets", (
        R("$uuid", STRING, multiple=True), LEVEL, HOME), single_patient=True),
    # 3.18.4.1.2.3.7.10
    StoredQuery("urn:uuid:e8e3cb2c-e39c-46b9-99e4-c12f57260b83", "GetSubmissionSetAndContents", (
        O("$XDSSubmissionSetEntryUUID", STRING), O("$XDSSubmissionSetUniqueId", STRING),
        *CONTENT_FILTERS, LEVEL, HOME),
        one_of=(("$XDSSubmissionSetEntryUUID", "$XDSSubmissionSetUniqueId"),), single_patient=True),
    # 3.18.4.1.2.3.7.11
    StoredQuery("urn:uuid:b909a503-523d-4517-8acf-8e5834dfc4c7", "GetFolderAndContents", (
        O("$XDSFolderEntryUUID", STRING), O("$XDSFolderUniqueId", STRING),
        *CONTENT_FILTERS, LEVEL, HOME),
        one_of=(("$XDSFolderEntryUUID", "$XDSFolderUniqueId"),), single_patient=True),
    # 3.18.4.1.2.3.7.12
    StoredQuery("urn:uuid:10cae35a-c7f9-4cf5-b61e-fc3278ffb578", "GetFoldersForDocument", (
        DOC_ONE, DOC_ONE_UID, LEVEL, HOME),
        one_of=(("$XDSDocumentEntryEntryUUID", "$XDSDocumentEntryUniqueId"),), single_patient=True),
    # 3.18.4.1.2.3.7.13
    StoredQuery("urn:uuid:d90e5407-b356-4d91-a89f-873917b4b0e6", "GetRelatedDocuments", (
        DOC_ONE, DOC_ONE_UID, R("$AssociationTypes", ASSOC_TYPE, multiple=True),
        O("$XDSDocumentEntryType", OBJECT_TYPE, multiple=True), LEVEL, HOME),
        one_of=(("$XDSDocumentEntryEntryUUID", "$XDSDocumentEntryUniqueId"),), single_patient=True),
    # 3.18.4.1.2.3.7.14
    StoredQuery("urn:uuid:12941a89-e02e-4be5-967c-ce4bfc8fe492", "FindDocumentsByReferenceId", (
        R("$XDSDocumentEntryPatientId"),
        R("$XDSDocumentEntryReferenceIdList", STRING, multiple=True),
        *DOC_FILTERS, LEVEL, HOME)),
)}

BY_NAME = {q.name: q for q in QUERIES.values()}
