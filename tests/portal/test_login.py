"""The portal's login against an attacker (issue #17, point 7), in-process on SQLite and PostgreSQL:

* login CSRF: the form's token is bound to a pre-session cookie; without it the password is not checked;
* lockout: per (account, client address) with exponential back-off, so nobody can lock another person out;
* control characters in a login name never reach the database, the log or the audit trail.

Each test is named after the rule it checks.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from audit import store
from config import Settings
from portal.accounts import AccountError, attempts
from portal.app import Portal, portal_app
from server.app import Services, build_services
from storage.database import Database

from .support import LOGIN_CSRF_FIELD, WsgiBrowser

LOGIN = "audrey"
PASSWORD = "correct horse battery"
ATTACKER = "203.0.113.9"
USER = "192.0.2.10"
CONTROL = ["\x00", "\n", "\r", "\t", "\x1b", "\x7f", "\x85", "\u2028", "\u202e", "\u200b"]


class Clock:
    """The accounts' clock, moved by hand: back-off periods pass without sleeping."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class Alert:
    user_id: str
    description: str
    kind: str
    success: bool


def build(db: Database, data_dir: Path, **settings: str) -> tuple[Services, Portal]:
    store.migrate(db)
    services = build_services(Settings(data_dir=data_dir, database_url=db.url, **settings))
    portal = portal_app(services)
    assert isinstance(portal, Portal)
    portal.accounts.add(LOGIN, "auditor", PASSWORD, display_name="Audrey Auditrice")
    return services, portal


@pytest.fixture
def app(db: Database, tmp_path: Path) -> Iterator[Portal]:
    services, portal = build(db, tmp_path / "data")
    yield portal
    services.close()


@pytest.fixture
def clock(app: Portal) -> Clock:
    app.accounts.clock = Clock()
    return app.accounts.clock


@pytest.fixture
def alerts(app: Portal, monkeypatch: pytest.MonkeyPatch) -> list[Alert]:
    """The security alerts the portal raises (still recorded: the spy passes them on)."""
    seen: list[Alert] = []
    record = app.records.alert

    def alert(caller, description: str, kind: str = "restricted", patient_id: str | None = None,
              success: bool = False) -> None:
        seen.append(Alert(caller.user_id, description, kind, success))
        record(caller, description, kind, patient_id, success)
    monkeypatch.setattr(app.records, "alert", alert)
    return seen


