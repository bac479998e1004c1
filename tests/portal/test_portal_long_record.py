"""A long record in the portal (issue 23), in-process on SQLite and PostgreSQL: "Mes documents" filters by
type, sorts and pages in the queries (FindDocuments as ObjectRefs, the registry pages, GetDocuments of the
page only), reads the page's facts in one statement, and offers each type code once."""
from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest

import portal.records as records_module
from audit import store
from client.documents import Overrides, load_document
from config import Settings
from portal.app import PAGE, Portal, portal_app
from server.app import Services, build_services
from storage.database import Database
from tests.support.metadata import fresh_patient
from xds.context import Caller, CodedValue

from .support import WsgiBrowser, cda

PASSWORD = "correct horse battery"
PRO = "810000000011"
COUNT = 45
LOINC = "2.16.840.1.113883.6.1"


def operator() -> Caller:
    return Caller(remote_addr="127.0.0.1", user_id=PRO, kind="professional", authenticated=True,
                  roles=[CodedValue("10", "1.2.250.1.213.1.1.5.5", "Médecin")])


@pytest.fixture
def long_record(db: Database, tmp_path: Path) -> Iterator[tuple[Services, Portal, WsgiBrowser]]:
    store.migrate(db)
    services = build_services(Settings(data_dir=tmp_path / "data", database_url=db.url, access_policy="dmp"))
    portal = portal_app(services)
    assert isinstance(portal, Portal)
    pid = fresh_patient()
    services.registry.add_patient(pid)
    portal.accounts.add("camille", "patient", PASSWORD, display_name="Camille", patient_id=pid)
    types = [f"11502-2|{LOINC}|CR d'examens biologiques", f"11502-2|{LOINC}|Biologie",
             f"18748-4|{LOINC}|CR d'imagerie médicale"]
    docs = [load_document(Path(f"cr{i}.xml"), Overrides(mime_type="text/xml", type_code=types[i % 3]),
                          cda(pid, PRO, f"Compte rendu {i:02d}", effective=f"2024{1 + i // 28:02d}{1 + i % 28:02d}"
                                                                          "103000+0100"))
            for i in range(COUNT)]
    portal.records.provide(operator(), docs)
    browser = WsgiBrowser(portal)
    assert browser.login("camille", PASSWORD).status == 303
    yield services, portal, browser
    services.close()


def titles(html: str) -> list[str]:
    return [unescape(t) for t in re.findall(r'<td data-label="Titre"><a [^>]*>([^<]*)</a>', html)]


def test_documents_are_sorted_and_paged_in_the_query(long_record, monkeypatch):
    _services, _portal, browser = long_record
    parsed: list[int] = []
    real = records_module._documents
    monkeypatch.setattr(records_module, "_documents", lambda objects: parsed.append(len(objects)) or real(objects))
    facts_reads: list[int] = []
    real_facts = records_module.document_facts

    def facts(conn, **kw):
        facts_reads.append(len(list(kw.get("unique_ids") or [])))
        return real_facts(conn, **kw)
    monkeypatch.setattr(records_module, "document_facts", facts)
    first = browser.get("/me/documents")
    assert first.status == 200
    assert titles(first.text) == [f"Compte rendu {i:02d}" for i in range(COUNT - 1, COUNT - 1 - PAGE, -1)]
    assert parsed and max(parsed) <= PAGE, parsed  # no LeafClass of the whole record
    assert facts_reads == [PAGE], facts_reads  # the page's facts in one read (entry_facts: one statement)
    last = browser.get("/me/documents?page=3")
    assert titles(last.text) == [f"Compte rendu {i:02d}" for i in range(COUNT - 1 - 2 * PAGE, -1, -1)]
    assert "Page 3 sur 3 (45)" in unescape(re.sub(r"<[^>]+>", "", last.text))


def test_type_filter_runs_in_the_query_and_lists_each_code_once(long_record):
    _services, _portal, browser = long_record
    page = browser.get("/me/documents?type=11502-2")
    shown = titles(page.text)
    assert len(shown) == PAGE and all(int(t[-2:]) % 3 in (0, 1) for t in shown)
    assert "(30)" in page.text
    options = re.findall(r'<option value="([^"]*)"', page.text.split('id="type"', 1)[1].split("</select>", 1)[0])
    assert options == ["", "11502-2", "18748-4"] or sorted(options) == ["", "11502-2", "18748-4"]
    assert browser.get("/me/documents?type=18748-4&page=2").status == 200
    assert "(15)" in browser.get("/me/documents?type=18748-4").text
