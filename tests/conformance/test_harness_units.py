"""Unit tests of the conformance replay harness pieces (no server needed)."""
from __future__ import annotations

import os
from functools import lru_cache

import pytest
from lxml import etree

from tests.conformance import ebrim, kit

pytestmark = pytest.mark.skipif(
    not kit.tests_dir().is_dir() and not os.environ.get("CI"),
    reason=f"NIST test kit not found at {kit.tests_dir()} (set XDS_SHARED_DIR)",
)


@lru_cache(maxsize=1)
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(kit.parse_file(kit.schema_path()))


def submission_files():
    """(test, section, step, file) for every Register / PnR step of the kit."""
    out = []
    for t in kit.all_test_ids():
        if kit.transactions_not_yet_offered(t):
            continue
        test = kit.load_test(t)
        # the sections index.idx lists, as the harness runs them (some Metadata Update tests keep
        # folders of other runs beside them, 20000e's query_by_uniqueid names ../two_doc_w_fol)
        for sec in (test.path / n for n in test.sections if (test.path / n / "testplan.xml").exists()):
            for step in kit.read_section(t, sec).steps:
                if step.transaction in ("RegisterTransaction",
                                        "ProvideAndRegisterTransaction") and step.metadata_file:
                    out.append((t, sec.name, step.id, sec / step.metadata_file))
    return out


def test_kit_has_94_conformance_tests_of_offered_transactions():
    """The 52 registry/repository tests, the 29 Metadata Update (ITI-57) ones and the 13 removal ones
    (ITI-62 30000-30008, ITI-86 50000-50003); 12319 also needs ITI-92 Restricted Update, not offered."""
    offered = [t for t in kit.conformance_test_ids() if not kit.transactions_not_yet_offered(t)]
    assert len(offered) == 94


def test_every_submission_file_translates_to_valid_ebrim_3():
    files = submission_files()
    assert len(files) > 90
    bad = []
    for t, sec, step, path in files:
        sor = ebrim.to_submit_objects_request(kit.parse_file(path).getroot())
        if not schema().validate(sor):
            bad.append((t, sec, step, path.name, str(schema().error_log.last_error)))
    assert not bad, bad


# --- full message building for every submission step (translation + substitution)

from tests.conformance import expect, runner, soap  # noqa: E402

# Files the toolkit deliberately makes invalid for negative tests, with the
# reason. Translation + substitution of every other file must be schema-valid.
# (None so far: the kit's negative tests break XDS rules, not the ebRS schema.)
DELIBERATELY_INVALID: dict[tuple[str, str], str] = {}


class FakeRun(runner.Run):
    """A Run whose report store answers every lookup with a plausible value."""

    def __init__(self):
        super().__init__("http://registry.invalid", "http://repository.invalid")

    def record(self, test_id, section, step):
        rec = runner.StepRecord(ok=True)

        class Any(dict):
            def __missing__(self, key):
                return "urn:uuid:" + "0" * 8 + "-0000-0000-0000-" + "0" * 12

        rec.assigned_uuids = Any()
        rec.assigned_uids = type("U", (dict,), {"__missing__": lambda s, k: "1.2.3.4"})()
        rec.assigned_pids = type("P", (dict,), {"__missing__": lambda s, k: "x^^^&1.2&ISO"})()
        rec.reports = type("R", (dict,), {"__missing__": lambda s, k: "1.2.3.5"})()
        return rec

    def report(self, test_id, section, step, name):
        return "p1^^^&1.3.6.1.4.1.21367.2005.3.7&ISO" if "patient" in name else "1.2.3.5"


def test_every_built_submission_is_schema_valid():
    run = FakeRun()
    bad = []
    for t, sec, step_id, path in submission_files():
        if (t, sec) in DELIBERATELY_INVALID:
            continue
        test = kit.load_test(t)
        section = kit.read_section(t, path.parent)
        step = next(s for s in section.steps if s.id == step_id)
        rec = runner.StepRecord()
        sor, _ = run.build_submission(test, section, step, rec)
        body = sor
        if step.transaction == "ProvideAndRegisterTransaction":
            body, _ = runner.build_pnr(sor, step, rec, section, inline=True)
        if not schema().validate(body):
            bad.append((t, sec, step_id, str(schema().error_log.last_error)))
        # no symbol left unreplaced in identifiers or patient ids
        for ei in sor.iter(f"{{{ebrim.RIM}}}ExternalIdentifier"):
            if ei.get("identificationScheme") in ebrim.PATIENT_ID_SCHEMES:
                assert "$" not in ei.get("value"), (t, sec, ei.get("value"))
    assert not bad, bad


