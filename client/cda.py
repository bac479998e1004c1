"""CDA R2 header -> XDS DocumentEntry, the French CI-SIS way (ANS, "Volet Structuration minimale").

Every mapped field is one small function reading the header with a fixed path, so that the table
in docs/walkthrough.md reads like this module. Parsing is safe: no DTD, no entities, no network
(:func:`xds.soap.parsing.parse_xml`).
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from lxml import etree

from client.errors import InputError
from xds.metadata import Author, Code, DocumentEntry, new_uuid
from xds.soap.faults import SoapFault
from xds.soap.parsing import parse_xml

NS = {"h": "urn:hl7-org:v3"}
H = "{urn:hl7-org:v3}"

INS_ROOTS = ("1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.11")
"""INS-NIR, INS-NIA, INS-NIR test, INS-NIR demonstration: the first one present wins, in this order."""
RPPS_ROOT = "1.2.250.1.71.4.2.1"
ORGANISATION_ROOT = "1.2.250.1.71.4.2.2"
LOINC = "2.16.840.1.113883.6.1"
CLASS_SCHEME = "1.2.250.1.213.1.1.4.1"
CDA_MIME = "text/xml"

CLASS_NAMES = {"10": "Compte rendu", "11": "Synthèse", "31": "Imagerie médicale", "42": "Prescription",
               "43": "Dispensation", "44": "Plan de soins / protocole de soins", "45": "Traitement administré",
               "52": "Certificat / déclaration", "60": "Données de remboursement",
               "90": "Autres documents déposés par le patient", "95": "Document de gestion",
               "99": "Document technique"}

TYPE_TO_CLASS = {
    "11490-0": "10",   # lettre de liaison à la sortie
    "11502-2": "10",   # CR d'examens biologiques
    "18748-4": "10",   # CR d'imagerie médicale
    "85208-7": "10",   # CR de télémédecine
    "34133-9": "11",   # synthèse d'épisode de soins
    "SYNTH": "11",     # synthèse (TRE_A05)
    "60591-5": "11",   # synthèse patient
    "57833-6": "42",   # prescription de produits de santé
    "60593-1": "43",   # dispensation médicamenteuse
    "REMB": "60",      # données de remboursement (TRE_A05)
    "57016-8": "52",   # consentement
}
"""Our own typeCode -> classCode table for the sample types (after ANS ASS_X04/ASS_X16).

