"""``xds audit verify|reindex|public-key|search`` and ``xds arr`` (loaded by ``server.cli`` through ``EXTENSIONS``)."""
from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from access import emergency_list
from access.wiring import ensure_schema
from audit import checkpoint, daemon, seal, store
from config import Settings, load_settings
from storage.database import Database


def _settings(args) -> Settings:
    settings = load_settings(args.config, data_dir=args.data_dir, database_url=args.database_url)
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    return settings


def _database(args, settings: Settings | None = None) -> Database:
    settings = settings or _settings(args)
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


def _verifier(args, settings: Settings) -> seal.SealVerifier | None:
    """The public keys seals must verify with: ``--public-key`` files, else this server's own key."""
    pems = [Path(p).read_bytes() for p in args.public_key or []]
    if not pems and settings.seal_key_path.exists():
        pems = [settings.seal_key_path.read_bytes()]
    return seal.SealVerifier([seal.load_public(p) for p in pems]) if pems else None


def cmd_verify(args) -> int:
    """Check every record, its seal, the anchored checkpoints, the search index and the
    emergency-access list; name the first problem (exit 1), never crash on stored content."""
    settings = _settings(args)
    try:
        verifier = _verifier(args, settings)
        anchor = checkpoint.read_anchor(args.anchor) if args.anchor else []
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    db = _database(args, settings)
    try:
        report = store.verify(db, verifier, anchor)
        listed = None
        if report.ok:
            ensure_schema(settings, db)
            listed = emergency_list.check(db, db)
    finally:
        db.dispose()
    for warning in report.warnings or []:
        print(f"warning: {warning}", file=sys.stderr)
    if not report.ok:
        print(f"audit trail broken: record {report.seq} {report.problem}: {report.detail}; "
              f"{report.checked} records before it are intact")
        return 1
    if listed is not None:
        print(f"audit trail broken: emergency-access list: {listed.detail}")
        return 1
    anchored = f", {report.checkpoints} anchored checkpoints" if args.anchor else ""
    print(f"audit trail intact: {report.checked} records, {report.seals} seals{anchored}, search index and "
          "emergency-access list agree with the chain")
    return 0


def cmd_reindex(args) -> int:
    """Rebuild the search index and restore the emergency-access list from a chain that verifies."""
    settings = _settings(args)
    db = _database(args, settings)
    try:
        report = store.verify(db, _verifier(args, settings), check_index=False)
        if not report.ok and not args.force:
            print(f"refusing to reindex: record {report.seq} {report.problem}: {report.detail} "
                  "(--force rebuilds from the chain as it is)", file=sys.stderr)
            return 1
        keys = store.reindex(db)
        ensure_schema(settings, db)
        restored = emergency_list.restore(db, db)
    finally:
        db.dispose()
    print(f"search index rebuilt: {keys} keys of {report.checked} records; emergency accesses restored: {restored}")
    return 0


def cmd_public_key(args) -> int:
    settings = _settings(args)
    if not settings.seal_key_path.exists():
        print(f"error: no seal key at {settings.seal_key_path} (the audit process creates it at its first start)",
              file=sys.stderr)
        return 1
    sys.stdout.write(seal.public_pem(seal.load_private(settings.seal_key_path).public_key()).decode())
    return 0


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
    v = asub.add_parser("verify", help="check the chain, its seals and checkpoints, the search index and the "
                                       "emergency-access list; name the first altered, inserted, deleted or "
                                       "truncated record",
                        epilog="example: xds audit verify --anchor /var/lib/xds/audit-anchor.log "
                               "--public-key audit-seal.pub")
    common(v)
    v.add_argument("--anchor", help="anchor file of checkpoints (audit_anchor_file) the chain must still reach")
    v.add_argument("--public-key", action="append",
                   help="PEM public key the seals must verify with (repeatable; default: this server's seal key)")
    v.set_defaults(func=cmd_verify)
    r = asub.add_parser("reindex", help="rebuild the search index and restore the emergency-access list from the "
                                        "chain", epilog="example: xds audit reindex --data-dir /var/lib/xds")
    common(r)
    r.add_argument("--public-key", action="append", help="PEM public key the seals must verify with (repeatable)")
    r.add_argument("--force", action="store_true", help="rebuild even when the chain does not verify")
    r.set_defaults(func=cmd_reindex)
    k = asub.add_parser("public-key", help="print the public key of this server's audit seal key (PEM)",
                        epilog="example: xds audit public-key > audit-seal.pub")
    common(k)
    k.set_defaults(func=cmd_public_key)
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
