"""The patients a submission is for, as the submit decision reads them (ITI TF-3 4.2.3.2.16,
4.2.3.3.7, 4.2.3.4.4): every patientId ExternalIdentifier of its DocumentEntries, SubmissionSet
and Folders, each scheme taken from ``xds.vocabulary``."""
from __future__ import annotations

from lxml import etree

from transactions.submission import patients_of
from xds.vocabulary import DOC, FOL, NS_RIM, SS, q


def _object_list(*identifiers: tuple[str, str]) -> etree._Element:
    root = etree.Element(q(NS_RIM, "RegistryObjectList"), nsmap={"rim": NS_RIM})
    for scheme, value in identifiers:
        etree.SubElement(root, q(NS_RIM, "ExternalIdentifier"), identificationScheme=scheme, value=value)
    return root


def test_the_folder_patient_id_is_one_of_the_submission_s_patients():
    assert patients_of(_object_list((FOL.PATIENT_ID, "folder-patient"))) == {"folder-patient"}


def test_document_submission_set_and_folder_patient_ids_are_all_read():
    assert patients_of(_object_list((DOC.PATIENT_ID, "a"), (SS.PATIENT_ID, "b"), (FOL.PATIENT_ID, "c"))) == \
        {"a", "b", "c"}


def test_other_identifiers_are_not_patients():
    assert patients_of(_object_list((DOC.UNIQUE_ID, "1.2.3"), (SS.SOURCE_ID, "1.2.4"))) == set()
