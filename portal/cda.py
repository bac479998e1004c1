"""CDA R2 -> readable, safe HTML: the header (patient, author, date, custodian) and each section's
narrative block.

Safety by construction, not by filtering: the output is *built* from an allow-list of CDA
narrative elements (HL7 namespace only), each mapped to a fixed HTML element, with no attribute
copied from the document except numeric ``colspan``/``rowspan`` and ``styleCode`` mapped to our own
classes. Everything else is escaped text; ``<script>``, foreign namespaces, ``renderMultiMedia``,
links and images never produce markup that can run or load anything. The pages add a strict
Content-Security-Policy on top (see :mod:`portal.app`).
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from lxml import etree
from markupsafe import Markup, escape

from client.cda import cx, patient_id
from xds.soap.faults import SoapFault
from xds.soap.parsing import parse_xml

H = "{urn:hl7-org:v3}"
NS = {"h": "urn:hl7-org:v3"}

# CDA narrative block element -> HTML element (HL7 CDA R2, NarrativeBlock.xsd)
ELEMENTS = {"paragraph": "p", "list": "ul", "item": "li", "table": "table", "thead": "thead", "tbody": "tbody",
            "tfoot": "tfoot", "tr": "tr", "th": "th", "td": "td", "caption": "caption", "content": "span",
            "sub": "sub", "sup": "sup", "br": "br", "footnote": "small", "footnoteRef": "small"}
DROPPED = {"renderMultiMedia", "colgroup", "col"}
"""Elements whose content is dropped (external media, column formatting)."""
STYLES = {"bold": "b", "italics": "i", "underline": "u", "emphasis": "i"}


@dataclass
class Section:
    title: str
    html: Markup
    level: int = 2


@dataclass
class CdaView:
    title: str = ""
    patient_name: str = ""
    patient_id: str | None = None
    birth: str = ""
    author: str = ""
    author_organization: str = ""
    date: str = ""
    custodian: str = ""
    sections: list[Section] = field(default_factory=list)
    body_media_type: str | None = None
    body: bytes | None = None
    """Bytes of a nonXMLBody (e.g. a PDF), decoded from base64."""
    skipped: int = 0
    """Number of media or unknown elements left out of the narrative."""


def _name(el) -> str:
    if el is None:
        return ""
    parts = [" ".join((p.text or "").split()) for p in el if isinstance(p.tag, str)
             and etree.QName(p).localname in ("prefix", "given", "family", "suffix")]
    text = " ".join(p for p in parts if p)
    return text or " ".join("".join(el.itertext()).split())


def ts_display(value: str | None) -> str:
    """``20240131093000+0100`` -> ``2024-01-31 09:30``."""
    v = (value or "").strip()
    if len(v) < 8 or not v[:8].isdigit():
        return v
    out = f"{v[0:4]}-{v[4:6]}-{v[6:8]}"
    if len(v) >= 12 and v[8:12].isdigit():
        out += f" {v[8:10]}:{v[10:12]}"
    return out


def render(content: bytes) -> CdaView:
    """Read a CDA document (safe parser: no DTD, entities or network) into a :class:`CdaView`."""
    try:
        doc = parse_xml(content)
    except SoapFault as exc:
        raise ValueError(f"not well-formed XML: {exc.reason}") from None
    if doc.tag != H + "ClinicalDocument":
        raise ValueError("not a CDA R2 document")
    view = CdaView()
    view.title = " ".join((doc.findtext("h:title", "", NS) or "").split())
    pr = doc.find("h:recordTarget/h:patientRole", NS)
    if pr is not None:
        view.patient_name = _name(pr.find("h:patient/h:name", NS))
        birth = pr.find("h:patient/h:birthTime", NS)
        view.birth = (birth.get("value") or "") if birth is not None else ""
    view.patient_id = patient_id(doc)
    author = doc.find("h:author", NS)
    if author is not None:
        view.author = _name(author.find("h:assignedAuthor/h:assignedPerson/h:name", NS)) or \
            _name(author.find("h:assignedAuthor/h:representedOrganization/h:name", NS))
        view.author_organization = _name(author.find("h:assignedAuthor/h:representedOrganization/h:name", NS))
    eff = doc.find("h:effectiveTime", NS)
    view.date = (eff.get("value") or "") if eff is not None else ""
    view.custodian = _name(doc.find("h:custodian/h:assignedCustodian/h:representedCustodianOrganization/h:name",
                                    NS))
    body = doc.find("h:component/h:nonXMLBody/h:text", NS)
    if body is not None:
        view.body_media_type = body.get("mediaType") or "text/plain"
        if body.get("representation") == "B64":
            try:
                view.body = base64.b64decode("".join((body.text or "").split()), validate=True)
            except binascii.Error:
                view.body = None
        else:
            view.body = (body.text or "").encode()
    for section in doc.iterfind("h:component/h:structuredBody/h:component/h:section", NS):
        _section(view, section, 2)
    return view


def _section(view: CdaView, section, level: int) -> None:
    title = " ".join("".join(section.find("h:title", NS).itertext()).split()) \
        if section.find("h:title", NS) is not None else ""
    text = section.find("h:text", NS)
    counter = [0]
    html = Markup(_children(text, counter)) if text is not None else Markup("")
    view.skipped += counter[0]
    view.sections.append(Section(title, html, min(level, 6)))
    for sub in section.iterfind("h:component/h:section", NS):
        _section(view, sub, level + 1)


def _children(el, counter) -> str:
    out = [str(escape(el.text or ""))]
    for child in el:
        out.append(_element(child, counter))
        out.append(str(escape(child.tail or "")))
    return "".join(out)


def _element(el, counter) -> str:
    if not isinstance(el.tag, str):  # comment or processing instruction
        return ""
    qn = etree.QName(el)
    if qn.namespace != "urn:hl7-org:v3" or qn.localname in DROPPED:
        counter[0] += 1
        return ""
    name = qn.localname
    if name == "linkHtml":  # show the words, never a link
        return f'<span class="link">{escape("".join(el.itertext()))}</span>'
    tag = ELEMENTS.get(name)
    if tag is None:  # unknown HL7 element: keep its text only
        counter[0] += 1
        return str(escape(" ".join("".join(el.itertext()).split())))
    if name == "list" and el.get("listType") == "ordered":
        tag = "ol"
    attrs = []
    if tag in ("td", "th"):
        for a in ("colspan", "rowspan"):
            v = el.get(a)
            if v and v.isdigit() and 0 < int(v) < 100:
                attrs.append(f' {a}="{int(v)}"')
    classes = [STYLES[s.lower()] for s in (el.get("styleCode") or "").split() if s.lower() in STYLES]
    if classes:
        attrs.append(f' class="cda-{" cda-".join(sorted(set(classes)))}"')
    if tag == "br":
        return "<br>"
    return f"<{tag}{''.join(attrs)}>{_children(el, counter)}</{tag}>"


__all__ = ["render", "CdaView", "Section", "ts_display", "cx"]
