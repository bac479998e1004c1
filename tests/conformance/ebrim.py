"""ebRIM 2.1 -> 3.0 translation of the kit's submission files, as the toolkit does.

Input: a parsed metadata file (rs:SubmitObjectsRequest 2.1, lcm:SubmitObjectsRequest
3.0 or xdsb:ProvideAndRegisterDocumentSetRequest 3.0). Output: a fresh 3.0
``lcm:SubmitObjectsRequest`` element. Files already in 3.0 pass through (copied).
"""
from __future__ import annotations

import copy
import uuid

from lxml import etree

RIM21 = "urn:oasis:names:tc:ebxml-regrep:rim:xsd:2.1"
RS21 = "urn:oasis:names:tc:ebxml-regrep:registry:xsd:2.1"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
XDSB = "urn:ihe:iti:xds-b:2007"
XML_NS = "http://www.w3.org/XML/1998/namespace"

NSMAP = {"rim": RIM, "lcm": LCM, "rs": RS, "query": QUERY, "xdsb": XDSB}

OBJECT_TYPE = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:"
STATUS_PREFIX = "urn:oasis:names:tc:ebxml-regrep:StatusType:"
ASSOC_PREFIX = "urn:oasis:names:tc:ebxml-regrep:AssociationType:"
IHE_ASSOC_PREFIX = "urn:ihe:iti:2007:AssociationType:"
IHE_ASSOCIATION_TYPES = {"RPLC", "XFRM", "APND", "XFRM_RPLC", "signs", "IsSnapshotOf"}


def uid(u: str) -> str:
    return "urn:uuid:" + u


# XDS well-known UUIDs (ITI TF-3 4.2.5): classification schemes, identification
# schemes, classification nodes, object types.
DE_OBJECT_TYPE = uid("7edca82f-054d-47f2-a032-9b2a5b5186c1")
DE_ONDEMAND_TYPE = uid("34268e47-fdf5-41a6-ba33-82133c465248")
DE_PATIENT_ID = uid("58a6f841-87b3-4a3e-92fd-a8ffeff98427")
DE_UNIQUE_ID = uid("2e82c1f6-a085-4c72-9da3-8640a32e42ab")
SS_NODE = uid("a54d6aa5-d40d-43f9-88c5-b4633d873bdd")
SS_PATIENT_ID = uid("6b5aea1a-874d-4603-a4bc-96a0a7b38446")
SS_UNIQUE_ID = uid("96fdda7c-d067-4183-912e-bf5ee74998a8")
SS_SOURCE_ID = uid("554ac39e-e3fe-47fe-b233-965d2a147832")
FOL_NODE = uid("d9d542f3-6cc4-48b6-8870-ea235fbc94c2")
FOL_PATIENT_ID = uid("f64ffdf0-4b97-4e06-b79f-a52b38ec2f8a")
FOL_UNIQUE_ID = uid("75df8f67-9973-4fbe-a900-df66cefecc5a")

PATIENT_ID_SCHEMES = {DE_PATIENT_ID, SS_PATIENT_ID, FOL_PATIENT_ID}
UNIQUE_ID_SCHEMES = {DE_UNIQUE_ID, SS_UNIQUE_ID, FOL_UNIQUE_ID}

WELL_KNOWN_UUIDS = {
    DE_OBJECT_TYPE, DE_ONDEMAND_TYPE, DE_PATIENT_ID, DE_UNIQUE_ID,
    SS_NODE, SS_PATIENT_ID, SS_UNIQUE_ID, SS_SOURCE_ID,
    FOL_NODE, FOL_PATIENT_ID, FOL_UNIQUE_ID,
    uid("41a5887f-8865-4c09-adf7-e362475b143a"),  # classCode
    uid("f4f85eac-e6cb-4883-b524-f2705394840f"),  # confidentialityCode
    uid("a09d5840-386c-46f2-b5ad-9c3699a4309d"),  # formatCode
    uid("f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"),  # healthcareFacilityTypeCode
    uid("cccf5598-8b07-4b77-a05e-ae952c785ead"),  # practiceSettingCode
    uid("f0306f51-975f-434e-a61c-c59651d33983"),  # typeCode
    uid("2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4"),  # eventCodeList
    uid("93606bcf-9494-43ec-9b4e-a7748d1a838d"),  # DE author
    uid("a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"),  # SS author
    uid("aa543740-bdda-424e-8c96-df4873be8500"),  # SS contentTypeCode
    uid("1ba97051-7806-41a8-a48b-8fce7af683c5"),  # Folder codeList
    uid("abd807a3-4432-4053-87b4-fd82c643d1f3"),  # association documentation
    # The kit's boilerplate ObjectRef list (161 files) carries this misspelling
    # of the DocumentEntry objectType; it refers to no object either way.
    uid("7edca82f-054d-47f2-a032-9b2a5b518fff"),
}

# Elements that are RegistryObjects and the order the 3.0 schema requires for
# their children (rim.xsd RegistryObjectType, then subtype extensions).
REGISTRY_OBJECTS = {"ExtrinsicObject", "RegistryPackage", "Classification",
                    "Association", "ExternalIdentifier"}
CHILD_ORDER = ["Slot", "Name", "Description", "VersionInfo", "Classification",
               "ExternalIdentifier", "ContentVersionInfo", "RegistryObjectList"]

