"""Issue 20, CDA to metadata the French way: formatCode from the volet's template, self-displaying
CDA, the patient named by the header, relatedDocument, documents from outside France."""
from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from client.cda import CISIS_TEMPLATE_FORMATS, GENERIC_STRUCTURED, IHE_TEMPLATE_FORMATS, UNSTRUCTURED_FORMATS
from client.client import XdsClient
from client.documents import Overrides, load_document, resolve_references
from client.errors import InputError, MissingMetadata, PatientMismatch
from tests.conftest import shared_path
from xds.metadata import DocumentEntry
from xds.vocabulary import AssocType, Status

FIXTURES = Path(__file__).parent / "fixtures"
HEADER_INS = "248039263001064^^^&1.2.250.1.213.1.4.10&ISO^NH"
J10_SYSTEMS = {"TRE_A06": "1.2.250.1.213.1.1.4.2.282", "TRE_A11": "1.3.6.1.4.1.19376.1.2.3"}


def structured(tmp_path: Path, template: str = "1.2.250.1.213.1.1.1.22", related: str = "",
               patient_root: str = "1.2.250.1.213.1.4.10", name: str = "doc.xml") -> Path:
    text = (FIXTURES / "structured.xml").read_text("utf-8")
    text = text.replace("TEMPLATE", template).replace("<!--RELATED-->", related)
    text = text.replace('root="1.2.250.1.213.1.4.10"', f'root="{patient_root}"')
    path = tmp_path / name
    path.write_text(text, "utf-8")
    return path


def related_document(kind: str, parent_uid: str) -> str:
    root, _, ext = parent_uid.partition("^")
    ident = f'<id root="{root}" extension="{ext}"/>' if ext else f'<id root="{root}"/>'
    return f'<relatedDocument typeCode="{kind}"><parentDocument>{ident}</parentDocument></relatedDocument>'


# ----------------------------------------------------------------------------- formatCode (ANS ASS_A11)

@pytest.mark.parametrize("template,code", [
    ("1.2.250.1.213.1.1.1.22", "urn:asip:ci-sis:dlu:2015"),
    ("1.2.250.1.213.1.1.1.40", "urn:asip:ci-sis:cr-anest:2020"),
    ("1.2.250.1.213.1.1.1.37", "urn:asip:ci-sis:vac:2019"),
    ("1.2.250.1.213.1.1.1.9", "urn:asip:ci-sis:idap:2011"),
    ("1.2.250.1.213.1.1.1.26", "urn:asip:ci-sis:pps-cancer:2017"),
    ("1.2.250.1.213.1.1.1.36", "urn:asip:ci-sis:hr:2019"),
    ("1.2.250.1.213.1.1.1.51", "urn:ihe:pcc:ips:2020"),
])
def test_format_code_comes_from_the_cisis_volet_template(tmp_path, template, code):
    doc = load_document(structured(tmp_path, template))
    assert doc.entry.format_code.code == code
    assert doc.warnings == []


