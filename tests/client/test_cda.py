"""The CDA header -> DocumentEntry mapping: every CI-SIS sample, precise values, our own edge cases."""
from __future__ import annotations

from pathlib import Path

import pytest

from client.cda import document_from_cda, embedded_body, ts_to_dtm
from client.documents import Overrides, load_document
from client.errors import InputError, MissingMetadata
from tests.conftest import shared_path
from xds.metadata import Code

SAMPLES = ["BIO-CR-BIO_2021.01_CDA-R2-Niveau-1.xml", "BIO-CR-BIO_2024.01_Microbiologie_V1.xml",
           "BIO-CR-BIO_2024.01_TSH_1.xml", "CNAM-HR_2021.01.xml", "IMG_CR_IMG_2024.01.xml", "LDL-SES_2022.01.xml",
           "TLM-CR_2022.01.xml", "VSM_1.4_2022.01.xml", "eDISP-MED_2024.01.xml", "eP-MED-DM_2024.01_PosoStruct.xml"]
EXPECTED = {  # file: (typeCode, classCode, formatCode, facility, practice setting)
    "BIO-CR-BIO_2021.01_CDA-R2-Niveau-1.xml": ("11502-2", "10", "urn:ihe:iti:xds-sd:pdf:2008", "SA25", "AMBULATOIRE"),
    "BIO-CR-BIO_2024.01_Microbiologie_V1.xml": ("11502-2", "10", "urn:ihe:lab:xd-lab:2008", "SA25", "AMBULATOIRE"),
    "BIO-CR-BIO_2024.01_TSH_1.xml": ("11502-2", "10", "urn:ihe:lab:xd-lab:2008", "SA25", "AMBULATOIRE"),
    "CNAM-HR_2021.01.xml": ("REMB", "60", "urn:asip:ci-sis:hr:2019", "SA24", "AMO"),
    "IMG_CR_IMG_2024.01.xml": ("18748-4", "10", "urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013", "SA08",
                               "AMBULATOIRE"),
    "LDL-SES_2022.01.xml": ("11490-0", "10", "urn:asip:ci-sis:ldl-ses:2017", "SA01", "ETABLISSEMENT"),
    "TLM-CR_2022.01.xml": ("85208-7", "10", "urn:ihe:iti:xds-sd:pdf:2008", "SA03", "ETABLISSEMENT"),
    "VSM_1.4_2022.01.xml": ("SYNTH", "11", "urn:asip:ci-sis:vsm:2012", "SA04", "ETABLISSEMENT"),
    "eDISP-MED_2024.01.xml": ("60593-1", "43", "urn:ihe:pharm:dis:2010", "SA33", "AMBULATOIRE"),
    "eP-MED-DM_2024.01_PosoStruct.xml": ("57833-6", "42", "urn:ihe:pharm:pre:2010", "SA07", "AMBULATOIRE"),
}
HERE = Path(__file__).parent


def sample(name: str):
    return document_from_cda(shared_path("samples", "cda", name).read_bytes(), name)


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_maps_with_all_mandatory_fields(name):
    d = sample(name)
    e = d.entry
    assert d.missing() == []
    assert (e.type_code.code, e.class_code.code, e.format_code.code, e.healthcare_facility_type_code.code,
            e.practice_setting_code.code) == EXPECTED[name]
    assert e.mime_type == "text/xml" and e.language_code == "fr-FR"
    assert e.patient_id.endswith("&ISO^NH") and e.source_patient_id == e.patient_id
    assert e.confidentiality_codes == [Code("N", "2.16.840.1.113883.5.25", "Normal")]
    assert len(e.creation_time) in (12, 14) and e.creation_time.isdigit()


def test_discharge_letter_precise_values():
    e = sample("LDL-SES_2022.01.xml").entry
    assert e.unique_id == "1.2.250.1.213.1.1.1.29.2022.1.1"
    assert e.patient_id == "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
    assert e.title == "Lettre de liaison à la sortie de l'établissement de santé"
    assert e.creation_time == "20191203123000"  # 20191203133000+0100 in UTC
    assert (e.service_start_time, e.service_stop_time) == ("20191029101700", "20191203123000")
    assert e.event_codes == [Code("IMP", "2.16.840.1.113883.5.4", "Hospitalisation (établissement, y compris HAD)")]
    a = e.authors[0]
    assert a.person == "801234567897^DAVID^Charles^^^M^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
    assert a.institutions == ["Hôpital Européen Georges Pompidou^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1750803447"]
    assert a.specialties == ["G15_10/SM27^Médecin - Médecine interne (SM)^^^^^^^^&1.2.250.1.213.1.1.4.5&ISO"]
    assert e.legal_authenticator == "801234567897^AUGUIN^Léon^^^M^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
    assert e.source_patient_info == ["PID-3|279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH",
                                     "PID-5|PAT-TROIS^DOMINIQUE^^^^^L", "PID-7|19790328", "PID-8|F"]
    assert e.practice_setting_code == Code("ETABLISSEMENT", "1.2.250.1.213.1.1.4.9", "Etablissement de santé")