def test_every_query_and_retrieve_file_is_schema_valid_after_substitution():
    run = FakeRun()
    n = 0
    for t in kit.all_test_ids():
        if kit.transactions_not_yet_offered(t):
            continue
        test = kit.load_test(t)
        # the sections index.idx lists, as the harness runs them (some Metadata Update tests keep
        # folders of other runs beside them, 20000e's query_by_uniqueid names ../two_doc_w_fol)
        for sec in (test.path / n for n in test.sections if (test.path / n / "testplan.xml").exists()):
            section = kit.read_section(t, sec)
            for step in section.steps:
                if step.transaction in ("StoredQueryTransaction", "RetrieveTransaction"):
                    syms = run.symbols(test, section, step, "p^^^&1.2&ISO")
                    req = etree.fromstring(run.load_text(section, step, syms), kit.SAFE_PARSER)
                    assert schema().validate(req), (t, sec.name, schema().error_log.last_error)
                    n += 1
    assert n > 140


def test_translation_details():
    src = kit.tests_dir() / "11990" / "submit" / "single_doc.xml"
    sor = ebrim.to_submit_objects_request(kit.parse_file(src).getroot())
    R = f"{{{ebrim.RIM}}}"
    assert etree.QName(sor).namespace == ebrim.LCM
    lst = sor.find(R + "RegistryObjectList")
    assert lst.findall(R + "ObjectRef") == []  # well-known scheme refs dropped
    assoc = lst.find(R + "Association")
    assert assoc.get("associationType") == ebrim.ASSOC_PREFIX + "HasMember"
    assert assoc.get("id").startswith("urn:uuid:")
    assert assoc.get("objectType").endswith(":Association")
    eo = lst.find(R + "ExtrinsicObject")
    assert [etree.QName(c).localname for c in eo][:2] == ["Slot", "Slot"]
    names = [etree.QName(c).localname for c in eo]
    assert names.index("Name") > max(i for i, n in enumerate(names) if n == "Slot")
    for ei in eo.findall(R + "ExternalIdentifier"):
        assert ei.get("registryObject") == "Document01"
        assert ei.get("objectType").endswith(":ExternalIdentifier")
    for c in eo.findall(R + "Classification"):
        assert c.get("classifiedObject") == "Document01" and c.get("id")


def test_ihe_association_types_are_namespaced():
    assert ebrim.namespaced_association_type("RPLC") == "urn:ihe:iti:2007:AssociationType:RPLC"
    assert ebrim.namespaced_association_type("XFRM_RPLC").endswith("2007:AssociationType:XFRM_RPLC")
    assert ebrim.namespaced_association_type("signs") == "urn:ihe:iti:2007:AssociationType:signs"
    assert ebrim.namespaced_association_type("HasMember") == ebrim.ASSOC_PREFIX + "HasMember"
    assert ebrim.namespaced_status("Approved") == ebrim.STATUS_PREFIX + "Approved"


def test_substitutions_assign_fresh_ids_and_record_them():
    src = kit.tests_dir() / "11990" / "submit" / "single_doc.xml"
    text = runner.substitute(src.read_text(), {"$patientid$": "P1^^^&1.2.3&ISO"})
    sor = ebrim.to_submit_objects_request(etree.fromstring(text.encode()))
    rec = runner.StepRecord()
    uids = iter(["9.9.1", "9.9.2"])
    runner.prepare_submission(sor, rec, patient="P2^^^&1.2.3&ISO", set_patient=False,
                              no_assign_uids=[], assign_uuids=True, next_uid=lambda: next(uids),
                              repository_uid="7.7.7")
    assert rec.assigned_pids["Document01"] == "P1^^^&1.2.3&ISO"  # NoPatientId: file value kept
    assert set(rec.assigned_uids.values()) == {"9.9.1", "9.9.2"}
    assert rec.reports["Document01_uid"] == rec.assigned_uids["Document01"]
    doc_uuid = rec.assigned_uuids["Document01"]
    assert doc_uuid.startswith("urn:uuid:")
    R = f"{{{ebrim.RIM}}}"
    eo = sor.find(f"{R}RegistryObjectList/{R}ExtrinsicObject")
    assert eo.get("id") == doc_uuid
    assert all(c.get("classifiedObject") == doc_uuid for c in eo.findall(R + "Classification"))
    assoc = sor.find(f"{R}RegistryObjectList/{R}Association")
    assert assoc.get("targetObject") == doc_uuid
    assert assoc.get("sourceObject") == rec.assigned_uuids["SubmissionSet01"]
    assert "7.7.7" in etree.tostring(sor).decode()
    assert runner.TOOLKIT_REPOSITORY_UID not in etree.tostring(sor).decode()


