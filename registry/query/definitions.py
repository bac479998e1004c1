"""The fourteen stored queries of ITI TF-2 3.18.4.1.2.3.7, as data.

Each table lists the parameters as the TF does (name, R/O, single/multiple, type). ``one_of``
groups are the "either ... or ..." parameters of the Get* queries (exactly one of them,
XDSStoredQueryParamNumber otherwise); XDS Metadata Update adds a logicalID to those of
GetDocuments and GetFolders (ITI TF-2 3.18.4.1.2.3.7.5, .6). ``single_patient``: the query's answer must concern one
patient (TF-2 3.18.4.1.3, XDSResultNotSinglePatient).
"""
from __future__ import annotations

from dataclasses import dataclass

from registry.query.params import (
    ASSOC_TYPE,
    CODE,
    INTEGER,
    OBJECT_TYPE,
    PATIENT,
    PATTERN,
    STATUS,
    STRING,
    TIME,
    O,
    Param,
    R,
)
from xds.vocabulary import STORED_QUERIES

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
    one_of: tuple[tuple[str, ...], ...] = ()
    single_patient: bool = False


QUERIES: dict[str, StoredQuery] = {q.id: q for q in (
    # 3.18.4.1.2.3.7.1
    StoredQuery(STORED_QUERIES["FindDocuments"], "FindDocuments", (
        R("$XDSDocumentEntryPatientId", PATIENT), *DOC_FILTERS, LEVEL, HOME)),
    # 3.18.4.1.2.3.7.2
    StoredQuery(STORED_QUERIES["FindSubmissionSets"], "FindSubmissionSets", (
        R("$XDSSubmissionSetPatientId", PATIENT),
        O("$XDSSubmissionSetSourceId", STRING, multiple=True),
        O("$XDSSubmissionSetSubmissionTimeFrom", TIME),
        O("$XDSSubmissionSetSubmissionTimeTo", TIME),
        O("$XDSSubmissionSetAuthorPerson", PATTERN),
        O("$XDSSubmissionSetContentType", CODE, multiple=True),
        R("$XDSSubmissionSetStatus", STATUS, multiple=True),
        LEVEL, HOME)),
    # 3.18.4.1.2.3.7.3
    StoredQuery(STORED_QUERIES["FindFolders"], "FindFolders", (
        R("$XDSFolderPatientId", PATIENT),
        O("$XDSFolderLastUpdateTimeFrom", TIME),
        O("$XDSFolderLastUpdateTimeTo", TIME),
        O("$XDSFolderCodeList", CODE, multiple=True, and_slots=True),
        R("$XDSFolderStatus", STATUS, multiple=True),
        LEVEL, HOME)),
    # 3.18.4.1.2.3.7.4
    StoredQuery(STORED_QUERIES["GetAll"], "GetAll", (
        R("$patientId", PATIENT),
        R("$XDSDocumentEntryStatus", STATUS, multiple=True),
        R("$XDSSubmissionSetStatus", STATUS, multiple=True),
        R("$XDSFolderStatus", STATUS, multiple=True),
        *CONTENT_FILTERS, LEVEL, HOME)),
    # 3.18.4.1.2.3.7.5
    StoredQuery(STORED_QUERIES["GetDocuments"], "GetDocuments", (
        DOC_UUID, DOC_UID, O("$XDSDocumentEntryLogicalID", STRING, multiple=True), LEVEL, HOME),
        one_of=(("$XDSDocumentEntryEntryUUID", "$XDSDocumentEntryUniqueId", "$XDSDocumentEntryLogicalID"),),
        single_patient=True),
    # 3.18.4.1.2.3.7.6
    StoredQuery(STORED_QUERIES["GetFolders"], "GetFolders", (
        O("$XDSFolderEntryUUID", STRING, multiple=True), O("$XDSFolderUniqueId", STRING, multiple=True),
        O("$XDSFolderLogicalID", STRING, multiple=True), LEVEL, HOME),
        one_of=(("$XDSFolderEntryUUID", "$XDSFolderUniqueId", "$XDSFolderLogicalID"),), single_patient=True),
    # 3.18.4.1.2.3.7.7
    StoredQuery(STORED_QUERIES["GetAssociations"], "GetAssociations", (
        R("$uuid", STRING, multiple=True), LEVEL, HOME), single_patient=True),
    # 3.18.4.1.2.3.7.8
    StoredQuery(STORED_QUERIES["GetDocumentsAndAssociations"], "GetDocumentsAndAssociations", (
        DOC_UUID, DOC_UID, LEVEL, HOME),
        one_of=(("$XDSDocumentEntryEntryUUID", "$XDSDocumentEntryUniqueId"),), single_patient=True),
    # 3.18.4.1.2.3.7.9
    StoredQuery(STORED_QUERIES["GetSubmissionSets"], "GetSubmissionSets", (
        R("$uuid", STRING, multiple=True), LEVEL, HOME), single_patient=True),
    # 3.18.4.1.2.3.7.10
    StoredQuery(STORED_QUERIES["GetSubmissionSetAndContents"], "GetSubmissionSetAndContents", (
        O("$XDSSubmissionSetEntryUUID", STRING), O("$XDSSubmissionSetUniqueId", STRING),
        *CONTENT_FILTERS, LEVEL, HOME),
        one_of=(("$XDSSubmissionSetEntryUUID", "$XDSSubmissionSetUniqueId"),), single_patient=True),
    # 3.18.4.1.2.3.7.11
    StoredQuery(STORED_QUERIES["GetFolderAndContents"], "GetFolderAndContents", (
        O("$XDSFolderEntryUUID", STRING), O("$XDSFolderUniqueId", STRING),
        *CONTENT_FILTERS, LEVEL, HOME),
        one_of=(("$XDSFolderEntryUUID", "$XDSFolderUniqueId"),), single_patient=True),
    # 3.18.4.1.2.3.7.12
    StoredQuery(STORED_QUERIES["GetFoldersForDocument"], "GetFoldersForDocument", (
        DOC_ONE, DOC_ONE_UID, LEVEL, HOME),
        one_of=(("$XDSDocumentEntryEntryUUID", "$XDSDocumentEntryUniqueId"),), single_patient=True),
    # 3.18.4.1.2.3.7.13
    StoredQuery(STORED_QUERIES["GetRelatedDocuments"], "GetRelatedDocuments", (
        DOC_ONE, DOC_ONE_UID, R("$AssociationTypes", ASSOC_TYPE, multiple=True),
        O("$XDSDocumentEntryType", OBJECT_TYPE, multiple=True), LEVEL, HOME),
        one_of=(("$XDSDocumentEntryEntryUUID", "$XDSDocumentEntryUniqueId"),), single_patient=True),
    # 3.18.4.1.2.3.7.14
    StoredQuery(STORED_QUERIES["FindDocumentsByReferenceId"], "FindDocumentsByReferenceId", (
        R("$XDSDocumentEntryPatientId", PATIENT),
        R("$XDSDocumentEntryReferenceIdList", STRING, multiple=True),
        *DOC_FILTERS, LEVEL, HOME)),
)}

BY_NAME = {q.name: q for q in QUERIES.values()}
