"""Fixtures written by us for the portal tests: CDA documents (one hostile), a tiny PDF, a fake OpenID
Connect provider on loopback, an HTTP session that logs in like a browser, and an in-process client of
the portal's WSGI app (cookies kept per client address, like one browser on one host)."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

RPPS = "1.2.250.1.71.4.2.1"


def split_cx(pid: str) -> tuple[str, str]:
    ext, rest = pid.split("^^^&", 1)
    return ext, rest.split("&", 1)[0]


def cda(patient: str, author_id: str, title: str, *, narrative: str = "<paragraph>Bilan normal.</paragraph>",
        effective: str = "20240115103000+0100", pdf: bytes | None = None, doc_id: str | None = None) -> bytes:
    ext, root = split_cx(patient)
    doc_id = doc_id or f"2.25.{int.from_bytes(secrets.token_bytes(12), 'big')}"
    if pdf is not None:
        body = (f'<component><nonXMLBody><text mediaType="application/pdf" representation="B64">'
                f'{base64.b64encode(pdf).decode()}</text></nonXMLBody></component>')
    else:
        body = (f'<component><structuredBody><component><section><code code="29545-1" codeSystem="2.16.840.1.113883.6.1"/>'
                f'<title>Examen clinique</title><text>{narrative}</text></section></component>'
                f'<component><section><title>Conclusion</title><text><list><item>Pas de traitement</item>'
                f'<item><content styleCode="Bold">Revoir dans 6 mois</content></item></list></text></section></component>'
                f'</structuredBody></component>')
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<realmCode code="FR"/><typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
<templateId root="1.2.250.1.213.1.1.1.1"/>
<id root="{doc_id}"/>
<code code="11490-0" codeSystem="2.16.840.1.113883.6.1" displayName="Lettre de liaison à la sortie"/>
<title>{title}</title>
<effectiveTime value="{effective}"/>
<confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25" displayName="Normal"/>
<languageCode code="fr-FR"/>
<recordTarget><patientRole><id root="{root}" extension="{ext}"/>
<patient><name><given>Camille</given><family>Martin</family></name>
<administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/><birthTime value="19800212"/></patient>
</patientRole></recordTarget>
<author><time value="{effective}"/><assignedAuthor><id root="{RPPS}" extension="{author_id}"/>
<code code="10" codeSystem="1.2.250.1.71.1.2.7" displayName="Médecin"/>
<assignedPerson><name><prefix>Dr</prefix><given>Jean</given><family>Dupont</family></name></assignedPerson>
<representedOrganization><id root="1.2.250.1.71.4.2.2" extension="1750000000"/><name>Hôpital Saint-Louis</name>
<standardIndustryClassCode code="ETABLISSEMENT" codeSystem="1.2.250.1.213.1.1.4.9" displayName="Etablissement de santé"/>
</representedOrganization></assignedAuthor></author>
<custodian><assignedCustodian><representedCustodianOrganization><id root="1.2.250.1.213.4.1"/>
<name>DMP</name></representedCustodianOrganization></assignedCustodian></custodian>
<componentOf><encompassingEncounter><effectiveTime><low value="20240110"/><high value="20240115"/></effectiveTime>
<location><healthCareFacility><code code="SA01" codeSystem="1.2.250.1.71.4.2.4" displayName="Etablissement public de santé"/>
</healthCareFacility></location></encompassingEncounter></componentOf>
{body}
</ClinicalDocument>""".encode()


HOSTILE_NARRATIVE = (
    '<paragraph>Texte lisible du compte rendu.</paragraph>'
    '<script xmlns="http://www.w3.org/1999/xhtml">window.__pwned = 1; document.title = "pwned";</script>'
    '<paragraph><content>avant</content><renderMultiMedia referencedObject="img1"/></paragraph>'
    '<img xmlns="http://www.w3.org/1999/xhtml" src="http://evil.example.invalid/track.png" onerror="window.__pwned=2"/>'
    '<linkHtml href="javascript:window.__pwned=3">lien piégé</linkHtml>'
    '<table><tbody><tr><td onclick="window.__pwned=4" style="background:url(http://evil.example.invalid/bg.png)">'
    'cellule</td></tr></tbody></table>')


def tiny_pdf(text: str = "Compte rendu PDF") -> bytes:
    """A minimal valid one-page PDF (hand-written objects, computed xref offsets)."""
    stream = f"BT /F1 18 Tf 40 760 Td ({text}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
LOGIN_CSRF_FIELD = re.compile(r'action="[^"]*/login">\s*<input type="hidden" name="csrf" value="([^"]+)"')
"""The login form's token (a logged-in page also has the logout form's, which is the session's)."""


def login_token(http: requests.Session, base: str) -> str:
    """The login form's CSRF token, as a browser gets it: GET the form (which sets its cookie) and read it."""
    m = LOGIN_CSRF_FIELD.search(http.get(base + "/login", timeout=30).text)
    assert m, "no CSRF token in the login form"
    return m.group(1)


