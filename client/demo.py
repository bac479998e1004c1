"""Synthetic French record set for ``xds demo``: small CDA R2 documents from our own templates.

Patients carry INS-NIR test identifiers (1.2.250.1.213.1.4.10); professionals RPPS ids; every
document is written to a folder first (so the reader can submit one again) and then sent through
:class:`XdsClient` like any Document Source would.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

from client.client import Document, XdsClient, new_oid
from client.documents import Overrides, load_document
from xds.metadata import Code, Folder, new_uuid

INS_TEST = "1.2.250.1.213.1.4.10"

PATIENTS = [("MARTIN", "Camille", "F", "19820415"), ("BERNARD", "Louis", "M", "19560302"),
            ("PETIT", "Léa", "F", "20010921"), ("DUBOIS", "Hugo", "M", "19740110"),
            ("MOREAU", "Chloé", "F", "19691228")]
AUTHORS = [("801234567890", "LEROY", "Anne", "G15_10/SM26", "Médecin - Qualifié en Médecine Générale (SM)",
            "Cabinet du Dr Leroy", "1750300012", "SA07", "Cabinet individuel", "AMBULATOIRE", "Ambulatoire"),
           ("801234567891", "FOURNIER", "Paul", "G15_10/SM27", "Médecin - Médecine interne (SM)",
            "Hôpital Saint-Antoine", "1750100125", "SA01", "Etablissement public de santé", "ETABLISSEMENT",
            "Etablissement de santé"),
           ("801234567892", "GIRARD", "Julie", "G15_10/SM03", "Médecin - Biologie médicale (SM)",
            "Laboratoire Pasteur Cerba", "1750400256", "SA25", "Laboratoire de biologie médicale", "AMBULATOIRE",
            "Ambulatoire"),
           ("801234567893", "BONNET", "Marc", "G15_10/SM44", "Médecin - Radio-diagnostic (SM)",
            "Centre d'imagerie Voltaire", "1750500387", "SA08", "Cabinet de groupe", "AMBULATOIRE", "Ambulatoire"),
           ("807505123456", "LAMBERT", "Inès", "G15_21", "Pharmacien", "Pharmacie de la Gare", "1750512399",
            "SA33", "Pharmacie d'officine", "AMBULATOIRE", "Ambulatoire")]

KINDS = {
    # kind: (typeCode, display, templateId, author index, section title, body text)
    "lab": ("11502-2", "CR d'examens biologiques", "1.3.6.1.4.1.19376.1.3.3", 2, "Hématologie",
            "Hémoglobine 13,8 g/dL (12,0-16,0). Leucocytes 6,2 G/L (4,0-10,0). Plaquettes 245 G/L (150-400)."),
    "discharge": ("11490-0", "Lettre de liaison à la sortie d'un établissement de soins", "1.2.250.1.213.1.1.1.29",
                  1, "Motif d'hospitalisation",
                  "Hospitalisation pour décompensation cardiaque. Retour à domicile, suivi par le médecin traitant."),
    "imaging": ("18748-4", "CR d'imagerie médicale", "1.2.840.10008.9.1", 3, "Conclusion",
                "Radiographie thoracique de face : pas d'anomalie pleuro-parenchymateuse."),
    "prescription": ("57833-6", "Prescription de produits de santé", "1.3.6.1.4.1.19376.1.9.1.1.1", 0,
                     "Prescription", "Paracétamol 1 g, 1 comprimé 3 fois par jour pendant 5 jours."),
    "dispensation": ("60593-1", "Dispensation médicamenteuse", "1.3.6.1.4.1.19376.1.9.1.1.3", 4, "Dispensation",
                     "Paracétamol 1 g, boîte de 8 comprimés, délivrée."),
}


def ins(rng: random.Random, sex: str, birth: str) -> str:
    """A synthetic 15-digit INS-NIR (test arc): sex, year, month, department, commune, order, key."""
    body = f"{1 if sex == 'M' else 2}{birth[2:4]}{birth[4:6]}75{rng.randrange(100, 999)}{rng.randrange(100, 999)}"
    return body + f"{97 - int(body) % 97:02d}"


def patient_cx(nir: str) -> str:
    return f"{nir}^^^&{INS_TEST}&ISO^NH"


def ts(dt: datetime) -> str:
    return dt.strftime("%Y%m%d%H%M%S") + "+0100"


def cda(kind: str, patient: tuple, nir: str, when: datetime, doc_id: str, replaces: str | None = None,
        body_pdf: bytes | None = None) -> bytes:
    """One small CDA R2 document with the header fields the CI-SIS asks for."""
    type_code, type_name, template, ai, section, text = KINDS[kind]
    a = AUTHORS[ai]
    family, given, sex, birth = patient
    related = (f'<relatedDocument typeCode="RPLC"><parentDocument><id root="{replaces}"/></parentDocument>'
               f'</relatedDocument>') if replaces else ""
    order = (f'<inFulfillmentOf><order><id root="1.2.250.1.213.1.1.9" extension="{doc_id[-10:]}"/></order>'
             f'</inFulfillmentOf>') if kind in ("lab", "imaging") else ""
    if body_pdf is not None:
        import base64
        body = (f'<component><nonXMLBody><text mediaType="application/pdf" representation="B64">'
                f'{base64.b64encode(body_pdf).decode()}</text></nonXMLBody></component>')
    else:
        body = (f'<component><structuredBody><component><section><title>{escape(section)}</title>'
                f'<text>{escape(text)}</text></section></component></structuredBody></component>')
    return f'''<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <realmCode code="FR"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <templateId root="2.16.840.1.113883.2.8.2.1"/>
  <templateId root="1.2.250.1.213.1.1.1.1"/>
  <templateId root="{template}"/>
  <id root="{doc_id}"/>
  <code code="{type_code}" codeSystem="2.16.840.1.113883.6.1" displayName="{escape(type_name)}"/>
  <title>{escape(type_name)} - {escape(family)} {escape(given)}</title>
  <effectiveTime value="{ts(when)}"/>
  <confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25" displayName="Normal"/>
  <languageCode code="fr-FR"/>
  <recordTarget><patientRole>
    <id root="{INS_TEST}" extension="{nir}"/>
    <patient><name><family qualifier="BR">{escape(family)}</family><given qualifier="BR">{escape(given)}</given></name>
      <administrativeGenderCode code="{sex}" codeSystem="2.16.840.1.113883.5.1"/><birthTime value="{birth}"/></patient>
  </patientRole></recordTarget>
  <author><time value="{ts(when)}"/><assignedAuthor>
    <id root="1.2.250.1.71.4.2.1" extension="{a[0]}"/>
    <code code="{a[3]}" displayName="{escape(a[4])}" codeSystem="1.2.250.1.213.1.1.4.5"/>
    <assignedPerson><name><prefix>DR</prefix><given>{escape(a[2])}</given><family>{escape(a[1])}</family></name></assignedPerson>
    <representedOrganization><id root="1.2.250.1.71.4.2.2" extension="{a[6]}"/><name>{escape(a[5])}</name></representedOrganization>
  </assignedAuthor></author>
  <custodian><assignedCustodian><representedCustodianOrganization><id root="1.2.250.1.213.4.1"/><name>DMP</name>
  </representedCustodianOrganization></assignedCustodian></custodian>
  <legalAuthenticator><time value="{ts(when)}"/><signatureCode code="S"/><assignedEntity>
    <id root="1.2.250.1.71.4.2.1" extension="{a[0]}"/>
    <assignedPerson><name><prefix>DR</prefix><given>{escape(a[2])}</given><family>{escape(a[1])}</family></name></assignedPerson>
  </assignedEntity></legalAuthenticator>
  {order}
  <documentationOf><serviceEvent>
    <code code="{type_code}" codeSystem="2.16.840.1.113883.6.1" displayName="{escape(type_name)}"/>
    <effectiveTime><low value="{ts(when - timedelta(hours=2))}"/><high value="{ts(when)}"/></effectiveTime>
    <performer typeCode="PRF"><assignedEntity><id root="1.2.250.1.71.4.2.1" extension="{a[0]}"/>
      <representedOrganization><name>{escape(a[5])}</name>
        <standardIndustryClassCode code="{a[9]}" displayName="{escape(a[10])}" codeSystem="1.2.250.1.213.1.1.4.9"/>
      </representedOrganization></assignedEntity></performer>
  </serviceEvent></documentationOf>
  {related}
  <componentOf><encompassingEncounter><effectiveTime value="{ts(when)}"/><location><healthCareFacility>
    <code code="{a[7]}" displayName="{escape(a[8])}" codeSystem="1.2.250.1.71.4.2.4"/>
  </healthCareFacility></location></encompassingEncounter></componentOf>
  {body}
</ClinicalDocument>
'''.encode()  # noqa: E501 - the CDA's lines are its bytes (and its hash)


def tiny_pdf(text: str) -> bytes:
    """A one-page PDF 1.4 with one line of text, cross-reference offsets computed exactly."""
    safe = text.encode("latin-1", "replace").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    stream = b"BT /F1 14 Tf 72 760 Td (" + safe + b") Tj ET"
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


@dataclass
class DemoPatient:
    cx: str
    family: str
    given: str
    documents: list[tuple[str, Path, str]]
    """(kind, file, uniqueId)"""


def generate(out: Path, patients: int = 3, seed: int | None = None) -> list[tuple[str, tuple, str, list]]:
    """Write the demo files under ``out``; return [(patient cx, identity, nir, [(kind, path)])]."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    base = datetime(2024, 3, 4, 9, 30, tzinfo=UTC)
    plan = []
    for i, identity in enumerate(PATIENTS[:patients]):
        nir = ins(rng, identity[2], identity[3])
        folder = out / f"patient-{i + 1}-{identity[0].lower()}"
        folder.mkdir(exist_ok=True)
        files = []
        for j, kind in enumerate(KINDS):
            when = base + timedelta(days=30 * i + 3 * j, hours=j)
            doc_id = new_oid()
            path = folder / f"{j + 1:02d}-{kind}.xml"
            path.write_bytes(cda(kind, identity, nir, when, doc_id))
            files.append((kind, path))
        scan = folder / "06-scan.pdf"
        scan.write_bytes(tiny_pdf(f"Courrier scanne - {identity[1]} {identity[0]}"))
        files.append(("scan", scan))
        plan.append((patient_cx(nir), identity, nir, files))
    return plan


