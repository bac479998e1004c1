"""Generic ebRIM 3.0 objects (OASIS ebRIM 3.0 section 2-4), parsed from and written to XML.

This layer knows nothing of XDS: it holds every attribute, slot, name, classification and
external identifier of a registry object so that what a Document Source registered is what a
Document Consumer gets back (ITI TF-2 3.18.4.1.3.7: LeafClass answers carry the full objects).
The XDS meaning is given by :mod:`xds.metadata`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from lxml import etree

from xds.vocabulary import NS_LCM, NS_RIM, q
from xds.xmlsafe import parse_bytes

RIM = "{%s}" % NS_RIM
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"

XDS_OBJECTS = ("ExtrinsicObject", "RegistryPackage", "Association", "Classification", "ExternalIdentifier",
               "ObjectRef")
"""The ebRIM elements an XDS RegistryObjectList may hold (ITI TF-3 4.1, 4.2.1)."""
TYPE_ELEMENTS = {"ExtrinsicObjectType": "ExtrinsicObject", "RegistryPackageType": "RegistryPackage",
                 "AssociationType1": "Association", "ClassificationType": "Classification",
                 "ExternalIdentifierType": "ExternalIdentifier", "ObjectRefType": "ObjectRef"}
"""ebRIM 3.0 type -> the element declared with it: ``rim:Identifiable xsi:type="rim:ExtrinsicObjectType"``
(XML Schema 1 section 2.6.1, type substitution; what zeep writes from the IHE WSDLs) is a
``rim:ExtrinsicObject``."""
CHILD_ORDER = {RIM + name: rank for rank, name in enumerate(
    ("Slot", "Name", "Description", "VersionInfo", "Classification", "ExternalIdentifier"))}
"""ebRIM 3.0 RegistryObjectType's content, in its schema order; ExtrinsicObject's ContentVersionInfo
and RegistryPackage's RegistryObjectList come after (ExtrinsicObjectType, RegistryPackageType)."""
CHILD_ORDER[RIM + "ContentVersionInfo"] = CHILD_ORDER[RIM + "RegistryObjectList"] = len(CHILD_ORDER)


@dataclass
class LocalizedString:
    value: str
    lang: str | None = None
    charset: str | None = None


@dataclass
class Slot:
    name: str
    values: list[str] = field(default_factory=list)
    slot_type: str | None = None


@dataclass
class VersionInfo:
    version_name: str | None = None
    comment: str | None = None


@dataclass
class RegistryObject:
    """Common part of every ebRIM RegistryObject; ``tag`` is the element's local name."""
    tag: str
    id: str
    attributes: dict[str, str] = field(default_factory=dict)
    slots: list[Slot] = field(default_factory=list)
    name: list[LocalizedString] | None = None
    description: list[LocalizedString] | None = None
    version_info: VersionInfo | None = None
    classifications: list[RegistryObject] = field(default_factory=list)
    external_identifiers: list[RegistryObject] = field(default_factory=list)
    content_version_info: VersionInfo | None = None
    """Only ExtrinsicObject has it (ebRIM 3.0 ExtrinsicObjectType)."""
    element: etree._Element | None = field(default=None, compare=False, repr=False)
    """The XML this object was read from, if any: the registry stores it as it came."""
    unknown_children: list[str] = field(default_factory=list, compare=False)
    """Child elements ebRIM does not define for a registry object (refused by validation)."""

    def copy(self) -> RegistryObject:
        """An independent copy, cheaper than ``copy.deepcopy`` on the registration hot path."""
        return RegistryObject(
            tag=self.tag, id=self.id, attributes=dict(self.attributes),
            slots=[Slot(s.name, list(s.values), s.slot_type) for s in self.slots],
            name=list(self.name) if self.name is not None else None,
            description=list(self.description) if self.description is not None else None,
            version_info=self.version_info, classifications=[c.copy() for c in self.classifications],
            external_identifiers=[e.copy() for e in self.external_identifiers],
            content_version_info=self.content_version_info, element=self.element,
            unknown_children=list(self.unknown_children))

    def set_slot(self, name: str, values: list[str]) -> None:
        """Set a slot's values, in the model and in the XML it was read from (if any)."""
        slot = self.slot(name)
        if slot is None:
            self.slots.append(Slot(name, list(values)))
        else:
            slot.values = list(values)
        if self.element is None:
            return
        for old in self.element.iterchildren(RIM + "Slot"):
            if old.get("name") == name:
                self.element.remove(old)
        new = etree.Element(RIM + "Slot", name=name)
        value_list = etree.SubElement(new, RIM + "ValueList")
        for v in values:
            etree.SubElement(value_list, RIM + "Value").text = v
        slots = list(self.element.iterchildren(RIM + "Slot"))
        if slots:
            slots[-1].addnext(new)
        else:
            self.element.insert(0, new)

    def get(self, attribute: str, default: str | None = None) -> str | None:
        return self.attributes.get(attribute, default)

    def slot(self, name: str) -> Slot | None:
        for s in self.slots:
            if s.name == name:
                return s
        return None

    def slot_values(self, name: str) -> list[str]:
        s = self.slot(name)
        return list(s.values) if s else []

    def slot_value(self, name: str) -> str | None:
        values = self.slot_values(name)
        return values[0] if values else None

    def name_text(self) -> str | None:
        return self.name[0].value if self.name else None

    def description_text(self) -> str | None:
        return self.description[0].value if self.description else None


