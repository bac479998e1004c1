"""Local time and confirmed changes in the portal (issue 23), in-process on SQLite and PostgreSQL: every date
in ``portal_timezone`` (Europe/Paris by default) as 16/03/2024 14:05; every action that changes who sees what
(authorise, block, withdraw, unblock, treating physician, emergency access, mask) asks first and says what it
does, and changes nothing until confirmed; "Retirer" says what it withdraws."""
from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from urllib.parse import quote

import pytest

from audit import store
from client.documents import Overrides, load_document
from config import Settings
from portal.app import Portal, download_name, portal_app
from portal.dates import BadZone
from server.app import Services, build_services
from storage.database import Database
from tests.support.metadata import fresh_patient
from xds.context import Caller, CodedValue

from .support import WsgiBrowser, cda, tiny_pdf

PASSWORD = "correct horse battery"
PRO = "810000000011"


def operator() -> Caller:
    return Caller(remote_addr="127.0.0.1", user_id=PRO, kind="professional", authenticated=True,
                  roles=[CodedValue("10", "1.2.250.1.213.1.1.5.5", "Médecin")])


def start(db: Database, tmp_path: Path, **settings) -> tuple[Services, Portal, WsgiBrowser, str, str]:
    store.migrate(db)
    services = build_services(Settings(data_dir=tmp_path / "data", database_url=db.url, access_policy="dmp",
                                       **settings))
    portal = portal_app(services)
    assert isinstance(portal, Portal)
    pid = fresh_patient()
    services.registry.add_patient(pid)
    portal.accounts.add("camille", "patient", PASSWORD, display_name="Camille", patient_id=pid)
    portal.accounts.add("alice", "professional", PASSWORD, display_name="Dr Alice Martin", professional_id=PRO)
    doc = load_document(Path("cr.xml"), Overrides(mime_type="text/xml"),
                        cda(pid, PRO, "Bilan", effective="20240115103000+0100"))
    portal.records.provide(operator(), [doc])
    browser = WsgiBrowser(portal)
    assert browser.login("camille", PASSWORD).status == 303
    return services, portal, browser, pid, doc.entry.unique_id


@pytest.fixture
def home(db: Database, tmp_path: Path) -> Iterator[tuple[Services, Portal, WsgiBrowser, str, str]]:
    services, portal, browser, pid, uid = start(db, tmp_path)
    yield services, portal, browser, pid, uid
    services.close()


def text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def csrf(page) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert m
    return m.group(1)


def test_dates_are_shown_in_paris_time_in_french_format(home):
    _services, _portal, browser, _pid, uid = home
    listing = text(browser.get("/me/documents").text)
    assert "15/01/2024 10:30" in listing and "2024-01-15" not in listing  # 09:30 UTC in the metadata
    document = text(browser.get(f"/documents/{quote(uid, safe='')}").text)
    assert "15/01/2024 10:30" in document and "Né(e) le 12/02/1980" in document


def test_portal_timezone_is_configurable(db, tmp_path):
    services, _portal, browser, _pid, _uid = start(db, tmp_path, portal_timezone="America/New_York")
    try:
        assert "15/01/2024 04:30" in text(browser.get("/me/documents").text)
    finally:
        services.close()
    with pytest.raises(BadZone, match="Mars/Olympus"):
        portal_app(build_services(Settings(data_dir=tmp_path / "d2", database_url=db.url,
                                           portal_timezone="Mars/Olympus")))


@pytest.mark.parametrize(("action", "sentence", "effect"), [
    ("authorise", "pourra consulter les documents de votre dossier, sauf ceux que vous masquez",
     lambda r: PRO in r["authorised"]),
    ("block", "ne pourra plus consulter votre dossier, même en cas d'urgence", lambda r: PRO in r["blocked"]),
    ("treating", "pourra consulter tous vos documents, y compris ceux que vous masquez",
     lambda r: r["treating_physician"] == PRO),
])
def test_access_change_asks_and_explains_before_it_applies(home, action, sentence, effect):
    _services, portal, browser, pid, _uid = home
    page = browser.get("/me/access")
    asked = browser.post("/me/access", {"csrf": csrf(page), "action": action, "professional_id": PRO})
    assert asked.status == 200 and sentence in unescape(asked.text) and "Dr Alice Martin" in unescape(asked.text)
    assert not effect(portal.records.admin.show(pid))  # nothing changed yet
    done = browser.post("/me/access", {"csrf": csrf(asked), "action": action, "professional_id": PRO,
                                       "confirmed": "1"})
    assert done.status == 303 and effect(portal.records.admin.show(pid))