def test_patient_set_and_no_assign_uids():
    src = kit.tests_dir() / "12004" / "submit" / "single_doc2.xml"
    text = runner.substitute(src.read_text(), {"$doc_uid$": "5.5.5", "$patientid$": "X"})
    sor = ebrim.to_submit_objects_request(etree.fromstring(text.encode()))
    rec = runner.StepRecord()
    runner.prepare_submission(sor, rec, patient="P^^^&1.2&ISO", set_patient=True,
                              no_assign_uids=["Document01"], assign_uuids=False,
                              next_uid=lambda: "8.8.8", repository_uid="1")
    assert rec.assigned_uids["Document01"] == "5.5.5"
    assert rec.assigned_uids["SubmissionSet01"] == "8.8.8"
    assert set(rec.assigned_pids.values()) == {"P^^^&1.2&ISO"}
    assert rec.assigned_uuids["Document01"] == "Document01"


def test_substitute_escapes_xml():
    assert runner.substitute("<a v='$p$'/>", {"$p$": "x^^^&1.2&ISO"}) == "<a v='x^^^&amp;1.2&amp;ISO'/>"


def test_locate_testdir():
    test = kit.load_test("11990")
    section = kit.read_section("11990", test.path / "eval")
    assert runner.locate(test, section, "../submit") == ("11990", "submit")
    assert runner.locate(test, section, "../../12346/single_doc") == ("12346", "single_doc")
    assert runner.locate(test, section, None) == ("11990", "eval")
    t2 = kit.load_test("12021")
    s2 = kit.read_section("12021", t2.path / "retrieve")
    assert runner.locate(t2, s2, "submit") == ("12021", "submit")


def test_plan_reader():
    t = kit.load_test("12004")
    assert t.collections == ["R.b", "reg"]
    assert t.sections == ["submit", "eval"]
    sec = t.section("submit")
    assert [s.id for s in sec.steps] == ["submit", "resubmit_doc", "resubmit_doc_diff_hash"]
    s = sec.steps[2]
    assert s.expected_status == "Failure"
    assert s.expected_error_messages == ["XDSNonIdenticalHash"]
    assert s.no_assign_uids == ["Document01"] and "NoPatientId" in s.flags
    assert s.use_reports[0].test == "15817" and s.use_ids[0].symbol == "$doc_uid$"
    assert "R.b" in kit.load_test("11990").collections
    assert set(kit.tests_in_collection("Ret.b")) == {"12021", "12028", "12029", "12360"}


def test_no_conformance_test_uses_an_unsupported_element():
    assert {t: runner.find_unsupported(kit.load_test(t))
            for t in kit.conformance_test_ids()
            if not kit.transactions_not_yet_offered(t) and runner.find_unsupported(kit.load_test(t))} == {}


# --- expectations on hand-written responses --------------------------------------

RS_NS = 'xmlns:rs="urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"'
FAILURE = f"""<rs:RegistryResponse {RS_NS}
  status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure">
  <rs:RegistryErrorList>
    <rs:RegistryError errorCode="XDSPatientIdDoesNotMatch" severity="urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
      codeContext="Patient ID of DocumentEntry does not match the SubmissionSet"/>
  </rs:RegistryErrorList>
</rs:RegistryResponse>"""
SUCCESS = f'<rs:RegistryResponse {RS_NS} status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"/>'


def test_status_and_error_expectations():
    fail = expect.outcome(etree.fromstring(FAILURE))
    ok = expect.outcome(etree.fromstring(SUCCESS))
    assert expect.check_status("Failure", fail) is None
    assert expect.check_errors(["XDSPatientIdDoesNotMatch"], [], fail, "Failure") is None
    assert expect.check_errors(["does not match"], [], fail, "Failure") is None  # codeContext
    assert expect.check_errors([], ["XDSPatientIdDoesNotMatch"], fail, "Failure") is None
    assert expect.check_errors([], ["XDSPatientId"], fail, "Failure")  # code is exact
    assert expect.check_status("Success", ok) is None
    msg = expect.check_errors(["XDSPatientIdDoesNotMatch"], [], ok, "Failure")
    assert msg == "expected Failure with XDSPatientIdDoesNotMatch, got Success and no error"
    assert expect.check_status("Success", fail).startswith("expected Success, got Failure")
    partial = expect.outcome(etree.fromstring(
        SUCCESS.replace("urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success",
                        "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess")))
    assert expect.check_status("PartialSuccess", partial) is None


