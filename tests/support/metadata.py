"""Valid XDS metadata for tests, with fresh identifiers on every call.

Built with the project's own model (``xds.metadata``) and written with ``to_rim()``: the same
ebRIM a Document Source would send. Each helper returns model objects a test may change before
``objects()`` turns them into the request's RegistryObjectList.
"""
from __future__ import annotations

import hashlib
import itertools
import random
from dataclasses import dataclass, field

from lxml import etree

from xds import rim
from xds.metadata import Association, Author, Code, DocumentEntry, Folder, SubmissionSet, new_uuid
from xds.rim import RegistryObject
from xds.vocabulary import AssocType

ROOT = "1.2.250.1.999.7"
_counter = itertools.count(1)
_run = random.randrange(10**6, 10**7)

AUTHOR_PERSON = "801234567890^DUPONT^Jean^^^Dr^^^&1.2.250.1.71.4.2.1&ISO"
AUTHOR_INSTITUTION = "Hopital Saint-Louis^^^^^&1.2.250.1.71.4.2.2&ISO^^^^3750100018"


def fresh_oid() -> str:
    return f"{ROOT}.{_run}.{next(_counter)}"


def fresh_patient() -> str:
    """A new INS-NIR test id: 13 random digits and their check key (xds.patient)."""
    number = random.randrange(10**12, 10**13)
    return f"{number}{97 - number % 97:02d}^^^&1.2.250.1.213.1.4.10&ISO^NH"


def document_entry(patient: str, entry_id: str | None = None, content: bytes | None = None, **changes) -> DocumentEntry:
    content = content if content is not None else f"document {next(_counter)}".encode()
    doc = DocumentEntry(
        entry_uuid=entry_id or f"Document{next(_counter)}", unique_id=fresh_oid(), patient_id=patient,
        mime_type="text/xml", title="Compte rendu",
        class_code=Code("10", "1.2.250.1.213.1.1.4.1", "Compte rendu"),
        type_code=Code("11490-0", "2.16.840.1.113883.6.1", "Lettre de sortie"),
        format_code=Code("urn:ihe:iti:xds-sd:text:2008", "1.3.6.1.4.1.19376.1.2.3", "Texte"),
        healthcare_facility_type_code=Code("SA01", "1.2.250.1.71.4.2.4", "Etablissement public"),
        practice_setting_code=Code("ETABLISSEMENT", "1.2.250.1.213.1.1.4.9", "Etablissement de sante"),
        confidentiality_codes=[Code("N", "2.16.840.1.113883.5.25", "Normal")],
        authors=[Author(AUTHOR_PERSON, [AUTHOR_INSTITUTION], ["Medecin"])],
        creation_time="20240501093000", hash=hashlib.sha1(content).hexdigest(), size=len(content),
        repository_unique_id="1.2.250.1.999.2.1", language_code="fr-FR",
        source_patient_id="P-0042^^^&1.2.250.1.999.3&ISO", source_patient_info=["PID-5|DUPONT^Marie"],
    )
    for key, value in changes.items():
        setattr(doc, key, value)
    return doc


def submission_set(patient: str, entry_id: str = "SubmissionSet01") -> SubmissionSet:
    return SubmissionSet(entry_uuid=entry_id, unique_id=fresh_oid(), patient_id=patient, source_id="1.2.250.1.999.5",
                         submission_time="20240501100000",
                         content_type_code=Code("04", "1.2.250.1.213.2.2", "Hospitalisation"),
                         authors=[Author(AUTHOR_PERSON, [AUTHOR_INSTITUTION])])


def folder(patient: str, entry_id: str = "Folder01") -> Folder:
    return Folder(entry_uuid=entry_id, unique_id=fresh_oid(), patient_id=patient,
                  codes=[Code("SEJOUR", "1.2.250.1.999.6", "Sejour")], title="Sejour")


@dataclass
class SubmissionDraft:
    """One SubmitObjectsRequest in the making."""
    patient: str
    submission_set: SubmissionSet
    documents: list[DocumentEntry] = field(default_factory=list)
    folders: list[Folder] = field(default_factory=list)
    associations: list[Association] = field(default_factory=list)

    def add_document(self, doc: DocumentEntry | None = None, status: str = "Original") -> DocumentEntry:
        doc = doc or document_entry(self.patient)
        self.documents.append(doc)
        self.associations.append(Association(new_uuid(), AssocType.HAS_MEMBER, self.submission_set.entry_uuid,
                                             doc.entry_uuid, submission_set_status=status))
        return doc

    def add_folder(self, fol: Folder | None = None) -> Folder:
        fol = fol or folder(self.patient, f"Folder{next(_counter)}")
        self.folders.append(fol)
        self.associations.append(Association(new_uuid(), AssocType.HAS_MEMBER, self.submission_set.entry_uuid,
                                             fol.entry_uuid))
        return fol

    def file_in_folder(self, folder_id: str, doc_id: str) -> Association:
        """Folder HasMember DocumentEntry, itself a member of the SubmissionSet (TF-3 4.1.4.3)."""
        member = Association(new_uuid(), AssocType.HAS_MEMBER, folder_id, doc_id)
        self.associations.append(member)
        self.associations.append(Association(new_uuid(), AssocType.HAS_MEMBER, self.submission_set.entry_uuid,
                                             member.entry_uuid))
        return member

    def relate(self, kind: str, source: str, target: str) -> Association:
        a = Association(new_uuid(), kind, source, target)
        self.associations.append(a)
        return a

    def objects(self) -> list[RegistryObject]:
        out: list[RegistryObject] = [d.to_rim() for d in self.documents]
        out += self.submission_set.to_rim()
        for f in self.folders:
            out += f.to_rim()
        out += [a.to_rim() for a in self.associations]
        return out

    def request(self) -> etree._Element:
        return rim.submit_objects_request(self.objects())


def draft(patient: str, documents: int = 1) -> SubmissionDraft:
    d = SubmissionDraft(patient, submission_set(patient))
    for _ in range(documents):
        d.add_document()
    return d
