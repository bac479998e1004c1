"""JSON HTTP API of the DMP policy (mounted at ``/dmp/api``), for back ends and operators' scripts.

Who may call: a record's policy says who may read a patient's documents, so every request must
carry ``Authorization: Bearer <token>`` with a token of ``access_api_tokens`` (principal name ->
token) or ``access_api_token`` (the principal ``dmp-api``). There is no anonymous access, not even
from loopback: any local account or server-side request forgery on the host would otherwise act on
every record. With no token configured the API answers 403 to everyone, saying how to configure one.
Tokens are compared on their SHA-256 digests with :func:`hmac.compare_digest`, against every
configured token, so the time taken tells neither how much of a token matched nor whose it was.
A refused request (no token configured, no or another scheme, a wrong token) is audited as a
Security Alert of type 110122 (user authentication), outcome failure, naming the caller's address;
the token sent is never recorded.

Who acted: the principal whose token was sent, audited as the user of every change and read. The
``X-DMP-Actor`` header, which named the actor before, is ignored: a header is the caller's claim,
and the token's owner answers for what it does with it.

Every read is audited (DICOM 110110 "Patient Record", action R, the principal and the patient; see
:mod:`transactions.policy_admin`); a change is audited as a change, and its answer is the record as
it now is. A change that would change nothing (``PUT .../emergency {}``) is refused rather than
answered as an unaudited read.

Patient ids and document uniqueIds are URL-encoded path segments.

    GET    /records/{pid}                              the record's policy and emergency accesses
    POST   /records                 {"patient_id"}     create a record (consent)
    POST   /records/{pid}/close | /reopen
    PUT    /records/{pid}/authorised/{professional}    authorise
    PUT    /records/{pid}/blocked/{professional}       block
    DELETE /records/{pid}/professionals/{professional} neither authorised nor blocked
    PUT    /records/{pid}/treating-physician {"professional_id": "..." | null}
    PUT    /records/{pid}/emergency {"bris_de_glace": bool, "centre_15": bool}  (at least one)
    GET    /records/{pid}/emergency-accesses
    PUT    /documents/{uniqueId}/mask {"masked": true | false | null}
    PUT    /documents/{uniqueId}/disclose {"disclosed": true | false}
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import NoReturn
from urllib.parse import unquote

from access.store import AUTHORISED, BLOCKED
from transactions.alerts import security_alert
from transactions.policy_admin import PolicyAdmin, PolicyError
from transactions.services import Services
from xds.context import Caller, caller_from_environ

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
LEGACY_PRINCIPAL = "dmp-api"
"""The principal of ``access_api_token``, the one token of the configurations before names."""
REALM = 'Bearer realm="dmp-api"'
_UNPRINTABLE = re.compile(r"[\x00-\x20\x7f]")

NOT_CONFIGURED = (
    "the DMP API is disabled: no access token is configured. Give each client its own token in "
    "access_api_tokens (a table of principal name -> token: [xds.access_api_tokens] in the configuration "
    "file, or XDS_ACCESS_API_TOKENS='{\"ops\": \"<token>\"}' in the environment), or set access_api_token "
    "(XDS_ACCESS_API_TOKEN) for the principal dmp-api; a token can be made with "
    "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'. Restart xds serve, then send "
    "Authorization: Bearer <token>")


class Unauthenticated(PolicyError):
    """A request without a valid credential; ``challenge`` is its WWW-Authenticate (RFC 6750 3)."""

    def __init__(self, message: str, status: int, challenge: str | None) -> None:
        super().__init__(message, status)
        self.challenge = challenge


def principals(token: str, named: Mapping[str, str], setting: str = "access_api_tokens") -> list[tuple[str, bytes]]:
    """(principal, SHA-256 of its token) for ``access_api_token`` (as ``dmp-api``) and every named
    token. Raises ValueError on what would make the audited principal ambiguous or a token
    unusable, so that the server does not start on it: one token for two principals, ``dmp-api``
    named with another token than ``access_api_token``, a blank name or token, whitespace or
    control characters in either (a header cannot carry them faithfully)."""
    tokens = dict(named)
    if token:
        if tokens.get(LEGACY_PRINCIPAL, token) != token:
            raise ValueError(f"{setting} names {LEGACY_PRINCIPAL} with another token than access_api_token")
        tokens[LEGACY_PRINCIPAL] = token
    out: list[tuple[str, bytes]] = []
    owners: dict[bytes, str] = {}
    for name, value in tokens.items():
        if not name or _UNPRINTABLE.search(name):
            raise ValueError(f"{setting}: principal name {name!r} is blank or has whitespace or "
                             "control characters")
        if not value or _UNPRINTABLE.search(value):
            raise ValueError(f"{setting}: the token of {name} is blank or has whitespace or "
                             "control characters")
        digest = hashlib.sha256(value.encode()).digest()
        if digest in owners:
            raise ValueError(f"{setting}: {owners[digest]} and {name} have the same token")
        owners[digest] = name
        out.append((name, digest))
    return out


def principal_of(credential: str, known: list[tuple[str, bytes]]) -> str | None:
    """The principal whose token is ``credential``: every configured token is compared, on
    fixed-length digests, whatever matched before (no early exit)."""
    digest = hashlib.sha256(credential.encode("latin-1")).digest()  # WSGI: header bytes as latin-1
    found = None
    for name, expected in known:
        if hmac.compare_digest(digest, expected):
            found = name
    return found


class PolicyApi:
    """The WSGI app of ``/dmp/api``.

    ``token`` is ``access_api_token`` (principal ``dmp-api``); the named tokens are read from
    ``services.settings.access_api_tokens``. Refusals are audited through ``services.auditor``,
    changes and reads through the ``admin``'s auditor.
    """

    def __init__(self, admin: PolicyAdmin, token: str, services: Services) -> None:
        self.admin = admin
        self.services = services
        self.principals = principals(token, services.settings.access_api_tokens)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        extra: list[tuple[str, str]] = []
        try:
            actor = self._authenticate(environ)
            status, payload = self._route(environ, actor)
        except Unauthenticated as exc:
            status, payload = exc.status, {"error": str(exc)}
            if exc.challenge:
                extra.append(("WWW-Authenticate", exc.challenge))
        except PolicyError as exc:
            status, payload = exc.status, {"error": str(exc)}
        except Exception:  # noqa: BLE001 - never leak internals
            log.exception("DMP API failure")
            status, payload = 500, {"error": "internal error"}
        body = json.dumps(payload, ensure_ascii=False).encode()
        phrases = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
                   404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}
        start_response(f"{status} {phrases.get(status, 'Error')}",
                       [("Content-Type", "application/json; charset=utf-8"), ("Content-Length", str(len(body))),
                        ("Cache-Control", "no-store"), *extra])
        return [body]

    def _principal(self, credential: str) -> str | None:
        return principal_of(credential, self.principals)

    def _authenticate(self, environ: dict) -> Caller:
        """The caller, as the principal of its bearer token; else an audited refusal."""
        caller = caller_from_environ(environ)
        if not self.principals:
            self._refuse(environ, caller, "no access token is configured", NOT_CONFIGURED, 403, None)
        scheme, _, credential = environ.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            self._refuse(environ, caller, "no bearer token",
                         "a bearer token is required: Authorization: Bearer <token>", 401, REALM)
        principal = self._principal(credential)
        if principal is None:
            self._refuse(environ, caller, "wrong bearer token", "the bearer token is not valid", 401,
                         REALM + ', error="invalid_token"')
        caller.user_id = principal
        caller.kind = "node"
        caller.authenticated = True
        return caller

    def _refuse(self, environ: dict, caller: Caller, reason: str, message: str, status: int,
                challenge: str | None) -> NoReturn:
        """Audit the refusal (naming the address, never the token sent) and raise it."""
        request = f"{environ.get('REQUEST_METHOD', 'GET')} {environ.get('PATH_INFO', '/')}"[:200]
        security_alert(self.services.auditor, caller,
                       f"DMP API: {request} from {caller.remote_addr or 'an unknown address'} refused: {reason}",
                       "user")
        raise Unauthenticated(message, status, challenge)

    @staticmethod
    def _json(environ: dict) -> dict:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise PolicyError("bad Content-Length") from None
        if length > MAX_BODY:
            raise PolicyError("request body too large")
        raw = environ["wsgi.input"].read(length) if length else b""
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            raise PolicyError("the body is not JSON") from None
        if not isinstance(data, dict):
            raise PolicyError("the body must be a JSON object")
        return data

    def _route(self, environ: dict, actor: Caller) -> tuple[int, dict]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        path = environ.get("PATH_INFO") or "/"
        if raw_path:  # keep %2F inside a segment: split before decoding
            raw = raw_path.split("?", 1)[0]
            script = environ.get("SCRIPT_NAME", "")
            if raw.startswith(script):
                path = raw[len(script):] or "/"
        parts = [unquote(p) for p in path.strip("/").split("/") if p]
        a = self.admin
        if parts == ["records"] and method == "POST":
            pid = str(self._json(environ).get("patient_id") or "")
            if not pid:
                raise PolicyError("patient_id is required")
            created = a.create(actor, pid)
            return (201 if created else 200), {"patient_id": pid, "created": created}
        if len(parts) >= 2 and parts[0] == "records":
            pid, rest = parts[1], parts[2:]
            if not rest and method == "GET":
                return 200, a.read(actor, pid)
            if rest in (["close"], ["reopen"]) and method == "POST":
                a.set_state(actor, pid, "closed" if rest[0] == "close" else "open")
                return 200, a.show(pid)
            if len(rest) == 2 and rest[0] in ("authorised", "blocked") and method == "PUT":
                a.set_professional(actor, pid, rest[1], AUTHORISED if rest[0] == "authorised" else BLOCKED)
                return 200, a.show(pid)
            if len(rest) == 2 and rest[0] in ("professionals", "authorised", "blocked") and method == "DELETE":
                a.set_professional(actor, pid, rest[1], None)
                return 200, a.show(pid)
            if rest == ["treating-physician"] and method == "PUT":
                a.set_treating_physician(actor, pid, self._json(environ).get("professional_id"))
                return 200, a.show(pid)
            if rest == ["emergency"] and method == "PUT":
                data = self._json(environ)
                if not {"bris_de_glace", "centre_15"} & data.keys():
                    raise PolicyError("bris_de_glace or centre_15 is required")
                for mode in ("bris_de_glace", "centre_15"):
                    if mode in data:
                        if not isinstance(data[mode], bool):
                            raise PolicyError(f"{mode} must be true or false")
                        a.set_emergency(actor, pid, mode, data[mode])
                return 200, a.show(pid)
            if rest == ["emergency-accesses"] and method == "GET":
                return 200, {"patient_id": pid, "emergency_accesses": a.read_emergency_accesses(actor, pid)}
        if len(parts) == 3 and parts[0] == "documents" and method == "PUT":
            uid, what = parts[1], parts[2]
            data = self._json(environ)
            if what == "mask":
                masked = data.get("masked", True)
                if masked not in (True, False, None):
                    raise PolicyError("masked must be true, false or null")
                pid = a.mask(actor, uid, masked)
                return 200, {"unique_id": uid, "patient_id": pid, "masked": masked}
            if what == "disclose":
                disclosed = data.get("disclosed", True)
                if not isinstance(disclosed, bool):
                    raise PolicyError("disclosed must be true or false")
                pid = a.disclose(actor, uid, disclosed)
                return 200, {"unique_id": uid, "patient_id": pid, "disclosed": disclosed}
        raise PolicyError(f"no such resource: {method} {path}", 404)
