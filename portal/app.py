"""The portal's WSGI app, mounted at ``/portal`` by :func:`server.app.build_services`.

Every page: session from the cookie, role check, and for record data a :class:`~xds.context.Caller`
of the user handed to :class:`portal.records.Records` (policy, actor, audit). Patient pages never
take a patient id: the record is the logged-in patient's. Every POST carries the session's CSRF
token; the login form, which comes before any session, carries a token bound to a pre-session cookie
(login CSRF, OWASP CSRF Prevention Cheat Sheet). Responses carry a strict Content-Security-Policy (no
script at all).
"""
from __future__ import annotations

import csv
import hmac
import io
import logging
import math
import re
import secrets
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, unquote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape

from access.policy import CLOSED, NO_RECORD, READ
from access.store import AUTHORISED, BLOCKED
from audit import store, syslog
from audit.fhir import BadRequest, audit_event
from audit.fields import parse_audit_xml
from audit.history import history_page
from client.documents import Overrides, load_document
from client.errors import InputError, MissingMetadata
from portal import i18n
from portal.accounts import Accounts, User
from portal.cda import render as render_cda
from portal.dates import Clock, zone_of
from portal.history import rows as history_rows
from portal.oidc import LoginFailed, build_provider
from portal.patients import BadIdentifier, candidates, identity_of, parse_ins
from portal.records import Records, Refused, SubmissionFailed, make_caller
from portal.web import PDF_PAGE_CSP, HttpError, Request, Response, printable, redirect, unprintable
from transactions import iti81
from transactions.iti81 import TrailRefused
from transactions.services import already_authenticated
from xds.context import Caller, caller_from_environ
from xds.metadata import Code
from xds.patient import INS_AUTHORITIES, patient_key

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
PAGE = 20
SESSION_COOKIE = "dmp_portal"
LANG_COOKIE = "dmp_lang"
OIDC_COOKIE = "dmp_oidc"
LOGIN_COOKIE = "dmp_login"
LOGIN_COOKIE_HOST = "__Host-dmp_login"
"""Under HTTPS the login token's cookie has the ``__Host-`` prefix (RFC 6265bis section 4.1.3.2): the browser
keeps it only if this host set it, Secure, for Path=/, so a sibling sub-domain cannot plant a token of its own
(OWASP CSRF Prevention Cheat Sheet, double-submit cookie and cookie prefixes)."""
LOGIN_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
TYPES = [("11490-0", "Lettre de liaison à la sortie"), ("11502-2", "CR d'examens biologiques"),
         ("18748-4", "CR d'imagerie médicale"), ("34133-9", "Synthèse d'épisode de soins"),
         ("57833-6", "Prescription de produits de santé")]
ROLE_HOME = {"patient": "/me/documents", "professional": "/pro/", "auditor": "/audit/"}


def person_name(xcn: str | None) -> str:
    if not xcn:
        return ""
    parts = xcn.split("^")
    name = " ".join(p for p in (parts[2] if len(parts) > 2 else "", parts[1] if len(parts) > 1 else "") if p)
    return name or parts[0]


EXTENSIONS = {"application/pdf": "pdf", "text/xml": "xml", "application/xml": "xml", "application/hl7-v3+xml": "xml",
              "text/plain": "txt", "text/html": "html", "image/jpeg": "jpg", "image/png": "png", "image/tiff": "tiff"}


def download_name(title: str | None, unique_id: str, mime_type: str) -> str:
    """The ``filename`` parameters of a document's Content-Disposition: its title (else its uniqueId) and the
    extension of its mimeType, as an ASCII ``filename`` and a UTF-8 ``filename*`` (RFC 6266 section 4.3)."""
    base = " ".join(re.sub(r'[\\/:*?"<>|\x00-\x1f\x7f]+', " ", title or "").split())[:100] or unique_id
    name = f"{base}.{EXTENSIONS.get(mime_type.split(';')[0].strip().lower(), 'bin')}"
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().replace("\\", "")
    return f'filename="{plain}"; filename*=UTF-8\'\'{quote(name, safe="")}'


def org_name(xon: str | None) -> str:
    return (xon or "").split("^", 1)[0]


