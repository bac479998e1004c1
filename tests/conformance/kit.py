"""Reading the NIST XDS Toolkit test kit: tests, collections, sections, steps.

The kit lives outside the project (``../shared/conformance/nist-testkit``) and is
read at run time, never copied. ``XDS_SHARED_DIR`` overrides the location of
``shared``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                              remove_comments=True)

TRANSACTION_TAGS = (
    "RegisterTransaction",
    "ProvideAndRegisterTransaction",
    "StoredQueryTransaction",
    "RetrieveTransaction",
    "PatientIdentityFeedTransaction",
    "NullTransaction",
    "RemoveMetadataTransaction",
    "RdTransaction",
    "MuTransaction",
)

# Tests of the kit that only load data for other tests (run on demand).
DATA_LOADERS = ("12346", "12374", "15817", "15817b", "15818")


def shared_dir() -> Path:
    env = os.environ.get("XDS_SHARED_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared"


def kit_dir() -> Path:
    return shared_dir() / "conformance" / "nist-testkit"


def tests_dir() -> Path:
    return kit_dir() / "tests"


def schema_path() -> Path:
    return shared_dir() / "schemas" / "nist-v3" / "XDS.b_DocumentRepository.xsd"


def parse_file(path: Path) -> etree._ElementTree:
    return etree.parse(str(path), SAFE_PARSER)


@dataclass
class UseId:
    """``<UseId testdir= id= symbol= step= section=/>``: a value recorded earlier."""
    testdir: str | None
    id: str
    symbol: str
    step: str
    section: str  # AssignedUids | AssignedUuids | AssignedPatientId


@dataclass
class UseReport:
    """``<UseReport reportName= test= section= step= useAs=/>``."""
    report_name: str
    test: str | None
    section: str
    step: str
    use_as: str


@dataclass
class Report:
    """``<Report name= section=>XPath</Report>``: record a value after the step.

    section ``InputMetadata`` evaluates over the metadata sent, ``Result`` over
    the response body.
    """
    name: str
    section: str
    xpath: str


@dataclass
class Step:
    id: str
    transaction: str  # one of TRANSACTION_TAGS, or "" when the step has none
    element: etree._Element | None  # the transaction element
    step_element: etree._Element
    expected_status: str = "Success"
    expected_error_messages: list[str] = field(default_factory=list)
    expected_error_codes: list[str] = field(default_factory=list)
    metadata_file: str | None = None
    documents: dict[str, str] = field(default_factory=dict)  # id -> file
    use_ids: list[UseId] = field(default_factory=list)
    use_reports: list[UseReport] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)
    expected_contents: etree._Element | None = None
    assertions: list[tuple[str, str]] = field(default_factory=list)  # (id, xpath)
    reference_documents: list[tuple[str, str]] = field(default_factory=list)  # (uid, file)
    expected_mime_type: str | None = None
    flags: set[str] = field(default_factory=set)  # AssignUuids, NoPatientId, ...
    no_assign_uids: list[str | None] = field(default_factory=list)
    wait_before_ms: int = 0


@dataclass
class Section:
    test_id: str
    name: str
    path: Path
    steps: list[Step]


@dataclass
class KitTest:
    id: str
    path: Path
    collections: list[str]
    sections: list[str]

    def section(self, name: str) -> Section:
        return read_section(self.id, self.path / name)


FLAG_TAGS = ("AssignUuids", "NoPatientId", "AltPatientId", "NewPatientId",
             "CreateNewPatientId", "NoMetadata", "XDSb", "NoAssignUids")


def _text(el: etree._Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


def _read_step(el: etree._Element) -> Step:
    tx = None
    for child in el:
        if isinstance(child.tag, str) and child.tag in TRANSACTION_TAGS:
            tx = child
            break
    step = Step(id=el.get("id", ""), transaction=tx.tag if tx is not None else "",
                element=tx, step_element=el)
    status = el.find("ExpectedStatus")
    if status is not None:
        step.expected_status = _text(status)
    # Items may sit either on the TestStep or inside the transaction element.
    containers = [el] + ([tx] if tx is not None else [])
    for c in containers:
        for m in c.findall("ExpectedErrorMessage"):
            step.expected_error_messages.append(_text(m))
        for m in c.findall("ExpectedErrorCode"):
            step.expected_error_codes.append(_text(m))
        for tag in FLAG_TAGS:
            for f in c.findall(tag):
                step.flags.add(tag)
                if tag == "NoAssignUids":
                    step.no_assign_uids.append(f.get("id"))
        w = c.find("WaitBefore")
        if w is not None and _text(w).isdigit():
            step.wait_before_ms = int(_text(w))
    if tx is None:
        return step
    mf = tx.find("MetadataFile")
    if mf is not None:
        step.metadata_file = _text(mf)
    for d in tx.findall("Document"):
        step.documents[d.get("id")] = _text(d)
    for u in tx.findall("UseId"):
        step.use_ids.append(UseId(u.get("testdir"), u.get("id"), u.get("symbol"),
                                  u.get("step"), u.get("section")))
    for u in tx.findall("UseReport"):
        step.use_reports.append(UseReport(u.get("reportName"), u.get("test"),
                                          u.get("section"), u.get("step"), u.get("useAs")))
    for r in tx.findall("Report"):
        step.reports.append(Report(r.get("name"), r.get("section"), _text(r)))
    step.expected_contents = tx.find("ExpectedContents")
    for a in tx.findall("Assertions/Assert"):
        step.assertions.append((a.get("id", ""), _text(a)))
    for r in tx.findall("ReferenceDocument"):
        step.reference_documents.append((r.get("uid"), _text(r)))
    mt = tx.find("ExpectedMimeType")
    if mt is not None:
        step.expected_mime_type = _text(mt)
    return step


def read_section(test_id: str, path: Path) -> Section:
    plan = parse_file(path / "testplan.xml").getroot()
    steps = [_read_step(s) for s in plan.findall("TestStep")]
    return Section(test_id=test_id, name=path.name, path=path, steps=steps)


def read_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [w for line in path.read_text().splitlines() for w in line.split()]


def load_test(test_id: str) -> KitTest:
    path = tests_dir() / test_id
    if not path.is_dir():
        raise KeyError(f"no such test in the kit: {test_id}")
    return KitTest(id=test_id, path=path,
                   collections=read_lines(path / "collections.txt"),
                   sections=read_lines(path / "index.idx"))


def all_test_ids() -> list[str]:
    return sorted(p.name for p in tests_dir().iterdir() if p.is_dir())


def conformance_test_ids() -> list[str]:
    """The registry/repository tests of the kit (all but the data loaders)."""
    return [t for t in all_test_ids() if t not in DATA_LOADERS]


NOT_YET_OFFERED = {
    "RmuTransaction": "ITI-92 Restricted Update Document Set",
}
"""Transactions of the kit's metadata-update and removal tests that this registry does not offer
yet (issue 21; ITI-57 Update Document Set is offered, MuTransaction). A test that sends one is expected to fail until then, strictly: once it passes
its mark must go."""


KNOWN_FAILURES = {
    "20004": "<NoAssignUids/> sends the SubmissionSet uniqueId 'SubmissionSet01_uniqueid', not an OID (ITI TF-3 "
             "4.2.3.3.12): XDSRegistryMetadataError before any Metadata Update rule (DEVIATIONS.md)",
}
"""Kit tests that fail because the kit contradicts the TF in a way no deviation row can express;
strict, so that a change of the registry's answer is seen."""


def transactions_not_yet_offered(test_id: str) -> list[str]:
    """The transactions of :data:`NOT_YET_OFFERED` that ``test_id`` sends, in the order of the kit."""
    found: list[str] = []
    for path in sorted((tests_dir() / test_id).rglob("testplan.xml")):
        for el in parse_file(path).iter(*NOT_YET_OFFERED):
            name = NOT_YET_OFFERED[el.tag]
            if name not in found:
                found.append(name)
    return found


def tests_in_collection(name: str) -> list[str]:
    return [t for t in conformance_test_ids() if name in load_test(t).collections]
