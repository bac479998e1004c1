"""``xds serve``: gunicorn's master with :class:`server.front.XdsWorker` workers (gthread whose
event loop reads TLS handshakes and request heads, with timeouts and a per-client connection cap:
issue 19 finding 4; the choice is measured in benchmarks/README.md, "The HTTP front").

The schema is migrated once in the master before workers fork; each worker builds its own
engines and actors (``load`` runs after the fork).
"""
from __future__ import annotations

import errno
import logging
import os
import socket
import sys
import time
from pathlib import Path

from access.store import migrate as migrate_access
from audit import store as audit_store
from audit.auditor import build_auditor
from audit.daemon import AuditProcess
from bindings.mllp import MllpProcess
from config import Settings
from portal.accounts import MIGRATIONS as PORTAL_MIGRATIONS
from registry.store import migrate as migrate_registry
from repository.index import migrate as migrate_repository
from repository.wiring import startup
from server.app import create_app
from server.front import FrontApplication, FrontLimits
from server.tls import gunicorn_tls_options
from storage.database import Database, display_url
from xds import logsafe

log = logging.getLogger(__name__)


FRONTS = {"xds": "server.front.XdsWorker", "gthread": "gthread"}
"""Worker classes by name: ``xds`` serves; stock ``gthread`` is kept for the side-by-side
benchmarks only (``xds serve --front gthread``, hidden)."""


class _Gunicorn(FrontApplication):
    def __init__(self, settings: Settings, options: dict, limits: FrontLimits) -> None:
        self.settings = settings
        super().__init__(create_app, options, limits)

    def load(self):
        logsafe.install(logging.getLogger("gunicorn.error"))
        return create_app(self.settings)


def endpoint_urls(settings: Settings) -> dict[str, str]:
    base = f"{'https' if settings.tls_cert else 'http'}://{settings.host}:{settings.port}"
    return {"registry": f"{base}/registry", "repository": f"{base}/repository"}


def gunicorn_options(settings: Settings, front: str = "xds") -> dict:
    """gunicorn's settings. No control socket: by default every gunicorn of a user shares one
    path (``$XDG_RUNTIME_DIR/gunicorn.ctl``), so a second server took over the first one's
    (issue 19 finding 6); ``xds serve`` is managed by signals and its service unit instead."""
    return gunicorn_tls_options(settings) | {
        "bind": f"{settings.host}:{settings.port}",
        "worker_class": FRONTS[front],
        "control_socket_disable": True,
        "workers": settings.workers,
        "threads": settings.threads,
        "timeout": 300,
        "graceful_timeout": 20,
        "keepalive": 30,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "xds",
    }


def migrate_all(db) -> None:
    """Every actor's tables, each with its own Alembic history, migrated once here in the master:
    workers that start together never race on a schema change."""

    migrate_registry(db)
    migrate_repository(db)
    audit_store.migrate(db)
    migrate_access(db)
    db.migrate(PORTAL_MIGRATIONS)


def listen_problem(host: str, port: int, wait: float = 3.0) -> str | None:
    """Why ``host:port`` cannot be listened on (a port in use, an unknown address), else None.

    Checked before anything is printed: gunicorn would retry a busy port for five seconds after
    the banner and then exit with a traceback-like log. A port in use is retried for ``wait``
    seconds: the workers of a server whose master was just killed close their listening socket
    within a second (:mod:`server.front`), and a restart right after must not fail on them."""
    deadline = time.monotonic() + wait
    while True:
        problem, busy = _try_listen(host, port)
        if not busy or time.monotonic() >= deadline:
            return problem
        time.sleep(0.1)


def _try_listen(host: str, port: int) -> tuple[str | None, bool]:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        return f"unknown address ({exc.strerror})", False
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc), exc.errno == errno.EADDRINUSE
    return None, False


def banner(settings: Settings) -> list[str]:
    """The start banner: each actor's endpoints and mode (embedded, or the remote registry the
    repository registers with), the store."""
    urls = endpoint_urls(settings)
    remote = settings.remote_registry_url
    return ["DMP-XDS listening:",
            f"  registry   (ITI-42, ITI-18)  {urls['registry']}   WSDL {urls['registry']}?wsdl",
            f"  repository (ITI-41, ITI-43)  {urls['repository']}   WSDL {urls['repository']}?wsdl",
            "  registry mode: " + (f"remote {remote}: the repository registers there (ITI-42); this server's "
                                   "own registry endpoint is a separate store" if remote
                                   else "embedded: the repository registers in-process"),
            "  repository mode: embedded",
            f"  data dir {Path(settings.data_dir).resolve()}  database "
            f"{display_url(settings.effective_database_url())}"]


def serve(settings: Settings, front: str = "xds", **limits: float | int | None) -> int:
    """Run the server until SIGTERM; ``limits``: :class:`server.front.FrontLimits` fields (None: default)."""
    front_limits = FrontLimits(**{k: v for k, v in limits.items() if v is not None})  # type: ignore[arg-type]
    for port in filter(None, (settings.port, settings.mllp_port)):
        problem = listen_problem(settings.host, port)
        if problem:
            print(f"xds serve: cannot listen on {settings.host}:{port}: {problem}", file=sys.stderr)
            return 1
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url())
    try:
        migrate_all(db)
    finally:
        db.dispose()
    report = startup(settings)
    log.info("repository start-up sweep: %s", report)
    for line in banner(settings):
        print(line, flush=True)
    audit = _start_audit(settings)
    mllp = MllpProcess(settings).start() if settings.mllp_port else None
    if mllp is not None:
        print(f"  patient identity feed (ITI-8, MLLP{' over TLS' if settings.mllp_tls else ''})  "
              f"{settings.host}:{settings.mllp_port}", flush=True)
    master = os.getpid()
    try:
        _Gunicorn(settings, gunicorn_options(settings, front), front_limits).run()
    finally:
        if os.getpid() == master and mllp is not None:
            mllp.stop()
        # gunicorn's master ends with sys.exit: stop auditing after its workers are gone. A worker
        # is forked inside run() and ends with sys.exit too, so its SystemExit unwinds through
        # here as well (at every stop, reload or restart of a worker): only the master, which
        # wrote Application Start, writes Application Stop and stops the audit process.
        if os.getpid() == master:
            _stop_audit(settings, audit)
    return 0


def _start_audit(settings: Settings):
    """Application Start (ITI-20), then the audit process (sender, ARR listeners): see audit.daemon."""

    if settings.audit_enabled:
        db = Database(settings.effective_database_url())
        try:
            build_auditor(settings, db).application_event(start=True)
        finally:
            db.dispose()
    if not (settings.audit_enabled or settings.arr_udp_port or settings.arr_tls_port):
        return None
    if settings.arr_udp_port or settings.arr_tls_port:
        print(f"  audit record repository  udp {settings.arr_udp_port or '-'}  tls {settings.arr_tls_port or '-'}",
              flush=True)
    return AuditProcess(settings).start(supervise=True)


def _stop_audit(settings: Settings, audit) -> None:

    if settings.audit_enabled:
        try:
            db = Database(settings.effective_database_url())
            try:
                build_auditor(settings, db).application_event(start=False)
            finally:
                db.dispose()
        except Exception:  # noqa: BLE001 - the stop record must not prevent the stop
            log.exception("could not record Application Stop")
    if audit is not None:
        audit.stop()