def test_imaging_report_replacement_and_orders():
    d = sample("IMG_CR_IMG_2024.01.xml")
    assert d.replaces == ["90E1C8EC-F951-4B26-A305-A34848818DD6"]
    assert d.entry.reference_ids == ["984375862^^^&1.2.250.1.748.12345678.12&ISO^urn:ihe:iti:xds:2013:order",
                                     "984375863^^^&1.2.250.1.748.12345678.12&ISO^urn:ihe:iti:xds:2013:order"]


def test_dispensation_ins_nir_and_device_author():
    e = sample("eDISP-MED_2024.01.xml").entry
    assert e.patient_id == "277076322082910^^^&1.2.250.1.213.1.4.8&ISO^NH"
    device, pharmacist = e.authors
    assert device.person == "578435954900010/1.2.250.1.176.1^Dossier Pharmaceutique^^^^^^^&1.2.250.1.71.4.2.1&ISO"
    assert pharmacist.person.startswith("807505123456^DELIVE^Pierre^")


def test_pdf_body_is_xds_sd_and_decodes():
    d = sample("TLM-CR_2022.01.xml")
    assert d.body_media_type == "application/pdf"
    media, pdf = embedded_body(d.content)
    assert media == "application/pdf" and pdf.startswith(b"%PDF-")


def test_lab_report_orders_and_service_times_over_several_service_events():
    e = sample("BIO-CR-BIO_2024.01_TSH_1.xml").entry
    assert e.reference_ids == ["2014123456789^^^&1.2.250.1.213.1.1.9&ISO^urn:ihe:iti:xds:2013:order"]
    assert len(e.event_codes) == 3
    assert e.service_start_time <= e.service_stop_time


# ----------------------------------------------------------------------------- our own fixtures

def test_minimal_cda_names_what_is_missing():
    with pytest.raises(MissingMetadata) as err:
        load_document(HERE / "fixtures" / "minimal.xml")
    text = str(err.value)
    for name in ("patientId (--patient)", "healthcareFacilityTypeCode", "practiceSettingCode", "author (--author)"):
        assert name in text
    assert "typeCode" not in text and "uniqueId" not in text


def test_flags_complete_a_minimal_cda():
    o = Overrides(patient="42^^^&1.2.250.1.213.1.4.10&ISO^NH", facility_type_code="SA01",
                  practice_setting_code="ETABLISSEMENT", authors=["^DUPONT^Jean"])
    doc = load_document(HERE / "fixtures" / "minimal.xml", o)
    assert doc.entry.patient_id == "42^^^&1.2.250.1.213.1.4.10&ISO^NH"
    assert doc.entry.creation_time == "2024"  # day precision or less is kept as written
    assert doc.entry.unique_id == "1.2.250.1.999.1^DOC-1"
    assert doc.entry.format_code.code == "urn:ihe:iti:xds:2017:mimeTypeSufficient"


def test_dtd_and_entities_are_refused(tmp_path):
    f = tmp_path / "evil.xml"
    f.write_bytes(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                  b'<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&e;</title></ClinicalDocument>')
    with pytest.raises(InputError, match="DTD"):
        load_document(f)


def test_file_not_the_format_claimed(tmp_path):
    fake = tmp_path / "scan.pdf"
    fake.write_bytes(b"<html>not a pdf</html>")
    with pytest.raises(InputError, match="not a application/pdf file"):
        load_document(fake)
    other = tmp_path / "note.xml"
    other.write_bytes(b"<note>hello</note>")
    with pytest.raises(InputError, match="not a CDA R2 document"):
        load_document(other)


def test_pdf_needs_flags_then_maps():
    import tempfile

    from client.demo import tiny_pdf
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "scan.pdf"
        p.write_bytes(tiny_pdf("hello"))
        with pytest.raises(MissingMetadata) as err:
            load_document(p)
        assert "typeCode (--type-code)" in str(err.value) and "creationTime" in str(err.value)
        doc = load_document(p, Overrides(patient="1^^^&1.2.250.1.213.1.4.10&ISO^NH", type_code="11490-0",
                                         title="scan", creation_time="20240102030405+0100",
                                         facility_type_code="SA01", practice_setting_code="ETABLISSEMENT",
                                         authors=["^DUPONT^Jean"]))
        assert doc.entry.mime_type == "application/pdf" and doc.entry.class_code.code == "10"
        assert doc.entry.creation_time == "20240102020405"


@pytest.mark.parametrize("value,expected", [("20191203133000+0100", "20191203123000"),
                                            ("201907011649+0100", "201907011549"),
                                            ("20240101003000+0200", "20231231223000"),
                                            ("20240101", "20240101"), ("2024010112", "2024010112"),
                                            ("20240101120000.123-0500", "20240101170000"), ("garbage", None)])
def test_timestamps_to_utc_keep_precision(value, expected):
    assert ts_to_dtm(value) == expected
