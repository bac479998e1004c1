"""The patient's access history in words (issue 23), in-process on SQLite and PostgreSQL: who (name,
profession, organisation; a health system by its host, never a bare IP), what (ITI-18 a search, ITI-43 a
download naming the document, ITI-41 an addition, 110127 an emergency with its reason), when (Europe/Paris,
16/03/2024 14:05), the patient's own actions and technical steps hidden unless asked for, filters and a
cursor that pages back to the first access."""
from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from html import unescape
from pathlib import Path
from urllib.parse import quote

import pytest

from audit import messages, store
from audit.sender import Sender
from client.documents import Overrides, load_document
from config import Settings
from portal.app import Portal, portal_app
from server.app import Services, build_services
from storage.database import Database
from tests.support.metadata import fresh_patient
from xds.context import Caller, CodedValue
from xds.metadata import Code

from .support import WsgiBrowser, cda

PASSWORD = "correct horse battery"
DOCTOR = "810000000011"
MARCH = datetime(2024, 3, 16, 13, 5, tzinfo=UTC)
"""13:05 UTC on 16/03/2024 is 14:05 in Paris (CET, UTC+1)."""


def pro_caller(**kw) -> Caller:
    base: dict = {"remote_addr": "10.1.2.3", "endpoint": "http://xds.test/registry", "user_id": DOCTOR,
                  "user_name": "Dr Alice Martin", "roles": [CodedValue("10", "1.2.250.1.213.1.1.5.5", "10")],
                  "organization": "Hôpital Saint-Louis", "authenticated": True, "kind": "professional"}
    base.update(kw)
    return Caller(**base)


@pytest.fixture
def home(db: Database, tmp_path: Path) -> Iterator[tuple[Services, Portal, WsgiBrowser, str]]:
    store.migrate(db)
    services = build_services(Settings(data_dir=tmp_path / "data", database_url=db.url, access_policy="dmp"))
    portal = portal_app(services)
    assert isinstance(portal, Portal)
    pid = fresh_patient()
    services.registry.add_patient(pid)
    portal.records.admin.set_professional(pro_caller(), pid, DOCTOR, "authorised")
    portal.accounts.add("camille", "patient", PASSWORD, display_name="Camille", patient_id=pid)
    browser = WsgiBrowser(portal)
    assert browser.login("camille", PASSWORD).status == 303
    yield services, portal, browser, pid
    services.close()


def deliver(services: Services) -> None:
    services.auditor.flush()
    Sender(services.database).deliver_once()


def record(services: Services, event: messages.AuditEvent, when: datetime = MARCH) -> None:
    event.time = when
    services.auditor.record(event)


def cells(html: str) -> list[str]:
    rows = re.findall(r"<tr class=\"[^\"]*\">(.*?)</tr>", html, re.S)
    return [" ".join(unescape(re.sub(r"<[^>]+>", " ", r)).split()) for r in rows]


def test_history_says_who_what_and_when_in_words(home):
    services, portal, browser, pid = home
    doc = load_document(Path("cr.xml"), Overrides(mime_type="text/xml"),
                        cda(pid, DOCTOR, "Compte rendu d'imagerie", effective="20240310103000+0100"))
    portal.records.provide(pro_caller(), [doc])
    uid = doc.entry.unique_id
    record(services, messages.stored_query(pro_caller(), "src", 0, "urn:uuid:q", b"<q/>", pid))
    record(services, messages.retrieve(pro_caller(), "src", 0, [messages.DocumentRef(uid, "1.2.3")], pid))
    urgent = pro_caller(user_id="810000000044", user_name="Dr Émile Urgentiste", access_mode="bris_de_glace",
                        purpose_of_use=[CodedValue("EMERGENCY", "portal", "Patient inconscient aux urgences")])
    record(services, messages.security_alert(urgent, "src", "emergency", messages.EMERGENCY_OVERRIDE, 0, pid))
    system = Caller(remote_addr="192.0.2.99", endpoint="http://xds.test/registry")
    record(services, messages.stored_query(system, "src", 0, "urn:uuid:q", b"<q/>", pid))
    deliver(services)
    page = browser.get("/me/history")
    assert page.status == 200, page.text[-2000:]
    rows = cells(page.text)
    assert any("16/03/2024 14:05" in r and "Dr Alice Martin" in r and "Médecin" in r and "Hôpital Saint-Louis" in r
               and "a consulté / a recherché dans votre dossier" in r for r in rows), rows
    assert any("a téléchargé le document « Compte rendu d'imagerie » du 10/03/2024" in r for r in rows), rows
    assert any("accès en urgence : Patient inconscient aux urgences" in r and "Émile" in r for r in rows), rows
    assert any("a ajouté le document « Compte rendu d'imagerie »" in r for r in rows), rows
    assert any("un système de santé" in r for r in rows), rows
    assert "192.0.2.99" not in page.text and "ITI-18" not in page.text and "110127" not in page.text
    english = browser.get("/me/history?lang=en")
    assert "searched your record" in english.text and "emergency access: Patient inconscient" in english.text


