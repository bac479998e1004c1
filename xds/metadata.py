"""The XDS metadata model (ITI TF-3 4.1, 4.2): DocumentEntry, SubmissionSet, Folder, Association.

Plain dataclasses read from (``from_rim``) and written to (``to_rim``) the generic ebRIM objects
of :mod:`xds.rim`. Slots the TF does not define are kept in ``extra_slots`` (TF-3 4.2.3.1.6,
extra metadata) so that nothing a Document Source sent is lost.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from xds.rim import LocalizedString, RegistryObject, Slot, VersionInfo
from xds.vocabulary import DOC, FOL, SS, SUBMISSION_SET_STATUS, AssocType, ObjectType, Status

CODING_SCHEME = "codingScheme"
AUTHOR_SLOTS = ("authorPerson", "authorInstitution", "authorRole", "authorSpecialty", "authorTelecommunication")
REFERENCE_ID_LIST = "urn:ihe:iti:xds:2013:referenceIdList"

DOC_SLOTS = ("creationTime", "hash", "languageCode", "legalAuthenticator", "repositoryUniqueId",
             "serviceStartTime", "serviceStopTime", "size", "sourcePatientId", "sourcePatientInfo", "URI",
             REFERENCE_ID_LIST, "documentAvailability")
SS_SLOTS = ("submissionTime", "intendedRecipient")
FOLDER_SLOTS = ("lastUpdateTime",)


def new_uuid() -> str:
    return "urn:uuid:" + str(uuid.uuid4())


@dataclass
class Code:
    """A coded value: ``nodeRepresentation``, the ``codingScheme`` slot and the display name."""
    code: str
    scheme: str
    display_name: str = ""
    id: str | None = field(default=None, compare=False)

    def key(self) -> str:
        """The form stored queries use: ``code^^^&scheme&ISO`` reduced to ``code^^scheme``."""
        return f"{self.code}^^{self.scheme}"


@dataclass
class Author:
    person: str | None = None
    institutions: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    specialties: list[str] = field(default_factory=list)
    telecommunications: list[str] = field(default_factory=list)
    id: str | None = field(default=None, compare=False)


def _codes(obj: RegistryObject, scheme: str) -> list[Code]:
    out = []
    for c in obj.classifications:
        if c.get("classificationScheme") == scheme:
            out.append(Code(c.get("nodeRepresentation") or "", c.slot_value(CODING_SCHEME) or "",
                            c.name_text() or "", c.id or None))
    return out


def _one_code(obj: RegistryObject, scheme: str) -> Code | None:
    codes = _codes(obj, scheme)
    return codes[0] if codes else None


def _authors(obj: RegistryObject, scheme: str) -> list[Author]:
    out = []
    for c in obj.classifications:
        if c.get("classificationScheme") == scheme:
            out.append(Author(c.slot_value("authorPerson"), c.slot_values("authorInstitution"),
                              c.slot_values("authorRole"), c.slot_values("authorSpecialty"),
                              c.slot_values("authorTelecommunication"), c.id or None))
    return out


def _external_id(obj: RegistryObject, scheme: str) -> str | None:
    for e in obj.external_identifiers:
        if e.get("identificationScheme") == scheme:
            return e.get("value")
    return None


def _extra(obj: RegistryObject, known: tuple[str, ...]) -> list[Slot]:
    return [s for s in obj.slots if s.name not in known]


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


# ----------------------------------------------------------------------------- writing helpers

def _ls(text: str | None) -> list[LocalizedString] | None:
    return [LocalizedString(text)] if text is not None else None


def _code_classification(owner: str, scheme: str, code: Code) -> RegistryObject:
    return RegistryObject(
        tag="Classification", id=code.id or new_uuid(),
        attributes={"classificationScheme": scheme, "classifiedObject": owner,
                    "nodeRepresentation": code.code, "objectType": ObjectType.CLASSIFICATION},
        slots=[Slot(CODING_SCHEME, [code.scheme])], name=_ls(code.display_name or code.code))


def _author_classification(owner: str, scheme: str, author: Author) -> RegistryObject:
    slots = []
    if author.person:
        slots.append(Slot("authorPerson", [author.person]))
    for name, values in (("authorInstitution", author.institutions), ("authorRole", author.roles),
                         ("authorSpecialty", author.specialties),
                         ("authorTelecommunication", author.telecommunications)):
        if values:
            slots.append(Slot(name, list(values)))
    return RegistryObject(tag="Classification", id=author.id or new_uuid(),
                          attributes={"classificationScheme": scheme, "classifiedObject": owner,
                                      "nodeRepresentation": "", "objectType": ObjectType.CLASSIFICATION},
                          slots=slots)


def _identifier(owner: str, scheme: str, value: str, name: str) -> RegistryObject:
    return RegistryObject(tag="ExternalIdentifier", id=new_uuid(),
                          attributes={"registryObject": owner, "identificationScheme": scheme,
                                      "objectType": ObjectType.EXTERNAL_IDENTIFIER, "value": value},
                          name=_ls(name))


def _slot(slots: list[Slot], name: str, value: object) -> None:
    if value is None or value == [] or value == "":
        return
    slots.append(Slot(name, [str(v) for v in value] if isinstance(value, list) else [str(value)]))


def _common_attrs(entry: DocumentEntry | SubmissionSet | Folder | Association,
                  object_type: str | None) -> dict[str, str]:
    attrs: dict[str, str] = {}
    if object_type:
        attrs["objectType"] = object_type
    if entry.status:
        attrs["status"] = entry.status
    if isinstance(entry, DocumentEntry) and entry.logical_id:
        attrs["lid"] = entry.logical_id
    if entry.home:
        attrs["home"] = entry.home
    return attrs


def _registry_package(entry: SubmissionSet | Folder, slots: list[Slot],
                      node_id: str) -> tuple[RegistryObject, RegistryObject]:
    """A SubmissionSet's or Folder's RegistryPackage and the Classification that says which it is
    (TF-3 4.1.9.1, 4.2.3.3, 4.2.3.4)."""
    package = RegistryObject(tag="RegistryPackage", id=entry.entry_uuid,
                             attributes=_common_attrs(entry, ObjectType.REGISTRY_PACKAGE), slots=slots,
                             name=_ls(entry.title), description=_ls(entry.comments))
    node = RegistryObject(tag="Classification", id=new_uuid(),
                          attributes={"classifiedObject": entry.entry_uuid, "classificationNode": node_id,
                                      "objectType": ObjectType.CLASSIFICATION})
    return package, node


# ----------------------------------------------------------------------------- DocumentEntry

@dataclass
class DocumentEntry:
    """XDSDocumentEntry (TF-3 4.2.3.2)."""
    entry_uuid: str
    unique_id: str | None = None
    patient_id: str | None = None
    object_type: str = ObjectType.STABLE_DOCUMENT
    mime_type: str | None = None
    status: str | None = None
    home: str | None = None
    logical_id: str | None = None
    version: str | None = None
    title: str | None = None
    comments: str | None = None
    class_code: Code | None = None
    type_code: Code | None = None
    format_code: Code | None = None
    healthcare_facility_type_code: Code | None = None
    practice_setting_code: Code | None = None
    confidentiality_codes: list[Code] = field(default_factory=list)
    event_codes: list[Code] = field(default_factory=list)
    authors: list[Author] = field(default_factory=list)
    creation_time: str | None = None
    service_start_time: str | None = None
    service_stop_time: str | None = None
    hash: str | None = None
    size: int | None = None
    repository_unique_id: str | None = None
    language_code: str | None = None
    legal_authenticator: str | None = None
    source_patient_id: str | None = None
    source_patient_info: list[str] = field(default_factory=list)
    uri: str | None = None
    reference_ids: list[str] = field(default_factory=list)
    extra_slots: list[Slot] = field(default_factory=list)
    limited_metadata: bool = False

    @classmethod
    def from_rim(cls, o: RegistryObject) -> DocumentEntry:
        return cls(
            entry_uuid=o.id, unique_id=_external_id(o, DOC.UNIQUE_ID), patient_id=_external_id(o, DOC.PATIENT_ID),
            object_type=o.get("objectType") or "", mime_type=o.get("mimeType"), status=o.get("status"),
            home=o.get("home"), logical_id=o.get("lid"),
            version=o.version_info.version_name if o.version_info else None,
            title=o.name_text(), comments=o.description_text(),
            class_code=_one_code(o, DOC.CLASS_CODE), type_code=_one_code(o, DOC.TYPE_CODE),
            format_code=_one_code(o, DOC.FORMAT_CODE),
            healthcare_facility_type_code=_one_code(o, DOC.HEALTHCARE_FACILITY_TYPE_CODE),
            practice_setting_code=_one_code(o, DOC.PRACTICE_SETTING_CODE),
            confidentiality_codes=_codes(o, DOC.CONFIDENTIALITY_CODE), event_codes=_codes(o, DOC.EVENT_CODE),
            authors=_authors(o, DOC.AUTHOR),
            creation_time=o.slot_value("creationTime"), service_start_time=o.slot_value("serviceStartTime"),
            service_stop_time=o.slot_value("serviceStopTime"), hash=o.slot_value("hash"),
            size=_int(o.slot_value("size")), repository_unique_id=o.slot_value("repositoryUniqueId"),
            language_code=o.slot_value("languageCode"), legal_authenticator=o.slot_value("legalAuthenticator"),
            source_patient_id=o.slot_value("sourcePatientId"), source_patient_info=o.slot_values("sourcePatientInfo"),
            uri=o.slot_value("URI"), reference_ids=o.slot_values(REFERENCE_ID_LIST),
            extra_slots=_extra(o, DOC_SLOTS),
            limited_metadata=any(c.get("classificationNode") == DOC.LIMITED_METADATA for c in o.classifications),
        )

    def to_rim(self) -> RegistryObject:
        slots: list[Slot] = []
        for name, value in (("creationTime", self.creation_time), ("hash", self.hash),
                            ("languageCode", self.language_code), ("legalAuthenticator", self.legal_authenticator),
                            ("repositoryUniqueId", self.repository_unique_id),
                            ("serviceStartTime", self.service_start_time), ("serviceStopTime", self.service_stop_time),
                            ("size", self.size), ("sourcePatientId", self.source_patient_id),
                            ("sourcePatientInfo", self.source_patient_info), ("URI", self.uri),
                            (REFERENCE_ID_LIST, self.reference_ids)):
            _slot(slots, name, value)
        slots += self.extra_slots
        attrs = {"mimeType": self.mime_type} if self.mime_type else {}
        attrs.update(_common_attrs(self, self.object_type))
        o = RegistryObject(tag="ExtrinsicObject", id=self.entry_uuid, attributes=attrs, slots=slots,
                           name=_ls(self.title), description=_ls(self.comments),
                           version_info=VersionInfo(self.version) if self.version else None)
        me = self.entry_uuid
        for a in self.authors:
            o.classifications.append(_author_classification(me, DOC.AUTHOR, a))
        for scheme, code in ((DOC.CLASS_CODE, self.class_code), (DOC.FORMAT_CODE, self.format_code),
                             (DOC.HEALTHCARE_FACILITY_TYPE_CODE, self.healthcare_facility_type_code),
                             (DOC.PRACTICE_SETTING_CODE, self.practice_setting_code), (DOC.TYPE_CODE, self.type_code)):
            if code is not None:
                o.classifications.append(_code_classification(me, scheme, code))
        for code in self.confidentiality_codes:
            o.classifications.append(_code_classification(me, DOC.CONFIDENTIALITY_CODE, code))
        for code in self.event_codes:
            o.classifications.append(_code_classification(me, DOC.EVENT_CODE, code))
        if self.patient_id:
            o.external_identifiers.append(_identifier(me, DOC.PATIENT_ID, self.patient_id,
                                                      "XDSDocumentEntry.patientId"))
        if self.unique_id:
            o.external_identifiers.append(_identifier(me, DOC.UNIQUE_ID, self.unique_id, "XDSDocumentEntry.uniqueId"))
        return o


# ----------------------------------------------------------------------------- SubmissionSet

@dataclass
class SubmissionSet:
    """XDSSubmissionSet (TF-3 4.2.3.3)."""
    entry_uuid: str
    unique_id: str | None = None
    patient_id: str | None = None
    source_id: str | None = None
    submission_time: str | None = None
    content_type_code: Code | None = None
    authors: list[Author] = field(default_factory=list)
    intended_recipients: list[str] = field(default_factory=list)
    title: str | None = None
    comments: str | None = None
    status: str | None = None
    home: str | None = None
    extra_slots: list[Slot] = field(default_factory=list)
    limited_metadata: bool = False

    @classmethod
    def from_rim(cls, o: RegistryObject) -> SubmissionSet:
        return cls(
            entry_uuid=o.id, unique_id=_external_id(o, SS.UNIQUE_ID), patient_id=_external_id(o, SS.PATIENT_ID),
            source_id=_external_id(o, SS.SOURCE_ID), submission_time=o.slot_value("submissionTime"),
            content_type_code=_one_code(o, SS.CONTENT_TYPE_CODE), authors=_authors(o, SS.AUTHOR),
            intended_recipients=o.slot_values("intendedRecipient"), title=o.name_text(),
            comments=o.description_text(), status=o.get("status"), home=o.get("home"),
            extra_slots=_extra(o, SS_SLOTS),
            limited_metadata=any(c.get("classificationNode") == SS.LIMITED_METADATA for c in o.classifications),
        )

    def to_rim(self) -> list[RegistryObject]:
        """The RegistryPackage and its SubmissionSet classification (TF-3 4.2.3.3, 4.1.9.1)."""
        slots: list[Slot] = []
        _slot(slots, "submissionTime", self.submission_time)
        _slot(slots, "intendedRecipient", self.intended_recipients)
        slots += self.extra_slots
        o, node = _registry_package(self, slots, SS.CLASSIFICATION_NODE)
        me = self.entry_uuid
        for a in self.authors:
            o.classifications.append(_author_classification(me, SS.AUTHOR, a))
        if self.content_type_code is not None:
            o.classifications.append(_code_classification(me, SS.CONTENT_TYPE_CODE, self.content_type_code))
        for scheme, value, name in ((SS.UNIQUE_ID, self.unique_id, "XDSSubmissionSet.uniqueId"),
                                    (SS.SOURCE_ID, self.source_id, "XDSSubmissionSet.sourceId"),
                                    (SS.PATIENT_ID, self.patient_id, "XDSSubmissionSet.patientId")):
            if value:
                o.external_identifiers.append(_identifier(me, scheme, value, name))
        return [o, node]


# ----------------------------------------------------------------------------- Folder

@dataclass
class Folder:
    """XDSFolder (TF-3 4.2.3.4)."""
    entry_uuid: str
    unique_id: str | None = None
    patient_id: str | None = None
    codes: list[Code] = field(default_factory=list)
    last_update_time: str | None = None
    title: str | None = None
    comments: str | None = None
    status: str | None = None
    home: str | None = None
    extra_slots: list[Slot] = field(default_factory=list)
    limited_metadata: bool = False

    @classmethod
    def from_rim(cls, o: RegistryObject) -> Folder:
        return cls(
            entry_uuid=o.id, unique_id=_external_id(o, FOL.UNIQUE_ID), patient_id=_external_id(o, FOL.PATIENT_ID),
            codes=_codes(o, FOL.CODE_LIST), last_update_time=o.slot_value("lastUpdateTime"), title=o.name_text(),
            comments=o.description_text(), status=o.get("status"), home=o.get("home"),
            extra_slots=_extra(o, FOLDER_SLOTS),
            limited_metadata=any(c.get("classificationNode") == FOL.LIMITED_METADATA for c in o.classifications),
        )

    def to_rim(self) -> list[RegistryObject]:
        slots: list[Slot] = []
        _slot(slots, "lastUpdateTime", self.last_update_time)
        slots += self.extra_slots
        o, node = _registry_package(self, slots, FOL.CLASSIFICATION_NODE)
        me = self.entry_uuid
        for code in self.codes:
            o.classifications.append(_code_classification(me, FOL.CODE_LIST, code))
        if self.patient_id:
            o.external_identifiers.append(_identifier(me, FOL.PATIENT_ID, self.patient_id, "XDSFolder.patientId"))
        if self.unique_id:
            o.external_identifiers.append(_identifier(me, FOL.UNIQUE_ID, self.unique_id, "XDSFolder.uniqueId"))
        return [o, node]


# ----------------------------------------------------------------------------- Association

@dataclass
class Association:
    """An ebRIM Association with its XDS meaning (TF-3 4.2.2)."""
    entry_uuid: str
    association_type: str
    source: str
    target: str
    submission_set_status: str | None = None
    status: str | None = None
    home: str | None = None
    extra_slots: list[Slot] = field(default_factory=list)

    @classmethod
    def from_rim(cls, o: RegistryObject) -> Association:
        return cls(entry_uuid=o.id, association_type=o.get("associationType") or "",
                   source=o.get("sourceObject") or "", target=o.get("targetObject") or "",
                   submission_set_status=o.slot_value(SUBMISSION_SET_STATUS), status=o.get("status"),
                   home=o.get("home"), extra_slots=_extra(o, (SUBMISSION_SET_STATUS,)))

    def to_rim(self) -> RegistryObject:
        slots: list[Slot] = []
        _slot(slots, SUBMISSION_SET_STATUS, self.submission_set_status)
        slots += self.extra_slots
        attrs = {"associationType": self.association_type, "sourceObject": self.source,
                 "targetObject": self.target, **_common_attrs(self, ObjectType.ASSOCIATION)}
        return RegistryObject(tag="Association", id=self.entry_uuid, attributes=attrs, slots=slots)

    @property
    def is_relationship(self) -> bool:
        return self.association_type in AssocType.RELATIONSHIPS

    @property
    def is_replacement(self) -> bool:
        return self.association_type in AssocType.REPLACEMENTS


# ----------------------------------------------------------------------------- a submission

@dataclass
class Submission:
    """What one SubmitObjectsRequest carries, sorted by XDS kind (TF-3 4.1.4).

    ``objects`` keeps the parsed ebRIM in document order: the registry stores that, so that
    query answers return exactly what was registered.
    """
    objects: list[RegistryObject]
    documents: list[DocumentEntry] = field(default_factory=list)
    submission_sets: list[SubmissionSet] = field(default_factory=list)
    folders: list[Folder] = field(default_factory=list)
    associations: list[Association] = field(default_factory=list)
    object_refs: list[str] = field(default_factory=list)
    others: list[RegistryObject] = field(default_factory=list)

    @classmethod
    def from_objects(cls, objects: list[RegistryObject]) -> Submission:
        sub = cls(objects=objects)
        ss_ids = {c.get("classifiedObject") for c in objects
                  if c.tag == "Classification" and c.get("classificationNode") == SS.CLASSIFICATION_NODE}
        folder_ids = {c.get("classifiedObject") for c in objects
                      if c.tag == "Classification" and c.get("classificationNode") == FOL.CLASSIFICATION_NODE}
        for o in objects:
            nodes = {c.get("classificationNode") for c in o.classifications}
            if o.tag == "ExtrinsicObject":
                sub.documents.append(DocumentEntry.from_rim(o))
            elif o.tag == "RegistryPackage" and (o.id in ss_ids or SS.CLASSIFICATION_NODE in nodes):
                sub.submission_sets.append(SubmissionSet.from_rim(o))
            elif o.tag == "RegistryPackage" and (o.id in folder_ids or FOL.CLASSIFICATION_NODE in nodes):
                sub.folders.append(Folder.from_rim(o))
            elif o.tag == "Association":
                sub.associations.append(Association.from_rim(o))
            elif o.tag == "ObjectRef":
                sub.object_refs.append(o.id)
            else:
                sub.others.append(o)
        return sub

    @property
    def submission_set(self) -> SubmissionSet | None:
        return self.submission_sets[0] if self.submission_sets else None


def is_approved(status: str | None) -> bool:
    return status == Status.APPROVED
