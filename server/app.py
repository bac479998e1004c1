"""The composition root of one worker: build the services once, mount every door under one WSGI app.

Routing by path prefix is all there is: ``/registry`` and ``/repository`` are SOAP endpoints,
``/dmp/api`` the policy's JSON API, ``/audit`` ITI-81 (auditors only), ``/portal`` the web portal; ``/`` and
``/health`` answer a short JSON status.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from access.wiring import build_access
from audit import store as audit_store
from audit.auditor import build_auditor
from bindings.fhir_audit import FhirAuditApp
from bindings.policy_api import PolicyApi
from bindings.registry import registry_endpoint
from bindings.repository import repository_endpoint
from config import Settings
from portal.app import portal_app
from registry.register import Registry
from repository.store import FileSystemStore
from repository.wiring import build_repository, ensure_schema, registry_gateway
from server.tls import client_certificate_missing, peer_subject
from storage import Database
from transactions.alerts import alert_sink, edge_refusal_sink
from transactions.iti41 import AuditedGateway
from transactions.policy_admin import PolicyAdmin
from transactions.services import Services
from xds.soap import DEFAULT_UNDERSTOOD_HEADERS, WSSE_SECURITY
from xds.validation import ValueSets

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]

SOAP_HEADERS = DEFAULT_UNDERSTOOD_HEADERS | {WSSE_SECURITY}
"""The SOAP headers our endpoints process: WS-Addressing, and the XUA assertion's wsse:Security
(mustUnderstand)."""


def build_services(settings: Settings) -> Services:
    database = Database(settings.effective_database_url())
    value_sets = ValueSets.from_svs_files(settings.value_sets) if settings.value_sets else None
    registry = Registry(database, check_patient_ids=settings.check_patient_ids, value_sets=value_sets)
    auditor = build_auditor(settings, database)
    policy = build_access(settings, database, alert_sink(auditor))
    store = FileSystemStore(settings.documents_dir)
    ensure_schema(database, store)
    gateway = registry_gateway(settings, database, registry)
    if auditor.enabled:
        gateway = AuditedGateway(gateway, auditor, settings.remote_registry_url or "in-process",
                                 in_process=not settings.remote_registry_url)
    repository = build_repository(settings, database, store, gateway)
    return Services(settings=settings, database=database, registry=registry, repository=repository,
                    policy=policy, auditor=auditor)


def mounts(services: Services) -> dict[str, WSGIApp]:
    """Every door of the server, by path prefix."""
    settings = services.settings
    refused = edge_refusal_sink(services.auditor)
    doors: dict[str, WSGIApp] = {
        "/registry": registry_endpoint(services, SOAP_HEADERS, refused),
        "/repository": repository_endpoint(services, SOAP_HEADERS, refused),
        "/audit": FhirAuditApp(services),
        "/dmp/api": PolicyApi(PolicyAdmin(services.database, services.auditor), settings.access_api_token,
                              services),
    }
    if settings.portal_enabled:
        doors["/portal"] = portal_app(services)
    return doors


@dataclass
class Application:
    """Dispatch on the first path segment to the mounted door."""
    services: Services
    doors: dict[str, WSGIApp] = field(default_factory=dict)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        environ["xds.peer_subject"] = subject = peer_subject(environ)
        settings = self.services.settings
        if settings.require_client_cert and settings.tls_cert and subject is None:
            return client_certificate_missing(self.services, environ, start_response)
        path = environ.get("PATH_INFO") or "/"
        for prefix, app in self.doors.items():
            if path == prefix or path.startswith(prefix + "/"):
                environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
                environ["PATH_INFO"] = path[len(prefix):]
                return app(environ, start_response)
        if path in ("/", "/health"):
            return self.health(start_response)
        body = b"not found\n"
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    def health(self, start_response: Callable) -> Iterable[bytes]:
        """``ok``, or ``degraded`` (503) when the audit process has not stored a queued record for
        ``audit_max_lag`` seconds: a stopped audit process must not go unseen (ITI TF-2 3.20, issue 19)."""
        status: dict[str, object] = {"service": "DMP-XDS", "status": "ok", "endpoints": sorted(self.doors)}
        settings = self.services.settings
        if settings.audit_enabled:
            backlog, lag = audit_store.delivery_lag(self.services.database)
            status["audit"] = {"backlog": backlog, "lag_seconds": round(lag, 1) if lag is not None else 0.0}
            if lag is not None and lag > settings.audit_max_lag:
                status["status"] = "degraded"
        body = json.dumps(status).encode()
        code = "200 OK" if status["status"] == "ok" else "503 Service Unavailable"
        start_response(code, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def close(self) -> None:
        self.services.close()


def create_app(settings: Settings) -> Application:
    services = build_services(settings)
    return Application(services, mounts(services))