# ----------------------------------------------------------------------------- parsing

def _international(el: etree._Element | None) -> list[LocalizedString] | None:
    if el is None:
        return None
    return [LocalizedString(ls.get("value", ""), ls.get("{http://www.w3.org/XML/1998/namespace}lang"),
                            ls.get("charset"))
            for ls in el.iterchildren(RIM + "LocalizedString")]


def _version(el: etree._Element | None) -> VersionInfo | None:
    if el is None:
        return None
    return VersionInfo(el.get("versionName"), el.get("comment"))


def parse_slot(el: etree._Element) -> Slot:
    values: list[str] = []
    vl = el.find(RIM + "ValueList")
    if vl is not None:
        values = [v.text or "" for v in vl.iterchildren(RIM + "Value")]
    return Slot(el.get("name", ""), values, el.get("slotType"))


def element_name(el: etree._Element) -> str:
    """The ebRIM element ``el`` stands for: the one its ``xsi:type`` declares, else its own name.

    The xsi:type QName's prefix is resolved through the element's in-scope namespaces. An
    element of the ebRIM namespace is named by its local name (``ExtrinsicObject``); anything else
    keeps a name that says what it is (``{ns}local``, ``Identifiable xsi:type=x:T``), which no
    XDS object has, so validation can refuse it by name.
    """
    qname = etree.QName(el)
    xsi_type = el.get(XSI_TYPE)
    local = qname.localname if qname.namespace == NS_RIM else el.tag
    if xsi_type is None:
        return local
    prefix, _, type_name = xsi_type.strip().rpartition(":")
    namespace = el.nsmap.get(prefix or None)
    if namespace == NS_RIM and type_name in TYPE_ELEMENTS:
        return TYPE_ELEMENTS[type_name]
    return f"{local} xsi:type={xsi_type}"


def parse_object(el: etree._Element) -> RegistryObject:
    """Read one ebRIM 3.0 registry object element (ExtrinsicObject, RegistryPackage, ...)."""
    tag = element_name(el)
    attrib = cast(dict[str, str], el.attrib)  # lxml-stubs type attribute names and values as str | bytes
    obj = RegistryObject(tag=tag, id=el.get("id", ""), attributes={k: v for k, v in attrib.items() if k != "id"},
                         element=el)
    for child in el:
        if not isinstance(child.tag, str):
            continue
        ctag = child.tag
        if ctag == RIM + "Slot":
            obj.slots.append(parse_slot(child))
        elif ctag == RIM + "Name":
            obj.name = _international(child)
        elif ctag == RIM + "Description":
            obj.description = _international(child)
        elif ctag == RIM + "VersionInfo":
            obj.version_info = _version(child)
        elif ctag == RIM + "ContentVersionInfo":
            obj.content_version_info = _version(child)
        elif ctag == RIM + "Classification":
            obj.classifications.append(parse_object(child))
        elif ctag == RIM + "ExternalIdentifier":
            obj.external_identifiers.append(parse_object(child))
        elif ctag != RIM + "RegistryObjectList":
            obj.unknown_children.append(etree.QName(child).localname if ctag.startswith(RIM) else ctag)
    return obj


def parse_object_list(el: etree._Element) -> list[RegistryObject]:
    """Every element child of a ``rim:RegistryObjectList``, in document order (ObjectRefs included).

    Nothing is left out: an element that is no XDS object keeps a ``tag`` outside
    :data:`XDS_OBJECTS` and validation refuses it, naming it.
    """
    return [parse_object(c) for c in el if isinstance(c.tag, str)]


def normalise_element(el: etree._Element) -> None:
    """Put ``el`` in the form the ebRIM 3.0 schema declares, in place, recursively into its
    Classifications and ExternalIdentifiers.

    An ``xsi:type`` substitution becomes the element of that type; children go in schema order
    (Slot*, Name?, Description?, VersionInfo?, Classification*, ExternalIdentifier*, then
    ContentVersionInfo or RegistryObjectList), keeping their relative order and their content
    as sent. A comment or processing instruction travels with the element that follows it. A
    LeafClass answer returns the stored element (ITI TF-2 3.18.4.1.3.7), and it must be valid.
    """
    name = element_name(el)
    if name in TYPE_ELEMENTS.values():
        el.tag = RIM + name
        if XSI_TYPE in el.attrib:
            del el.attrib[XSI_TYPE]
    units: list[tuple[int, list[etree._Element]]] = []
    pending: list[etree._Element] = []
    for child in el:
        pending.append(child)
        if isinstance(child.tag, str):
            if element_name(child) in ("Classification", "ExternalIdentifier"):
                normalise_element(child)
            units.append((CHILD_ORDER.get(child.tag, len(CHILD_ORDER) + 1), pending))
            pending = []
    ordered = [node for _, unit in sorted(units, key=lambda u: u[0]) for node in unit] + pending
    if ordered != list(el):
        el[:] = ordered


