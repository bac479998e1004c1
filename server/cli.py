"""The ``xds`` command: serve the actors and manage the store.

Every command takes ``--data-dir`` and ``--database-url`` (or ``XDS_DATA_DIR`` /
``XDS_DATABASE_URL``) so that commands and a running server share one store.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import os
import sys
from pathlib import Path
from typing import TextIO

from config import Settings, load_settings
from registry.register import Registry
from registry.store import migrate as migrate_registry
from server import requestlog
from server.serve import migrate_all, serve
from storage.database import Database, DatabaseUnavailable
from xds import logsafe


def _common(p: argparse.ArgumentParser, store: bool = True) -> None:
    """The options every command takes; ``store=False`` for a command that never opens the store
    (a client command talking to a server)."""
    p.add_argument("--config", help="TOML configuration file (also XDS_CONFIG)")
    if store:
        p.add_argument("--data-dir", help="folder for the embedded database and documents (XDS_DATA_DIR)")
        p.add_argument("--database-url",
                       help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db (XDS_DATABASE_URL)")
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="also log the schema migrations (Alembic)")
        p.add_argument("--log-format", choices=requestlog.FORMATS, default=argparse.SUPPRESS,
                       help="log lines as text (default) or one JSON object per line (XDS_LOG_FORMAT)")


def _settings(args: argparse.Namespace, **extra) -> Settings:
    return load_settings(args.config, data_dir=args.data_dir, database_url=args.database_url, **extra)


def _database(settings: Settings):
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url())
    migrate_registry(db)
    return db


CLIENT_REGISTRY_URL = "XDS_REGISTRY_URL"
"""The client's registry endpoint (``xds query``...): ``xds serve`` does not read it."""


def cmd_serve(args: argparse.Namespace) -> int:
    if args.registry_url is not None:
        print("xds serve: --registry-url is the client's registry endpoint; a repository that registers with a "
              "remote registry takes --remote-registry-url", file=sys.stderr)
        return 2
    if os.environ.get(CLIENT_REGISTRY_URL):
        print(f"xds serve: warning: {CLIENT_REGISTRY_URL} is the client's registry endpoint and xds serve ignores "
              "it; a repository that registers with a remote registry takes XDS_REMOTE_REGISTRY_URL or "
              "--remote-registry-url", file=sys.stderr)
    settings = _settings(args, host=args.host, port=args.port, workers=args.workers, threads=args.threads,
                         repository_unique_id=args.repository_unique_id, home_community_id=args.home_community_id,
                         remote_registry_url=args.remote_registry_url, check_patient_ids=args.check_patient_ids,
                         audit_forward=args.audit_forward or None, audit_enabled=args.audit_enabled,
                         arr_udp_port=args.arr_udp_port, arr_tls_port=args.arr_tls_port,
                         tls_cert=args.tls_cert, tls_key=args.tls_key, tls_ca=args.tls_ca,
                         require_client_cert=args.require_client_cert, access_policy=args.access_policy)
    return serve(settings, front=args.front, header_timeout=args.header_timeout, body_timeout=args.body_timeout,
                 handshake_timeout=args.handshake_timeout, max_connections_per_client=args.max_connections_per_client,
                 min_body_rate=args.min_body_rate)


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
                print(f"{'closed' if args.action == 'close' else 'reopened'} {pid}")
        else:
            for pid, state, created_at in registry.list_patients():
                print(f"{pid}\t{state}\t{created_at}")
    finally:
        db.dispose()
    return 0