Fallback: any other LOINC type is a report (class 10, "Compte rendu"); any other code system has
no class and the submission names the missing classCode (``--class-code`` gives one)."""


def class_for_type(type_code: Code | None) -> Code | None:
    if type_code is None:
        return None
    cls = TYPE_TO_CLASS.get(type_code.code)
    if cls is None and type_code.scheme == LOINC:
        cls = "10"
    return Code(cls, CLASS_SCHEME, CLASS_NAMES[cls]) if cls else None


TRE_A06 = "1.2.250.1.213.1.1.4.2.282"
"""FormatCodeComplementaire: the ANS formatCodes of the CI-SIS volets."""
TRE_A11 = "1.3.6.1.4.1.19376.1.2.3"
"""IheFormatCode: the formatCodes IHE profiles define."""

CISIS_TEMPLATE_FORMATS: dict[str, tuple[str, str, str]] = {
    # templateId of the volet (ClinicalDocument/templateId/@root): (formatCode, scheme, display name)
    "1.2.250.1.213.1.1.1.2.1.1": ("urn:asip:ci-sis:avk:2009", TRE_A06, "Fiche patient à risque - Traitement AVK"),
    "1.2.250.1.213.1.1.1.2.1.2": ("urn:asip:ci-sis:tap:2009", TRE_A06, "Fiche patient à risque - Antiagrégant"),
    "1.2.250.1.213.1.1.1.2.1.3": ("urn:asip:ci-sis:dci:2009", TRE_A06, "Fiche patient à risque - DCI"),
    "1.2.250.1.213.1.1.1.2.1.4": ("urn:asip:ci-sis:psc:2009", TRE_A06, "Fiche patient à risque - Stimulateur"),
    "1.2.250.1.213.1.1.1.2.1.5": ("urn:asip:ci-sis:ppv:2009", TRE_A06, "Fiche patient à risque - Prothèse valvulaire"),
    "1.2.250.1.213.1.1.1.5.1": ("urn:asip:ci-sis:cse-cs8:2017", TRE_A06, "Certificat de santé du 8ème jour"),
    "1.2.250.1.213.1.1.1.5.2": ("urn:asip:ci-sis:cse-cs9:2017", TRE_A06, "Certificat de santé du 9ème mois"),
    "1.2.250.1.213.1.1.1.5.3": ("urn:asip:ci-sis:cse-cs24:2017", TRE_A06, "Certificat de santé du 24ème mois"),
    "1.2.250.1.213.1.1.1.5.4": ("urn:ans:ci-sis:cse-mde:2023", TRE_A06, "Mesures de signes vitaux"),
    "1.2.250.1.213.1.1.1.8": ("urn:asip:ci-sis:frcp:2011", TRE_A06, "Fiche de RCP"),
    "1.2.250.1.213.1.1.1.9": ("urn:asip:ci-sis:idap:2011", TRE_A06, "Information et directives anticipées"),
    "1.2.250.1.213.1.1.1.10": ("urn:asip:ci-sis:cva:2017", TRE_A06, "Carnet de vaccination électronique"),
    "1.2.250.1.213.1.1.1.12.1": ("urn:asip:ci-sis:obp-sap:2023", TRE_A06, "Synthèse antepartum"),
    "1.2.250.1.213.1.1.1.12.2": ("urn:asip:ci-sis:obp-snm:2023", TRE_A06, "Synthèse salle de naissance mère"),
    "1.2.250.1.213.1.1.1.12.3": ("urn:asip:ci-sis:obp-sne:2023", TRE_A06, "Synthèse salle de naissance enfant"),
    "1.2.250.1.213.1.1.1.12.4": ("urn:asip:ci-sis:obp-scm:2023", TRE_A06, "Synthèse suites de couches mère"),
    "1.2.250.1.213.1.1.1.12.5": ("urn:asip:ci-sis:obp-sem:2023", TRE_A06, "Synthèse enfant en maternité"),
    "1.2.250.1.213.1.1.1.13": ("urn:asip:ci-sis:vsm:2012", TRE_A06, "Synthèse médicale"),
    "1.2.250.1.213.1.1.1.15": ("urn:asip:ci-sis:aunv:2013", TRE_A06, "Admission en unité neuro-vasculaire"),
    "1.2.250.1.213.1.1.1.16": ("urn:asip:ci-sis:eunv:2013", TRE_A06, "Episode de soin en unité neuro-vasculaire"),
    "1.2.250.1.213.1.1.1.17": ("urn:asip:ci-sis:sunv:2013", TRE_A06, "Sortie d'unité neuro-vasculaire"),
    "1.2.250.1.213.1.1.1.18": ("urn:asip:ci-sis:crrtn:2013", TRE_A06, "Compte-rendu de rétinographie"),
    "1.2.250.1.213.1.1.1.20": ("urn:asip:ci-sis:pps-paerpa:2017", TRE_A06, "Plan personnalisé de santé PAERPA"),
    "1.2.250.1.213.1.1.1.21": ("urn:asip:ci-sis:ldl-ees:2017", TRE_A06, "Lettre de liaison à l'entrée"),
    "1.2.250.1.213.1.1.1.22": ("urn:asip:ci-sis:dlu:2015", TRE_A06, "Document de liaison d'urgence"),
    "1.2.250.1.213.1.1.1.23": ("urn:asip:ci-sis:fludt:2017", TRE_A06, "FLU - transfert de l'EHPAD vers les urgences"),
    "1.2.250.1.213.1.1.1.24": ("urn:asip:ci-sis:fludr:2017", TRE_A06, "FLU - retour des urgences vers l'EHPAD"),
    "1.2.250.1.213.1.1.1.25": ("urn:asip:ci-sis:pavc:2016", TRE_A06, "Evaluation pluri-professionnelle post AVC"),
    "1.2.250.1.213.1.1.1.26": ("urn:asip:ci-sis:pps-cancer:2017", TRE_A06, "Programme personnalisé de soins cancer"),
    "1.2.250.1.213.1.1.1.27": ("urn:asip:ci-sis:d2lm-fin:2017", TRE_A06, "Seconde lecture de mammographie - FIN"),
    "1.2.250.1.213.1.1.1.28": ("urn:asip:ci-sis:d2lm-fidd:2017", TRE_A06, "Seconde lecture de mammographie - FIDD"),
    "1.2.250.1.213.1.1.1.29": ("urn:asip:ci-sis:ldl-ses:2017", TRE_A06, "Lettre de liaison à la sortie"),
    "1.2.250.1.213.1.1.1.30": ("urn:asip:ci-sis:sdm-mr:2017", TRE_A06, "Set de données minimum maladies rares"),
    "1.2.250.1.213.1.1.1.32": ("urn:asip:ci-sis:crgm:2018", TRE_A06, "Compte rendu de génétique moléculaire"),
    "1.2.250.1.213.1.1.1.36": ("urn:asip:ci-sis:hr:2019", TRE_A06, "Données de remboursement"),
    "1.2.250.1.213.1.1.1.37": ("urn:asip:ci-sis:vac:2019", TRE_A06, "Historique des vaccinations"),
    "1.2.250.1.213.1.1.1.38": ("urn:asip:ci-sis:tlm-da:2020", TRE_A06, "Demande d'acte de télémédecine"),
    "1.2.250.1.213.1.1.1.39": ("urn:ihe:pharm:pre:2010", TRE_A11, "Prescription de médicaments"),
    "1.2.250.1.213.1.1.1.40": ("urn:asip:ci-sis:cr-anest:2020", TRE_A06, "Compte rendu d'anesthésie"),
    "1.2.250.1.213.1.1.1.41": ("urn:asip:ci-sis:cr-cpa:2020", TRE_A06, "CR de consultation pré-anesthésique"),
    "1.2.250.1.213.1.1.1.42": ("urn:ihe:eyecare:geneyeevalcn:2014", TRE_A11, "CR de consultation en ophtalmologie"),
    "1.2.250.1.213.1.1.1.43": ("urn:ihe:eyecare:geneyeevalcn:2014", TRE_A11, "CR de consultation en ophtalmologie"),
    "1.2.250.1.213.1.1.1.44": ("urn:ihe:eyecare:geneyeevalcn:2014", TRE_A11, "CR de consultation en ophtalmologie"),
    "1.2.250.1.213.1.1.1.45": ("urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013", TRE_A11,
                               "Compte-rendu d'imagerie médicale"),
    "1.2.250.1.213.1.1.1.46": ("urn:asip:ci-sis:vac-note:2021", TRE_A06, "Note de vaccination"),
    "1.2.250.1.213.1.1.1.47": ("urn:ans:ci-sis:img-da:2022", TRE_A06, "Demande d'actes d'imagerie"),
    "1.2.250.1.213.1.1.1.48": ("urn:asip:ci-sis:dlu-dlu-dom:2022", TRE_A06, "Document de liaison d'urgence DOM"),
    "1.2.250.1.213.1.1.1.49": ("urn:asip:ci-sis:dlu-fludt-dom:2022", TRE_A06, "FLU - transfert du domicile"),
    "1.2.250.1.213.1.1.1.50": ("urn:asip:ci-sis:dlu-fludr-dom:2022", TRE_A06, "FLU - retour vers le domicile"),
    "1.2.250.1.213.1.1.1.51": ("urn:ihe:pcc:ips:2020", TRE_A11, "Synthèse médicale (IPS)"),
    "1.2.250.1.213.1.1.1.52": ("urn:ans:ci-sis:bio-ep-bio:2022", TRE_A06, "Prescription d'actes de biologie"),
    "1.2.250.1.213.1.1.1.54": ("urn:ihe:pharm:dis:2010", TRE_A11, "Dispensation médicamenteuse"),
    "1.2.250.1.213.1.1.1.55": ("urn:ihe:lab:xd-lab:2008", TRE_A11, "CR d'examens de biologie médicale"),
    "1.2.250.1.213.1.1.1.56": ("urn:asip:ci-sis:ppp:2023", TRE_A06, "Plan personnalisé de prévention"),
    "1.2.250.1.213.1.1.1.57": ("urn:ihe:palm:apsr:2016", TRE_A11, "CR d'anatomie et de cytologie pathologiques"),
    "1.2.250.1.213.1.1.1.58": ("urn:asip:ci-sis:export-dui:2023", TRE_A06, "Export du dossier usager informatisé"),
}
"""ANS association ASS_A11 (CorresModeleCDA-XdsFormatCode-CISIS), restricted to the codes of JDV_J10.