class Portal:
    def __init__(self, services) -> None:
        self.services = services
        self.settings = services.settings
        self.accounts = Accounts(services.database)
        self.accounts.ensure_schema()
        self.records = Records(services)
        self.clock = Clock(zone_of(self.settings.portal_timezone))
        self.provider = build_provider(self.settings)
        self.env = Environment(loader=FileSystemLoader(str(HERE / "templates")),
                               autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
        self.css = (HERE / "static" / "portal.css").read_bytes()

    # -- plumbing ----------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        req = Request(environ)
        req.lang = self._lang(req)
        req._ = i18n.translator(req.lang)
        req.session = None
        try:
            resp = self.dispatch(req)
        except HttpError as exc:
            resp = self.error(req, exc.status, exc.message)
        except Exception:  # noqa: BLE001 - never leak internals
            log.exception("portal failure on %s %s", req.method, printable(req.path))
            resp = self.error(req, 500, "internal error")
        return resp(start_response)

    def _lang(self, req: Request) -> str:
        lang = req.query.get("lang") or req.cookies.get(LANG_COOKIE) or i18n.DEFAULT
        return lang if lang in i18n.LANGUAGES else i18n.DEFAULT

    def secure_cookies(self, req: Request) -> bool:
        value = str(self.settings.portal_secure_cookies).lower()
        return req.secure if value == "auto" else value in ("1", "true", "yes", "on")

    def page(self, req: Request, template: str, status: int = 200, **context) -> Response:
        s = req.session
        html = self.env.get_template(template).render(
            _=req._, lang=req.lang, url=req.url, user=s.user if s else None, csrf=s.csrf if s else "",
            path=req.path, query=req.query, ts=self.clock.dtm, when=self.clock.instant, person_name=person_name,
            org_name=org_name,
            quote=lambda v: quote(v or "", safe=""), provider=self.provider, **context)
        resp = Response(html.encode(), status)
        if "lang" in req.query:
            resp.set_cookie(LANG_COOKIE, req.lang, path=req.url("/") or "/", secure=self.secure_cookies(req),
                            max_age=365 * 86400)
        return resp

    def error(self, req: Request, status: int, message: str = "") -> Response:
        text = {403: req._("Access refused."), 404: req._("Not found.")}.get(status, message or "error")
        return self.page(req, "error.html", status, message=text, code=status)

    def require(self, req: Request, *roles: str):
        s = req.session
        if s is None:
            raise HttpError(401)
        if s.user.role not in roles:
            raise HttpError(403)
        return s

    def check_csrf(self, req: Request) -> None:
        s = req.session
        given = req.form.get("csrf", "")
        if req.cross_site:
            raise HttpError(403, "cross-site request")
        if s is None or not hmac.compare_digest(given.encode(), s.csrf.encode()):
            raise HttpError(403, req._("The form expired. Please try again."))

    def dispatch(self, req: Request) -> Response:
        path = req.path
        if path == "/static/portal.css":
            return Response(self.css, 200, "text/css; charset=utf-8", [("Cache-Control", "max-age=3600")])
        req.session = self.accounts.session(req.cookies.get(SESSION_COOKIE))
        if req.method == "POST" and path not in ("/login",):
            self.check_csrf(req)
        if path in ("", "/"):
            if req.session is None:
                return redirect(req.url("/login"))
            return redirect(req.url(ROLE_HOME[req.session.user.role]))
        if path == "/login":
            return self.login(req)
        if path == "/logout" and req.method == "POST":
            return self.logout(req)
        if path == "/oidc/start":
            return self.oidc_start(req)
        if path == "/oidc/callback":
            return self.oidc_callback(req)
        if req.session is None:
            return redirect(req.url("/login") + "?next=" + quote(path, safe=""))
        parts = [unquote(p) for p in path.strip("/").split("/")]
        route: dict[tuple[str, str], Callable[[Request], Response]] = {
                 ("GET", "me/documents"): self.my_documents, ("GET", "me/access"): self.my_access,
                 ("POST", "me/access"): self.change_access, ("POST", "me/emergency"): self.change_emergency,
                 ("GET", "me/history"): self.my_history, ("GET", "pro"): self.pro_home,
                 ("GET", "pro/patient"): self.pro_patient, ("POST", "pro/emergency"): self.pro_emergency,
                 ("POST", "pro/upload"): self.pro_upload, ("GET", "audit"): self.audit_search,
                 ("GET", "audit/export.csv"): self.audit_export, ("GET", "audit/verify"): self.audit_verify}
        handler = route.get((req.method, "/".join(parts)))
        if handler is not None:
            return handler(req)
        if len(parts) >= 2 and parts[0] == "documents":
            return self.document_route(req, parts[1], parts[2:])
        if len(parts) == 3 and parts[:2] == ["audit", "records"] and parts[2].isdigit():
            return self.audit_record(req, int(parts[2]))
        raise HttpError(404)

    # -- login -------------------------------------------------------------------------------------
    def _start_session(self, req: Request, user, target: str | None = None) -> Response:
        session = self.accounts.open_session(user)
        nxt = target if target and target.startswith("/") and not target.startswith("//") else ROLE_HOME[user.role]
        resp = redirect(req.url(nxt))
        resp.set_cookie(SESSION_COOKIE, session.id, path=req.url("/") or "/", secure=self.secure_cookies(req))
        name, path = self._login_cookie(req)
        resp.set_cookie(name, "", path=path, secure=self.secure_cookies(req), max_age=0, same_site="Strict")
        return resp

    def _audit_login(self, req: Request, login: str, user, ok: bool, how: str) -> None:
        """A security alert for each login; the login name and the reason are the client's words, so they are
        written with their control characters escaped: they cannot end the log line or the record early."""
        caller = make_caller(user, req.environ) if user is not None else caller_from_environ(req.environ)
        if user is None:
            caller.user_id = printable(login)[:128] or "?"
        self.records.alert(caller, printable(f"portal login ({how}) {'succeeded' if ok else 'failed'} for {login}"),
                           "user", success=ok)

    def _login_cookie(self, req: Request) -> tuple[str, str]:
        """The name and path of the login token's cookie."""
        return (LOGIN_COOKIE_HOST, "/") if self.secure_cookies(req) else (LOGIN_COOKIE, req.url("/login"))

    def _login_token(self, req: Request) -> str | None:
        """The token of this browser's pre-session, if its cookie holds one."""
        token = req.cookies.get(self._login_cookie(req)[0], "")
        return token if LOGIN_TOKEN.fullmatch(token) else None

    def _login_page(self, req: Request, status: int = 200, error: str = "", next_: str = "") -> Response:
        """The login form with this browser's token, (re)setting its cookie. The cookie is SameSite=Strict: a
        form posted from another site does not even carry it."""
        token = self._login_token(req) or secrets.token_urlsafe(32)
        resp = self.page(req, "login.html", status, error=error, next=next_, login_csrf=token)
        name, path = self._login_cookie(req)
        resp.set_cookie(name, token, path=path, secure=self.secure_cookies(req), same_site="Strict")
        return resp

    def _login_form_genuine(self, req: Request) -> bool:
        """Double-submit check of the login form: the token in the form equals the one in this browser's cookie
        (compared in constant time), and the browser does not say the form comes from another origin. Another
        site can make a browser post a form but can neither read nor set this host's cookie, so it cannot log the
        victim into the attacker's account (login CSRF)."""
        token = self._login_token(req)
        given = req.form.get("csrf", "")
        return token is not None and hmac.compare_digest(given.encode(), token.encode()) and not req.cross_site

    def login(self, req: Request) -> Response:
        """Checks in this order, each before the next costs anything: the form's token (else 403, the password
        is not checked), the login name (no control character, else 400), the pair's back-off (else 429 with
        Retry-After, RFC 6585 section 4), then the password. Every refusal is audited as a failed login."""
        if req.method == "GET":
            return self._login_page(req, next_=req.query.get("next", ""))
        login = req.form.get("login", "").strip()[:128]
        nxt = req.form.get("next", "")
        if not self._login_form_genuine(req):
            self._audit_login(req, login, None, False, "password, no valid CSRF token")
            return self._login_page(req, 403, req._("The login form expired or came from another site. "
                                                    "Please log in again."), nxt)
        if unprintable(login):
            self._audit_login(req, login, None, False, "password, login name with control characters")
            return self._login_page(req, 400, req._("The login contains characters that are not allowed."), nxt)
        wait = self.accounts.wait(login, req.remote_addr)
        if wait > 0:
            self._audit_login(req, login, None, False, "password, locked")
            minutes = math.ceil(wait / 60)
            resp = self._login_page(req, 429, req._("Too many failed attempts. Try again in {minutes} min.")
                                    .format(minutes=minutes), nxt)
            resp.headers.append(("Retry-After", str(math.ceil(wait))))
            return resp
        user = self.accounts.authenticate(login, req.form.get("password", ""), req.remote_addr)
        self._audit_login(req, login, user, user is not None, "password")
        if user is None:
            return self._login_page(req, 401, req._("Wrong login or password."), nxt)
        return self._start_session(req, user, nxt)

    def logout(self, req: Request) -> Response:
        assert req.session is not None  # check_csrf refuses a POST without a session
        self.accounts.close_session(req.session.id)
        resp = redirect(req.url("/login"))
        resp.set_cookie(SESSION_COOKIE, "", path=req.url("/") or "/", secure=self.secure_cookies(req), max_age=0)
        return resp

    def oidc_start(self, req: Request) -> Response:
        if self.provider is None:
            raise HttpError(404)
        state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        url = self.provider.authorization_url(req.absolute("/oidc/callback"), state, nonce, verifier)
        resp = redirect(url)
        resp.set_cookie(OIDC_COOKIE, f"{state}.{nonce}.{verifier}", path=req.url("/oidc/"),
                        secure=self.secure_cookies(req), max_age=600)
        return resp

    def oidc_callback(self, req: Request) -> Response:
        if self.provider is None:
            raise HttpError(404)
        try:
            state, nonce, verifier = req.cookies.get(OIDC_COOKIE, "..").split(".")
            if not state or not hmac.compare_digest(state.encode(), req.query.get("state", "").encode()):
                raise LoginFailed("state does not match")
            if not req.query.get("code"):
                raise LoginFailed(req.query.get("error") or "no code")
            claims = self.provider.complete(req.absolute("/oidc/callback"), req.query["code"], nonce, verifier)
            login = self.provider.login_of(claims) or ""
            user = self.accounts.get(login)
            if user is None:
                raise LoginFailed(f"no portal account for {login!r}")
        except (LoginFailed, ValueError) as exc:
            self._audit_login(req, "?", None, False, f"OpenID Connect: {exc}")
            return self._login_page(req, 401, req._("Login with OpenID Connect failed."))
        self._audit_login(req, login, user, True, "OpenID Connect")
        resp = self._start_session(req, user)
        resp.set_cookie(OIDC_COOKIE, "", path=req.url("/oidc/"), secure=self.secure_cookies(req), max_age=0)
        return resp

    # -- callers -----------------------------------------------------------------------------------
    def caller(self, req: Request, patient_id: str | None = None) -> Caller:
        s = req.session
        assert s is not None  # dispatch sends only signed-in users past the login pages
        emergency = (s.data.get("emergency") or {}).get(patient_key(patient_id or "")) \
            if s.user.role == "professional" else None
        if emergency:
            return make_caller(s.user, req.environ, access_mode="bris_de_glace", reason=emergency.get("reason"))
        return make_caller(s.user, req.environ)

    # -- documents (list) --------------------------------------------------------------------------
    def _list(self, req: Request, patient_id: str) -> dict:
        """Documents of ``patient_id`` the caller may see: filtered by type and period (days of the portal's
        zone), sorted newest first and paged in the queries (:meth:`portal.records.Records.documents_page`)."""
        type_code = req.query.get("type", "").strip()[:64]
        try:
            since = self.clock.utc_dtm(req.query["from"]) if req.query.get("from") else None
            until = self.clock.utc_dtm(req.query["to"], end=True) if req.query.get("to") else None
            number = max(1, int(req.query.get("page", "1") or "1"))
        except ValueError:
            raise HttpError(400, req._("Invalid date or page.")) from None
        found = self.records.documents_page(self.caller(req, patient_id), patient_id, type_code=type_code or None,
                                            created_from=since, created_to=until, page=number, size=PAGE)
        names = dict(TYPES)
        for d in found.docs:
            if d.type_code and d.type_code.display_name:
                names.setdefault(d.type_code.code, d.type_code.display_name)
        codes = dict.fromkeys(key.split("^", 1)[0] for key in found.type_codes)
        types = sorted(((code, names.get(code, code)) for code in codes), key=lambda t: t[1])
        return {"docs": found.docs, "total": found.total, "page": found.page, "pages": found.pages, "types": types,
                "facts": found.facts, "type_code": type_code}

    def my_documents(self, req: Request) -> Response:
        s = self.require(req, "patient")
        for key in ("patient", "patient_id", "ins"):
            if key in req.query and req.query[key] != s.user.patient_id:
                self.records.alert(self.caller(req), f"portal: patient {s.user.patient_id} asked for the record "
                                                     f"of {req.query[key]}", "restricted", req.query[key])
                raise HttpError(403)
        try:
            listing = self._list(req, s.user.patient_id)
        except Refused as exc:
            return self.page(req, "error.html", 403, message=str(exc), code=403)
        return self.page(req, "documents.html", patient_id=s.user.patient_id, base="/me/documents", **listing)

    # -- one document ------------------------------------------------------------------------------
    def document_route(self, req: Request, unique_id: str, rest: list[str]) -> Response:
        s = self.require(req, "patient", "professional")
        patient = self.records.document_patient(unique_id)
        caller = self.caller(req, patient)
        if rest == ["mask"] and req.method == "POST":
            return self.mask(req, caller, unique_id)
        if rest == ["disclose"] and req.method == "POST":
            return self.disclose(req, caller, unique_id)
        if req.method != "GET" or rest not in ([], ["original"], ["pdf"]):
            raise HttpError(404)
        try:
            entry = self.records.document(caller, unique_id)
            doc = self.records.retrieve(caller, entry)
        except Refused:
            raise HttpError(404) from None
        if rest == ["original"]:
            return Response(doc.content, 200, "application/octet-stream",
                            [("Content-Disposition", "attachment; " + download_name(entry.title, unique_id,
                                                                                     doc.mime_type))],
                            csp="default-src 'none'; sandbox")
        view = None
        pdf = doc.content if doc.mime_type == "application/pdf" else None
        if doc.mime_type in ("text/xml", "application/xml", "application/hl7-v3+xml"):
            try:
                view = render_cda(doc.content)
                if view.body_media_type == "application/pdf" and view.body:
                    pdf = view.body
            except ValueError:
                view = None
        if rest == ["pdf"]:
            if pdf is None or not pdf.startswith(b"%PDF-"):
                raise HttpError(404)
            return Response(pdf, 200, "application/pdf",
                            [("Content-Disposition", "inline; " + download_name(entry.title, unique_id,
                                                                                 "application/pdf"))],
                            csp="frame-ancestors 'self'")
        facts = self.records.facts(unique_id)
        authored = s.user.role == "professional" and facts is not None and s.user.professional_id in facts.authors
        resp = self.page(req, "document.html", entry=entry, view=view, pdf=pdf is not None, facts=facts,
                         authored=authored, text=doc.content.decode("utf-8", "replace")
                         if view is None and pdf is None and doc.mime_type.startswith("text/") else None,
                         emergency=caller.is_emergency)
        if pdf is not None:
            resp.csp = PDF_PAGE_CSP
        return resp

    def mask(self, req: Request, caller, unique_id: str) -> Response:
        s = self.require(req, "patient")
        try:
            entry = self.records.document(caller, unique_id)  # the policy: visible to this patient?
        except Refused:
            raise HttpError(404) from None
        if entry.patient_id != s.user.patient_id:
            raise HttpError(403)
        masked = req.form.get("masked") == "1"
        if req.form.get("confirmed") != "1":
            title = entry.title or req._("Document")
            return self._confirm(req, f"/documents/{quote(unique_id, safe='')}/mask",
                                 {"masked": "1" if masked else "0"},
                                 req._("Mask “{title}” from professionals?") if masked
                                 else req._("Unmask “{title}”?"),
                                 req._("The professionals you authorised will no longer see this document. Your "
                                       "treating physician and its author still will, and you can unmask it at any "
                                       "time.") if masked
                                 else req._("The professionals you authorised will see this document again."),
                                 req._("Mask from professionals") if masked else req._("Unmask"), title=title,
                                 back=f"/documents/{quote(unique_id, safe='')}")
        self.records.admin.mask(caller, unique_id, True if masked else False)
        return redirect(req.url(f"/documents/{quote(unique_id, safe='')}"))

    def disclose(self, req: Request, caller, unique_id: str) -> Response:
        s = self.require(req, "professional")
        try:
            entry = self.records.document(caller, unique_id)
        except Refused:
            raise HttpError(404) from None
        facts = self.records.facts(unique_id)
        if facts is None or s.user.professional_id not in facts.authors:
            raise HttpError(403)
        if req.form.get("confirmed") != "1":
            return self._confirm(req, f"/documents/{quote(unique_id, safe='')}/disclose", {},
                                 req._("Disclose “{title}” to the patient?"),
                                 req._("The patient will see this document in her record. This cannot be undone "
                                       "from the portal."), req._("Disclose to the patient"),
                                 title=entry.title or req._("Document"), back=f"/documents/{quote(unique_id, safe='')}")
        self.records.admin.disclose(caller, entry.unique_id, True)
        return redirect(req.url(f"/documents/{quote(unique_id, safe='')}"))

    # -- the patient's decisions -------------------------------------------------------------------
    def my_access(self, req: Request, message: str = "") -> Response:
        s = self.require(req, "patient")
        record = self.records.admin.show(s.user.patient_id)
        query = req.query.get("q", "").strip()
        found = self.accounts.professionals(query) if query else []
        if query and not found and query.isdigit():
            found = [User(query, "professional", None, None, query)]

        def who(pid):
            u = self.accounts.professional(pid)
            return (pid, u.name if u else "", u.organization if u else "")
        return self.page(req, "access.html", record=record, found=found, q=query, message=message,
                         authorised=[who(p) for p in record["authorised"]],
                         blocked=[who(p) for p in record["blocked"]],
                         treating=who(record["treating_physician"]) if record["treating_physician"] else None)

    def _confirm(self, req: Request, action: str, fields: dict[str, str], question: str, explanation: str,
                 button: str, *, title: str, back: str) -> Response:
        """The confirmation step of an action that changes who sees what: the question, a sentence saying what
        it does, the same form again with ``confirmed=1`` and a way back. Without script (the portal's CSP has
        none) a confirmation is a page of its own."""
        return self.page(req, "confirm.html", action=action, fields=fields, question=question.format(title=title),
                         explanation=explanation, button=button, back=back)

    def _confirm_access(self, req: Request, action: str, professional: str, patient_id: str) -> Response:
        user = self.accounts.professional(professional) if professional else None
        name = (user.name if user and user.name else professional) or ""
        if action == "untreating":
            record = self.records.admin.show(patient_id)
            current = record["treating_physician"] or ""
            known = self.accounts.professional(current) if current else None
            name = (known.name if known and known.name else current) or req._("your treating physician")
        texts = {
            "authorise": (req._("Authorise {title}?"), req._("{title} will be able to read the documents of your "
                                                             "record, except those you mask."), req._("Authorise")),
            "block": (req._("Block {title}?"), req._("{title} will no longer be able to read your record, not even "
                                                     "in an emergency. You can unblock them at any time."),
                      req._("Block")),
            "remove": (req._("Withdraw the authorisation of {title}?"),
                       req._("{title} will no longer be able to read your record, except in an emergency if you "
                             "allow emergency access."), req._("Withdraw the authorisation")),
            "unblock": (req._("Unblock {title}?"), req._("{title} is no longer blocked: they can read your record "
                                                         "only if you authorise them, or in an emergency if you allow "
                                                         "emergency access."), req._("Unblock")),
            "treating": (req._("Make {title} your treating physician?"),
                         req._("{title} will be able to read all your documents, including those you mask from "
                               "professionals."), req._("Set as treating physician")),
            "untreating": (req._("Remove {title} as treating physician?"),
                           req._("{title} will no longer be your treating physician and will no longer see the "
                                 "documents you mask."), req._("Remove the treating physician")),
        }
        question, explanation, button = texts[action]
        return self._confirm(req, "/me/access", {"action": action, "professional_id": professional},
                             question, explanation.format(title=name), button, title=name, back="/me/access")

    def change_access(self, req: Request) -> Response:
        s = self.require(req, "patient")
        action = req.form.get("action", "")
        professional = req.form.get("professional_id", "").strip()[:128]
        caller = self.caller(req)
        pid = s.user.patient_id
        admin = self.records.admin
        if action not in ("authorise", "block", "remove", "unblock", "treating", "untreating") \
                or (action != "untreating" and not professional):
            raise HttpError(400, "unknown action")
        if req.form.get("confirmed") != "1":
            return self._confirm_access(req, action, professional, pid)
        if action == "unblock":
            action = "remove"
        if action in ("authorise", "block", "remove") and professional:
            admin.set_professional(caller, pid, professional,
                                   {"authorise": AUTHORISED, "block": BLOCKED, "remove": None}[action])
        elif action == "treating" and professional:
            admin.set_treating_physician(caller, pid, professional)
        elif action == "untreating":
            admin.set_treating_physician(caller, pid, None)
        else:
            raise HttpError(400, "unknown action")
        return redirect(req.url("/me/access") + "?saved=1")

    def change_emergency(self, req: Request) -> Response:
        s = self.require(req, "patient")
        mode = req.form.get("mode", "")
        if mode not in ("bris_de_glace", "centre_15"):
            raise HttpError(400, "unknown mode")
        allowed = req.form.get("allowed") == "1"
        if req.form.get("confirmed") != "1":
            what = {("bris_de_glace", True): req._("In an emergency, a professional you have not authorised will be "
                                                   "able to read your record. Every such access is recorded and shown "
                                                   "in your access history."),
                    ("bris_de_glace", False): req._("In an emergency, a professional you have not authorised will not "
                                                    "be able to read your record, even if you cannot consent."),
                    ("centre_15", True): req._("The emergency call centre (centre 15) will be able to read your "
                                               "record when it handles a call about you. Every such access is "
                                               "recorded and shown in your access history."),
                    ("centre_15", False): req._("The emergency call centre (centre 15) will not be able to read your "
                                                "record.")}[(mode, allowed)]
            label = req._("Break-glass access by a professional in an emergency") if mode == "bris_de_glace" \
                else req._("Access by the emergency call centre (centre 15)")
            return self._confirm(req, "/me/emergency", {"mode": mode, "allowed": "1" if allowed else "0"},
                                 (req._("Allow: {title}?") if allowed else req._("Oppose: {title}?")), what,
                                 req._("Allow") if allowed else req._("Oppose"), title=label, back="/me/access")
        self.records.admin.set_emergency(self.caller(req), s.user.patient_id, mode, allowed)
        return redirect(req.url("/me/access") + "?saved=1")

    def my_history(self, req: Request) -> Response:
        """The patient's access history (issue 23): a page of :func:`audit.history.history_page` said in words
        (:mod:`portal.history`); filters by professional, emergency only and period (days of the portal's zone),
        her own actions and technical steps shown only on request; a cursor pages back to the first access."""
        s = self.require(req, "patient")
        q = req.query
        try:
            before = int(q["before"]) if q.get("before") else None
            since = self.clock.day_start(q["from"]) if q.get("from") else None
            until = self.clock.day_end(q["to"]) if q.get("to") else None
        except ValueError:
            raise HttpError(400, req._("Invalid date or page.")) from None
        professional = q.get("pro", "").strip()[:128] or None
        page = history_page(self.services.database, s.user.patient_id, before=before, limit=PAGE,
                            professional=professional, emergency_only=q.get("urgent") == "1", since=since,
                            until=until, everything=q.get("all") == "1")
        labels = self.records.history_labels(self.caller(req), s.user.patient_id, page.entries)
        self.records.audit_log_used(self.caller(req), s.user.patient_id,
                                    "portal: the patient read their access history")
        keep = [(k, q[k]) for k in ("pro", "urgent", "from", "to", "all") if q.get(k)]
        return self.page(req, "history.html", entries=history_rows(page.entries, labels, self.clock, req._),
                         older=page.older, filters=dict(keep), keep=keep, first=before is None,
                         qs=lambda extra: "?" + urlencode(keep + list(extra.items())))

    # -- professional ------------------------------------------------------------------------------
    def pro_home(self, req: Request) -> Response:
        self.require(req, "professional")
        return self.page(req, "pro.html")

    def _resolve_patient(self, req: Request, typed: str) -> str:
        """The patient id of what a professional typed (:func:`portal.patients.parse_ins`): a full CX as given,
        a bare INS under the first INS authority with a record (else the INS-NIR)."""
        number, cx = parse_ins(typed, req._)
        if cx is not None:
            return cx
        assert number is not None
        options = candidates(number)
        with self.services.database.read() as conn:
            for pid in options:
                if self.records.policy.store.record(pid, conn).state is not None:
                    return pid
        return options[0]

    def _refusal(self, req: Request, patient_id: str, status: int = 403) -> Response:
        """The refused page, saying which rule refused (access.policy.decide: no record, record closed, blocked
        by the patient, patient opposed to emergency access, not authorised), and offering break-glass only
        where it can succeed: an open record, a professional the patient did not block, break-glass allowed."""
        s = req.session
        assert s is not None
        decision = self.records.policy.decide(make_caller(s.user, req.environ), patient_id, READ)
        record = decision.record
        can_break_glass = False
        if decision.refusal == NO_RECORD:
            rule = req._("This patient has no DMP record: there is nothing to consult.")
        elif decision.refusal == CLOSED:
            rule = req._("This patient's record is closed: it can no longer be consulted.")
        elif record is not None and s.user.professional_id in record.blocked:
            rule = req._("The patient has blocked your access to her record. Emergency access is not possible "
                         "either.")
        elif record is not None and not record.break_glass_allowed:
            rule = req._("You are not authorised by the patient, and the patient has opposed emergency access "
                         "(break-glass) to her record.")
        else:
            rule = req._("You are not among the professionals the patient authorised.")
            can_break_glass = True
        return self.page(req, "pro_refused.html", status, ins=patient_id, rule=rule,
                         no_emergency=not can_break_glass)

    def pro_patient(self, req: Request, message: str = "", error: str = "") -> Response:
        s = self.require(req, "professional")
        typed = (req.query.get("ins") or req.form.get("ins") or "").strip()[:256]
        if not typed:
            return redirect(req.url("/pro/"))
        try:
            ins = self._resolve_patient(req, typed)
        except BadIdentifier as exc:
            return self.page(req, "pro.html", 400, error=str(exc), typed=typed)
        try:
            listing = self._list(req, ins)
        except Refused:
            return self._refusal(req, ins)
        emergency = (s.data.get("emergency") or {}).get(patient_key(ins))
        return self.page(req, "documents.html", patient_id=ins, base="/pro/patient", ins=ins, emergency=emergency,
                         identity=identity_of(listing["docs"]), authority=INS_AUTHORITIES.get(
                             (ins.split("^")[3].split("&") + ["", ""])[1], ""),
                         message=message or (req._("Document added.") if req.query.get("added") else ""),
                         error=error, types_form=TYPES, **listing)

    def pro_emergency(self, req: Request) -> Response:
        s = self.require(req, "professional")
        ins = req.form.get("ins", "").strip()
        reason = " ".join(req.form.get("reason", "").split())[:500]
        if not ins or not reason or req.form.get("confirm") != "1":
            return self.page(req, "pro_refused.html", 400, ins=ins, error=req._("A reason is required."))
        caller = make_caller(s.user, req.environ, access_mode="bris_de_glace", reason=reason)
        decision = self.records.policy.decide(caller, ins, READ)
        if not decision.allowed:
            self.records.alert(caller, f"portal: emergency access refused to {ins}: {decision.reason}", "emergency",
                               ins)
            return self._refusal(req, ins)
        self.records.alert(caller, f"portal: emergency access (bris_de_glace) to the record of {ins} by "
                                   f"{s.user.professional_id}, reason: {reason}", "emergency", ins, success=True)
        s.data.setdefault("emergency", {})[patient_key(ins)] = {"reason": reason, "at": time.time()}
        self.accounts.save(s)
        return redirect(req.url("/pro/patient") + "?ins=" + quote(ins, safe=""))

    def pro_upload(self, req: Request) -> Response:
        s = self.require(req, "professional")
        ins = req.form.get("ins", "").strip()
        upload = req.files.get("file")
        if not ins or upload is None or not upload.content:
            raise HttpError(400, "a file is required")
        content = upload.content
        is_pdf = content.startswith(b"%PDF-")
        user = s.user
        conf = req.form.get("confidentiality", "N")
        try:
            if is_pdf:
                type_code = req.form.get("type_code", "11490-0")
                names = dict(TYPES)
                if type_code not in names:
                    raise InputError("unknown type")
                o = Overrides(patient=ins, title=(req.form.get("title") or names[type_code])[:200],
                              type_code=f"{type_code}|2.16.840.1.113883.6.1|{names[type_code]}",
                              creation_time=time.strftime("%Y%m%d%H%M%S", time.gmtime()),
                              facility_type_code="SA01|1.2.250.1.71.4.2.4|Etablissement public de santé",
                              practice_setting_code="ETABLISSEMENT|1.2.250.1.213.1.1.4.9|Etablissement de santé",
                              language="fr-FR", mime_type="application/pdf",
                              authors=[f"{user.professional_id}^{user.name}^^^^^^^&1.2.250.1.71.4.2.1&ISO"],
                              institutions=[user.organization] if user.organization else [])
                document = load_document(Path("upload.pdf"), o, content)
            else:
                document = load_document(Path("upload.xml"), Overrides(mime_type="text/xml"), content)
                if document.entry.patient_id != ins:
                    raise InputError(req._("The document is for another patient."))
            if conf in ("MASQUE_PS", "INVISIBLE_PATIENT"):
                document.entry.confidentiality_codes.append(Code(conf, "1.2.250.1.213.1.1.4.13", conf))
            self.records.provide(self.caller(req, ins), [document])
        except (InputError, MissingMetadata) as exc:
            req.query["ins"] = ins
            return self.pro_patient(req, error=f"{req._('The document was refused')}: {exc}")
        except (Refused, SubmissionFailed) as exc:
            req.query["ins"] = ins
            return self.pro_patient(req, error=f"{req._('The document was refused')}: {exc}")
        return redirect(req.url("/pro/patient") + "?ins=" + quote(ins, safe="") + "&added=1")

    # -- auditor -----------------------------------------------------------------------------------
    def _trail_params(self, req: Request, count: int) -> list[tuple[str, str]]:
        """The desk's form as an ITI-81 search (FHIR syntax): the portal reads the trail through
        the same transaction as ITI-81, which decides and audits every read."""
        params = []
        if req.query.get("from"):
            params.append(("date", "ge" + req.query["from"].strip()))
        if req.query.get("to"):
            params.append(("date", "le" + req.query["to"].strip()))
        for key, name in (("patient", "patient.identifier"), ("user", "agent"), ("event", "type")):
            value = req.query.get(key, "").strip()
            if value:
                params.append((name, value))
        if req.query.get("outcome", "") in ("0", "4", "8", "12"):
            params.append(("outcome", req.query["outcome"]))
        return params + [("_count", str(count))]

    def _audit_query(self, req: Request, limit: int, what: str):
        try:
            page = iti81.search(self.services, self.caller(req), already_authenticated,
                                self._trail_params(req, limit), require_date=False, max_count=limit, what=what)
        except BadRequest:
            raise HttpError(400, "bad search") from None
        except TrailRefused:
            raise HttpError(403) from None
        return page.rows

    def audit_search(self, req: Request) -> Response:
        self.require(req, "auditor")
        searched = any(req.query.get(k) for k in ("from", "to", "patient", "user", "event", "outcome"))
        rows = self._audit_query(req, 200, "search (portal)") if searched else []
        return self.page(req, "audit.html", rows=[self._summary(r) for r in rows], searched=searched,
                         export=req.url("/audit/export.csv") + "?" + req.environ.get("QUERY_STRING", ""))

    def _summary(self, row) -> dict:
        users, patients, text = [], [], ""
        try:
            root, _ = parse_audit_xml(syslog.parse(bytes(row.raw)).msg)
        except Exception:  # noqa: BLE001 - a broken record is still listed
            root = None
        if root is not None:
            for ap in root.iterfind("ActiveParticipant"):
                if ap.get("UserIsRequestor") in ("true", "1"):
                    users.append(ap.get("UserName") or ap.get("UserID"))
            for po in root.iterfind("ParticipantObjectIdentification"):
                if po.get("ParticipantObjectTypeCodeRole") == "1":
                    patients.append(po.get("ParticipantObjectID"))
            et = root.find("EventIdentification/EventTypeCode")
            ev = root.find("EventIdentification/EventID")
            text = " / ".join(filter(None, [ev.get("originalText") if ev is not None else "",
                                            et.get("originalText") if et is not None else ""]))
        when = self.clock.instant(row.event_ts, seconds=True) if row.event_ts else ""
        return {"seq": row.seq, "when": when, "event": text or row.event_id, "outcome": row.outcome,
                "users": ", ".join(u for u in users if u), "patients": ", ".join(p for p in patients if p),
                "emergency": any(m in (row.purpose or "") for m in ("bris_de_glace", "centre_15"))
                or row.event_type == "110127"}

    def audit_record(self, req: Request, seq: int) -> Response:
        self.require(req, "auditor")
        from lxml import etree
        try:
            row = iti81.read(self.services, self.caller(req), already_authenticated, seq, "record view (portal)")
        except TrailRefused:
            raise HttpError(403) from None
        if row is None:
            raise HttpError(404)
        try:
            msg = syslog.parse(bytes(row.raw)).msg
            raw = etree.tostring(etree.fromstring(msg, etree.XMLParser(resolve_entities=False, no_network=True)),
                                 pretty_print=True, encoding="unicode")
        except Exception:  # noqa: BLE001
            raw = bytes(row.raw).decode("utf-8", "replace")
        return self.page(req, "audit_record.html", row=self._summary(row), fhir=audit_event(row), raw=raw)

    def audit_export(self, req: Request) -> Response:
        self.require(req, "auditor")
        rows = self._audit_query(req, 10000, "CSV export (portal)")
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["seq", "time", "event", "outcome", "users", "patients", "emergency"])
        for r in rows:
            d = self._summary(r)
            w.writerow([d["seq"], self.clock.iso(r.event_ts), d["event"], d["outcome"], d["users"], d["patients"],
                        "yes" if d["emergency"] else "no"])
        return Response(out.getvalue().encode("utf-8"), 200, "text/csv; charset=utf-8",
                        [("Content-Disposition", 'attachment; filename="audit.csv"')])

    def audit_verify(self, req: Request) -> Response:
        self.require(req, "auditor")
        report = store.verify(self.services.database)
        return self.page(req, "audit_verify.html", report=report)


def portal_app(services) -> Portal:
    return Portal(services)
