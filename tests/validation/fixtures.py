"""A fully valid XDS submission, written by us, built the way a real request is read.

The model objects are turned into ebRIM with ``to_rim()`` and read back with
``Submission.from_objects``; a test changes one thing in the model (``Parts``) or in the ebRIM
list (``objects``) and validates the result.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from xds.metadata import Association, Author, Code, DocumentEntry, Folder, Submission, SubmissionSet
from xds.rim import RegistryObject
from xds.vocabulary import AssocType

PATIENT = "123456789012311^^^&1.2.250.1.213.1.4.10&ISO^NH"
OTHER_PATIENT = "987654321098704^^^&1.2.250.1.213.1.4.10&ISO^NH"
AUTHOR_PERSON = "801234567890^DUPONT^Jean^^^Dr^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
AUTHOR_INSTITUTION = "Hopital Saint-Louis^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^3750100018"
AUTHOR_TELECOM = "^PRN^Internet^jean.dupont@example.org"
EXISTING_DOC = "urn:uuid:0b7c8a4e-4c2b-4bb6-9a53-6e6f4a0e9a11"


def document() -> DocumentEntry:
    return DocumentEntry(
        entry_uuid="Document01", unique_id="1.2.250.1.999.1.1.20240501.1^A12",
        patient_id=PATIENT, mime_type="text/xml", title="Compte rendu d'hospitalisation",
        comments="sortie", class_code=Code("10", "1.2.250.1.213.1.1.4.1", "Compte rendu"),
        type_code=Code("11490-0", "2.16.840.1.113883.6.1", "Lettre de sortie"),
        format_code=Code("urn:ihe:iti:xds-sd:text:2008", "1.3.6.1.4.1.19376.1.2.3", "Scanned text"),
        healthcare_facility_type_code=Code("SA01", "1.2.250.1.71.4.2.4", "Etablissement public"),
        practice_setting_code=Code("ETABLISSEMENT", "1.2.250.1.213.1.1.4.9", "Etablissement de sante"),
        confidentiality_codes=[Code("N", "2.16.840.1.113883.5.25", "Normal")],
        event_codes=[Code("GLE", "1.2.250.1.213.2.12", "Glycemie")],
        authors=[Author(AUTHOR_PERSON, [AUTHOR_INSTITUTION], ["Medecin"], ["G15_10^Medecine generale^1.2.250.1.213.1.1.4.5"],
                        [AUTHOR_TELECOM])],
        creation_time="20240501093000", service_start_time="20240420", service_stop_time="20240430120000",
        hash="2fd4e1c67a2d28fced849ee1bb76e7391b93eb12", size=1024, repository_unique_id="1.2.250.1.999.2.1",
        language_code="fr-FR", legal_authenticator=AUTHOR_PERSON, source_patient_id="P-0042^^^&1.2.250.1.999.3&ISO",
        source_patient_info=["PID-3|P-0042^^^&1.2.250.1.999.3&ISO", "PID-5|DUPONT^Marie^^^^^L", "PID-7|19600101",
                             "PID-8|F"],
        reference_ids=["VN-7^^^&1.2.250.1.999.4&ISO^urn:ihe:iti:xds:2013:accession"],
    )


def submission_set() -> SubmissionSet:
    return SubmissionSet(
        entry_uuid="SubmissionSet01", unique_id="1.2.250.1.999.1.2.20240501.1", patient_id=PATIENT,
        source_id="1.2.250.1.999.5", submission_time="20240501100000",
        content_type_code=Code("04", "1.2.250.1.213.2.2", "Hospitalisation"),
        authors=[Author(AUTHOR_PERSON, [AUTHOR_INSTITUTION])],
        intended_recipients=[f"{AUTHOR_INSTITUTION}|{AUTHOR_PERSON}|{AUTHOR_TELECOM}"], title="Envoi")


def folder() -> Folder:
    return Folder(entry_uuid="Folder01", unique_id="1.2.250.1.999.1.3.20240501.1", patient_id=PATIENT,
                  codes=[Code("SEJOUR", "1.2.250.1.999.6", "Sejour")], title="Sejour mai 2024")


def associations() -> list[Association]:
    return [
        Association("as01", AssocType.HAS_MEMBER, "SubmissionSet01", "Document01", submission_set_status="Original"),
        Association("as02", AssocType.HAS_MEMBER, "SubmissionSet01", "Folder01"),
        Association("as03", AssocType.HAS_MEMBER, "Folder01", "Document01"),
        Association("as04", AssocType.HAS_MEMBER, "SubmissionSet01", "as03"),
        Association("as05", AssocType.RPLC, "Document01", EXISTING_DOC),
    ]


@dataclass
class Parts:
    """The model objects of the valid submission; change one, then ``build()``."""
    documents: list[DocumentEntry] = field(default_factory=lambda: [document()])
    submission_sets: list[SubmissionSet] = field(default_factory=lambda: [submission_set()])
    folders: list[Folder] = field(default_factory=lambda: [folder()])
    associations: list[Association] = field(default_factory=associations)

    def objects(self) -> list[RegistryObject]:
        objs: list[RegistryObject] = []
        for d in self.documents:
            objs.append(d.to_rim())
        for s in self.submission_sets:
            objs += s.to_rim()
        for f in self.folders:
            objs += f.to_rim()
        objs += [a.to_rim() for a in self.associations]
        return objs

    def build(self) -> Submission:
        return Submission.from_objects(self.objects())


def valid_submission() -> Submission:
    return Parts().build()