def version() -> str:
    """The installed distribution's version (its metadata: the wheel's, or the editable install's)."""
    try:
        return importlib.metadata.version("dmp-xds")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed: run from a source tree)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xds", description="DMP-XDS: IHE XDS.b Document Registry and Repository",
                                     epilog=EXAMPLES[""], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="also log the schema migrations (Alembic)")
    parser.add_argument("--log-format", choices=requestlog.FORMATS, default=os.environ.get(LOG_FORMAT_ENV) or "text",
                        help="log lines as text (default) or one JSON object per line, each with the request id "
                             f"({LOG_FORMAT_ENV})")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="start the registry and repository under gunicorn")
    _common(p)
    p.add_argument("--host", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default 8080)")
    p.add_argument("--workers", type=int, help="gunicorn worker processes (default 2)")
    p.add_argument("--threads", type=int, help="threads per worker (default 8)")
    p.add_argument("--repository-unique-id", help="this repository's OID (repositoryUniqueId)")
    p.add_argument("--home-community-id", help="urn:oid: home community id returned on query answers")
    p.add_argument("--remote-registry-url", metavar="URL",
                   help="the repository registers with this remote registry's ITI-42 endpoint instead of in-process "
                        "(XDS_REMOTE_REGISTRY_URL)")
    p.add_argument("--registry-url", help=argparse.SUPPRESS)
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
    p.add_argument("--header-timeout", type=float, metavar="S",
                   help="seconds a client has to send a request's head, from its connection or its previous "
                        "request (default 10; then 408)")
    p.add_argument("--body-timeout", type=float, metavar="S",
                   help="longest wait, in seconds, for the next bytes of a request body or for the client to "
                        "read the response (default 30; then the connection is closed)")
    p.add_argument("--min-body-rate", type=int, metavar="BYTES",
                   help="slowest average a request body may arrive at, in bytes per second, after the first "
                        "--header-timeout seconds (default 1024; then the connection is closed)")
    p.add_argument("--handshake-timeout", type=float, metavar="S",
                   help="seconds a client has to complete the TLS handshake (default 10)")
    p.add_argument("--max-connections-per-client", type=int, metavar="N",
                   help="open connections one client address may hold in each worker process (default 64; "
                        "more are answered 503)")
    p.add_argument("--front", choices=("xds", "gthread"), default="xds", help=argparse.SUPPRESS)
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
    add_examples(parser)
    return parser


_CX = "'274017512345613^^^&1.2.250.1.213.1.4.10&ISO^NH'"
_UID = "1.2.250.1.999.1.42"
EXAMPLES = {
    "": f"examples:\n  xds serve\n  xds query find-documents --patient {_CX}\n  xds COMMAND --help",
    "serve": "examples:\n  xds serve --data-dir /srv/xds --port 8080\n"
             "  xds serve --database-url postgresql+psycopg://xds@db/xds --tls-cert c.pem --tls-key k.pem",
    "migrate": "example:\n  xds migrate --database-url postgresql+psycopg://xds@db/xds",
    "patients": f"example:\n  xds patients add {_CX}",
    "patients add": f"example:\n  xds patients add {_CX} --data-dir data",
    "patients close": f"example:\n  xds patients close {_CX}",
    "patients reopen": f"example:\n  xds patients reopen {_CX}",
    "patients list": "example:\n  xds patients list --data-dir data",
    "submit": f"examples:\n  xds submit cr-bio.xml\n  xds submit report.pdf --patient {_CX} --type-code 11506-3 "
              "--title 'Compte rendu'",
    "query": f"example:\n  xds query find-documents --patient {_CX} --format json",
    "retrieve": f"example:\n  xds retrieve --document {_UID} -o out/",
    "import": "example:\n  xds import ./exports --jobs 8",
    "demo": "example:\n  xds demo --data-dir data --patients 3",
    "audit": "example:\n  xds audit verify --data-dir data",
    "audit verify": "example:\n  xds audit verify --data-dir data",
    "audit reindex": "example:\n  xds audit reindex --data-dir data",
    "audit public-key": "example:\n  xds audit public-key --data-dir data > audit-seal.pub",
    "audit search": f"example:\n  xds audit search --patient {_CX} --since 2026-01-01",
    "db": "example:\n  xds db roles --owner xds_owner --app xds_app",
    "db roles": "example:\n  xds db roles --owner xds_owner --app xds_app --apply --database-url "
                "postgresql+psycopg://postgres@db/xds",
    "db backup": "example:\n  xds db backup --data-dir /var/lib/xds /var/backups/xds/registry.db",
    "arr": "example:\n  xds arr --arr-udp-port 5140 --arr-tls-port 6514 --tls-cert c.pem --tls-key k.pem",
    "dmp": f"example:\n  xds dmp show {_CX}",
    "dmp show": f"example:\n  xds dmp show {_CX}",
    "dmp authorise": f"example:\n  xds dmp authorise {_CX} 810000000042",
    "dmp block": f"example:\n  xds dmp block {_CX} 810000000042",
    "dmp forget": f"example:\n  xds dmp forget {_CX} 810000000042",
    "dmp treating": f"example:\n  xds dmp treating {_CX} 810000000042",
    "dmp emergency": f"example:\n  xds dmp emergency {_CX} bris_de_glace oppose",
    "dmp close": f"example:\n  xds dmp close {_CX}",
    "dmp reopen": f"example:\n  xds dmp reopen {_CX}",
    "dmp mask": f"example:\n  xds dmp mask {_UID}",
    "dmp unmask": f"example:\n  xds dmp unmask {_UID}",
    "dmp mask-default": f"example:\n  xds dmp mask-default {_UID}",
    "dmp disclose": f"example:\n  xds dmp disclose {_UID}",
    "dmp undisclose": f"example:\n  xds dmp undisclose {_UID}",
    "dmp emergency-log": f"example:\n  xds dmp emergency-log {_CX}",
    "xua": f"example:\n  xds xua issue 810000000042 --patient {_CX} -o assertion.xml",
    "xua issue": f"example:\n  xds xua issue 810000000042 --patient {_CX} -o assertion.xml",
    "portal": f"example:\n  xds portal user add --role patient --login alice --patient {_CX} --password-env PW",
    "portal user": f"example:\n  xds portal user add --role patient --login alice --patient {_CX} --password-env PW",
    "portal user add": f"example:\n  xds portal user add --role patient --login alice --patient {_CX} "
                       "--password-env PW",
    "portal user passwd": "example:\n  xds portal user passwd --login alice --password-env PW",
}
"""An example in the help of every command, by command path: ``add_examples`` puts each at the end
of its command's ``--help`` (one table, also for the commands the extension modules add)."""


