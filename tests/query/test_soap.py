"""ITI-18 over SOAP: AdhocQueryRequest in, AdhocQueryResponse out (ITI TF-2 3.18.4.1.2, 3.18.4.1.3).

Called through xds.soap.SoapEndpoint as a WSGI app (no server); every response body is validated
against the NIST ebRS 3.0 schemas.
"""
from __future__ import annotations

from xml.sax.saxutils import escape

import pytest
from lxml import etree
from sqlalchemy import func, select

from bindings.registry import registry_operations
from config import Settings
from registry.store import schema as t
from server.app import build_services
from tests.conftest import shared_path
from tests.query.builders import PID, PID2, document
from tests.soap.conftest import call, envelope
from xds.metadata import Author
from xds.rim import Slot
from xds.soap import NS_SOAP12, NS_WSA, SoapEndpoint
from xds.vocabulary import NS_QUERY, NS_RIM, NS_RS, Status

ACTION = "urn:ihe:iti:2007:RegistryStoredQuery"
HOME = "urn:oid:1.3.6.1.4.1.21367.2017.2.6.52"
NS = {"s": NS_SOAP12, "wsa": NS_WSA, "query": NS_QUERY, "rim": NS_RIM, "rs": NS_RS}
FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
GET_DOCUMENTS = "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(shared_path("schemas", "nist-v3", "XDS.b_DocumentRepository.xsd"))))


@pytest.fixture
def app(db, tmp_path):
    services = build_services(Settings(data_dir=tmp_path, database_url=db.url, home_community_id=HOME,
                                       max_query_results=50, audit_enabled=False))
    yield SoapEndpoint(registry_operations(services), wsdl_path=None)
    services.close()


def request(query_id: str, slots: list[tuple[str, list[str]]], return_type: str = "LeafClass") -> str:
    body = "".join(f'<rim:Slot name="{n}"><rim:ValueList>{"".join(f"<rim:Value>{escape(v)}</rim:Value>" for v in vs)}'
                   f"</rim:ValueList></rim:Slot>" for n, vs in slots)
    return (f'<query:AdhocQueryRequest xmlns:query="{NS_QUERY}" xmlns:rim="{NS_RIM}">'
            f'<query:ResponseOption returnComposedObjects="true" returnType="{return_type}"/>'
            f'<rim:AdhocQuery id="{query_id}">{body}</rim:AdhocQuery></query:AdhocQueryRequest>')


def ask(app, schema, body: str, raw: bytes | None = None) -> etree._Element:
    res = call(app, raw if raw is not None else envelope(body, action=ACTION))
    assert res.status == 200, res.body
    env = res.xml()
    assert env.findtext("s:Header/wsa:Action", namespaces=NS) == ACTION + "Response"
    [response] = env.find("s:Body", NS)
    assert response.tag == f"{{{NS_QUERY}}}AdhocQueryResponse"
    schema.assertValid(response)
    return response


def errors(response) -> list[str]:
    return [e.get("errorCode") for e in response.iterfind("rs:RegistryErrorList/rs:RegistryError", NS)]


def test_soap_find_documents_leafclass(app, schema, db):
    from tests.query.builders import Store
    d = document(extra_slots=[Slot("urn:dmp:extra", ["x"])], authors=[Author(person="^Dupont^Jean")])
    Store(db).submit([d, document(PID2)])
    resp = ask(app, schema, request(FIND_DOCUMENTS, [("$XDSDocumentEntryPatientId", [f"'{PID}'"]),
                                                     ("$XDSDocumentEntryStatus", [f"('{Status.APPROVED}')"])]))
    assert resp.get("status") == "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
    assert resp.find("rs:RegistryErrorList", NS) is None
    [eo] = resp.findall("rim:RegistryObjectList/rim:ExtrinsicObject", NS)
    assert eo.get("id") == d.entry_uuid and eo.get("home") == HOME and eo.get("status") == Status.APPROVED
    assert eo.find("rim:Slot[@name='urn:dmp:extra']", NS) is not None


def test_soap_get_documents_objectref(app, schema, db):
    from tests.query.builders import Store
    d = document()
    Store(db).submit([d])
    resp = ask(app, schema, request(GET_DOCUMENTS, [("$XDSDocumentEntryEntryUUID", [f"('{d.entry_uuid}')"])],
                                    "ObjectRef"))
    refs = resp.findall("rim:RegistryObjectList/rim:ObjectRef", NS)
    assert [(r.get("id"), r.get("home")) for r in refs] == [(d.entry_uuid, HOME)]


def test_soap_error_response(app, schema):
    resp = ask(app, schema, request(GET_DOCUMENTS, [("$XDSDocumentEntryEntryUUID", ["('urn:uuid:a')"]),
                                                    ("$XDSDocumentEntryUniqueId", ["('1.2.3')"])]))
    assert resp.get("status") == "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
    assert errors(resp) == ["XDSStoredQueryParamNumber"]
    assert resp.find("rs:RegistryErrorList", NS).get("highestSeverity").endswith("Error")
    assert len(resp.find("rim:RegistryObjectList", NS)) == 0


def test_soap_unknown_stored_query(app, schema):
    resp = ask(app, schema, request("urn:uuid:11111111-2222-3333-4444-555555555555", []))
    assert errors(resp) == ["XDSUnknownStoredQuery"]


def test_soap_too_many_results(app, schema, db):
    from tests.query.builders import Store
    Store(db).submit([document() for _ in range(51)])
    resp = ask(app, schema, request(FIND_DOCUMENTS, [("$XDSDocumentEntryPatientId", [f"'{PID}'"]),
                                                     ("$XDSDocumentEntryStatus", [f"('{Status.APPROVED}')"])],
                                    "ObjectRef"))
    assert errors(resp) == ["XDSTooManyResults"]
    assert len(resp.find("rim:RegistryObjectList", NS)) == 0


def test_soap_ipf_injection_sample_changes_nothing(app, schema, db):
    from tests.query.builders import Store
    Store(db).submit([document()])
    sample = shared_path("conformance", "samples", "ipf", "iti18request.xml").read_bytes()
    body = etree.tostring(etree.fromstring(sample)).decode()

    def counts():
        with db.read() as conn:
            return [conn.execute(select(func.count()).select_from(tb)).scalar()
                    for tb in (t.registry_objects, t.document_entries, t.entry_codes, t.associations)]
    before = counts()
    resp = ask(app, schema, body)
    assert errors(resp) == ["XDSRegistryError"]
    [err] = resp.findall("rs:RegistryErrorList/rs:RegistryError", NS)
    assert "$XDSDocumentEntryPatientId" in err.get("codeContext")
    assert len(resp.find("rim:RegistryObjectList", NS)) == 0
    assert counts() == before
