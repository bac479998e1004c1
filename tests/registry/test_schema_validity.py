"""What we send and answer for ITI-42 is valid ebRS 3.0 (../shared/schemas/nist-v3)."""
from __future__ import annotations

import copy
import functools

import pytest
import requests
from lxml import etree

from bindings.registry import query_response
from registry.query import run_stored_query
from registry.register import Registry
from tests.conformance import ebrim
from tests.conformance.runner import StepRecord, prepare_submission
from tests.conftest import shared_path
from tests.support.metadata import draft, fresh_oid, fresh_patient
from xds import rim
from xds.errors import ErrorCode, ErrorList
from xds.responses import registry_response
from xds.rim import TYPE_ELEMENTS, XDS_OBJECTS
from xds.soap.client import decode_reply, encode_request
from xds.vocabulary import NS_LCM, NS_RIM, STORED_QUERIES, Actions
from xds.xmlsafe import parse_bytes


@functools.lru_cache(maxsize=1)
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(shared_path("schemas", "nist-v3", "XDS.b_DocumentRepository.xsd"))))


def assert_valid(el: etree._Element) -> None:
    schema = _schema()
    assert schema.validate(el), schema.error_log.last_error


def test_submit_objects_request_we_build_is_valid():
    d = draft(fresh_patient(), documents=3)
    d.add_folder()
    assert_valid(d.request())


@pytest.mark.parametrize("errors", [[], [ErrorCode.UNKNOWN_PATIENT_ID], [ErrorCode.NON_IDENTICAL_HASH] * 2])
def test_registry_response_is_valid(errors):
    el = ErrorList()
    for code in errors:
        el.add(code, "context", "location")
    assert_valid(registry_response(el))


def test_live_register_request_and_answers_are_valid(live_server):
    patient = fresh_patient()
    for known in (False, True):
        if known:
            live_server.add_patient(patient)
        body = draft(patient).request()
        assert_valid(body)
        data, headers = encode_request(Actions.REGISTER, live_server.registry_url, body)
        reply = decode_reply(200, requests.post(live_server.registry_url, data=data, headers=headers, timeout=30).content)
        assert_valid(reply.body)
        assert reply.body.get("status").endswith("Success" if known else "Failure")


# ----------------------------------------------------------------------------- LeafClass answers (issue 20)

XSI = "http://www.w3.org/2001/XMLSchema-instance"
NIST_REGISTER_FILES = ("single_doc_w_fol.xml", "two_doc_w_fol.xml", "single_doc_for_rplc.xml")
"""NIST XDS Toolkit 12346 (the registry data loader): ebRIM 2.1 submissions, translated as the toolkit does."""


@pytest.fixture
def registry(db) -> Registry:
    return Registry(db)


def _registered_patient(registry: Registry) -> str:
    patient = fresh_patient()
    registry.add_patient(patient)
    return patient


def _object_list(body: etree._Element) -> etree._Element:
    found = body.find(f".//{{{NS_RIM}}}RegistryObjectList")
    assert found is not None
    return found


def _wrong_order(rol: etree._Element) -> None:
    """Name, Description and VersionInfo before the Slots, ExternalIdentifiers before the
    Classifications, in every object and nested object: the order of the foreign suite of issue 20."""
    rank = {f"{{{NS_RIM}}}{n}": i for i, n in enumerate(
        ("Description", "Name", "VersionInfo", "ExternalIdentifier", "Slot", "Classification"))}
    for el in rol.iter(*(f"{{{NS_RIM}}}{n}" for n in XDS_OBJECTS)):
        el[:] = sorted(el, key=lambda c: rank.get(c.tag, len(rank)))


def _zeep_form(rol: etree._Element) -> etree._Element:
    """Every top-level object as ``ns2:Identifiable xsi:type="ns2:<Type>"`` (what zeep writes)."""
    types = {v: k for k, v in TYPE_ELEMENTS.items()}
    out = etree.Element(f"{{{NS_RIM}}}RegistryObjectList", nsmap={"ns2": NS_RIM, "xsi": XSI})
    for el in list(rol):
        new = etree.SubElement(out, f"{{{NS_RIM}}}Identifiable", dict(el.attrib))
        new.set(f"{{{XSI}}}type", "ns2:" + types[etree.QName(el).localname])
        new.extend(list(el))
    return parse_bytes(etree.tostring(out))


