"""Names and identifiers fixed by ebRS 3.0 and IHE ITI TF-3 4.2 (tables 4.2.5-1 and following).

Kept in one module so that the rest of the code reads like the Technical Framework:
``DOC.CLASS_CODE`` rather than a bare UUID.
"""
from __future__ import annotations

NS_RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
NS_RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
NS_LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
NS_QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
NS_XDSB = "urn:ihe:iti:xds-b:2007"
NS_RMD = "urn:ihe:iti:rmd:2017"
"""ITI-86 Remove Documents (ITI TF-2 3.86.4.1.2: ``rmd:RemoveDocumentsRequest``)."""
NSMAP = {"rim": NS_RIM, "rs": NS_RS, "lcm": NS_LCM, "query": NS_QUERY, "xdsb": NS_XDSB}


def q(ns: str, local: str) -> str:
    """Clark notation ``{ns}local`` used by lxml."""
    return "{%s}%s" % (ns, local)


class Status:
    APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
    DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
    SUBMITTED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Submitted"


class ResponseStatus:
    SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
    FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
    PARTIAL_SUCCESS = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"


class Severity:
    ERROR = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
    WARNING = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Warning"


class ObjectType:
    REGISTRY_PACKAGE = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:RegistryPackage"
    CLASSIFICATION = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification"
    EXTERNAL_IDENTIFIER = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:ExternalIdentifier"
    ASSOCIATION = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association"
    STABLE_DOCUMENT = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
    ON_DEMAND_DOCUMENT = "urn:uuid:34268e47-fdf5-41a6-ba33-82133c465248"


class DOC:
    """DocumentEntry classification and identification schemes (TF-3 table 4.2.5-1)."""
    AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
    CLASS_CODE = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
    CONFIDENTIALITY_CODE = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
    EVENT_CODE = "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4"
    FORMAT_CODE = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
    HEALTHCARE_FACILITY_TYPE_CODE = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
    PRACTICE_SETTING_CODE = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
    TYPE_CODE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
    PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
    UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
    LIMITED_METADATA = "urn:uuid:ab9b591b-83ab-4d03-8f5d-f93b1fb92e85"


class SS:
    """SubmissionSet schemes (TF-3 table 4.2.5-2)."""
    CLASSIFICATION_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
    AUTHOR = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
    CONTENT_TYPE_CODE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
    PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
    SOURCE_ID = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
    UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
    LIMITED_METADATA = "urn:uuid:5003a9db-8d8d-49e6-bf0c-990e34ac7707"


class FOL:
    """Folder schemes (TF-3 table 4.2.5-3)."""
    CLASSIFICATION_NODE = "urn:uuid:d9d542f3-6cc4-48b6-8870-ea235fbc94c2"
    CODE_LIST = "urn:uuid:1ba97051-7806-41a8-a48b-8fce7af683c5"
    PATIENT_ID = "urn:uuid:f64ffdf0-4b97-4e06-b79f-a52b38ec2f8a"
    UNIQUE_ID = "urn:uuid:75df8f67-9973-4fbe-a900-df66cefecc5a"
    LIMITED_METADATA = "urn:uuid:2c144a76-29a9-4b7c-af54-b25409fe7d03"


ASSOCIATION_DOCUMENTATION = "urn:uuid:abd807a3-4432-4053-87b4-fd82c643d1f3"


class AssocType:
    HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
    RPLC = "urn:ihe:iti:2007:AssociationType:RPLC"
    XFRM = "urn:ihe:iti:2007:AssociationType:XFRM"
    APND = "urn:ihe:iti:2007:AssociationType:APND"
    XFRM_RPLC = "urn:ihe:iti:2007:AssociationType:XFRM_RPLC"
    SIGNS = "urn:ihe:iti:2007:AssociationType:signs"
    IS_SNAPSHOT_OF = "urn:ihe:iti:2010:AssociationType:IsSnapshotOf"

    RELATIONSHIPS = (RPLC, XFRM, APND, XFRM_RPLC, SIGNS, IS_SNAPSHOT_OF)
    REPLACEMENTS = (RPLC, XFRM_RPLC)
    ALL = (HAS_MEMBER,) + RELATIONSHIPS


SUBMISSION_SET_STATUS = "SubmissionSetStatus"


