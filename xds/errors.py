"""XDS error codes (ITI TF-3 table 4.2.4.1-2) and the registry error list carried in responses."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

from xds.vocabulary import Severity


class ErrorCode(str, Enum):
    MISSING_DOCUMENT = "XDSMissingDocument"
    MISSING_DOCUMENT_METADATA = "XDSMissingDocumentMetadata"
    REGISTRY_NOT_AVAILABLE = "XDSRegistryNotAvailable"
    REGISTRY_ERROR = "XDSRegistryError"
    REPOSITORY_ERROR = "XDSRepositoryError"
    REGISTRY_DUPLICATE_UNIQUE_ID_IN_MESSAGE = "XDSRegistryDuplicateUniqueIdInMessage"
    REPOSITORY_DUPLICATE_UNIQUE_ID_IN_MESSAGE = "XDSRepositoryDuplicateUniqueIdInMessage"
    DUPLICATE_UNIQUE_ID_IN_REGISTRY = "XDSDuplicateUniqueIdInRegistry"
    NON_IDENTICAL_HASH = "XDSNonIdenticalHash"
    NON_IDENTICAL_SIZE = "XDSNonIdenticalSize"
    REGISTRY_BUSY = "XDSRegistryBusy"
    REPOSITORY_BUSY = "XDSRepositoryBusy"
    REGISTRY_OUT_OF_RESOURCES = "XDSRegistryOutOfResources"
    REPOSITORY_OUT_OF_RESOURCES = "XDSRepositoryOutOfResources"
    REGISTRY_METADATA_ERROR = "XDSRegistryMetadataError"
    REPOSITORY_METADATA_ERROR = "XDSRepositoryMetadataError"
    TOO_MANY_RESULTS = "XDSTooManyResults"
    EXTRA_METADATA_NOT_SAVED = "XDSExtraMetadataNotSaved"
    UNKNOWN_PATIENT_ID = "XDSUnknownPatientId"
    PATIENT_ID_DOES_NOT_MATCH = "XDSPatientIdDoesNotMatch"
    UNKNOWN_STORED_QUERY = "XDSUnknownStoredQuery"
    STORED_QUERY_PARAM_NUMBER = "XDSStoredQueryParamNumber"
    STORED_QUERY_MISSING_PARAM = "XDSStoredQueryMissingParam"
    DOCUMENT_UNIQUE_ID_ERROR = "XDSDocumentUniqueIdError"
    RESULT_NOT_SINGLE_PATIENT = "XDSResultNotSinglePatient"
    UNKNOWN_REPOSITORY_ID = "XDSUnknownRepositoryId"
    UNKNOWN_COMMUNITY = "XDSUnknownCommunity"
    MISSING_HOME_COMMUNITY_ID = "XDSMissingHomeCommunityId"
    PARTIAL_FOLDER_CONTENT_NOT_PROCESSED = "XDSPartialFolderContentNotProcessed"
    PARTIAL_REPLACE_CONTENT_NOT_PROCESSED = "XDSPartialReplaceContentNotProcessed"
    REGISTRY_DEPRECATED_DOCUMENT_ERROR = "XDSRegistryDeprecatedDocumentError"
    UNRESOLVED_REFERENCE = "UnresolvedReferenceException"
    # Remove Metadata (ITI TF-2 3.62.4.1.3; ITI TF-3 Table 4.2.4.1-2)
    REFERENCES_EXIST = "ReferencesExistException"
    UNREFERENCED_OBJECT = "XDSUnreferencedObjectException"
    # XDS Metadata Update (ITI TF-3 Table 4.2.4.1-2, ITI TF-2 3.57.4.1.3)
    METADATA_UPDATE_ERROR = "XDSMetadataUpdateError"
    METADATA_VERSION_ERROR = "XDSMetadataVersionError"
    METADATA_UPDATE_OPERATION_ERROR = "XDSMetadataUpdateOperationError"
    PATIENT_ID_RECONCILIATION_ERROR = "XDSPatientIDReconciliationError"


@dataclass(frozen=True)
class RegistryError:
    """One ``rs:RegistryError`` (ebRS 3.0 section 2.1.6; ITI TF-3 4.2.4.1)."""
    code: str
    context: str
    location: str = ""
    severity: str = Severity.ERROR

    @property
    def is_error(self) -> bool:
        return self.severity == Severity.ERROR


@dataclass
class ErrorList:
    errors: list[RegistryError] = field(default_factory=list)

    def add(self, code: ErrorCode | str, context: str, location: str = "", warning: bool = False) -> None:
        self.errors.append(RegistryError(str(code.value if isinstance(code, ErrorCode) else code), context,
                                         location, Severity.WARNING if warning else Severity.ERROR))

    def extend(self, other: ErrorList) -> None:
        self.errors.extend(other.errors)

    @property
    def has_errors(self) -> bool:
        return any(e.is_error for e in self.errors)

    def __bool__(self) -> bool:
        return bool(self.errors)

    def __iter__(self) -> Iterator[RegistryError]:
        return iter(self.errors)


class XDSError(Exception):
    """Raised inside an actor service to end a transaction with the given errors."""

    def __init__(self, code: ErrorCode | str, context: str, location: str = "") -> None:
        super().__init__(f"{code.value if isinstance(code, ErrorCode) else code}: {context}")
        self.errors = ErrorList()
        self.errors.add(code, context, location)

    @classmethod
    def from_list(cls, errors: ErrorList) -> XDSError:
        first = errors.errors[0]
        exc = cls(first.code, first.context, first.location)
        exc.errors = errors
        return exc