The CI-SIS volet's own templateId decides: it is the most specific template a header declares
(CI-SIS Volet Structuration minimale, "templateId"; the volet's specification names both)."""

IHE_TEMPLATE_FORMATS: dict[str, tuple[str, str, str]] = {
    "1.3.6.1.4.1.19376.1.3.3": ("urn:ihe:lab:xd-lab:2008", TRE_A11, "CR d'examens de biologie médicale"),
    "1.3.6.1.4.1.19376.1.9.1.1.1": ("urn:ihe:pharm:pre:2010", TRE_A11, "Prescription de médicaments"),
    "1.3.6.1.4.1.19376.1.9.1.1.3": ("urn:ihe:pharm:dis:2010", TRE_A11, "Dispensation médicamenteuse"),
    "1.2.840.10008.9.1": ("urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013", TRE_A11,
                          "Compte-rendu d'imagerie médicale"),
    "1.3.6.1.4.1.19376.1.8.1.1.1": ("urn:ihe:pat:apsr:all:2010", TRE_A11, "CR d'anatomie pathologique"),
}
"""IHE content profiles' document templates: used when no CI-SIS volet template is declared."""

UNSTRUCTURED_FORMATS = {
    "application/pdf": Code("urn:ihe:iti:xds-sd:pdf:2008", TRE_A11, "Document à corps non structuré en PDF"),
    "text/plain": Code("urn:ihe:iti:xds-sd:text:2008", TRE_A11, "Document à corps non structuré en texte"),
    "image/jpeg": Code("urn:ihe:iti-fr:xds-sd:jpeg:2010", TRE_A11, "Document à corps non structuré en jpeg"),
    "text/rtf": Code("urn:ihe:iti-fr:xds-sd:rtf:2010", TRE_A11, "Document à corps non structuré en rtf"),
    "image/tiff": Code("urn:ihe:iti-fr:xds-sd:tiff:2010", TRE_A11, "Document à corps non structuré en tiff"),
}
"""XDS-SD by the nonXMLBody's mediaType (ANS ASS_A12)."""
GENERIC_STRUCTURED = Code("urn:ihe:iti:xds:2017:mimeTypeSufficient", TRE_A11, "mimeType suffisant")

MANDATORY = ("uniqueId", "patientId", "classCode", "typeCode", "formatCode", "confidentialityCode",
             "creationTime", "healthcareFacilityTypeCode", "practiceSettingCode", "languageCode", "mimeType",
             "sourcePatientId", "title", "author")
"""What a DMP-bound submission must carry (ITI TF-3 Table 4.3.1-1 R fields plus the DMP's title and author)."""


@dataclass
class CdaDocument:
    """A document and the metadata read from it (or given by flags for non-CDA files)."""
    content: bytes
    entry: DocumentEntry
    replaces: list[str] = field(default_factory=list)
    """uniqueIds of documents this one replaces (relatedDocument typeCode RPLC)."""
    body_media_type: str | None = None
    """nonXMLBody/text/@mediaType, for an unstructured CDA."""
    related: list[tuple[str, str]] = field(default_factory=list)
    """(RPLC|APND|XFRM, parent uniqueId) for every header relatedDocument."""
    warnings: list[str] = field(default_factory=list)
    """What the mapping had to guess (a generic formatCode): said to the user, not an error."""
    header_patients: list[tuple[str, str]] = field(default_factory=list)
    """Every recordTarget/patientRole/id as (root, extension)."""
    self_displaying: bool = False
    """ANS "CDA auto-présentable": the CDA inside an XSLT stylesheet (mimeType application/xslt+xml)."""

    def missing(self) -> list[str]:
        return missing_fields(self.entry)


def missing_fields(e: DocumentEntry) -> list[str]:
    values = {"uniqueId": e.unique_id, "patientId": e.patient_id, "classCode": e.class_code,
              "typeCode": e.type_code, "formatCode": e.format_code, "confidentialityCode": e.confidentiality_codes,
              "creationTime": e.creation_time, "healthcareFacilityTypeCode": e.healthcare_facility_type_code,
              "practiceSettingCode": e.practice_setting_code, "languageCode": e.language_code,
              "mimeType": e.mime_type, "sourcePatientId": e.source_patient_id, "title": e.title,
              "author": [a for a in e.authors if a.person or a.institutions]}
    return [name for name in MANDATORY if not values[name]]


# ----------------------------------------------------------------------------- HL7 v3 -> v2 values

_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?$")


def ts_to_dtm(value: str | None) -> str | None:
    """An HL7 v3 TS (``20191203133000+0100``) as an XDS DTM in UTC, keeping its precision.

    Without a time zone the value is taken as UTC; a value of day precision or less is kept as is
    (moving a date across midnight would change its meaning).
    """
    if not value:
        return None
    m = _TS.match(value.strip())
    if not m:
        return None
    parts = [g for g in m.groups()[:6] if g is not None]
    digits = "".join(parts)
    zone = m.group(7)
    if zone is None or len(parts) < 4:
        return digits
    fmt = "%Y%m%d%H%M%S"[: 2 + 2 * (len(parts) - 1)]
    local = datetime.strptime(digits, fmt)
    offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])) * (1 if zone[0] == "+" else -1)
    utc = (local - offset).replace(tzinfo=UTC)
    return utc.strftime(fmt)