def commands(parser: argparse.ArgumentParser, path: str = "") -> list[tuple[str, argparse.ArgumentParser]]:
    """Every (command path, parser) under ``parser``, ``parser`` itself first (path "")."""
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += commands(child, f"{path} {name}".strip())
    return found


def add_examples(parser: argparse.ArgumentParser) -> None:
    for path, p in commands(parser):
        if path in EXAMPLES and not p.epilog:
            p.epilog = EXAMPLES[path]
            p.formatter_class = argparse.RawDescriptionHelpFormatter


EXTENSIONS = ("server.commands.client", "server.commands.audit", "server.commands.access", "server.commands.portal",
              "server.commands.db")
"""Modules that add their own ``xds`` commands: ``add_commands(subparsers, add_common_options)``."""


LOG_FORMAT_ENV = "XDS_LOG_FORMAT"


def configure_logging(stream: TextIO | None = None, verbose: bool = False, log_format: str = "text") -> None:
    """One line per record on standard error, every value that came from a request escaped
    (:mod:`xds.logsafe`): a newline or a NUL in a query value cannot forge a line (OWASP log
    injection). Each line names the request it was logged for (:mod:`server.requestlog`);
    ``log_format="json"``: one JSON object per line. Alembic's lines (a schema check on every
    command) only with ``--verbose``."""
    handler = logging.StreamHandler(stream)
    requestlog.install(handler, log_format)
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=stream is not None)
    logging.getLogger("alembic").setLevel(logging.INFO if verbose else logging.WARNING)
    logsafe.install(logging.getLogger())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.log_format not in requestlog.FORMATS:
        print(f"xds: {LOG_FORMAT_ENV}={args.log_format!r} is not a log format: one of "
              f"{', '.join(requestlog.FORMATS)}", file=sys.stderr)
        return 2
    configure_logging(verbose=args.verbose, log_format=args.log_format)
    try:
        return int(args.func(args))
    except DatabaseUnavailable as exc:
        print(f"xds {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