def run_demo(client: XdsClient, plan: list, log=print) -> list[DemoPatient]:
    """Submit a :func:`generate` plan: per patient five CDA documents, a PDF scan, a folder, one replacement."""
    result = []
    for cx, identity, nir, files in plan:
        docs: list[Document] = []
        listed: list[tuple[str, Path, str]] = []
        for kind, path in files:
            if kind == "scan":
                o = Overrides(title=f"Courrier scanné - {identity[1]} {identity[0]}",
                              type_code="11490-0|2.16.840.1.113883.6.1|Lettre de sortie", patient=cx,
                              creation_time="20240301100000+0100",
                              facility_type_code="SA07|1.2.250.1.71.4.2.4|Cabinet individuel",
                              practice_setting_code="AMBULATOIRE|1.2.250.1.213.1.1.4.9|Ambulatoire",
                              format_code="urn:ihe:iti:xds-sd:pdf:2008|1.3.6.1.4.1.19376.1.2.3|PDF",
                              authors=[f"{AUTHORS[0][0]}^{AUTHORS[0][1]}^{AUTHORS[0][2]}^^^DR^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"],
                              institutions=[f"{AUTHORS[0][5]}^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^{AUTHORS[0][6]}"])
                doc = load_document(path, o)
            else:
                doc = load_document(path)
            docs.append(doc)
            assert doc.entry.unique_id is not None  # load_document refuses a document without one
            listed.append((kind, path, doc.entry.unique_id))
        # lab, discharge and imaging together in one submission set, with a folder for the stay
        folder = Folder(entry_uuid=new_uuid(), patient_id=cx, title="Hospitalisation mars 2024",
                        codes=[Code("04", "1.2.250.1.213.2.2", "Hospitalisation")])
        client.submit(docs[:3], folder=folder)
        log(f"  {cx}  {identity[1]} {identity[0]}: folder '{folder.title}' with {len(docs[:3])} documents")
        for d in docs[3:]:
            client.submit([d])
        log(f"  {cx}  {identity[1]} {identity[0]}: {len(docs[3:])} more documents (prescription, "
            f"dispensation, PDF scan)")
        # a corrected lab report replaces the first one (RPLC)
        kind, old_path, old_uid = listed[0]
        new_path = old_path.with_name("01-lab-v2.xml")
        when = datetime(2024, 3, 5, 8, 0, tzinfo=UTC)
        new_path.write_bytes(cda("lab", identity, nir, when, new_oid(), replaces=old_uid))
        v2 = load_document(new_path)
        v2.replaces = [docs[0].entry.entry_uuid]
        client.submit([v2])
        assert v2.entry.unique_id is not None  # load_document refuses a document without one
        listed.append(("lab-v2", new_path, v2.entry.unique_id))
        log(f"  {cx}  {identity[1]} {identity[0]}: corrected lab report {v2.entry.unique_id} replaces {old_uid}")
        result.append(DemoPatient(cx, identity[0], identity[1], listed))
    return result
