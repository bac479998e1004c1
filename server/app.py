"""The composition root of one worker: build the services once, mount every door under one WSGI app.

Routing by path prefix is all there is: ``/registry`` and ``/repository`` are SOAP endpoints,
``/dmp/api`` the policy's JSON API, ``/audit`` ITI-81 (auditors only), ``/portal`` the web portal; ``/`` and
``/health`` answer a short JSON status, ``/ready`` whether this worker can serve (database and
schema), ``/metrics`` the Prometheus metrics (issue 19, operations).

Every request gets an id (the caller's ``X-Request-ID`` when well-formed), returned in the
response and named by every log line of the request (:mod:`server.requestlog`), and is counted
with its transaction, outcome and duration (:mod:`server.metrics`).
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

from lxml import etree
from sqlalchemy.exc import SQLAlchemyError

from access.wiring import build_access
from audit import store as audit_store
from audit.auditor import build_auditor
from bindings.fhir import FhirApp
from bindings.fhir_audit import FhirAuditApp
from bindings.fhir_patient import FhirPatientApp
from bindings.policy_api import PolicyApi
from bindings.registry import WSDL as REGISTRY_WSDL
from bindings.registry import registry_operations
from bindings.registry import removal_operations as registry_removal_operations
from bindings.repository import WSDL as REPOSITORY_WSDL
from bindings.repository import removal_operations as repository_removal_operations
from bindings.repository import repository_operations
from bindings.soap import soap_endpoint
from config import Settings
from portal.app import portal_app
from registry.register import Registry
from repository.index import DocumentIndex
from repository.store import FileSystemStore
from repository.wiring import build_repository, ensure_schema, registry_gateway
from server import metrics, readiness, requestlog
from server.tls import client_certificate_missing, peer_subject
from storage import Database
from transactions.alerts import alert_sink, edge_refusal_sink
from transactions.iti41 import AuditedGateway
from transactions.policy_admin import PolicyAdmin
from transactions.services import Services
from xds.soap import DEFAULT_UNDERSTOOD_HEADERS, WSSE_SECURITY, Operation, SoapRequest, SoapResponse
from xds.validation import ValueSets
from xds.vocabulary import NS_RS, Actions, ResponseStatus, q

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


TRANSACTION_KEY = "xds.transaction"
OUTCOME_KEY = "xds.outcome"
OPERATION_TRANSACTIONS = {Actions.STORED_QUERY: "ITI-18", Actions.REGISTER: "ITI-42", Actions.PROVIDE: "ITI-41",
                          Actions.RETRIEVE: "ITI-43", Actions.REMOVE_METADATA: "ITI-62",
                          Actions.REMOVE_DOCUMENTS: "ITI-86"}
DOOR_TRANSACTIONS = {"/registry": "registry", "/repository": "repository", "/audit": "ITI-81",
                     "/dmp/api": "policy-api", "/portal": "portal"}
"""The metrics' ``transaction`` of a request no SOAP operation took, by door."""
_OUTCOMES = {ResponseStatus.SUCCESS: "success", ResponseStatus.PARTIAL_SUCCESS: "partial_success",
             ResponseStatus.FAILURE: "failure"}


def response_outcome(body: etree._Element) -> str:
    """The outcome of a SOAP answer: the status of its RegistryResponse (ITI-41/42 answer with one,
    ITI-18's AdhocQueryResponse carries the same status, ITI-43 nests one: ITI TF-3 4.2.4)."""
    status = body.get("status")
    if status is None:
        nested = body.find(q(NS_RS, "RegistryResponse"))
        status = nested.get("status") if nested is not None else None
    return _OUTCOMES.get(status or "", "success")


def counted(operations: list[Operation]) -> list[Operation]:
    """``operations`` whose handlers name their transaction and outcome in the request's environ,
    for the metrics (the action alone tells ITI-18 from ITI-42 on one endpoint)."""
    def wrap(operation: Operation) -> Operation:
        transaction = OPERATION_TRANSACTIONS.get(operation.action, "other")
        handler = operation.handler

        def handle(request: SoapRequest) -> SoapResponse:
            request.environ[TRANSACTION_KEY] = transaction
            response = handler(request)
            if isinstance(response, SoapResponse):
                request.environ[OUTCOME_KEY] = response_outcome(response.body)
            return response
        return replace(operation, handler=handle)
    return [wrap(op) for op in operations]


def mounts(services: Services) -> dict[str, WSGIApp]:
    """Every door of the server, by path prefix."""
    settings = services.settings
    refused = edge_refusal_sink(services.auditor)
    doors: dict[str, WSGIApp] = {
        "/registry": soap_endpoint(counted(registry_operations(services) + registry_removal_operations(services)),
                                   REGISTRY_WSDL, settings, "/registry", SOAP_HEADERS, refused),
        "/repository": soap_endpoint(counted(repository_operations(services) + repository_removal_operations(services)),
                                     REPOSITORY_WSDL, settings, "/repository", SOAP_HEADERS, refused),
        "/audit": FhirAuditApp(services),
        "/fhir": FhirApp(services, {"Patient": FhirPatientApp(services)}),
        "/dmp/api": PolicyApi(PolicyAdmin(services.database, services.auditor), settings.access_api_token,
                              services),
    }
    if settings.portal_enabled:
        doors["/portal"] = portal_app(services)
    return doors