def _sq(objects: str) -> etree._Element:
    return etree.fromstring(f"""<query:AdhocQueryResponse
      xmlns:query="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
      xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
      status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success">
      <rim:RegistryObjectList>{objects}</rim:RegistryObjectList></query:AdhocQueryResponse>""")


A = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
D = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
SS = f"""<rim:RegistryPackage id="ss" status="{A}">
  <rim:ExternalIdentifier id="e1" registryObject="ss" value="1.2"
   identificationScheme="urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"/></rim:RegistryPackage>
  <rim:Classification id="c1" classifiedObject="ss" classificationNode="{ebrim.SS_NODE}"/>"""
FOL = f"""<rim:RegistryPackage id="fol" status="{A}"/>
  <rim:Classification id="c2" classifiedObject="fol" classificationNode="{ebrim.FOL_NODE}"/>"""


def doc(i, status=A):
    return f'<rim:ExtrinsicObject id="{i}" status="{status}" objectType="{ebrim.DE_OBJECT_TYPE}"/>'


def hm(s, t, kind="urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"):
    return f'<rim:Association id="a-{s}-{t}" associationType="{kind}" sourceObject="{s}" targetObject="{t}"/>'


def spec(xml: str) -> etree._Element:
    return etree.fromstring(f"<ExpectedContents>{xml}</ExpectedContents>")


def test_contents_shapes():
    one = _sq(SS + doc("d1") + hm("ss", "d1"))
    assert expect.check_contents(spec("<SSwithOneDoc/><DocApp/><SSApproved/>"), one) is None
    assert expect.check_contents(spec('<Documents count="1"/><SubmissionSets count="1"/>'
                                      '<Associations count="1"/><Folders count="0"/>'), one) is None
    assert "SSwithTwoDoc" in expect.check_contents(spec("<SSwithTwoDoc/>"), one)
    assert expect.check_contents(spec("<DocDep/>"), one).startswith("DocDep:")
    no_assoc = _sq(SS + doc("d1"))
    assert "HasMember" in expect.check_contents(spec("<SSwithOneDoc/>"), no_assoc)
    two_fol = _sq(SS + FOL + doc("d1") + doc("d2", D) + hm("ss", "d1") + hm("ss", "d2")
                  + hm("ss", "fol") + hm("fol", "d2"))
    assert expect.check_contents(spec("<SSwithTwoDocOneFolOneDocInFol/><OneDocDep/><OneDocApp/>"),
                                 two_fol) is None
    assert expect.check_contents(spec("<SSwithTwoDocOneFol/>"), two_fol) is None
    assert expect.check_contents(spec("<SSwithOneFol/>"), _sq(SS + FOL + hm("ss", "fol"))) is None


def test_contents_counts_none_and_lifecycle():
    empty = _sq("")
    assert expect.check_contents(spec("<None/>"), empty) is None
    assert expect.check_contents(spec('<ObjectRefs count="0"/>'), empty) is None
    refs = _sq('<rim:ObjectRef id="urn:uuid:1"/><rim:ObjectRef id="urn:uuid:2"/>')
    assert expect.check_contents(spec('<ObjectRefs count="2"/>'), refs) is None
    assert "expected no objects" in expect.check_contents(spec("<None/>"), refs)
    rplc = _sq(doc("d2") + hm("d2", "d1", "urn:ihe:iti:2007:AssociationType:XFRM_RPLC"))
    assert expect.check_contents(spec("<HasXFRM_RPLC/>"), rplc) is None
    assert "no RPLC" in expect.check_contents(spec("<HasRPLC/>"), rplc)
    assert "unsupported" in expect.check_contents(spec("<Whatever/>"), empty)


def test_must_only_include():
    body = _sq(doc("urn:uuid:d1"))
    s = spec(f"""<DocumentEntries><MustOnlyInclude><DocumentEntry><UseId id="Document01"/>
      <DocumentEntryType>{ebrim.DE_OBJECT_TYPE}</DocumentEntryType></DocumentEntry>
      </MustOnlyInclude></DocumentEntries>""")
    assert expect.check_contents(s, body, lambda u: "urn:uuid:d1") is None
    assert "not returned" in expect.check_contents(s, body, lambda u: "urn:uuid:other")


