"""The ``xds`` command: serve the actors and manage the store.

Every command takes ``--data-dir`` and ``--database-url`` (or ``XDS_DATA_DIR`` /
``XDS_DATABASE_URL``) so that commands and a running server share one store.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path
from typing import TextIO

from config import Settings, load_settings
from registry.register import Registry
from registry.store import migrate as migrate_registry
from server.serve import migrate_all, serve
from storage.database import Database
from xds import logsafe


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML configuration file (also XDS_CONFIG)")
    p.add_argument("--data-dir", help="folder for the embedded database and documents (XDS_DATA_DIR)")
    p.add_argument("--database-url", help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db (XDS_DATABASE_URL)")


def _settings(args: argparse.Namespace, **extra) -> Settings:
    return load_settings(args.config, data_dir=args.data_dir, database_url=args.database_url, **extra)


def _database(settings: Settings):
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url())
    migrate_registry(db)
    return db


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args, host=args.host, port=args.port, workers=args.workers, threads=args.threads,
                         repository_unique_id=args.repository_unique_id, home_community_id=args.home_community_id,
                         registry_url=args.registry_url, check_patient_ids=args.check_patient_ids,
                         audit_forward=args.audit_forward or None, audit_enabled=args.audit_enabled,
                         arr_udp_port=args.arr_udp_port, arr_tls_port=args.arr_tls_port,
                         tls_cert=args.tls_cert, tls_key=args.tls_key, tls_ca=args.tls_ca,
                         require_client_cert=args.require_client_cert, access_policy=args.access_policy)
    return serve(settings)


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    db = _database(settings)
    try:
        migrate_all(db)
    finally:
        db.dispose()
    print(f"schema up to date: {settings.effective_database_url()}")
    return 0


def cmd_patients(args: argparse.Namespace) -> int:
    settings = _settings(args)
    db = _database(settings)
    registry = Registry(db)
    try:
        if args.action == "add":
            for pid in args.patient_ids:
                try:
                    created = registry.add_patient(pid)
                except ValueError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 2
                print(f"{'created' if created else 'exists '} {pid}")
        elif args.action in ("close", "reopen"):
            for pid in args.patient_ids:
                if not registry.set_patient_state(pid, "closed" if args.action == "close" else "open"):
                    print(f"error: unknown patient {pid}", file=sys.stderr)
                    return 2
                print(f"{args.action}d {pid}")
        else:
            for pid, state, created_at in registry.list_patients():
                print(f"{pid}\t{state}\t{created_at}")
    finally:
        db.dispose()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xds", description="DMP-XDS: IHE XDS.b Document Registry and Repository")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="start the registry and repository under gunicorn")
    _common(p)
    p.add_argument("--host", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default 8080)")
    p.add_argument("--workers", type=int, help="gunicorn worker processes (default 2)")
    p.add_argument("--threads", type=int, help="threads per worker (default 8)")
    p.add_argument("--repository-unique-id", help="this repository's OID (repositoryUniqueId)")
    p.add_argument("--home-community-id", help="urn:oid: home community id returned on query answers")
    p.add_argument("--registry-url", help="register with a remote registry's ITI-42 endpoint instead of in-process")
    p.add_argument("--no-patient-check", dest="check_patient_ids", action="store_const", const=False,
                   help="accept submissions for patients without a record (test affinity domains)")
    p.add_argument("--audit-forward", action="append", metavar="URL",
                   help="send audit records to an Audit Record Repository: udp://HOST:PORT or tls://HOST:PORT "
                        "(repeatable)")
    p.add_argument("--no-audit", dest="audit_enabled", action="store_const", const=False,
                   help="do not record ATNA audit messages (test domains only)")
    p.add_argument("--arr-udp-port", type=int, help="built-in Audit Record Repository: syslog over UDP (RFC 5426)")
    p.add_argument("--arr-tls-port", type=int, help="built-in Audit Record Repository: syslog over TLS (RFC 5425)")
    p.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", help="private key of --tls-cert (PEM)")
    p.add_argument("--tls-ca", help="CA certificates that client certificates must chain to (PEM)")
    p.add_argument("--require-client-cert", action="store_const", const=True,
                   help="mutual TLS: refuse clients without a certificate signed by --tls-ca")
    p.add_argument("--access-policy", choices=("open", "dmp"),
                   help="open: plain XDS affinity domain; dmp: the DMP's patient-controlled access")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("migrate", help="create or upgrade the database schema")
    _common(p)
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("patients", help="patient records: the registry accepts documents only for these")
    psub = p.add_subparsers(dest="action", required=True)
    for name, help_text in (("add", "create patient records (CX, e.g. 123^^^&1.2.250.1.213.1.4.10&ISO)"),
                            ("close", "close records: submissions and queries refused, data kept"),
                            ("reopen", "reopen closed records")):
        pp = psub.add_parser(name, help=help_text)
        _common(pp)
        pp.add_argument("patient_ids", nargs="+", metavar="CX")
    pp = psub.add_parser("list", help="list patient records")
    _common(pp)
    p.set_defaults(func=cmd_patients)
    for module in EXTENSIONS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue
            raise
        mod.add_commands(sub, _common)
    return parser


EXTENSIONS = ("server.commands.client", "server.commands.audit", "server.commands.access", "server.commands.portal")
"""Modules that add their own ``xds`` commands: ``add_commands(subparsers, add_common_options)``."""


def configure_logging(stream: TextIO | None = None) -> None:
    """One line per record on standard error, every value that came from a request escaped
    (:mod:`xds.logsafe`): a newline or a NUL in a query value cannot forge a line (OWASP log
    injection)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=stream, force=stream is not None)
    logsafe.install(logging.getLogger())


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
