"""A professional finds a patient by INS (issue 23), in-process on SQLite and PostgreSQL: the 15-character
INS checked with its key (97 - number mod 97, Corsica 2A/2B as 19/18), or the full CX; the patient's name,
birth date and sex from the record's documents; a refusal that names the rule (no record, record closed,
blocked, opposed to emergency access, not authorised) and offers break-glass only where it can succeed."""
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
from portal.app import Portal, portal_app
from server.app import Services, build_services
from storage.database import Database
from tests.support.metadata import fresh_patient
from xds.context import Caller, CodedValue
from xds.patient import ins_check_key

from .support import WsgiBrowser, cda

PASSWORD = "correct horse battery"
ME = "810000000011"
BREAK_GLASS_FORM = "/pro/emergency"


def operator() -> Caller:
    return Caller(remote_addr="127.0.0.1", user_id="operator", kind="professional", authenticated=True,
                  roles=[CodedValue("10", "1.2.250.1.213.1.1.5.5", "Médecin")])


@pytest.fixture
def desk(db: Database, tmp_path: Path) -> Iterator[tuple[Services, Portal, WsgiBrowser]]:
    store.migrate(db)
    services = build_services(Settings(data_dir=tmp_path / "data", database_url=db.url, access_policy="dmp"))
    portal = portal_app(services)
    assert isinstance(portal, Portal)
    portal.accounts.add("alice", "professional", PASSWORD, display_name="Dr Alice", professional_id=ME,
                        organization="Hôpital Saint-Louis", profession="10")
    browser = WsgiBrowser(portal)
    assert browser.login("alice", PASSWORD).status == 303
    yield services, portal, browser
    services.close()


def record(services: Services, portal: Portal, *, authorised: bool = False, documents: bool = True) -> str:
    pid = fresh_patient()
    services.registry.add_patient(pid)
    if authorised:
        portal.records.admin.set_professional(operator(), pid, ME, "authorised")
    if documents:
        doc = load_document(Path("cr.xml"), Overrides(mime_type="text/xml"), cda(pid, "810000000099", "Bilan"))
        portal.records.provide(operator(), [doc])
    return pid


def text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_bare_ins_finds_the_patient_and_says_who_she_is(desk):
    services, portal, browser = desk
    pid = record(services, portal, authorised=True)
    page = browser.get("/pro/patient?ins=" + pid.split("^")[0])
    assert page.status == 200, page.text[-2000:]
    shown = text(page.text)
    assert "Camille Martin" in shown and "Né(e) le 12/02/1980" in shown and "Sexe Féminin" in shown
    assert "Bilan" in shown and "INS-NIR test" in shown
    spaced = pid.split("^")[0]
    assert browser.get("/pro/patient?ins=" + quote(f"{spaced[:1]} {spaced[1:3]} {spaced[3:]}")).status == 200
    assert browser.get("/pro/patient?ins=" + quote(pid)).status == 200


def test_ins_with_wrong_length_or_key_is_refused_with_why(desk):
    _services, _portal, browser = desk
    short = browser.get("/pro/patient?ins=1234567890123")
    assert short.status == 400 and "Un INS a 15 caractères" in unescape(short.text)
    assert BREAK_GLASS_FORM not in short.text
    number = "1800212345678"
    wrong = browser.get(f"/pro/patient?ins={number}{(ins_check_key(number) + 1) % 97:02d}")
    assert wrong.status == 400 and f"elle devrait être {ins_check_key(number):02d}" in unescape(wrong.text)
    assert BREAK_GLASS_FORM not in wrong.text
    cx = browser.get("/pro/patient?ins=" + quote(f"{number}00^^^&1.2.250.1.213.1.4.8&ISO^NH"))
    assert cx.status == 400 and "clé de contrôle" in unescape(cx.text)
    corsica = "275042A123456"
    page = browser.get(f"/pro/patient?ins={corsica}{ins_check_key(corsica):02d}")
    assert page.status == 403 and "n'a pas de DMP" in unescape(page.text)


def test_refusal_names_the_rule_and_offers_break_glass_only_where_it_can_succeed(desk):
    services, portal, browser = desk
    unknown = fresh_patient().split("^")[0]
    page = browser.get("/pro/patient?ins=" + unknown)
    assert page.status == 403 and "Ce patient n'a pas de DMP" in unescape(page.text)
    assert BREAK_GLASS_FORM not in page.text

    closed = record(services, portal)
    portal.records.admin.set_state(operator(), closed, "closed")
    page = browser.get("/pro/patient?ins=" + closed.split("^")[0])
    assert "est fermé" in unescape(page.text) and BREAK_GLASS_FORM not in page.text

    blocked = record(services, portal)
    portal.records.admin.set_professional(operator(), blocked, ME, "blocked")
    page = browser.get("/pro/patient?ins=" + blocked.split("^")[0])
    assert "a bloqué votre accès" in unescape(page.text) and BREAK_GLASS_FORM not in page.text

    opposed = record(services, portal)
    portal.records.admin.set_emergency(operator(), opposed, "bris_de_glace", False)
    page = browser.get("/pro/patient?ins=" + opposed.split("^")[0])
    assert "s'est opposé à l'accès en urgence" in unescape(page.text) and BREAK_GLASS_FORM not in page.text

    open_ = record(services, portal)
    page = browser.get("/pro/patient?ins=" + open_.split("^")[0])
    assert page.status == 403 and "Vous ne faites pas partie des professionnels autorisés" in unescape(page.text)
    assert BREAK_GLASS_FORM in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    ins = re.search(r'name="ins" value="([^"]+)"', page.text).group(1)
    done = browser.post("/pro/emergency", {"csrf": csrf, "ins": unescape(ins), "reason": "malaise", "confirm": "1"})
    assert done.status == 303
    after = browser.get(done.header("Location").removeprefix("/portal"))
    assert after.status == 200 and "Bilan" in after.text and "accès d&#39;urgence" in after.text


def test_search_hint_gives_a_valid_ins(desk):
    _services, _portal, browser = desk
    hint = unescape(browser.get("/pro/").text)
    examples = re.findall(r"\b([0-9]{15})\b", hint)
    assert examples and all(int(e[13:]) == ins_check_key(e[:13]) for e in examples)
    assert "1234567890123" not in hint