def _outcome(status: str, environ: dict) -> str:
    code = int(status[:3]) if status[:3].isdigit() else 500
    if code >= 500:
        return "server_error"
    if code >= 400:
        return "client_error"
    return environ.get(OUTCOME_KEY, "success")


@runtime_checkable
class _Closable(Protocol):
    def close(self) -> None: ...


class _Answered:
    """The answer's body, passed through; when the server closes it (after its last byte: WSGI,
    PEP 3333), the request is counted and its id leaves the thread's log context."""

    def __init__(self, body: Iterable[bytes], done: Callable[[], None]) -> None:
        self.body = body
        self.done = done

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        try:
            if isinstance(self.body, _Closable):
                self.body.close()
        finally:
            self.done()


@dataclass
class Application:
    """Dispatch on the first path segment to the mounted door."""
    services: Services
    doors: dict[str, WSGIApp] = field(default_factory=dict)
    counters: metrics.WorkerMetrics | None = None
    schema_heads: dict[str, frozenset[str]] = field(default_factory=readiness.heads)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        rid = requestlog.request_id(environ)
        environ["xds.request_id"] = rid
        requestlog.current.set(rid)
        answered: list[str] = []

        def respond(status: str, headers: list, exc_info=None):
            answered[:] = [status]
            return start_response(status, [*headers, (requestlog.HEADER, rid)], exc_info)

        def done() -> None:
            requestlog.current.set(None)
            if self.counters is not None:
                transaction = environ.get(TRANSACTION_KEY) or self._transaction_of(environ)
                status = answered[0] if answered else "500"
                self.counters.observe(transaction, _outcome(status, environ), time.perf_counter() - started)

        try:
            body = self._dispatch(environ, respond)
        except BaseException:
            answered[:] = ["500"]
            done()
            raise
        return _Answered(body, done)

    def _transaction_of(self, environ: dict) -> str:
        path = environ.get("xds.door") or ""
        return DOOR_TRANSACTIONS.get(path, "other")

    def _dispatch(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        environ["xds.peer_subject"] = subject = peer_subject(environ)
        path = environ.get("PATH_INFO") or "/"
        door = next(((prefix, app) for prefix, app in self.doors.items()
                     if path == prefix or path.startswith(prefix + "/")), None)
        if door is not None:
            environ["xds.door"] = door[0]
        settings = self.services.settings
        if settings.require_client_cert and settings.tls_cert and subject is None:
            return client_certificate_missing(self.services, environ, start_response)
        if door is not None:
            prefix, app = door
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
            environ["PATH_INFO"] = path[len(prefix):]
            return app(environ, start_response)
        if path in ("/", "/health"):
            return self.health(start_response)
        if path == "/ready":
            return self.ready(start_response)
        if path == "/metrics":
            return self.metrics_page(environ, start_response)
        return _text(start_response, "404 Not Found", "not found\n")

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

    def ready(self, start_response: Callable) -> Iterable[bytes]:
        """200 once the database answers and every schema is at this code's newest revision, else
        503 naming what is missing (:mod:`server.readiness`): what a load balancer polls."""
        found = readiness.check(self.services.database, self.schema_heads)
        body = json.dumps({"ready": found.ready, "database": found.database, "schemas": found.schemas}).encode()
        code = "200 OK" if found.ready else "503 Service Unavailable"
        start_response(code, [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                              ("Cache-Control", "no-store")])
        return [body]

    def metrics_page(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        """The Prometheus exposition (format 0.0.4) of every worker of this server, to a scraper
        with ``metrics_token``, or from loopback when none is set (:func:`server.metrics.refusal`)."""
        settings = self.services.settings
        refused = metrics.refusal(environ, settings.metrics_token)
        if refused is not None:
            status, reason = refused
            extra = [("WWW-Authenticate", 'Bearer realm="metrics"')] if status.startswith("401") else []
            return _text(start_response, status, reason + "\n", extra)
        if self.counters is None:
            return _text(start_response, "404 Not Found", "not found\n")
        body = metrics.render(self.counters.run, self._gauges())
        start_response("200 OK", [("Content-Type", metrics.CONTENT_TYPE), ("Content-Length", str(len(body))),
                                  ("Cache-Control", "no-store")])
        return [body]

    def _gauges(self) -> metrics.Gauges:
        database = self.services.database
        try:
            outbox = backlog = lag = None
            if self.services.settings.audit_enabled:
                backlog, oldest = audit_store.delivery_lag(database)
                lag = oldest or 0.0
                outbox = audit_store.outbox_size(database)
            pending, since = DocumentIndex(database).pending_summary()
        except (SQLAlchemyError, OSError):
            return metrics.Gauges(database_up=False)
        return metrics.Gauges(audit_outbox_rows=outbox, audit_backlog=backlog, audit_lag_seconds=lag,
                              pending_submissions=pending,
                              pending_oldest_seconds=max(0.0, time.time() - since) if since is not None else 0.0)

    def close(self) -> None:
        if self.counters is not None:
            self.counters.close()
        self.services.close()


def _text(start_response: Callable, status: str, text: str, headers: list | None = None) -> Iterable[bytes]:
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                            *(headers or [])])
    return [body]


def create_app(settings: Settings) -> Application:
    """One worker's application. Its counters go to the run of its parent process: under
    ``xds serve`` the gunicorn master, so that a scrape of any worker adds up all of them."""
    services = build_services(settings)
    counters = metrics.WorkerMetrics(metrics.run_directory(settings.data_dir, os.getppid()))
    return Application(services, mounts(services), counters)