def test_every_mapped_format_code_is_in_jdv_j10():
    """Our own table agrees with ANS's list of formatCodes (JDV_J10), code and coding scheme."""
    j10 = {}
    for line in shared_path("valuesets", "ci-sis", "J10-XdsFormatCode-CISIS.txt").read_text("utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            code, system, _display = (p.strip() for p in line.split("|"))
            j10[code] = system
    mapped = [(c, s) for c, s, _ in [*CISIS_TEMPLATE_FORMATS.values(), *IHE_TEMPLATE_FORMATS.values()]]
    mapped += [(c.code, c.scheme) for c in UNSTRUCTURED_FORMATS.values()]
    for code, scheme in mapped:
        assert code in j10, code
        assert J10_SYSTEMS[j10[code]] == scheme, code
    assert len(CISIS_TEMPLATE_FORMATS) >= 50


def test_format_code_fallback_is_warned_in_the_log_and_the_command_output(tmp_path, caplog):
    path = structured(tmp_path, "1.2.250.1.999.404")
    with caplog.at_level(logging.WARNING, logger="client.documents"):
        doc = load_document(path)
    assert doc.entry.format_code == GENERIC_STRUCTURED
    assert doc.warnings and "1.2.250.1.999.404" in doc.warnings[0] and "--format-code" in doc.warnings[0]
    assert any("falls back" in r.getMessage() for r in caplog.records)
    given = load_document(path, Overrides(format_code="urn:asip:ci-sis:dlu:2015|1.2.250.1.213.1.1.4.2.282"))
    assert given.warnings == []
    out = subprocess.run([sys.executable, "-m", "server.cli", "submit", str(path), "--dry-run"],
                         capture_output=True, text=True, timeout=120, env={**os.environ})
    assert out.returncode == 0, out.stderr
    assert "warning:" in out.stderr and "falls back to the generic urn:ihe:iti:xds:2017:mimeTypeSufficient" in out.stderr


# ----------------------------------------------------------------------------- CDA auto-présentable

def test_self_displaying_cda_is_submitted_whole_as_xslt_with_the_inner_cda_metadata(tmp_path):
    """ANS: a "CDA auto-présentable" goes as application/xslt+xml, metadata from the CDA inside."""
    src = FIXTURES / "auto-presentable.xsl"
    for path, mime in ((src, None), (tmp_path / "auto.xml", None), (tmp_path / "auto.xml", "application/xslt+xml")):
        if path != src:
            path.write_bytes(src.read_bytes())
        doc = load_document(path, Overrides(mime_type=mime))
        assert doc.entry.mime_type == "application/xslt+xml"
        assert doc.entry.unique_id == "1.2.250.1.999.7^DOC-AUTO-1"
        assert doc.entry.format_code.code == "urn:asip:ci-sis:idap:2011"
        assert doc.entry.patient_id == HEADER_INS
        assert doc.content == src.read_bytes()


def test_a_cda_given_another_mime_type_gets_one_consistent_message(tmp_path):
    """The file's content decides over its name; a contradicting --mime-type is refused, saying why."""
    path = tmp_path / "auto.html"
    path.write_bytes((FIXTURES / "auto-presentable.xsl").read_bytes())
    assert load_document(path).entry.mime_type == "application/xslt+xml"
    with pytest.raises(InputError) as err:
        load_document(path, Overrides(mime_type="text/html"))
    assert "a CDA document given --mime-type text/html" in str(err.value)
    assert "application/xslt+xml" in str(err.value)


def test_stylesheet_without_exactly_one_clinical_document_is_refused(tmp_path):
    path = tmp_path / "x.xsl"
    path.write_text('<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"/>')
    with pytest.raises(InputError, match="0 ClinicalDocument"):
        load_document(path)


# ----------------------------------------------------------------------------- the header's patient

def test_patient_flag_naming_another_patient_is_refused(tmp_path):
    with pytest.raises(PatientMismatch) as err:
        load_document(structured(tmp_path), Overrides(patient="279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"))
    assert "248039263001064" in str(err.value) and "--override-patient" in str(err.value)


def test_patient_flag_agreeing_on_cx1_and_authority_is_accepted(tmp_path):
    """The identifier type code (CX.5) does not tell two patients apart."""
    doc = load_document(structured(tmp_path), Overrides(patient="248039263001064^^^&1.2.250.1.213.1.4.10&ISO"))
    assert doc.entry.patient_id == "248039263001064^^^&1.2.250.1.213.1.4.10&ISO"
    with pytest.raises(PatientMismatch):  # same number, other authority
        load_document(structured(tmp_path), Overrides(patient="248039263001064^^^&1.2.250.1.213.1.4.8&ISO^NH"))


def test_override_patient_keeps_the_header_patient_as_source_patient_id(tmp_path):
    """ITI TF-3 4.2.3.2.23: sourcePatientId is the patient as the source knows it; the override shows."""
    other = "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
    doc = load_document(structured(tmp_path), Overrides(patient=other, override_patient=True))
    assert doc.entry.patient_id == other
    assert doc.entry.source_patient_id == HEADER_INS
    assert doc.entry.source_patient_info[0] == f"PID-3|{HEADER_INS}"


def test_document_outside_france_names_the_header_patient_ids(tmp_path):
    with pytest.raises(MissingMetadata) as err:
        load_document(structured(tmp_path, patient_root="2.16.756.5.30.1.127.3.10.3"))
    text = str(err.value)
    assert "patientId (--patient)" in text
    assert "248039263001064^^^&2.16.756.5.30.1.127.3.10.3&ISO" in text and "IPP-42^^^&1.2.250.1.999.8&ISO" in text


# ----------------------------------------------------------------------------- relatedDocument

class Registered(XdsClient):
    """A registry of a few entries, answering GetDocuments by uniqueId without the network."""

    def __init__(self, entries: list[DocumentEntry]) -> None:
        super().__init__()
        self.entries = entries
        self.asked: list[str] = []

    def find_document(self, unique_id: str) -> DocumentEntry | None:
        self.asked.append(unique_id)
        return next((e for e in self.entries if e.unique_id == unique_id), None)


@pytest.mark.parametrize("kind,assoc", [("RPLC", AssocType.RPLC), ("APND", AssocType.APND),
                                        ("XFRM", AssocType.XFRM)])
def test_related_document_becomes_the_association_to_the_parent_entry_uuid(tmp_path, kind, assoc):
    parent = DocumentEntry("urn:uuid:0d8f3c1e-1111-4a4a-9b9b-000000000001", unique_id="1.2.250.1.999.7^OLD",
                           status=Status.APPROVED)
    client = Registered([parent])
    doc = load_document(structured(tmp_path, related=related_document(kind, "1.2.250.1.999.7^OLD")))
    assert doc.references == [(kind, "1.2.250.1.999.7^OLD")]
    resolve_references(client, doc)
    assert client.asked == ["1.2.250.1.999.7^OLD"]
    objects, _ss = client.build_submission([doc])
    assocs = [(o.attributes.get("associationType"), o.attributes.get("sourceObject"), o.attributes.get("targetObject"))
              for o in objects if o.attributes.get("associationType") == assoc]
    assert assocs == [(assoc, doc.entry.entry_uuid, parent.entry_uuid)]


def test_replaces_accepts_a_unique_id_or_an_entry_uuid(tmp_path):
    parent = DocumentEntry("urn:uuid:0d8f3c1e-1111-4a4a-9b9b-000000000002", unique_id="2.25.42",
                           status=Status.APPROVED)
    client = Registered([parent])
    by_uid = load_document(structured(tmp_path), Overrides(replaces=["2.25.42"]))
    resolve_references(client, by_uid)
    by_uuid = load_document(structured(tmp_path), Overrides(replaces=[parent.entry_uuid]))
    resolve_references(client, by_uuid)
    assert by_uid.replaces == by_uuid.replaces == [parent.entry_uuid]
    assert client.asked == ["2.25.42"]


def test_parent_unknown_or_already_replaced_is_refused_before_sending(tmp_path):
    gone = DocumentEntry("urn:uuid:0d8f3c1e-1111-4a4a-9b9b-000000000003", unique_id="2.25.43",
                         status=Status.DEPRECATED)
    client = Registered([gone])
    doc = load_document(structured(tmp_path, related=related_document("RPLC", "2.25.44")))
    with pytest.raises(InputError, match="not in the registry"):
        resolve_references(client, doc)
    doc = load_document(structured(tmp_path, related=related_document("RPLC", "2.25.43")))
    with pytest.raises(InputError, match="Deprecated, not Approved"):
        resolve_references(client, doc)


def test_hash_is_of_the_file_as_given(tmp_path):
    path = structured(tmp_path)
    doc = load_document(path)
    _objects, _ss = XdsClient().build_submission([doc])
    assert doc.entry.hash == hashlib.sha1(path.read_bytes()).hexdigest()
