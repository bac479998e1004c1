"""End-to-end portal flows in real headless Chromium (Debian's /usr/bin/chromium, Playwright), against
``xds serve --access-policy dmp`` on SQLite and PostgreSQL. Screenshots at phone and desktop widths go
to build/screenshots/."""
from __future__ import annotations

import os
import re
import time
import urllib.parse
from pathlib import Path

import pytest
import requests

from tests.support.databases import BACKENDS, database_url
from tests.support.metadata import fresh_patient
from tests.support.server import start_server

from .support import HOSTILE_NARRATIVE, FakeOidc, HttpPortal, cda, login_token, tiny_pdf

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse battery"
SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
PHONE, DESKTOP = {"width": 390, "height": 844}, {"width": 1280, "height": 900}
API_TOKEN = "portal-tests-api-token-0123456789"
"""The JSON API's token (``access_api_token``): the API has no anonymous access, even from loopback."""
PROS = {"pro-a": ("810000000011", "Dr Alice Authorisée"), "pro-t": ("810000000022", "Dr Thomas Traitant"),
        "pro-b": ("810000000033", "Dr Bruno Bloqué"), "pro-e": ("810000000044", "Dr Émile Urgentiste")}

sync_api = pytest.importorskip("playwright.sync_api")


def seg(v: str) -> str:
    return urllib.parse.quote(v, safe="")


