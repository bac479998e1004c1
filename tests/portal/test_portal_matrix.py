"""The DMP matrix at the portal's door (issue #17), in real headless Chromium against ``xds serve
--access-policy dmp`` on SQLite and PostgreSQL: for the patient, her treating physician, an
authorised, an unauthorised and a blocked professional and the cases N, MASQUE_PS and
INVISIBLE_PATIENT, the documents page shows exactly the cases :func:`tests.access.matrix.expected`
gives; a mask the patient sets in the portal hides the document as the matrix's MASKED_BY_PATIENT;
an upload is accepted or refused as :func:`tests.access.matrix.expected_write` says."""
from __future__ import annotations

import html
import secrets

import pytest

from tests.access import matrix as m

from .support import HttpPortal, cda
from .test_portal import (  # noqa: F401
    PASSWORD,
    PROS,
    api,
    browser_page,
    confirm,
    follow,
    new_patient,
    portal,
    seg,
    titles,
)

WRITER = ("pro-w", "810000000055", "Dr Wanda Rédactrice")
"""A professional outside every list of these records who writes their documents (care team
feeding), as matrix.AUTHOR does for the SOAP matrix."""
VIEWERS = {"treating": "pro-t", "authorised": "pro-a", "unauthorised": "pro-e", "blocked": "pro-b"}
"""Matrix caller kind -> portal login (the patient logs in with her own)."""
CASES = ("N", "MASQUE_PS", "INVISIBLE_PATIENT")
"""The cases the portal's upload form can set (its confidentiality choice)."""
REFUSED = "Vous n'avez pas accès à ce dossier"


@pytest.fixture(scope="module")
def writer(portal):  # noqa: F811 - the portal fixture imported above
    login, rpps, name = WRITER
    portal.xds("portal", "user", "add", "--role", "professional", "--login", login, "--professional-id", rpps,
               "--name", name, "--organization", "Hôpital Saint-Louis", "--password-env", "PORTAL_TEST_PW")
    return login, rpps


def _record(portal) -> tuple[str, str]:  # noqa: F811
    """A patient (and her portal login) whose record lists the matrix's professionals: pro-t treating,
    pro-a authorised, pro-b blocked; pro-e is on no list."""
    pid, login = new_patient(portal)
    api(portal, "PUT", f"/records/{seg(pid)}/treating-physician", {"professional_id": PROS["pro-t"][0]})
    api(portal, "PUT", f"/records/{seg(pid)}/authorised/{PROS['pro-a'][0]}")
    api(portal, "PUT", f"/records/{seg(pid)}/blocked/{PROS['pro-b'][0]}")
    return pid, login


def _shown(portal, login: str, kind: str, pid: str) -> set[str] | None:  # noqa: F811
    """The titles the documents page shows ``kind``, logged in as ``login``; None when the record
    is refused (and then no document is shown)."""
    ctx, page = browser_page(portal, login)
    try:
        if kind != "patient":
            response = page.goto(portal.base_url + "/portal/pro/patient?ins=" + seg(pid))
            if response.status == 403:
                assert REFUSED in page.content() and page.locator("table.docs").count() == 0
                return None
            assert response.status == 200, page.content()[-2000:]
        else:
            assert page.url.endswith("/portal/me/documents")
        return set(titles(page))
    finally:
        ctx.close()


def _title(case: str) -> str:
    return f"Cas {case}"


def test_documents_page_shows_the_matrix(portal, writer):  # noqa: F811
    pid, login = _record(portal)
    author, rpps = writer
    uploader = HttpPortal(portal.base_url, author, PASSWORD)
    uids = {}
    for case in CASES:
        uids[case] = f"2.25.{int.from_bytes(secrets.token_bytes(12), 'big')}"
        r = uploader.upload(pid, "cr.xml", cda(pid, rpps, _title(case), doc_id=uids[case]), confidentiality=case)
        assert "added=1" in r.url, r.text[-2000:]
    now = {case: case for case in CASES}  # document -> its matrix case as it now stands

    def check(kinds):
        for kind in kinds:
            visible = m.expected(m.OPEN, kind)
            want = None if visible is None else {_title(doc) for doc, case in now.items() if case in visible}
            assert _shown(portal, login if kind == "patient" else VIEWERS[kind], kind, pid) == want, kind

    check(("patient",) + tuple(VIEWERS))
    # the patient masks the N document in the portal: it is now the matrix's MASKED_BY_PATIENT
    ctx, page = browser_page(portal, login)
    page.goto(portal.base_url + f"/portal/documents/{seg(uids['N'])}")
    follow(page, page.get_by_role("button", name="Masquer aux professionnels"))
    confirm(page)
    assert page.get_by_role("button", name="Démasquer").is_visible()
    ctx.close()
    now["N"] = "MASKED_BY_PATIENT"
    check(("authorised", "treating", "patient"))


def test_upload_by_the_care_team_and_by_a_blocked_professional(portal):  # noqa: F811
    """Uploading is submitting a new document: a professional on no list of the patient's may
    (care team feeding) and then sees that document, and that one only; a blocked professional's
    upload is refused and stores nothing."""
    pid, login = _record(portal)
    seeded = HttpPortal(portal.base_url, "pro-t", PASSWORD)
    r = seeded.upload(pid, "cr.xml", cda(pid, PROS["pro-t"][0], "Compte rendu du traitant"), confidentiality="N")
    assert "added=1" in r.url, r.text[-2000:]
    for kind, title in (("unauthorised", "Compte rendu de l'équipe de soins"), ("blocked", "Compte rendu bloqué")):
        login_ = VIEWERS[kind]
        ctx, page = browser_page(portal, login_)
        page.goto(portal.base_url + "/portal/pro/patient?ins=" + seg(pid))  # refused: no list, no document yet
        token = page.locator('input[name="csrf"]').first.get_attribute("value")
        response = ctx.request.post(portal.base_url + "/portal/pro/upload", multipart={
            "csrf": token, "ins": pid, "confidentiality": "N",
            "file": {"name": "cr.xml", "mimeType": "text/xml", "buffer": cda(pid, PROS[login_][0], title)}})
        allowed = m.expected_write(m.OPEN, kind, "N", m.SUBMIT)
        assert (response.status == 200 and "Document ajouté" in response.text()) is allowed, response.text()[-2000:]
        if not allowed:
            assert response.status == 403 and REFUSED in html.unescape(response.text())
        ctx.close()
        treating = _shown(portal, "pro-t", "treating", pid)
        assert (title in treating) is allowed
    # the care team's author now reads their own document of the record, and nothing else of it
    assert _shown(portal, "pro-e", "author", pid) == {"Compte rendu de l'équipe de soins"}
    assert _shown(portal, login, "patient", pid) == {"Compte rendu du traitant", "Compte rendu de l'équipe de soins"}
