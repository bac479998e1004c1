"""The WSGI application of ``xds serve``: the actors' endpoints under one server.

Routing by path prefix is all there is: ``/registry`` and ``/repository`` are SOAP endpoints;
``/`` answers a short index for people who open the server in a browser.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Iterable

from .config import Settings

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


@dataclass
class Services:
    """Everything one worker process holds: engines and actors, built once per process."""
    settings: Settings
    database: object
    registry: object
    auditor: object = None
    access: object = None
    mounts: dict[str, WSGIApp] = field(default_factory=dict)

    def close(self) -> None:
        if self.auditor is not None:
            self.auditor.close()
        self.database.dispose()


def build_services(settings: Settings) -> Services:
    from registry.register import Registry
    from registry.service import registry_endpoint
    from registry.store.db import Database
    from xds.validation import ValueSets

    database = Database(settings.effective_database_url())
    value_sets = ValueSets.from_svs_files(settings.value_sets) if settings.value_sets else None
    registry = Registry(database, check_patient_ids=settings.check_patient_ids, value_sets=value_sets)
    from audit.auditor import build_auditor
    services = Services(settings=settings, database=database, registry=registry,
                        auditor=build_auditor(settings, database))
    from xds.access.service import api_app, build_access
    services.access = build_access(services)
    extra = []
    try:
        from registry.query_service import query_operations
        extra = query_operations(services)
    except ImportError:
        pass
    services.mounts["/registry"] = registry_endpoint(registry, settings.max_request_bytes, extra,
                                                     auditor=services.auditor)
    try:
        from repository.service import repository_endpoint
        services.mounts["/repository"] = repository_endpoint(services)
    except ImportError:
        pass
    from audit.fhir import AuditEventApp
    services.mounts["/audit"] = AuditEventApp(database)
    from xds.soap import WSSE_SECURITY
    for endpoint in (services.mounts.get("/registry"), services.mounts.get("/repository")):
        if endpoint is not None:  # the XUA assertion's header (mustUnderstand) is ours to process
            endpoint.understood_headers = endpoint.understood_headers | {WSSE_SECURITY}
    services.mounts["/dmp/api"] = api_app(services)
    if getattr(settings, "portal_enabled", True):
        try:
            from portal.app import portal_app
        except ImportError:  # the portal package (or Jinja2) is not installed
            pass
        else:
            services.mounts["/portal"] = portal_app(services)
    return services


class Application:
    """Dispatch on the first path segment to the mounted endpoint."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        from xds.access.tls import client_certificate_missing, peer_subject
        environ["xds.peer_subject"] = subject = peer_subject(environ)
        settings = self.services.settings
        if settings.require_client_cert and settings.tls_cert and subject is None:
            return client_certificate_missing(self.services, environ, start_response)
        path = environ.get("PATH_INFO") or "/"
        for prefix, app in self.services.mounts.items():
            if path == prefix or path.startswith(prefix + "/"):
                environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
                environ["PATH_INFO"] = path[len(prefix):]
                return app(environ, start_response)
        if path in ("/", "/health"):
            body = json.dumps({"service": "DMP-XDS", "status": "ok",
                               "endpoints": sorted(self.services.mounts)}).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        body = b"not found\n"
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]


def create_app(settings: Settings) -> Application:
    return Application(build_services(settings))