def test_history_hides_the_patients_own_actions_unless_asked(home):
    services, _portal, browser, pid = home
    record(services, messages.stored_query(pro_caller(), "src", 0, "urn:uuid:q", b"<q/>", pid))
    assert browser.get("/me/documents").status == 200  # her own ITI-18
    deliver(services)
    browser.get("/me/history")
    deliver(services)  # her reading of the history (110101) is in the trail too
    shown = cells(browser.get("/me/history").text)
    assert shown and not any("Vous" in r for r in shown), shown
    everything = cells(browser.get("/me/history?all=1").text)
    assert any(r.split(" ", 2)[2].startswith("Vous") for r in everything), everything
    assert len(everything) > len(shown)


def test_history_filters_and_pages_back_to_the_first_access(home):
    services, _portal, browser, pid = home
    for i in range(45):
        record(services, messages.stored_query(pro_caller(), "src", 0, "urn:uuid:q", b"<q/>", pid),
               datetime(2024, 1, 1 + i % 28, 9, 0, tzinfo=UTC))
    other = pro_caller(user_id="810000000022", user_name="Dr Thomas Traitant")
    record(services, messages.stored_query(other, "src", 0, "urn:uuid:q", b"<q/>", pid),
           datetime(2024, 2, 20, 9, 0, tzinfo=UTC))
    urgent = pro_caller(user_id="810000000044", user_name="Dr Émile Urgentiste", access_mode="bris_de_glace",
                        purpose_of_use=[CodedValue("EMERGENCY", "portal", "malaise")])
    record(services, messages.security_alert(urgent, "src", "emergency", messages.EMERGENCY_OVERRIDE, 0, pid),
           datetime(2024, 2, 21, 9, 0, tzinfo=UTC))
    deliver(services)
    seen, url = 0, "/me/history"  # 47 accesses and the authorisation the fixture made
    while True:
        page = browser.get(url)
        seen += len(cells(page.text))
        m = re.search(r'href="/portal/me/history\?([^"]*before=\d+)"', page.text)
        if not m:
            break
        url = "/me/history?" + m.group(1).replace("&amp;", "&")
    assert seen == 48 and "C&#39;est le premier accès" in page.text
    only = cells(browser.get("/me/history?pro=810000000022").text)
    assert len(only) == 1 and "Thomas" in only[0]
    urgent_rows = cells(browser.get("/me/history?urgent=1").text)
    assert len(urgent_rows) == 1 and "malaise" in urgent_rows[0]
    period = cells(browser.get("/me/history?from=2024-02-01&to=2024-02-20").text)
    assert len(period) == 1 and "Thomas" in period[0]
    assert browser.get("/me/history?from=31/01/2024").status == 400


def test_history_never_names_a_document_hidden_from_the_patient(home):
    services, portal, browser, pid = home
    doc = load_document(Path("cr.xml"), Overrides(mime_type="text/xml"), cda(pid, DOCTOR, "Annonce diagnostique"))
    doc.entry.confidentiality_codes.append(Code("INVISIBLE_PATIENT", "1.2.250.1.213.1.1.4.13", "INVISIBLE_PATIENT"))
    portal.records.provide(pro_caller(), [doc])
    record(services, messages.retrieve(pro_caller(), "src", 0, [messages.DocumentRef(doc.entry.unique_id, "1.2.3")],
                                       pid))
    deliver(services)
    page = browser.get("/me/history")
    assert "Annonce diagnostique" not in page.text and "a téléchargé un document" in page.text, page.text[-3000:]
    assert quote(doc.entry.unique_id) not in page.text


def test_one_page_view_is_told_once(home):
    services, _portal, browser, pid = home
    for _ in range(2):  # a professional's page of documents: FindDocuments, then GetDocuments of the page
        record(services, messages.stored_query(pro_caller(), "src", 0, "urn:uuid:q", b"<q/>", pid))
    deliver(services)
    rows = [r for r in cells(browser.get("/me/history").text) if "16/03/2024" in r]
    assert len(rows) == 1, rows


def test_a_refusal_is_told_once(home):
    services, _portal, browser, pid = home
    stranger = pro_caller(user_id="810000000099", user_name="Dr Inconnu")
    record(services, messages.stored_query(stranger, "src", messages.MINOR_FAILURE, "urn:uuid:q", b"<q/>", pid))
    record(services, messages.security_alert(stranger, "src", "ITI-18: access refused", patient_id=pid))
    deliver(services)
    rows = [r for r in cells(browser.get("/me/history").text) if "Inconnu" in r]
    assert len(rows) == 1 and "Refusé" in rows[0], rows
