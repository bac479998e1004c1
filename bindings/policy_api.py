"""JSON HTTP API of the DMP policy (mounted at ``/dmp/api``; the web portal's back end).

Authentication: ``Authorization: Bearer <access_api_token>``; with no token configured, only
loopback callers are answered. ``X-DMP-Actor`` names the person acting (audited as the user).
Patient ids and document uniqueIds are URL-encoded path segments.

    GET    /records/{pid}                              the record's policy and emergency accesses
    POST   /records                 {"patient_id"}     create a record (consent)
    POST   /records/{pid}/close | /reopen
    PUT    /records/{pid}/authorised/{professional}    authorise
    PUT    /records/{pid}/blocked/{professional}       block
    DELETE /records/{pid}/professionals/{professional} neither authorised nor blocked
    PUT    /records/{pid}/treating-physician {"professional_id": "..." | null}
    PUT    /records/{pid}/emergency {"bris_de_glace": bool, "centre_15": bool}
    GET    /records/{pid}/emergency-accesses
    PUT    /documents/{uniqueId}/mask {"masked": true | false | null}
    PUT    /documents/{uniqueId}/disclose {"disclosed": true | false}
"""
from __future__ import annotations

import hmac
import json
import logging
from urllib.parse import unquote

from xds.context import caller_from_environ

from transactions.alerts import security_alert
from transactions.policy_admin import PolicyAdmin, PolicyError
from access.store import AUTHORISED, BLOCKED

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
LOOPBACK = ("127.0.0.1", "::1", "localhost")


class PolicyApi:
    def __init__(self, admin: PolicyAdmin, token: str = "", services=None) -> None:
        self.admin = admin
        self.token = token or ""
        self.services = services

    def __call__(self, environ: dict, start_response):
        try:
            self._authenticate(environ)
            status, payload = self._route(environ)
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
                        ("Cache-Control", "no-store")])
        return [body]

    def _authenticate(self, environ: dict) -> None:
        caller = caller_from_environ(environ)
        if self.token:
            given = environ.get("HTTP_AUTHORIZATION", "")
            if not (given.startswith("Bearer ") and hmac.compare_digest(given[7:].strip(), self.token)):
                security_alert(self.services.auditor, caller, "DMP API: missing or wrong bearer token", "user")
                raise PolicyError("a valid bearer token is required", 401)
        elif environ.get("REMOTE_ADDR") not in LOOPBACK:
            raise PolicyError("the DMP API answers loopback callers only when no access_api_token is set", 403)

    def _actor(self, environ: dict):
        caller = caller_from_environ(environ)
        caller.user_id = environ.get("HTTP_X_DMP_ACTOR") or "dmp-api"
        caller.kind = "patient" if caller.user_id != "dmp-api" else "node"
        caller.authenticated = True
        return caller

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

    def _route(self, environ: dict):
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
        actor = self._actor(environ)
        if parts == ["records"] and method == "POST":
            pid = str(self._json(environ).get("patient_id") or "")
            if not pid:
                raise PolicyError("patient_id is required")
            created = a.create(actor, pid)
            return (201 if created else 200), {"patient_id": pid, "created": created}
        if len(parts) >= 2 and parts[0] == "records":
            pid, rest = parts[1], parts[2:]
            if not rest and method == "GET":
                return 200, a.show(pid)
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
                for mode in ("bris_de_glace", "centre_15"):
                    if mode in data:
                        if not isinstance(data[mode], bool):
                            raise PolicyError(f"{mode} must be true or false")
                        a.set_emergency(actor, pid, mode, data[mode])
                return 200, a.show(pid)
            if rest == ["emergency-accesses"] and method == "GET":
                return 200, {"patient_id": pid, "emergency_accesses": a.emergency_accesses(pid)}
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