def _leaf_class_answer(registry: Registry, patient: str) -> etree._Element:
    statuses = "('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')"
    result = run_stored_query(registry.db, STORED_QUERIES["GetAll"], {
        "$patientId": [[f"'{patient}'"]], "$XDSDocumentEntryStatus": [[statuses]],
        "$XDSSubmissionSetStatus": [[statuses]], "$XDSFolderStatus": [[statuses]]}, "LeafClass")
    assert not result.errors, [e.context for e in result.errors]
    return query_response(result)


def _content(el: etree._Element) -> dict[str, object]:
    """What an object says, whatever its children's order: slots, name, description, nested objects."""
    o = rim.parse_object(el)
    return {"slots": sorted((s.name, tuple(s.values)) for s in o.slots), "name": o.name_text(),
            "description": o.description_text(),
            "classifications": sorted((c.get("classificationScheme") or c.get("classificationNode") or "",
                                       c.get("nodeRepresentation") or "", c.name_text() or "",
                                       tuple(sorted((s.name, tuple(s.values)) for s in c.slots)))
                                      for c in o.classifications),
            "identifiers": sorted((e.get("identificationScheme") or "", e.get("value") or "", e.name_text() or "")
                                  for e in o.external_identifiers)}


@pytest.mark.parametrize("form", ["wrong_order", "zeep_xsi_type", "wrong_order_and_xsi_type"])
def test_leaf_class_answers_are_schema_valid_whatever_the_submitted_order(registry, form):
    """ebRIM 3.0 RegistryObjectType: Slot*, Name?, Description?, VersionInfo?, Classification*,
    ExternalIdentifier*. A submission in another order, or written with xsi:type, is stored in
    schema form, its content as sent; the LeafClass answer (ITI TF-2 3.18.4.1.3.7) validates."""
    patient = _registered_patient(registry)
    d = draft(patient, documents=2)
    d.add_folder()
    rol = _object_list(d.request())
    if form != "zeep_xsi_type":
        _wrong_order(rol)
        assert not _schema().validate(_wrapped(rol)), "the submission itself is out of schema order"
    documents = {el.get("id"): _content(el) for el in rol if etree.QName(el).localname == "ExtrinsicObject"}
    stored = [o.tag for o in rim.parse_object_list(rol) if o.tag != "Classification"]
    if form != "wrong_order":
        rol = _zeep_form(rol)
    errors = registry.register(rim.parse_object_list(rol))
    assert not errors.has_errors, [e.context for e in errors]
    answer = _leaf_class_answer(registry, patient)
    assert_valid(answer)
    answered = list(_object_list(answer))
    assert sorted(etree.QName(el).localname for el in answered) == sorted(stored)
    answered_documents = sorted((_content(el) for el in answered if etree.QName(el).localname == "ExtrinsicObject"),
                                key=repr)
    assert answered_documents == sorted(documents.values(), key=repr), "the content is kept as sent"


def _wrapped(rol: etree._Element) -> etree._Element:
    root = etree.Element(f"{{{NS_LCM}}}SubmitObjectsRequest", nsmap={"lcm": NS_LCM})
    root.append(copy.deepcopy(rol))
    return root


@pytest.mark.parametrize("name", NIST_REGISTER_FILES)
def test_leaf_class_answers_are_schema_valid_for_nist_registrations(registry, name):
    """The NIST toolkit's own registrations (12346), registered and queried back: every answer validates."""
    source = shared_path("conformance", "nist-testkit", "tests", "12346", name)
    sor = ebrim.to_submit_objects_request(parse_bytes(source.read_bytes()))
    patient = _registered_patient(registry)
    uids = iter(range(1, 100))
    prepare_submission(sor, StepRecord(), patient=patient, set_patient=True, no_assign_uids=[], assign_uuids=False,
                       next_uid=lambda: f"{fresh_oid()}.{next(uids)}", repository_uid="1.2.250.1.999.2.1")
    errors = registry.register(rim.parse_object_list(_object_list(sor)))
    assert not errors.has_errors, [e.context for e in errors]
    assert_valid(_leaf_class_answer(registry, patient))