def cx(extension: str, root: str, type_code: str = "NH") -> str:
    return f"{extension}^^^&{root}&ISO^{type_code}" if type_code else f"{extension}^^^&{root}&ISO"


def cx_identity(value: str) -> tuple[str, str]:
    """(CX.1, assigning authority's universal id) of a CX: what identifies a patient (ITI TF-3 4.2.3.1.7).

    The identifier type code (CX.5) is carried as sent but does not tell two patients apart.
    """
    fields = value.split("^")
    authority = fields[3] if len(fields) > 3 else ""
    parts = authority.split("&")
    return fields[0], (parts[1] if len(parts) > 1 and parts[1] else parts[0])


def _esc(text: str | None) -> str:
    """HL7 v2 escaping of the delimiters ^ & ~ | \\ (TF-3 4.2.3.1.7 forbids them unescaped)."""
    if not text:
        return ""
    out = " ".join(text.split())
    for ch, esc in (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\")):
        out = out.replace(ch, esc)
    return out


def _name_parts(name: etree._Element | None) -> tuple[str, str, str]:
    """(family, given, prefix) of a PN, preferring the used name (qualifier CL) for people we show."""
    if name is None:
        return "", "", ""
    fam = name.findall("h:family", NS)
    giv = name.findall("h:given", NS)

    def pick(items):
        for q in ("CL", None, "BR"):
            for it in items:
                if (it.get("qualifier") or None) == q and (it.text or "").strip():
                    return it.text.strip()
        return ""
    prefix = name.findtext("h:prefix", "", NS).strip()
    return pick(fam), pick(giv), prefix


def xcn(entity: etree._Element, person_path: str) -> str | None:
    """An XCN ``id^FAMILY^Given^^^Prefix^^^&root&ISO^D^^^IDNPS`` from an assignedAuthor/assignedEntity."""
    ident = entity.find("h:id", NS)
    family, given, prefix = _name_parts(entity.find(f"{person_path}/h:name", NS))
    ext, root = (ident.get("extension"), ident.get("root")) if ident is not None else (None, None)
    if not (ext or family):
        return None
    out = [_esc(ext), _esc(family), _esc(given), "", "", _esc(prefix), "", "",
           f"&{root}&ISO" if ext and root else "", "D" if family else "", "", "",
           "IDNPS" if ext and root == RPPS_ROOT else ""]
    return "^".join(out).rstrip("^")


def xon(org: etree._Element | None) -> str | None:
    """An XON ``Name^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^id`` from a representedOrganization."""
    if org is None:
        return None
    name = _esc(org.findtext("h:name", "", NS))
    ident = org.find("h:id", NS)
    if ident is not None and ident.get("extension") and ident.get("root"):
        return f"{name}^^^^^&{ident.get('root')}&ISO^IDNST^^^{_esc(ident.get('extension'))}"
    return name or None


def code_of(el: etree._Element | None) -> Code | None:
    if el is None or not (code := el.get("code")) or not (system := el.get("codeSystem")):
        return None
    return Code(code, system, " ".join((el.get("displayName") or code).split()))


def cwe(code: Code | None) -> str | None:
    """A coded author slot value ``code^display^^^^^^^^&scheme&ISO`` (TF-3 4.2.3.1.4)."""
    if code is None:
        return None
    return f"{_esc(code.code)}^{_esc(code.display_name)}^^^^^^^^&{code.scheme}&ISO"


# ----------------------------------------------------------------------------- field readers

def unique_id(doc: etree._Element) -> str | None:
    ident = doc.find("h:id", NS)
    if ident is None or not ident.get("root"):
        return None
    return f"{ident.get('root')}^{ident.get('extension')}" if ident.get("extension") else ident.get("root")


def patient_ids(doc: etree._Element) -> list[tuple[str, str]]:
    return [(root, extension) for i in doc.findall("h:recordTarget/h:patientRole/h:id", NS)
            if (root := i.get("root")) and (extension := i.get("extension"))]


def patient_id(doc: etree._Element) -> str | None:
    ids = dict(patient_ids(doc))
    for root in INS_ROOTS:
        if root in ids:
            return cx(ids[root], root)
    return None


def source_patient_info(doc: etree._Element, pid: str | None) -> list[str]:
    role = doc.find("h:recordTarget/h:patientRole", NS)
    if role is None:
        return []
    info = [f"PID-3|{pid}"] if pid else []
    patient = role.find("h:patient", NS)
    if patient is not None:
        name = patient.find("h:name", NS)
        if name is not None:
            birth = [f.text.strip() for f in name.findall("h:family", NS) if f.get("qualifier") == "BR" and f.text]
            family = birth[0] if birth else _name_parts(name)[0]
            givens = [g.text.strip() for q in ("BR", None) for g in name.findall("h:given", NS)
                      if g.text and g.get("qualifier") == q]
            info.append(f"PID-5|{_esc(family)}^{_esc(givens[0] if givens else '')}^^^^^L")
        birth_time = patient.find("h:birthTime", NS)
        if birth_time is not None and (born := birth_time.get("value")):
            info.append(f"PID-7|{born[:8]}")
        gender = patient.find("h:administrativeGenderCode", NS)
        if gender is not None and gender.get("code"):
            info.append(f"PID-8|{gender.get('code')}")
    return info


def authors(doc: etree._Element) -> list[Author]:
    out = []
    for author in doc.findall("h:author", NS):
        aa = author.find("h:assignedAuthor", NS)
        if aa is None:
            continue
        person = xcn(aa, "h:assignedPerson")
        if aa.find("h:assignedAuthoringDevice", NS) is not None and aa.find("h:assignedPerson", NS) is None:
            ident = aa.find("h:id", NS)
            software = aa.findtext("h:assignedAuthoringDevice/h:softwareName", "", NS)
            if ident is not None and ident.get("extension"):
                person = f"{_esc(ident.get('extension'))}^{_esc(software)}^^^^^^^&{ident.get('root')}&ISO"
            elif software:
                person = f"^{_esc(software)}"
        institution = xon(aa.find("h:representedOrganization", NS))
        role = cwe(code_of(author.find("h:functionCode", NS)))
        specialty = cwe(code_of(aa.find("h:code", NS)))
        telecoms = [value for t in aa.findall("h:telecom", NS) if (value := t.get("value"))]
        out.append(Author(person, [institution] if institution else [], [role] if role else [],
                          [specialty] if specialty else [],
                          [xtn for t in telecoms if (xtn := _xtn(t))]))
    return out


def _xtn(url: str) -> str | None:
    """tel:/mailto: URL -> XTN (TF-3 4.2.3.1.7: e-mail in XTN-4 with ^NET^Internet^)."""
    if url.startswith("mailto:"):
        return f"^NET^Internet^{url[7:]}"
    if url.startswith("tel:"):
        return f"^PRN^PH^^^^^^^^^{url[4:]}"
    return None


def legal_authenticator(doc: etree._Element) -> str | None:
    ent = doc.find("h:legalAuthenticator/h:assignedEntity", NS)
    return xcn(ent, "h:assignedPerson") if ent is not None else None


def service_times(doc: etree._Element) -> tuple[str | None, str | None]:
    """Earliest low and latest high over every documentationOf/serviceEvent/effectiveTime."""
    lows: list[str] = []
    highs: list[str] = []
    for et in doc.findall("h:documentationOf/h:serviceEvent/h:effectiveTime", NS):
        for tag, bucket in (("low", lows), ("high", highs)):
            el = et.find(f"h:{tag}", NS)
            v = ts_to_dtm(el.get("value")) if el is not None else None
            if v:
                bucket.append(v)
        if et.get("value") and (v := ts_to_dtm(et.get("value"))):
            lows.append(v)
            highs.append(v)
    return (min(lows, key=lambda v: v.ljust(14, "0")) if lows else None,
            max(highs, key=lambda v: v.ljust(14, "9")) if highs else None)


def event_codes(doc: etree._Element) -> list[Code]:
    out: list[Code] = []
    for el in doc.findall("h:documentationOf/h:serviceEvent/h:code", NS):
        c = code_of(el)
        if c and all((c.code, c.scheme) != (o.code, o.scheme) for o in out):
            out.append(c)
    return out


def practice_setting(doc: etree._Element) -> Code | None:
    """CI-SIS: the performer's organisation's standardIndustryClassCode, else the first one in the header."""
    for path in ("h:documentationOf/h:serviceEvent/h:performer/h:assignedEntity/h:representedOrganization/"
                 "h:standardIndustryClassCode",
                 "h:legalAuthenticator/h:assignedEntity/h:representedOrganization/h:standardIndustryClassCode",
                 "h:author/h:assignedAuthor/h:representedOrganization/h:standardIndustryClassCode"):
        for el in doc.findall(path, NS):
            c = code_of(el)
            if c:
                return c
    return None


def body_media_type(doc: etree._Element) -> str | None:
    text = doc.find("h:component/h:nonXMLBody/h:text", NS)
    return (text.get("mediaType") or "text/plain") if text is not None else None


def format_code(doc: etree._Element) -> Code:
    """formatCode: XDS-SD by mediaType for a nonXMLBody, else the volet's templateId (ANS ASS_A11/A12)."""
    media = body_media_type(doc)
    if media is not None:
        return UNSTRUCTURED_FORMATS.get(media, GENERIC_STRUCTURED)
    roots = [r for t in doc.findall("h:templateId", NS) if (r := t.get("root"))]
    for table in (CISIS_TEMPLATE_FORMATS, IHE_TEMPLATE_FORMATS):
        for root in roots:
            if root in table:
                return Code(*table[root])
    return GENERIC_STRUCTURED


def format_fallback_warning(doc: etree._Element) -> str | None:
    """Why the formatCode is the generic one, naming the templateIds seen (None when it is not)."""
    if format_code(doc) != GENERIC_STRUCTURED:
        return None
    media = body_media_type(doc)
    if media is not None:
        seen = f"the nonXMLBody mediaType {media} has no XDS-SD formatCode"
    else:
        roots = [r for t in doc.findall("h:templateId", NS) if (r := t.get("root"))]
        seen = (f"no CI-SIS or IHE document template among the templateIds {', '.join(roots)}" if roots
                else "the header declares no templateId")
    return (f"formatCode falls back to the generic {GENERIC_STRUCTURED.code}: {seen} "
            "(give --format-code CODE|SCHEME to set it)")


def reference_ids(doc: etree._Element) -> list[str]:
    out = []
    for ident in doc.findall("h:inFulfillmentOf/h:order/h:id", NS):
        if ident.get("root"):
            out.append(f"{_esc(ident.get('extension') or ident.get('root'))}^^^&{ident.get('root')}&ISO"
                       f"^urn:ihe:iti:xds:2013:order")
    return out


RELATIONS = ("RPLC", "APND", "XFRM")
"""relatedDocument typeCodes (CDA R2 4.2.3.1) that are XDS associations of the same name (ITI TF-3 4.2.2)."""


def related_documents(doc: etree._Element) -> list[tuple[str, str]]:
    """(typeCode, parent uniqueId) of each relatedDocument whose parentDocument has an id."""
    out = []
    for rd in doc.findall("h:relatedDocument", NS):
        kind = rd.get("typeCode")
        ident = rd.find("h:parentDocument/h:id", NS)
        if kind in RELATIONS and ident is not None and (root := ident.get("root")):
            out.append((kind, f"{root}^{ident.get('extension')}" if ident.get("extension") else root))
    return out


def replaced(doc: etree._Element) -> list[str]:
    return [uid for kind, uid in related_documents(doc) if kind == "RPLC"]


# ----------------------------------------------------------------------------- the mapping

XSLT_NS = "http://www.w3.org/1999/XSL/Transform"
SELF_DISPLAYING_MIME = "application/xslt+xml"
"""ANS: mimeType of a "CDA auto-présentable" (the CDA inside the XSLT stylesheet that displays it)."""


def clinical_document(root: etree._Element, source: str = "document") -> tuple[etree._Element, bool]:
    """The ClinicalDocument of a plain CDA, or of an ANS self-displaying one; True for the latter.

    ANS CI-SIS allows a "CDA auto-présentable": an XSLT stylesheet (root ``xsl:stylesheet``)
    carrying the ClinicalDocument as a top-level element, submitted whole with mimeType
    application/xslt+xml and the metadata of the CDA inside.
    """
    if root.tag == H + "ClinicalDocument":
        return root, False
    if root.tag in (f"{{{XSLT_NS}}}stylesheet", f"{{{XSLT_NS}}}transform"):
        found = list(root.iter(H + "ClinicalDocument"))
        if len(found) == 1:
            return found[0], True
        raise InputError(f"{source} is an XSLT stylesheet with {len(found)} ClinicalDocument elements in "
                         "urn:hl7-org:v3: a self-displaying CDA (auto-présentable) carries exactly one")
    raise InputError(f"{source} is not a CDA R2 document (root element {etree.QName(root).localname}, "
                     f"expected ClinicalDocument in urn:hl7-org:v3, or the xsl:stylesheet of a "
                     f"self-displaying CDA)")


def parse_xml_input(content: bytes, source: str = "document") -> etree._Element:
    try:
        return parse_xml(content)
    except SoapFault as exc:
        raise InputError(f"{source} is not well-formed, safe XML: {exc.reason}") from None


def parse_cda(content: bytes, source: str = "document") -> etree._Element:
    return clinical_document(parse_xml_input(content, source), source)[0]


def document_from_cda(content: bytes, source: str = "document", entry_uuid: str | None = None) -> CdaDocument:
    """Read the header of a CDA R2 document into a DocumentEntry (uniqueId, patient, codes, times ...)."""
    doc, wrapped = clinical_document(parse_xml_input(content, source), source)
    pid = patient_id(doc)
    type_code = code_of(doc.find("h:code", NS))
    start, stop = service_times(doc)
    conf = code_of(doc.find("h:confidentialityCode", NS))
    language = doc.find("h:languageCode", NS)
    effective = doc.find("h:effectiveTime", NS)
    entry = DocumentEntry(
        entry_uuid=entry_uuid or new_uuid(), unique_id=unique_id(doc), patient_id=pid,
        mime_type=SELF_DISPLAYING_MIME if wrapped else CDA_MIME,
        title=" ".join((doc.findtext("h:title", "", NS) or "").split()) or None,
        class_code=class_for_type(type_code), type_code=type_code, format_code=format_code(doc),
        healthcare_facility_type_code=code_of(doc.find(
            "h:componentOf/h:encompassingEncounter/h:location/h:healthCareFacility/h:code", NS)),
        practice_setting_code=practice_setting(doc), confidentiality_codes=[conf] if conf else [],
        event_codes=event_codes(doc), authors=authors(doc),
        creation_time=ts_to_dtm(effective.get("value")) if effective is not None else None,
        service_start_time=start, service_stop_time=stop,
        language_code=language.get("code") if language is not None else None,
        legal_authenticator=legal_authenticator(doc), source_patient_id=pid,
        source_patient_info=source_patient_info(doc, pid), reference_ids=reference_ids(doc))
    warning = format_fallback_warning(doc)
    return CdaDocument(content, entry, replaced(doc), body_media_type(doc), related_documents(doc),
                       [warning] if warning else [], patient_ids(doc), wrapped)


def embedded_body(content: bytes) -> tuple[str, bytes] | None:
    """(mediaType, bytes) of a nonXMLBody in base64, e.g. the PDF of an XDS-SD document."""
    doc = parse_cda(content)
    text = doc.find("h:component/h:nonXMLBody/h:text", NS)
    if text is None or text.get("representation") != "B64":
        return None
    try:
        return text.get("mediaType") or "text/plain", base64.b64decode("".join((text.text or "").split()),
                                                                         validate=True)
    except binascii.Error as exc:
        raise InputError(f"the nonXMLBody is not valid base64: {exc}") from None