@pytest.fixture(scope="module", params=BACKENDS)
def portal(request, tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: test.sh installs Debian's chromium")
    tmp = tmp_path_factory.mktemp(f"portal-{request.param}")
    url, handle = database_url(request.param, tmp)
    oidc = FakeOidc("dmp-portal", "s3cret-client")
    server = start_server(tmp / "data", url, "--access-policy", "dmp",
                          env={"XDS_PORTAL_OIDC_ISSUER": oidc.issuer, "XDS_PORTAL_OIDC_CLIENT_ID": "dmp-portal",
                               "XDS_PORTAL_OIDC_CLIENT_SECRET": "s3cret-client", "XDS_PORTAL_OIDC_NAME": "Fake IdP",
                               "XDS_AUDIT_FORWARD": "", "XDS_ACCESS_API_TOKEN": API_TOKEN})
    os.environ["PORTAL_TEST_PW"] = PASSWORD
    for login, (rpps, name) in PROS.items():
        server.xds("portal", "user", "add", "--role", "professional", "--login", login, "--professional-id", rpps,
                   "--name", name, "--organization", "Hôpital Saint-Louis", "--password-env", "PORTAL_TEST_PW")
    server.xds("portal", "user", "add", "--role", "auditor", "--login", "auditor", "--name", "Audrey Auditrice",
               "--password-env", "PORTAL_TEST_PW")
    pw = sync_api.sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
    server.browser, server.oidc, server.backend = browser, oidc, request.param
    try:
        yield server
    finally:
        browser.close()
        pw.stop()
        oidc.close()
        code = server.stop()
        if handle is not None:
            handle.close()
    assert code == 0, server.log()


def new_patient(server, login_prefix: str = "pat") -> tuple[str, str]:
    pid = fresh_patient()
    login = f"{login_prefix}-{pid.split('^')[0]}"
    server.add_patient(pid)
    server.xds("portal", "user", "add", "--role", "patient", "--login", login, "--patient", pid, "--name",
               "Camille Martin", "--password-env", "PORTAL_TEST_PW")
    return pid, login


def api(server, method: str, path: str, payload=None):
    r = requests.request(method, server.base_url + "/dmp/api" + path, json=payload, timeout=30,
                         headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert r.status_code == 200, r.text
    return r.json()


def browser_page(server, login: str, viewport=DESKTOP, lang: str | None = None):
    ctx = server.browser.new_context(viewport=viewport, locale="fr-FR")
    page = ctx.new_page()
    page.goto(server.base_url + "/portal/login" + (f"?lang={lang}" if lang else ""))
    page.get_by_label(re.compile("Identifiant|Login")).fill(login)
    page.get_by_label(re.compile("Mot de passe|Password")).fill(PASSWORD)
    follow(page, page.get_by_role("button", name=re.compile("Se connecter|Log in")))
    return ctx, page


def shot(page, name: str, backend: str) -> None:
    if backend != "sqlite":
        return
    SHOTS.mkdir(parents=True, exist_ok=True)
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=str(SHOTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def seed(server, pid: str, author: str = "pro-a", **kw) -> str:
    """Upload a CDA through the portal (the ITI-41 path) and return its uniqueId."""
    rpps = PROS[author][0]
    uid = f"2.25.{int(time.time() * 1e6)}{os.getpid()}"
    http = HttpPortal(server.base_url, author, PASSWORD)
    r = http.upload(pid, "cr.xml", cda(pid, rpps, kw.pop("title", "Compte rendu de consultation"), doc_id=uid, **kw),
                    confidentiality="N")
    assert "added=1" in r.url, r.text[-2000:]
    return uid


def follow(page, target) -> None:
    """Click a link or a form's button and wait for the page it leads to. Reading ``page.content()`` between the
    click and the commit of the new document returns the old page or an empty one, depending on timing."""
    with page.expect_navigation():
        target.click()


def confirm(page) -> None:
    """The second step of a change of who sees what: the confirmation page's button (issue 23)."""
    assert page.locator("p.explanation").inner_text().strip()
    follow(page, page.get_by_role("button", name=re.compile("^Confirmer")))


def titles(page) -> list[str]:
    return [t.strip() for t in page.locator("table.docs tbody tr td:first-child").all_inner_texts()]


def wait_history(page, url: str, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.goto(url)
        if text in page.content():
            return
        time.sleep(0.5)
    raise AssertionError(f"{text!r} not in the access history:\n{page.content()[-3000:]}")


# ----------------------------------------------------------------------------- tests

def test_patient_documents_access_and_block(portal):
    pid, login = new_patient(portal)
    api(portal, "PUT", f"/records/{seg(pid)}/authorised/{PROS['pro-a'][0]}")
    api(portal, "PUT", f"/records/{seg(pid)}/authorised/{PROS['pro-b'][0]}")
    seed(portal, pid, title="Compte rendu ancien", effective="20230105103000+0100")
    seed(portal, pid, title="Compte rendu récent", effective="20240301103000+0100")
    ctx, page = browser_page(portal, login)
    assert page.url.endswith("/portal/me/documents")
    assert titles(page) == ["Compte rendu récent", "Compte rendu ancien"]  # newest first
    assert "Mes documents" in page.content() and page.locator("html").get_attribute("lang") == "fr"
    shot(page, "patient-documents", portal.backend)
    page.get_by_label("Du").fill("2024-01-01")
    follow(page, page.get_by_role("button", name="Filtrer"))
    assert titles(page) == ["Compte rendu récent"]
    # who may read my record: find Bruno by name, block him
    follow(page, page.get_by_role("link", name="Qui peut consulter mon dossier"))
    page.get_by_label("Nom ou identifiant national (RPPS)").fill("Bruno")
    follow(page, page.get_by_role("button", name="Rechercher"))
    follow(page, page.locator("ul.people li", has_text="Bruno").last.get_by_role("button", name="Bloquer"))
    confirm(page)
    assert "Enregistré" in page.content()
    record = api(portal, "GET", f"/records/{seg(pid)}")
    assert PROS["pro-b"][0] in record["blocked"] and PROS["pro-b"][0] not in record["authorised"]
    page.get_by_label("Nom ou identifiant national (RPPS)").fill(PROS["pro-t"][0])
    follow(page, page.get_by_role("button", name="Rechercher"))
    follow(page, page.get_by_role("button", name="Désigner comme médecin traitant"))
    confirm(page)
    assert api(portal, "GET", f"/records/{seg(pid)}")["treating_physician"] == PROS["pro-t"][0]
    follow(page, page.get_by_role("button", name=re.compile("S'opposer : Accès « bris de glace »")))
    confirm(page)
    assert api(portal, "GET", f"/records/{seg(pid)}")["break_glass_allowed"] is False
    follow(page, page.get_by_role("button", name=re.compile("Autoriser : Accès « bris de glace »")))
    confirm(page)
    shot(page, "patient-access", portal.backend)
    ctx.close()
    # the blocked professional's next search shows nothing
    ctx, page = browser_page(portal, "pro-b")
    page.get_by_label("INS du patient").fill(pid)
    follow(page, page.get_by_role("button", name="Rechercher"))
    assert "Vous n'avez pas accès à ce dossier" in page.content()
    assert page.locator("table.docs").count() == 0 and "Compte rendu" not in page.content()
    assert "Le patient a bloqué votre accès à son dossier" in page.content()
    assert page.get_by_label("Motif (obligatoire)").count() == 0  # a block outranks an emergency: not offered
    ctx.close()


def test_mask_hides_from_authorised_but_not_treating(portal):
    pid, login = new_patient(portal)
    api(portal, "PUT", f"/records/{seg(pid)}/authorised/{PROS['pro-a'][0]}")
    api(portal, "PUT", f"/records/{seg(pid)}/treating-physician", {"professional_id": PROS["pro-t"][0]})
    uid = seed(portal, pid, author="pro-e", title="Compte rendu sensible")  # care team feeding
    ctx, page = browser_page(portal, login)
    page.goto(portal.base_url + f"/portal/documents/{seg(uid)}")
    follow(page, page.get_by_role("button", name="Masquer aux professionnels"))
    confirm(page)
    assert page.get_by_role("button", name="Démasquer").is_visible()
    ctx.close()
    for pro, sees in (("pro-a", False), ("pro-t", True)):
        ctx, page = browser_page(portal, pro)
        page.goto(portal.base_url + "/portal/pro/patient?ins=" + seg(pid))
        assert ("Compte rendu sensible" in titles(page)) is sees, (pro, page.content()[-2000:])
        r = page.goto(portal.base_url + f"/portal/documents/{seg(uid)}")
        assert (r.status == 200) is sees
        ctx.close()


def test_hostile_cda_renders_without_script_or_external_load(portal):
    pid, login = new_patient(portal)
    uid = seed(portal, pid, title="CR piégé", narrative=HOSTILE_NARRATIVE)
    ctx, page = browser_page(portal, login)
    requested, console = [], []
    page.on("request", lambda r: requested.append(r.url))
    page.on("console", lambda m: console.append(m.text))
    resp = page.goto(portal.base_url + f"/portal/documents/{seg(uid)}")
    csp = resp.headers["content-security-policy"]
    assert "script-src 'none'" in csp and "default-src 'none'" in csp
    page.wait_for_timeout(500)
    assert "Texte lisible du compte rendu." in page.content() and "cellule" in page.content()
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.title() != "pwned"
    assert not [u for u in requested if "evil.example" in u], requested
    assert all(u.startswith(portal.base_url) for u in requested), requested
    html = page.locator("article.cda").inner_html()
    assert "<script" not in html and "<img" not in html and "onclick" not in html and "javascript:" not in html
    assert page.locator("dl.header").inner_text().count("Camille Martin") == 1
    assert "Hôpital Saint-Louis" in page.content() or "Dupont" in page.content()
    shot(page, "document-cda", portal.backend)
    original = ctx.request.get(portal.base_url + f"/portal/documents/{seg(uid)}/original")
    assert original.headers["content-disposition"].startswith("attachment") and b"<script" in original.body()
    ctx.close()


def test_professional_upload_pdf_invisible_then_disclose(portal):
    pid, login = new_patient(portal)
    api(portal, "PUT", f"/records/{seg(pid)}/authorised/{PROS['pro-a'][0]}")
    ctx, page = browser_page(portal, "pro-a")
    page.get_by_label("INS du patient").fill(pid)
    follow(page, page.get_by_role("button", name="Rechercher"))
    page.get_by_label("Fichier (CDA R2 XML ou PDF)").set_input_files(
        files=[{"name": "resultats.pdf", "mimeType": "application/pdf", "buffer": tiny_pdf()}])
    page.get_by_label("Titre du document").fill("Résultats PDF")
    page.get_by_label("Confidentialité").select_option("INVISIBLE_PATIENT")
    follow(page, page.get_by_role("button", name="Envoyer"))
    assert "Document ajouté" in page.content() and "Résultats PDF" in titles(page)
    shot(page, "professional-patient", portal.backend)
    # a CDA with a PDF body, shown inline too
    page.get_by_label("Fichier (CDA R2 XML ou PDF)").set_input_files(
        files=[{"name": "cr.xml", "mimeType": "text/xml",
                "buffer": cda(pid, PROS["pro-a"][0], "CR en PDF", pdf=tiny_pdf("CDA PDF"))}])
    follow(page, page.get_by_role("button", name="Envoyer"))
    assert "CR en PDF" in titles(page)
    follow(page, page.get_by_role("link", name="CR en PDF"))
    assert page.locator("iframe").count() == 0 and page.locator("object.pdf").count() == 1  # issue 23
    pdf = ctx.request.get(portal.base_url + page.locator("object.pdf").get_attribute("data"))
    assert page.get_by_role("link", name="Afficher le PDF").count() == 1
    original = ctx.request.get(portal.base_url + page.get_by_role("link", name="Télécharger l'original").first
                               .get_attribute("href"))
    assert "filename=\"CR en PDF.xml\"" in original.headers["content-disposition"]
    assert pdf.headers["content-type"] == "application/pdf" and pdf.body().startswith(b"%PDF-")
    ctx.close()
    # hidden from the patient until the author discloses it
    pctx, ppage = browser_page(portal, login)
    assert "Résultats PDF" not in titles(ppage) and "CR en PDF" in titles(ppage)
    ctx, page = browser_page(portal, "pro-a")
    page.goto(portal.base_url + "/portal/pro/patient?ins=" + seg(pid))
    follow(page, page.get_by_role("link", name="Résultats PDF"))
    follow(page, page.get_by_role("button", name="Rendre visible au patient"))
    confirm(page)
    ctx.close()
    ppage.reload()
    assert "Résultats PDF" in titles(ppage)
    pctx.close()


def test_emergency_access_shown_in_history(portal):
    pid, login = new_patient(portal)
    seed(portal, pid, title="Compte rendu urgence")
    ctx, page = browser_page(portal, "pro-e")
    page.goto(portal.base_url + "/portal/pro/patient?ins=" + seg(pid))
    assert "Vous n'avez pas accès à ce dossier" in page.content()
    assert "tracé, audité et visible par le patient" in page.content()
    shot(page, "professional-emergency-warning", portal.backend)
    page.get_by_role("button", name="Accès en urgence").click()  # no reason: the browser refuses (required)
    assert page.locator("table.docs").count() == 0
    page.get_by_label("Motif (obligatoire)").fill("Patient inconscient aux urgences")
    page.get_by_label("Je confirme l'urgence").check()
    follow(page, page.get_by_role("button", name="Accès en urgence"))
    assert "Vous êtes en accès d'urgence" in page.content() and "Compte rendu urgence" in titles(page)
    ctx.close()
    ctx, page = browser_page(portal, login)
    wait_history(page, portal.base_url + "/portal/me/history", "Urgence")
    row = page.locator("table.history tr.emergency").first
    assert "Émile" in row.inner_text() or PROS["pro-e"][0] in row.inner_text()
    shot(page, "patient-history", portal.backend)
    ctx.close()


def test_changing_ids_in_urls_is_refused(portal):
    pid1, login1 = new_patient(portal)
    pid2, _ = new_patient(portal)
    api(portal, "PUT", f"/records/{seg(pid1)}/authorised/{PROS['pro-a'][0]}")
    uid2 = seed(portal, pid2, author="pro-t", title="Autre patient")
    ctx, page = browser_page(portal, login1)
    assert page.goto(portal.base_url + "/portal/me/documents?patient=" + seg(pid2)).status == 403
    assert page.goto(portal.base_url + f"/portal/documents/{seg(uid2)}").status == 404
    assert page.goto(portal.base_url + f"/portal/documents/{seg(uid2)}/original").status == 404
    assert page.goto(portal.base_url + "/portal/pro/patient?ins=" + seg(pid2)).status == 403
    assert page.goto(portal.base_url + "/portal/audit/").status == 403
    assert "Autre patient" not in page.content()
    ctx.close()
    ctx, page = browser_page(portal, "pro-a")
    assert page.goto(portal.base_url + "/portal/pro/patient?ins=" + seg(pid1)).status == 200
    assert page.goto(portal.base_url + "/portal/pro/patient?ins=" + seg(pid2)).status == 403
    assert "Autre patient" not in page.content()
    assert page.goto(portal.base_url + f"/portal/documents/{seg(uid2)}").status == 404
    ctx.close()


def test_auditor_desk(portal):
    pid, _login = new_patient(portal)
    seed(portal, pid)
    ctx, page = browser_page(portal, "auditor")
    deadline = time.monotonic() + 20
    while True:
        page.goto(portal.base_url + "/portal/audit/?patient=" + seg(pid))
        if page.locator("table.audit tbody tr").count() >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert page.locator("table.audit tbody tr").count() >= 2
    shot(page, "auditor-search", portal.backend)
    follow(page, page.locator("table.audit tbody tr td a").first)
    assert "XML brut" in page.content() and "AuditMessage" in page.content()
    shot(page, "auditor-record", portal.backend)
    csv = ctx.request.get(portal.base_url + "/portal/audit/export.csv?patient=" + seg(pid))
    assert csv.headers["content-type"].startswith("text/csv") and pid.split("^")[0] in csv.text()
    page.goto(portal.base_url + "/portal/audit/verify")
    assert "Chaîne de hachage intacte" in page.content()
    page.goto(portal.base_url + "/portal/audit/?user=" + PROS["pro-a"][0] + "&lang=en")
    assert "Audit trail" in page.content() and page.locator("html").get_attribute("lang") == "en"
    ctx.close()


def test_login_security(portal):
    base = portal.base_url + "/portal"
    # cookies: HttpOnly, SameSite; CSRF on every form; attempts limited
    s = requests.Session()
    r = s.post(base + "/login", data={"login": "pro-a", "password": PASSWORD, "csrf": login_token(s, base)},
               allow_redirects=False, timeout=30)
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/portal" in cookie
    r = s.post(base + "/pro/upload", data={"ins": "x"}, timeout=30)
    assert r.status_code == 403
    r = s.post(base + "/logout", data={}, timeout=30, allow_redirects=False)
    assert r.status_code == 403  # no CSRF token
    bad = requests.Session()
    for _ in range(5):
        assert bad.post(base + "/login", data={"login": "pro-t", "password": "wrong-password",
                                               "csrf": login_token(bad, base)}, timeout=30).status_code == 401
    r = bad.post(base + "/login", data={"login": "pro-t", "password": PASSWORD, "csrf": login_token(bad, base)},
                 timeout=30)
    assert r.status_code == 429  # this address waits, even with the right password
    assert requests.get(base + "/me/documents", timeout=30, allow_redirects=False).status_code == 303


def test_oidc_login_with_fake_provider(portal):
    portal.oidc.login = "auditor"
    ctx = portal.browser.new_context(viewport=PHONE)
    page = ctx.new_page()
    page.goto(portal.base_url + "/portal/login?lang=en")
    assert page.locator("html").get_attribute("lang") == "en"
    shot(page, "login", portal.backend)
    before = portal.oidc.token_requests
    follow(page, page.get_by_role("link", name=re.compile("identity provider")))
    assert page.url.startswith(portal.base_url + "/portal/audit/"), page.url
    assert portal.oidc.token_requests == before + 1
    ctx.close()
    portal.oidc.login = "nobody-here"
    ctx = portal.browser.new_context()
    page = ctx.new_page()
    page.goto(portal.base_url + "/portal/oidc/start")
    assert "/portal/audit" not in page.url and "OpenID Connect" in page.content()
    ctx.close()