# ----------------------------------------------------------------------------- writing

def _write_international(parent: etree._Element, tag: str, strings: list[LocalizedString] | None) -> None:
    if strings is None:
        return
    el = etree.SubElement(parent, RIM + tag)
    for s in strings:
        ls = etree.SubElement(el, RIM + "LocalizedString")
        if s.charset is not None:
            ls.set("charset", s.charset)
        if s.lang is not None:
            ls.set("{http://www.w3.org/XML/1998/namespace}lang", s.lang)
        ls.set("value", s.value)


def write_slot(parent: etree._Element, slot: Slot) -> etree._Element:
    el = etree.SubElement(parent, RIM + "Slot", name=slot.name)
    if slot.slot_type is not None:
        el.set("slotType", slot.slot_type)
    vl = etree.SubElement(el, RIM + "ValueList")
    for v in slot.values:
        etree.SubElement(vl, RIM + "Value").text = v
    return el


def to_element(obj: RegistryObject, parent: etree._Element | None = None,
               overrides: dict[str, str | None] | None = None) -> etree._Element:
    """Write ``obj`` in the element order of the ebRIM 3.0 schema.

    ``overrides`` replaces attributes for this write only (the current ``status`` of a stored
    entry, the ``home`` community id of a query answer) without touching the object.
    """
    attrs = {"id": obj.id, **obj.attributes}
    for k, v in (overrides or {}).items():
        if v is None:
            attrs.pop(k, None)
        else:
            attrs[k] = v
    tag = RIM + obj.tag
    el = etree.Element(tag, nsmap={"rim": NS_RIM}) if parent is None else etree.SubElement(parent, tag)
    for k, v in attrs.items():
        el.set(k, v)
    for s in obj.slots:
        write_slot(el, s)
    _write_international(el, "Name", obj.name)
    _write_international(el, "Description", obj.description)
    if obj.version_info is not None:
        vi = etree.SubElement(el, RIM + "VersionInfo")
        if obj.version_info.version_name is not None:
            vi.set("versionName", obj.version_info.version_name)
        if obj.version_info.comment is not None:
            vi.set("comment", obj.version_info.comment)
    for c in obj.classifications:
        to_element(c, el)
    for e in obj.external_identifiers:
        to_element(e, el)
    if obj.content_version_info is not None:
        vi = etree.SubElement(el, RIM + "ContentVersionInfo")
        if obj.content_version_info.version_name is not None:
            vi.set("versionName", obj.content_version_info.version_name)
        if obj.content_version_info.comment is not None:
            vi.set("comment", obj.content_version_info.comment)
    return el


def object_list_element(objects: list[RegistryObject], parent: etree._Element | None = None) -> etree._Element:
    tag = RIM + "RegistryObjectList"
    el = etree.Element(tag, nsmap={"rim": NS_RIM}) if parent is None else etree.SubElement(parent, tag)
    for o in objects:
        to_element(o, el)
    return el


def nest_free_standing(objects: list[RegistryObject]) -> list[RegistryObject]:
    """Move top-level Classifications and ExternalIdentifiers into the object they describe.

    ebRIM 3.0 lets a submission carry them either inside their object or beside it (ITI TF-3
    4.1.9.1 shows both for the SubmissionSet classification); the nested form is the one the
    rest of the code reads, and the one query answers return.
    """
    by_id = {o.id: o for o in objects if o.tag not in ("Classification", "ExternalIdentifier", "ObjectRef")}
    out = []
    for o in objects:
        if o.tag == "Classification" and (classified := o.get("classifiedObject")) in by_id:
            parent = by_id[classified]
            parent.classifications.append(o)
            _adopt(parent, o, before=(RIM + "ExternalIdentifier", RIM + "ContentVersionInfo"))
        elif o.tag == "ExternalIdentifier" and (identified := o.get("registryObject")) in by_id:
            parent = by_id[identified]
            parent.external_identifiers.append(o)
            _adopt(parent, o, before=(RIM + "ContentVersionInfo",))
        else:
            out.append(o)
    return out


def _adopt(parent: RegistryObject, child: RegistryObject, before: tuple[str, ...]) -> None:
    """Move the child's XML into the parent's, in ebRIM 3.0 schema order."""
    if parent.element is None or child.element is None:
        return
    anchor = next((c for c in parent.element if c.tag in before), None)
    if anchor is None:
        parent.element.append(child.element)
    else:
        anchor.addprevious(child.element)


def submit_objects_request(objects: list[RegistryObject]) -> etree._Element:
    """An ``lcm:SubmitObjectsRequest`` holding ``objects`` (ITI TF-2 3.42.4.1.2)."""
    root = etree.Element(q(NS_LCM, "SubmitObjectsRequest"), nsmap={"lcm": NS_LCM, "rim": NS_RIM})
    object_list_element(objects, root)
    return root


def to_bytes(obj: RegistryObject, overrides: dict[str, str | None] | None = None) -> bytes:
    return etree.tostring(to_element(obj, overrides=overrides))


def from_bytes(data: bytes) -> RegistryObject:
    return parse_object(parse_bytes(data))