class HttpPortal:
    """A logged-in HTTP session on the portal (set-up steps that need no browser)."""

    def __init__(self, base: str, login: str, password: str) -> None:
        self.base = base + "/portal"
        self.http = requests.Session()
        r = self.http.post(self.base + "/login", data={"login": login, "password": password,
                                                       "csrf": login_token(self.http, self.base)}, timeout=30)
        assert r.status_code == 200 and "dmp_portal" in self.http.cookies, r.text[:500]

    def csrf(self, path: str) -> str:
        html = self.http.get(self.base + path, timeout=30).text
        m = CSRF_FIELD.search(html)
        assert m, html[:500]
        return m.group(1)

    def upload(self, ins: str, filename: str, content: bytes, **fields) -> requests.Response:
        token = self.csrf("/pro/patient?" + urlencode({"ins": ins}))
        return self.http.post(self.base + "/pro/upload", data={"csrf": token, "ins": ins, **fields},
                              files={"file": (filename, content)}, timeout=60)


# ----------------------------------------------------------------------------- the portal in-process

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


@dataclass
class WsgiResponse:
    status: int
    headers: list[tuple[str, str]]
    text: str

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def cookies(self) -> list[str]:
        return [v for k, v in self.headers if k.lower() == "set-cookie"]


class WsgiBrowser:
    """One browser on one host (``address``) talking to the portal mounted at ``/portal``, in-process: it keeps
    the cookies the portal sets (honouring Path and Max-Age=0) and sends them back, as a browser would."""

    def __init__(self, app: WSGIApp, address: str = "192.0.2.10", scheme: str = "http") -> None:
        self.app, self.address, self.scheme = app, address, scheme
        self.jar: dict[str, tuple[str, str]] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> WsgiResponse:
        path, _, query = path.partition("?")
        body = urlencode(form or {}).encode()
        full = "/portal" + path
        cookie = "; ".join(f"{k}={v}" for k, (v, where) in self.jar.items() if full.startswith(where))
        environ = {"REQUEST_METHOD": method, "SCRIPT_NAME": "/portal", "PATH_INFO": path, "QUERY_STRING": query,
                   "CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": str(len(body)),
                   "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": self.scheme, "HTTP_HOST": "portal.test",
                   "SERVER_NAME": "portal.test", "SERVER_PORT": "443" if self.scheme == "https" else "80",
                   "REMOTE_ADDR": self.address, "HTTP_COOKIE": cookie}
        environ.update({"HTTP_" + k.upper().replace("-", "_"): v for k, v in (headers or {}).items()})
        started: list = []
        chunks = self.app(environ, lambda status, hdrs: started.append((status, hdrs)))
        text = b"".join(chunks).decode("utf-8")
        status, hdrs = started[0]
        response = WsgiResponse(int(status.split()[0]), hdrs, text)
        for header in response.cookies():
            self._keep(header)
        return response

    def _keep(self, header: str) -> None:
        jar = SimpleCookie()
        jar.load(header)
        for name, morsel in jar.items():
            if morsel["max-age"] == "0":
                self.jar.pop(name, None)
            else:
                self.jar[name] = (morsel.value, morsel["path"] or "/")

    def get(self, path: str) -> WsgiResponse:
        return self.request("GET", path)

    def post(self, path: str, form: dict[str, str], headers: dict[str, str] | None = None) -> WsgiResponse:
        return self.request("POST", path, form, headers)

    def login_token(self) -> str:
        m = LOGIN_CSRF_FIELD.search(self.get("/login").text)
        assert m, "no CSRF token in the login form"
        return m.group(1)

    def login(self, login: str, password: str) -> WsgiResponse:
        return self.post("/login", {"login": login, "password": password, "csrf": self.login_token()})


# ----------------------------------------------------------------------------- a fake OpenID provider

class FakeOidc:
    """An OpenID Connect provider on loopback: discovery, authorize (auto-approves ``login``), token
    (checks client secret, code, redirect_uri and PKCE), ID tokens signed HS256 with the client secret."""

    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.login = None
        self.codes: dict[str, dict] = {}
        self.token_requests = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, status, doc):
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                url = urlsplit(self.path)
                if url.path == "/.well-known/openid-configuration":
                    return self._json(200, {"issuer": provider.issuer,
                                            "authorization_endpoint": provider.issuer + "/authorize",
                                            "token_endpoint": provider.issuer + "/token"})
                if url.path == "/authorize":
                    q = {k: v[0] for k, v in parse_qs(url.query).items()}
                    code = secrets.token_urlsafe(16)
                    provider.codes[code] = q
                    self.send_response(302)
                    self.send_header("Location", q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]}))
                    self.end_headers()
                    return
                self._json(404, {})

            def do_POST(self):
                provider.token_requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                auth = self.headers.get("Authorization", "")
                expected = "Basic " + base64.b64encode(f"{provider.client_id}:{provider.client_secret}".encode()).decode()
                q = provider.codes.pop(form.get("code", ""), None)
                challenge = base64.urlsafe_b64encode(hashlib.sha256(form.get("code_verifier", "").encode()).digest()) \
                    .rstrip(b"=").decode()
                if auth != expected or q is None or form.get("redirect_uri") != q["redirect_uri"] \
                        or challenge != q["code_challenge"]:
                    return self._json(400, {"error": "invalid_grant"})
                self._json(200, {"access_token": "x", "token_type": "Bearer",
                                 "id_token": provider.id_token(q["nonce"])})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def id_token(self, nonce: str) -> str:
        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
        now = int(time.time())
        head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = b64(json.dumps({"iss": self.issuer, "aud": self.client_id, "sub": self.login, "nonce": nonce,
                               "iat": now, "exp": now + 300}).encode())
        import hmac
        sig = b64(hmac.new(self.client_secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
        return f"{head}.{body}.{sig}"

    def close(self) -> None:
        self.server.shutdown()