class MetadataUpdate:
    """XDS Metadata Update vocabulary (ITI TF-2 3.57.4.1.3, ITI TF-3 4.2.2.1.x)."""
    UPDATE_AVAILABILITY_STATUS = "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus"
    SUBMIT_ASSOCIATION = "urn:ihe:iti:2010:AssociationType:SubmitAssociation"
    """The Submit Association operation's SubmissionSet-to-Association link of the Metadata Update
    supplement's trial texts, which the NIST tests send; the TF's form is a HasMember."""
    PREVIOUS_VERSION = "PreviousVersion"
    ASSOCIATION_PROPAGATION = "AssociationPropagation"
    ORIGINAL_STATUS = "OriginalStatus"
    NEW_STATUS = "NewStatus"
    PROPAGATION_VALUES = ("yes", "no")
    STATUSES = ("urn:oasis:names:tc:ebxml-regrep:StatusType:Approved",
                "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated")
    """The availabilityStatus values an UpdateAvailabilityStatus may name (ITI TF-2 3.57.4.1.3.3.2)."""
    LEVELS = (1, 2)
    """$MetadataLevel: 1 without, 2 with Metadata Update (ITI TF-2 3.18.4.1.2.3.5.1)."""


STORED_QUERIES = {
    "FindDocuments": "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d",
    "FindSubmissionSets": "urn:uuid:f26abbcb-ac74-4422-8a30-edb644bbc1a9",
    "FindFolders": "urn:uuid:958f3006-baad-4929-a4de-ff1114824431",
    "GetAll": "urn:uuid:10b545ea-725c-446d-9b95-8aeb444eddf3",
    "GetDocuments": "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4",
    "GetFolders": "urn:uuid:5737b14c-8a1a-4539-b659-e03a34a5e1e4",
    "GetAssociations": "urn:uuid:a7ae438b-4bc2-4642-93e9-be891f7bb155",
    "GetDocumentsAndAssociations": "urn:uuid:bab9529a-4a10-40b3-a01f-f68a615d247a",
    "GetSubmissionSets": "urn:uuid:51224314-5390-4169-9b91-b1980040715a",
    "GetSubmissionSetAndContents": "urn:uuid:e8e3cb2c-e39c-46b9-99e4-c12f57260b83",
    "GetFolderAndContents": "urn:uuid:b909a503-523d-4517-8acf-8e5834dfc4c7",
    "GetFoldersForDocument": "urn:uuid:10cae35a-c7f9-4cf5-b61e-fc3278ffb578",
    "GetRelatedDocuments": "urn:uuid:d90e5407-b356-4d91-a89f-873917b4b0e6",
    "FindDocumentsByReferenceId": "urn:uuid:12941a89-e02e-4be5-967c-ce4bfc8fe492",
}
"""The stored query ids of ITI TF-2 3.18.4.1.2.3.7, by the TF's query name."""

QUERY_PATIENT_PARAMETERS = ("$XDSDocumentEntryPatientId", "$XDSSubmissionSetPatientId", "$XDSFolderPatientId",
                            "$patientId")
"""The parameters by which a Find or GetAll stored query names its patient."""


class Actions:
    """WS-Addressing actions (ITI TF-2 3.18, 3.41, 3.42, 3.43)."""
    REGISTER = "urn:ihe:iti:2007:RegisterDocumentSet-b"
    REGISTER_RESPONSE = "urn:ihe:iti:2007:RegisterDocumentSet-bResponse"
    STORED_QUERY = "urn:ihe:iti:2007:RegistryStoredQuery"
    STORED_QUERY_RESPONSE = "urn:ihe:iti:2007:RegistryStoredQueryResponse"
    PROVIDE = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
    PROVIDE_RESPONSE = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse"
    RETRIEVE = "urn:ihe:iti:2007:RetrieveDocumentSet"
    RETRIEVE_RESPONSE = "urn:ihe:iti:2007:RetrieveDocumentSetResponse"
    REMOVE_METADATA = "urn:ihe:iti:2010:DeleteDocumentSet"
    """ITI-62 Remove Metadata (ITI TF-2 3.62.4.1.2)."""
    REMOVE_METADATA_RESPONSE = "urn:ihe:iti:2010:DeleteDocumentSetResponse"
    REMOVE_DOCUMENTS = "urn:ihe:iti:2017:RemoveDocuments"
    """ITI-86 Remove Documents (ITI TF-2 3.86.4.1.2)."""
    REMOVE_DOCUMENTS_RESPONSE = "urn:ihe:iti:2017:RemoveDocumentsResponse"
    UPDATE = "urn:ihe:iti:2010:UpdateDocumentSet"
    UPDATE_RESPONSE = "urn:ihe:iti:2010:UpdateDocumentSetResponse"
