"""Issue 23 in real headless Chromium against ``xds serve --access-policy dmp`` (SQLite and PostgreSQL): the
access history in words after a real emergency access, a professional finding a patient by the 15-character
INS and seeing who she is, a change of who sees what confirmed with its explanation, and no horizontal
overflow at 390 px on these pages. Screenshots in build/screenshots/."""
from __future__ import annotations

import re

from tests.portal.test_portal import (  # noqa: F401 - the portal fixture
    PHONE,
    PROS,
    api,
    browser_page,
    confirm,
    follow,
    new_patient,
    portal,
    seed,
    seg,
    shot,
    titles,
    wait_history,
)
from xds.patient import ins_check_key


def no_overflow(page, url: str | None = None) -> None:
    """At 390 px the page scrolls vertically only."""
    page.set_viewport_size(PHONE)
    if url:
        page.goto(url)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url}: {width} px wide at {PHONE['width']} px"


def test_history_in_words_after_an_emergency_access(portal):  # noqa: F811
    pid, login = new_patient(portal)
    seed(portal, pid, title="Compte rendu d'urgence")
    ctx, page = browser_page(portal, "pro-e")
    page.goto(portal.base_url + "/portal/pro/patient?ins=" + pid.split("^")[0])
    assert "Vous ne faites pas partie des professionnels autorisés" in page.content()
    page.get_by_label("Motif (obligatoire)").fill("Patient inconscient aux urgences")
    page.get_by_label("Je confirme l'urgence").check()
    follow(page, page.get_by_role("button", name="Accès en urgence"))
    assert "Compte rendu d'urgence" in titles(page)
    ctx.close()
    ctx, page = browser_page(portal, login)
    url = portal.base_url + "/portal/me/history"
    wait_history(page, url, "accès en urgence : Patient inconscient aux urgences")
    row = page.locator("table.history tr.emergency", has_text="Patient inconscient").first
    assert "Émile" in row.inner_text() and "Hôpital Saint-Louis" in row.inner_text()
    body = page.locator("main").inner_text()
    assert not re.search(r"ITI-\d+|110127|127\.0\.0\.1", body), body
    assert re.search(r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}", body)
    shot(page, "patient-history-words", portal.backend)
    no_overflow(page)
    page.goto(url + "?urgent=1")
    assert page.locator("table.history tbody tr").count() >= 1
    assert page.locator("table.history tbody tr:not(.emergency)").count() == 0
    ctx.close()


def test_professional_finds_a_patient_by_ins(portal):  # noqa: F811
    pid, _login = new_patient(portal)
    api(portal, "PUT", f"/records/{seg(pid)}/authorised/{PROS['pro-a'][0]}")
    seed(portal, pid, title="Bilan annuel")
    number = pid.split("^")[0]
    ctx, page = browser_page(portal, "pro-a")
    no_overflow(page)
    page.get_by_label("INS du patient").fill(number[:13] + f"{(ins_check_key(number[:13]) + 1) % 97:02d}")
    follow(page, page.get_by_role("button", name="Rechercher"))
    assert "La clé de contrôle" in page.content() and page.locator("#ins[aria-invalid=true]").count() == 1
    page.get_by_label("INS du patient").fill(number)
    follow(page, page.get_by_role("button", name="Rechercher"))
    assert page.locator("h1").inner_text() == "Camille Martin"
    identity = page.locator("dl.patient-identity").inner_text()
    assert "12/02/1980" in identity and "Féminin" in identity and number in identity
    assert "Bilan annuel" in titles(page)
    shot(page, "professional-patient-identity", portal.backend)
    no_overflow(page)
    ctx.close()


def test_blocking_is_confirmed_with_its_explanation(portal):  # noqa: F811
    pid, login = new_patient(portal)
    api(portal, "PUT", f"/records/{seg(pid)}/authorised/{PROS['pro-b'][0]}")
    ctx, page = browser_page(portal, login)
    page.goto(portal.base_url + "/portal/me/access")
    no_overflow(page)
    follow(page, page.locator("ul.people li", has_text="Bruno").get_by_role("button", name="Bloquer"))
    assert "ne pourra plus consulter votre dossier, même en cas d'urgence" in page.locator("p.explanation").inner_text()
    assert PROS["pro-b"][0] not in api(portal, "GET", f"/records/{seg(pid)}")["blocked"]
    shot(page, "patient-confirm-block", portal.backend)
    no_overflow(page)
    confirm(page)
    assert PROS["pro-b"][0] in api(portal, "GET", f"/records/{seg(pid)}")["blocked"]
    assert page.locator("ul.people li", has_text="Bruno").get_by_role("button", name="Débloquer").count() == 1
    ctx.close()