def test_emergency_opt_out_asks_and_explains(home):
    _services, portal, browser, pid, _uid = home
    page = browser.get("/me/access")
    asked = browser.post("/me/emergency", {"csrf": csrf(page), "mode": "bris_de_glace", "allowed": "0"})
    assert "ne pourra pas consulter votre dossier, même si vous ne pouvez pas donner votre accord" in \
        unescape(asked.text)
    assert portal.records.admin.show(pid)["break_glass_allowed"] is True
    browser.post("/me/emergency", {"csrf": csrf(asked), "mode": "bris_de_glace", "allowed": "0", "confirmed": "1"})
    assert portal.records.admin.show(pid)["break_glass_allowed"] is False


def test_mask_asks_and_explains(home):
    _services, portal, browser, _pid, uid = home
    page = browser.get(f"/documents/{quote(uid, safe='')}")
    asked = browser.post(f"/documents/{quote(uid, safe='')}/mask", {"csrf": csrf(page), "masked": "1"})
    assert "Masquer « Bilan » aux professionnels ?" in unescape(asked.text)
    assert "ne verront plus ce document" in unescape(asked.text)
    facts = portal.records.facts(uid)
    assert facts is not None and not facts.masked_to_professionals
    browser.post(f"/documents/{quote(uid, safe='')}/mask", {"csrf": csrf(asked), "masked": "1", "confirmed": "1"})
    facts = portal.records.facts(uid)
    assert facts is not None and facts.masked_to_professionals


def test_withdraw_and_unblock_say_what_they_undo(home):
    _services, portal, browser, pid, _uid = home
    portal.records.admin.set_professional(operator(), pid, PRO, "authorised")
    shown = text(browser.get("/me/access").text)
    assert "Retirer l'autorisation" in shown and "Débloquer" not in shown
    portal.records.admin.set_professional(operator(), pid, PRO, "blocked")
    page = browser.get("/me/access")
    assert "Débloquer" in text(page.text) and "Retirer l'autorisation" not in text(page.text)
    asked = browser.post("/me/access", {"csrf": csrf(page), "action": "unblock", "professional_id": PRO})
    assert "ne sera plus bloqué" in unescape(asked.text)
    browser.post("/me/access", {"csrf": csrf(asked), "action": "unblock", "professional_id": PRO, "confirmed": "1"})
    record = portal.records.admin.show(pid)
    assert PRO not in record["blocked"] and PRO not in record["authorised"]


def test_download_is_named_after_the_title_with_its_extension(home):
    _services, _portal, browser, _pid, uid = home
    original = browser.get(f"/documents/{quote(uid, safe='')}/original")
    disposition = original.header("Content-Disposition") or ""
    assert disposition == "attachment; filename=\"Bilan.xml\"; filename*=UTF-8''Bilan.xml", disposition


def test_download_name_keeps_accents_in_utf8_and_drops_path_characters():
    assert download_name('Écho "rénale"/gauche', "2.25.1", "application/pdf") == (
        "filename=\"Echo renale gauche.pdf\"; filename*=UTF-8''%C3%89cho%20r%C3%A9nale%20gauche.pdf")
    assert download_name(None, "2.25.7", "application/x-unknown") == \
        "filename=\"2.25.7.bin\"; filename*=UTF-8''2.25.7.bin"


def test_pdf_is_embedded_as_an_object_with_a_link_not_an_iframe(home):
    _services, portal, browser, pid, uid = home
    doc = load_document(Path("cr.xml"), Overrides(mime_type="text/xml"), cda(pid, PRO, "CR en PDF", pdf=tiny_pdf()))
    portal.records.provide(operator(), [doc])
    page = browser.get(f"/documents/{quote(doc.entry.unique_id, safe='')}")
    assert '<object class="pdf" type="application/pdf"' in page.text and "<iframe" not in page.text
    assert "Ouvrir le PDF" in page.text and "object-src 'self'" in (page.header("Content-Security-Policy") or "")
    assert browser.get(f"/documents/{quote(doc.entry.unique_id, safe='')}/pdf").header("Content-Type") == \
        "application/pdf"
    other = browser.get(f"/documents/{quote(uid, safe='')}")
    assert "object-src 'none'" in (other.header("Content-Security-Policy") or "")
