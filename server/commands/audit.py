"""``xds audit verify|search`` and ``xds arr`` (loaded by ``server.cli`` through ``EXTENSIONS``)."""
from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from audit import daemon, store
from config import load_settings
from storage.database import Database


def _database(args):

    settings = load_settings(args.config, data_dir=args.data_dir, database_url=args.database_url)
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url())
    store.migrate(db)
    return db


def _when(value: str | None) -> float | None:
    if not value:
        return None
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def cmd_verify(args) -> int:
    db = _database(args)
    try:
        report = store.verify(db)
    finally:
        db.dispose()
    if report.ok:
        print(f"audit trail intact: {report.checked} records")
        return 0
    print(f"audit trail broken: record {report.seq} {report.problem} ({report.detail}); "
          f"{report.checked} records before it are intact")
    return 1


COLUMNS = ["seq", "time", "event", "type", "action", "outcome", "users", "patients", "objects", "source", "peer"]


def _row(r) -> dict:
    keys = json.loads(r.keys)
    pick = lambda kind: [v for k, v in keys if k == kind]  # noqa: E731
    t = datetime.fromtimestamp(r.event_ts, UTC).isoformat() if r.event_ts is not None else ""
    return {"seq": r.seq, "time": t, "event": r.event_id or "", "type": r.event_type or "",
            "action": r.event_action or "", "outcome": "" if r.outcome is None else r.outcome,
            "users": pick("user"), "patients": [p for p in pick("patient") if "|" not in p],
            "objects": pick("object"), "source": r.source_id or "", "peer": r.peer or r.transport}


def cmd_search(args) -> int:
    db = _database(args)
    try:
        rows = store.search(db, store.Query(
            since=_when(args.since), until=_when(args.until), patient=args.patient or None, user=args.user or None,
            event=args.event or None, outcome=args.outcome or None, limit=args.limit))
    finally:
        db.dispose()
    out = [_row(r) for r in rows]
    if args.format == "json":
        json.dump(out, sys.stdout, indent=1, ensure_ascii=False)
        print()
    elif args.format == "csv":
        w = csv.DictWriter(sys.stdout, COLUMNS)
        w.writeheader()
        for o in out:
            w.writerow({k: " ".join(v) if isinstance(v, list) else v for k, v in o.items()})
    else:
        table = [[str(" ".join(v) if isinstance(v, list) else v) for v in (o[c] for c in COLUMNS)] for o in out]
        widths = [max([len(c)] + [len(r[i]) for r in table]) for i, c in enumerate(COLUMNS)]
        print("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)))
        for r in table:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths)))
    return 0


def cmd_arr(args) -> int:
    """The Audit Record Repository alone: listeners and store, no forwarding of our own records."""

    settings = load_settings(args.config, data_dir=args.data_dir, database_url=args.database_url, host=args.host,
                             arr_udp_port=args.arr_udp_port, arr_tls_port=args.arr_tls_port, tls_cert=args.tls_cert,
                             tls_key=args.tls_key, tls_ca=args.tls_ca)
    settings.audit_enabled = False
    if not (settings.arr_udp_port or settings.arr_tls_port):
        print("error: give --arr-udp-port and/or --arr-tls-port", file=sys.stderr)
        return 2
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    print(f"audit record repository: udp {settings.arr_udp_port or '-'} tls {settings.arr_tls_port or '-'} "
          f"database {settings.effective_database_url()}", flush=True)
    return daemon.run(settings)


def add_commands(sub, common) -> None:
    p = sub.add_parser("audit", help="the audit trail: verify the hash chain, search records")
    asub = p.add_subparsers(dest="audit_command", required=True)
    v = asub.add_parser("verify", help="check the hash chain; report the first altered, inserted or deleted record")
    common(v)
    v.set_defaults(func=cmd_verify)
    s = asub.add_parser("search", help="search the audit records")
    common(s)
    s.add_argument("--patient", action="append", help="patient id (CX, or OID|id); repeatable")
    s.add_argument("--user", action="append", help="user id of any participant; repeatable")
    s.add_argument("--event", action="append", help="EventID (e.g. 110112) or event type (e.g. ITI-18)")
    s.add_argument("--outcome", type=int, action="append", choices=(0, 4, 8, 12))
    s.add_argument("--since", help="ISO date/time (UTC if no offset)")
    s.add_argument("--until", help="ISO date/time (UTC if no offset)")
    s.add_argument("--limit", type=int, default=1000)
    s.add_argument("--format", choices=("table", "json", "csv"), default="table")
    s.set_defaults(func=cmd_search)
    a = sub.add_parser("arr", help="run the Audit Record Repository alone (syslog over UDP and TLS)")
    common(a)
    a.add_argument("--host", help="listen address (default 127.0.0.1)")
    a.add_argument("--arr-udp-port", type=int, help="syslog over UDP (RFC 5426)")
    a.add_argument("--arr-tls-port", type=int, help="syslog over TLS (RFC 5425)")
    a.add_argument("--tls-cert", help="server certificate (PEM)")
    a.add_argument("--tls-key", help="private key (PEM)")
    a.add_argument("--tls-ca", help="CA that client certificates must chain to (PEM); required clients then")
    a.set_defaults(func=cmd_arr)
