"""A small request / response layer for the portal's plain WSGI app (no framework)."""
from __future__ import annotations

import io
import unicodedata
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

if TYPE_CHECKING:
    from collections.abc import Callable

    from portal.accounts import Session

MAX_FORM = 64 * 1024
MAX_UPLOAD = 20 * 1024 * 1024

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; font-src 'self'; form-action 'self'; "
       "frame-src 'self'; frame-ancestors 'self'; base-uri 'none'; object-src 'none'; script-src 'none'")
"""No script at all, nothing loaded from elsewhere: a CDA's <script> or external image cannot run or load."""

PDF_PAGE_CSP = CSP.replace("object-src 'none'", "object-src 'self'")
"""A document page showing a PDF embeds it with <object> from this origin (a headless or plugin-less browser
shows an iframe'd PDF as an empty frame, an <object> shows its fallback: a link to open or download it)."""


UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
"""Unicode categories that are no part of a name: controls (NUL, CR, LF, ESC, C1), format characters (bidi
overrides that reorder what a reader sees, zero-width characters), surrogates, private use, unassigned, and the
line and paragraph separators."""


def unprintable(text: str) -> bool:
    """Whether ``text`` holds a character of :data:`UNPRINTABLE`: input validation by allow-list of what a name
    may contain (OWASP Input Validation Cheat Sheet)."""
    return any(unicodedata.category(c) in UNPRINTABLE for c in text)


def printable(text: str) -> str:
    """``text`` with every :data:`UNPRINTABLE` character written as a Python escape (``\\n``, ``\\x00``,
    ``\\u202e``), so that a value an attacker chose cannot start a forged line in a log or an audit record,
    nor hide behind a bidi override (CWE-117; OWASP Logging Cheat Sheet, "event data sanitization")."""
    return "".join(c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) in UNPRINTABLE else c
                   for c in text)


class HttpError(Exception):
    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class UploadedFile:
    filename: str
    content: bytes


class Request:
    # Set by the portal for each request (portal.app.Portal.__call__):
    lang: str
    _: Callable[[str], str]
    """The translator of :attr:`lang`."""
    session: Session | None

    def __init__(self, environ: dict) -> None:
        self.environ = environ
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        self.path = environ.get("PATH_INFO") or "/"
        self.script = environ.get("SCRIPT_NAME", "")
        self.query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        cookie = SimpleCookie()
        try:
            cookie.load(environ.get("HTTP_COOKIE", ""))
        except Exception:  # noqa: BLE001 - a bad cookie header is no cookie
            pass
        self.cookies = {k: v.value for k, v in cookie.items()}
        self._form: dict | None = None
        self.files: dict[str, UploadedFile] = {}

    @property
    def secure(self) -> bool:
        return self.environ.get("wsgi.url_scheme") == "https"

    @property
    def remote_addr(self) -> str:
        return self.environ.get("REMOTE_ADDR") or "?"

    @property
    def cross_site(self) -> bool:
        """The browser says the request comes from another origin (``Origin``, RFC 6454 section 7). An absent
        ``Origin`` or ``null`` (privacy-sensitive contexts) proves nothing either way: the CSRF token decides."""
        origin = self.environ.get("HTTP_ORIGIN")
        return bool(origin and origin != "null" and not self.absolute("/").startswith(origin + "/"))

    def url(self, path: str) -> str:
        return self.script + path

    def absolute(self, path: str) -> str:
        scheme = self.environ.get("wsgi.url_scheme", "http")
        host = self.environ.get("HTTP_HOST") or f"{self.environ.get('SERVER_NAME')}:{self.environ.get('SERVER_PORT')}"
        return f"{scheme}://{host}{self.script}{path}"

    @property
    def form(self) -> dict:
        if self._form is None:
            self._form = {}
            ctype = self.environ.get("CONTENT_TYPE", "")
            try:
                length = int(self.environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                raise HttpError(400, "bad Content-Length") from None
            if ctype.startswith("multipart/form-data"):
                if length > MAX_UPLOAD:
                    raise HttpError(413, "file too large")
                self._parse_multipart(ctype, length)
            else:
                if length > MAX_FORM:
                    raise HttpError(413, "form too large")
                raw = self.environ["wsgi.input"].read(length) if length else b""
                self._form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        return self._form

    def _parse_multipart(self, ctype: str, length: int) -> None:
        from python_multipart import parse_form
        body = io.BytesIO(self.environ["wsgi.input"].read(length))
        form = self._form
        assert form is not None, "form() starts the form before it parses the body"

        def on_field(f) -> None:
            name = (f.field_name or b"").decode("utf-8", "replace")
            form[name] = (f.value or b"").decode("utf-8", "replace")

        def on_file(f) -> None:
            name = (f.field_name or b"").decode("utf-8", "replace")
            f.file_object.seek(0)
            self.files[name] = UploadedFile((f.file_name or b"").decode("utf-8", "replace"), f.file_object.read())

        parse_form({"Content-Type": ctype.encode(), "Content-Length": str(length).encode()}, body, on_field, on_file)


@dataclass
class Response:
    body: bytes = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    csp: str | None = CSP

    def set_cookie(self, name: str, value: str, *, path: str, secure: bool, max_age: int | None = None,
                   http_only: bool = True, same_site: str = "Lax") -> None:
        parts = [f"{name}={value}", f"Path={path}", f"SameSite={same_site}"]
        if http_only:
            parts.append("HttpOnly")
        if secure:
            parts.append("Secure")
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        self.headers.append(("Set-Cookie", "; ".join(parts)))

    def __call__(self, start_response):
        headers = [("Content-Type", self.content_type), ("Content-Length", str(len(self.body))),
                   ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
                   ("Cache-Control", "no-store"), ("X-Frame-Options", "SAMEORIGIN"),
                   ("Cross-Origin-Opener-Policy", "same-origin"), ("Cross-Origin-Resource-Policy", "same-origin"),
                   ("Permissions-Policy", "camera=(), microphone=(), geolocation=()")]
        if self.csp:
            headers.append(("Content-Security-Policy", self.csp))
        headers += self.headers
        start_response(f"{self.status} {HTTPStatus(self.status).phrase}", headers)
        return [self.body]


def redirect(location: str, status: int = 303) -> Response:
    return Response(b"", status, "text/plain", [("Location", location)])