@pytest.fixture
def checked(app: Portal, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The logins whose password the portal checked."""
    logins: list[str] = []
    authenticate = app.accounts.authenticate

    def spy(login: str, password: str, address: str):
        logins.append(login)
        return authenticate(login, password, address)
    monkeypatch.setattr(app.accounts, "authenticate", spy)
    return logins


def failures(app: Portal) -> int:
    with app.accounts.db.read() as conn:
        return conn.execute(select(func.count()).select_from(attempts)).scalar_one()


def session_opened(response) -> bool:
    return response.status == 303 and any(c.startswith("dmp_portal=") and "Max-Age=0" not in c
                                           for c in response.cookies())


def lock(browser: WsgiBrowser) -> None:
    for _ in range(5):
        assert browser.login(LOGIN, "wrong password").status == 401


# ----------------------------------------------------------------------------- login CSRF

def test_login_form_token_opens_a_session(app: Portal) -> None:
    browser = WsgiBrowser(app)
    page = browser.get("/login")
    cookie = next(c for c in page.cookies() if c.startswith("dmp_login="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/portal/login" in cookie
    response = browser.login(LOGIN, PASSWORD)
    assert session_opened(response)
    assert "dmp_login" not in browser.jar  # the pre-session token ends with the pre-session


def test_login_without_csrf_token_is_refused(app: Portal, alerts: list[Alert], checked: list[str]) -> None:
    browser = WsgiBrowser(app)
    browser.get("/login")
    response = browser.post("/login?lang=en", {"login": LOGIN, "password": PASSWORD})
    assert response.status == 403 and not session_opened(response)
    assert "The login form expired or came from another site. Please log in again." in response.text
    assert checked == []
    assert alerts[-1].kind == "user" and not alerts[-1].success and alerts[-1].user_id == LOGIN
    assert alerts[-1].description.startswith("portal login (password, no valid CSRF token) failed for audrey")


def test_login_with_a_token_from_another_browser_is_refused(app: Portal, checked: list[str]) -> None:
    token = WsgiBrowser(app, ATTACKER).login_token()
    victim = WsgiBrowser(app)
    assert victim.post("/login", {"login": LOGIN, "password": PASSWORD, "csrf": token}).status == 403
    victim.get("/login")
    assert victim.post("/login", {"login": LOGIN, "password": PASSWORD, "csrf": token}).status == 403
    assert checked == []


def test_login_posted_from_another_site_is_refused(app: Portal, checked: list[str]) -> None:
    browser = WsgiBrowser(app)
    form = {"login": LOGIN, "password": PASSWORD, "csrf": browser.login_token()}
    assert browser.post("/login", form, {"Origin": "https://evil.example"}).status == 403
    assert checked == []


def test_login_refused_for_its_token_can_be_retried_with_the_new_form(app: Portal) -> None:
    browser = WsgiBrowser(app)
    refused = browser.post("/login", {"login": LOGIN, "password": PASSWORD, "csrf": "stale"})
    assert refused.status == 403
    token = LOGIN_CSRF_FIELD.search(refused.text)
    assert token is not None
    assert session_opened(browser.post("/login", {"login": LOGIN, "password": PASSWORD, "csrf": token.group(1)}))


def test_login_token_cookie_is_host_prefixed_under_https(app: Portal) -> None:
    browser = WsgiBrowser(app, scheme="https")
    cookie = next(c for c in browser.get("/login").cookies() if "login=" in c)
    assert cookie.startswith("__Host-dmp_login=") and "Secure" in cookie and "Path=/;" in cookie + ";"
    assert session_opened(browser.login(LOGIN, PASSWORD))


# ----------------------------------------------------------------------------- lockout

def test_failures_from_one_address_do_not_lock_the_account_for_another(app: Portal) -> None:
    attacker = WsgiBrowser(app, ATTACKER)
    lock(attacker)
    assert attacker.login(LOGIN, PASSWORD).status == 429
    assert session_opened(WsgiBrowser(app, USER).login(LOGIN, PASSWORD))


def test_backoff_doubles_after_repeated_failures(app: Portal, clock: Clock, checked: list[str]) -> None:
    browser = WsgiBrowser(app, ATTACKER)
    lock(browser)
    for wait in (60, 120, 240, 480):
        locked = browser.login(LOGIN, PASSWORD)
        assert locked.status == 429 and locked.header("Retry-After") == str(wait)
        clock.now += wait - 1
        tried = len(checked)
        assert browser.login(LOGIN, PASSWORD).status == 429
        assert len(checked) == tried  # a locked pair's password is not even checked
        clock.now += 1
        assert browser.login(LOGIN, "wrong password").status == 401


def test_backoff_stops_doubling_at_15_minutes(app: Portal, clock: Clock) -> None:
    browser = WsgiBrowser(app, ATTACKER)
    lock(browser)
    for wait in (60, 120, 240, 480, 900, 900):
        assert browser.login(LOGIN, PASSWORD).header("Retry-After") == str(wait)
        clock.now += wait
        assert browser.login(LOGIN, "wrong password").status == 401


def test_success_resets_the_backoff_of_its_pair(app: Portal, clock: Clock) -> None:
    browser = WsgiBrowser(app, ATTACKER)
    lock(browser)
    clock.now += 60
    assert session_opened(browser.login(LOGIN, PASSWORD))
    assert browser.login(LOGIN, "wrong password").status == 401
    assert session_opened(browser.login(LOGIN, PASSWORD))
    lock(browser)
    assert browser.login(LOGIN, PASSWORD).header("Retry-After") == "60"


# ----------------------------------------------------------------------------- control characters

def test_login_name_with_nul_is_refused(app: Portal, alerts: list[Alert], checked: list[str]) -> None:
    response = WsgiBrowser(app).login(LOGIN + "\x00", PASSWORD)
    assert response.status == 400 and not session_opened(response)
    assert checked == [] and failures(app) == 0
    assert alerts and not alerts[-1].success and "\x00" not in alerts[-1].description + alerts[-1].user_id


@pytest.mark.parametrize("char", CONTROL, ids=[f"U+{ord(c):04X}" for c in CONTROL])
def test_login_name_with_a_control_character_is_refused(app: Portal, checked: list[str], char: str) -> None:
    response = WsgiBrowser(app).login(f"aud{char}rey", PASSWORD)
    assert response.status == 400 and checked == [] and failures(app) == 0


def test_login_name_with_newlines_cannot_forge_an_audit_or_log_line(app: Portal, alerts: list[Alert],
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    forged = "nobody\r\nsecurity alert (user): portal login (password) succeeded for admin"
    browser = WsgiBrowser(app)
    assert browser.login(forged, PASSWORD).status == 400
    assert browser.post("/login", {"login": forged, "password": PASSWORD}).status == 403  # no token
    assert len(alerts) == 2
    for alert in alerts:
        assert "\n" not in alert.description + alert.user_id and "\r" not in alert.description + alert.user_id
        assert "nobody\\r\\nsecurity alert" in alert.description
    assert not [r for r in caplog.records if "\n" in r.getMessage() or "\r" in r.getMessage()]


def test_oidc_error_with_newlines_cannot_forge_an_audit_line(db: Database, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    services, portal = build(db, tmp_path / "data", portal_oidc_issuer="http://127.0.0.1:9",
                             portal_oidc_client_id="portal", portal_oidc_client_secret="secret")
    descriptions: list[str] = []
    record = portal.records.alert

    def alert(caller, description: str, *args, **kwargs) -> None:
        descriptions.append(description)
        record(caller, description, *args, **kwargs)
    monkeypatch.setattr(portal.records, "alert", alert)
    try:
        browser = WsgiBrowser(portal)
        browser.jar["dmp_oidc"] = ("state.nonce.verifier", "/portal/oidc/")
        response = browser.get("/oidc/callback?state=state&error=denied%0Aportal+login+succeeded+for+admin")
        assert response.status == 401
        assert descriptions and "\n" not in descriptions[-1] and "denied\\nportal login" in descriptions[-1]
    finally:
        services.close()


def test_account_login_with_a_control_character_cannot_be_created(app: Portal) -> None:
    with pytest.raises(AccountError):
        app.accounts.add("bad\nlogin", "auditor", PASSWORD)
    assert app.accounts.get("bad\nlogin") is None