def test_assertions_over_step_log():
    log = etree.fromstring(f"""<TestResults><TestStep id="q"><StoredQueryTransaction><Result>
      {etree.tostring(_sq(doc('d1'))).decode()}</Result></StoredQueryTransaction></TestStep>
      </TestResults>""")
    step = kit.Step(id="x", transaction="NullTransaction", element=None, step_element=None)
    step.assertions = [("a", "//*[local-name()='ExtrinsicObject']/@status = "
                             "'urn:oasis:names:tc:ebxml-regrep:StatusType:Approved'")]
    runner.run_assertions(step, log, {})
    step.assertions = [("b", "count(//TestStep[@id='q']//*[local-name()='ExtrinsicObject']) = 2")]
    with pytest.raises(runner.StepFailure, match="assertion b is false"):
        runner.run_assertions(step, log, {})
    step.assertions = [("c", 'substring("updateTime",1,8) = "$DATE$"')]
    runner.run_assertions(step, log, {"updateTime": "20240131101010", "$DATE$": "20240131"})


# --- SOAP / MTOM -------------------------------------------------------------------

def test_envelope_has_ws_addressing():
    body = etree.Element("{urn:x}B")
    env = soap.build_envelope(soap.ACTION_SQ, "http://h/r", body)
    W = f"{{{soap.WSA}}}"
    h = env.find(f"{{{soap.SOAP12}}}Header")
    act = h.find(W + "Action")
    assert act.text == soap.ACTION_SQ and act.get(f"{{{soap.SOAP12}}}mustUnderstand") == "1"
    assert h.find(W + "MessageID").text.startswith("urn:uuid:")
    assert h.find(W + "To").text == "http://h/r"
    assert h.find(f"{W}ReplyTo/{W}Address").text == soap.ANONYMOUS


def test_mtom_build_and_split_are_byte_exact():
    payloads = {"a@x": (b"\r\n--MIME\r\nbinary\x00\xff\r\n", "application/octet-stream"),
                "b@x": (b"", "text/plain"), "c@x": (b"hello\r\n\r\n", "text/plain")}
    body = etree.Element(f"{{{ebrim.XDSB}}}Doc")
    for cid in payloads:
        etree.SubElement(body, f"{{{soap.XOP}}}Include", href=f"cid:{cid}")
    env = soap.build_envelope(soap.ACTION_PNR, "http://h/p", body)
    data, ctype = soap.build_mtom(env, payloads, soap.ACTION_PNR)
    assert 'type="application/xop+xml"' in ctype and 'start="<root>"' in ctype
    assert 'start-info="application/soap+xml"' in ctype
    reply = soap.parse_reply(200, ctype, data)
    assert reply.body is not None and etree.QName(reply.body).localname == "Doc"
    assert dict(reply.attachments.items()) == {k: v[0] for k, v in payloads.items()}
    parts = soap.split_multipart(data, ctype)
    assert parts[0].content_id == "root"
    assert parts[0].headers["content-type"].startswith("application/xop+xml")


def test_retrieve_check():
    resp = etree.Element(f"{{{ebrim.XDSB}}}RetrieveDocumentSetResponse", nsmap={"xdsb": ebrim.XDSB})
    etree.SubElement(resp, f"{{{ebrim.RS}}}RegistryResponse",
                     status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success")
    dr = etree.SubElement(resp, f"{{{ebrim.XDSB}}}DocumentResponse")
    etree.SubElement(dr, f"{{{ebrim.XDSB}}}RepositoryUniqueId").text = "1.1"
    etree.SubElement(dr, f"{{{ebrim.XDSB}}}DocumentUniqueId").text = "1.2.3"
    etree.SubElement(dr, f"{{{ebrim.XDSB}}}mimeType").text = "text/plain"
    d = etree.SubElement(dr, f"{{{ebrim.XDSB}}}Document")
    etree.SubElement(d, f"{{{soap.XOP}}}Include", href="cid:1%40x")
    env = soap.build_envelope("urn:ihe:iti:2007:RetrieveDocumentSetResponse", "x", resp)
    data, ctype = soap.build_mtom(env, {"1@x": (b"content\r\n", "text/plain")}, "a")
    reply = soap.parse_reply(200, ctype, data)
    assert runner.check_retrieve(reply, [("1.2.3", b"content\r\n")], "text/plain") is None
    assert "mimeType" in runner.check_retrieve(reply, [("1.2.3", b"content\r\n")], "text/xml")
    assert "differ" in runner.check_retrieve(reply, [("1.2.3", b"content")], None)
    assert "not returned" in runner.check_retrieve(reply, [("9.9", b"content\r\n")], None)
