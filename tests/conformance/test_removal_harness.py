"""The harness's replay of the kit's removal steps (ITI-62 RemoveMetadataTransaction, ITI-86
RdTransaction): every request it would send is schema-valid after substitution, and the
expectations the removal tests add are checked."""
from __future__ import annotations

from lxml import etree

from tests.conformance import expect, kit, runner
from tests.conformance.test_harness_units import FakeRun, schema

REMOVAL_TESTS = [f"3000{i}" for i in range(9)] + [f"5000{i}" for i in range(4)]


def test_removal_tests_are_offered():
    assert [t for t in REMOVAL_TESTS if kit.transactions_not_yet_offered(t)] == []


def test_every_removal_request_is_schema_valid_after_substitution():
    run = FakeRun()
    sent = {"RemoveMetadataTransaction": 0, "RdTransaction": 0}
    for t in REMOVAL_TESTS:
        test = kit.load_test(t)
        for name in test.sections:
            section = kit.read_section(t, test.path / name)
            for step in section.steps:
                if step.transaction not in sent:
                    continue
                syms = run.symbols(test, section, step, "p^^^&1.2&ISO")
                req = etree.fromstring(run.load_text(section, step, syms), kit.SAFE_PARSER)
                checked = runner.one_document_request(req) if step.transaction == "RdTransaction" else req
                assert schema().validate(checked), (t, name, step.id, schema().error_log.last_error)
                assert "$" not in etree.tostring(req).decode(), (t, name, step.id)
                sent[step.transaction] += 1
    assert sent == {"RemoveMetadataTransaction": 25, "RdTransaction": 4}


def test_one_document_request_keeps_the_first_of_several():
    req = etree.fromstring(b'<rmd:RemoveDocumentsRequest xmlns:rmd="urn:ihe:iti:rmd:2017" '
                           b'xmlns:xds="urn:ihe:iti:xds-b:2007"><xds:DocumentRequest><xds:DocumentUniqueId>1'
                           b'</xds:DocumentUniqueId></xds:DocumentRequest><xds:DocumentRequest>'
                           b'<xds:DocumentUniqueId>2</xds:DocumentUniqueId></xds:DocumentRequest>'
                           b'</rmd:RemoveDocumentsRequest>')
    one = runner.one_document_request(req)
    assert [e.text for e in one.iter("{urn:ihe:iti:xds-b:2007}DocumentUniqueId")] == ["1"]
    assert len(req) == 2


def test_fol_app_expects_every_folder_approved():
    rim = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
    approved = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"

    def answer(status: str) -> etree._Element:
        body = etree.fromstring(
            f'<query:AdhocQueryResponse xmlns:query="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0" '
            f'xmlns:rim="{rim}" status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success">'
            f'<rim:RegistryObjectList><rim:RegistryPackage id="urn:uuid:f" status="{status}">'
            f'<rim:Classification classificationNode="urn:uuid:d9d542f3-6cc4-48b6-8870-ea235fbc94c2" '
            f'classifiedObject="urn:uuid:f" id="urn:uuid:c"/></rim:RegistryPackage></rim:RegistryObjectList>'
            f'</query:AdhocQueryResponse>'.encode())
        return body

    spec = etree.fromstring(b"<ExpectedContents><FolApp/></ExpectedContents>")
    assert expect.check_contents(spec, answer(approved)) is None
    assert expect.check_contents(spec, answer("x:Deprecated")).startswith("FolApp:")