# Attributes each 3.0 element accepts (rim.xsd); others from 2.1 are dropped.
ALLOWED_ATTRS = {
    "ExtrinsicObject": {"id", "home", "lid", "objectType", "status", "mimeType",
                        "isOpaque"},
    "RegistryPackage": {"id", "home", "lid", "objectType", "status"},
    "Classification": {"id", "home", "lid", "objectType", "status",
                       "classificationScheme", "classifiedObject",
                       "classificationNode", "nodeRepresentation"},
    "Association": {"id", "home", "lid", "objectType", "status",
                    "associationType", "sourceObject", "targetObject"},
    "ExternalIdentifier": {"id", "home", "lid", "objectType", "status",
                           "registryObject", "identificationScheme", "value"},
    "ObjectRef": {"id", "home", "createReplica"},
    "Slot": {"name", "slotType"},
    "LocalizedString": {"value", "charset", f"{{{XML_NS}}}lang"},
}


def new_id() -> str:
    return "urn:uuid:" + str(uuid.uuid4())


def local(el: etree._Element) -> str:
    return etree.QName(el).localname


def ns(el: etree._Element) -> str:
    return etree.QName(el).namespace or ""


def rim(name: str) -> str:
    return f"{{{RIM}}}{name}"


def namespaced_status(value: str) -> str:
    if value.startswith("urn:"):
        return value
    return STATUS_PREFIX + value


def namespaced_association_type(value: str) -> str:
    if value.startswith("urn:"):
        return value
    if value in IHE_ASSOCIATION_TYPES:
        return IHE_ASSOC_PREFIX + value
    return ASSOC_PREFIX + value


def _translate_simple(el: etree._Element) -> etree._Element:
    """Slot / ValueList / Value / Name / Description / LocalizedString."""
    name = local(el)
    out = etree.Element(rim(name))
    allowed = ALLOWED_ATTRS.get(name)
    for k, v in el.attrib.items():
        if allowed is None or k in allowed:
            out.set(k, v)
    if name == "Value":
        out.text = el.text
        return out
    for child in el:
        if isinstance(child.tag, str):
            out.append(_translate_simple(child))
    return out


def _translate_object(el: etree._Element, parent_id: str | None) -> etree._Element:
    name = local(el)
    out = etree.Element(rim(name))
    for k, v in el.attrib.items():
        if k in ALLOWED_ATTRS[name]:
            out.set(k, v)
    if name in ("Classification", "Association", "ExternalIdentifier") and not out.get("id"):
        out.set("id", new_id())
    if name in ("Classification", "Association", "ExternalIdentifier", "RegistryPackage") \
            and not out.get("objectType"):
        out.set("objectType", OBJECT_TYPE + name)
    if name == "Classification" and not out.get("classifiedObject") and parent_id:
        out.set("classifiedObject", parent_id)
    if name == "ExternalIdentifier" and parent_id:
        out.set("registryObject", parent_id)
    if out.get("status"):
        out.set("status", namespaced_status(out.get("status")))
    if name == "Association" and out.get("associationType"):
        out.set("associationType", namespaced_association_type(out.get("associationType")))
    children: dict[str, list[etree._Element]] = {k: [] for k in CHILD_ORDER}
    for child in el:
        if not isinstance(child.tag, str):
            continue
        cname = local(child)
        if cname in REGISTRY_OBJECTS:
            children.setdefault(cname, []).append(_translate_object(child, out.get("id")))
        else:
            children.setdefault(cname, []).append(_translate_simple(child))
    for cname in CHILD_ORDER:
        for c in children.pop(cname, []):
            out.append(c)
    for rest in children.values():  # unknown children: keep, the schema will judge
        for c in rest:
            out.append(c)
    return out


def _fix_3_0(sor: etree._Element) -> etree._Element:
    """A 3.0 SubmitObjectsRequest passes through (a copy)."""
    return copy.deepcopy(sor)


def to_submit_objects_request(root: etree._Element) -> etree._Element:
    """Return a 3.0 lcm:SubmitObjectsRequest for any submission file of the kit."""
    if ns(root) == XDSB and local(root) == "ProvideAndRegisterDocumentSetRequest":
        sor = root.find(f"{{{LCM}}}SubmitObjectsRequest")
        if sor is None:
            raise ValueError("ProvideAndRegisterDocumentSetRequest without SubmitObjectsRequest")
        return _fix_3_0(sor)
    if ns(root) == LCM and local(root) == "SubmitObjectsRequest":
        return _fix_3_0(root)
    if local(root) != "SubmitObjectsRequest" or ns(root) != RS21:
        raise ValueError(f"not a submission: {root.tag}")
    out = etree.Element(f"{{{LCM}}}SubmitObjectsRequest", nsmap={"lcm": LCM, "rim": RIM})
    lst = etree.SubElement(out, rim("RegistryObjectList"))
    src = root.find(f"{{{RIM21}}}LeafRegistryObjectList")
    if src is None:
        return out
    for child in src:
        if not isinstance(child.tag, str):
            continue
        name = local(child)
        if name == "ObjectRef":
            if child.get("id") in WELL_KNOWN_UUIDS:
                continue  # the toolkit omits references to XDS well-known UUIDs
            lst.append(_translate_simple_objectref(child))
        elif name in REGISTRY_OBJECTS:
            lst.append(_translate_object(child, None))
        else:
            raise ValueError(f"unexpected 2.1 element {name}")
    return out


def _translate_simple_objectref(el: etree._Element) -> etree._Element:
    out = etree.Element(rim("ObjectRef"))
    for k, v in el.attrib.items():
        if k in ALLOWED_ATTRS["ObjectRef"]:
            out.set(k, v)
    return out


# --- helpers over 3.0 metadata -------------------------------------------------

def registry_objects(sor: etree._Element) -> list[etree._Element]:
    lst = sor.find(rim("RegistryObjectList"))
    return [] if lst is None else [c for c in lst if isinstance(c.tag, str)]


def external_identifiers(sor: etree._Element, schemes: set[str]):
    for ei in sor.iter(rim("ExternalIdentifier")):
        if ei.get("identificationScheme") in schemes:
            yield ei
