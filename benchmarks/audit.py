"""ATNA audit cost and Audit Record Repository throughput (issue 5).

    python benchmarks/audit.py [--backends sqlite,postgresql] [--seconds 6] [--messages 5000]

1. ITI-18 FindDocuments over HTTP, 8 clients, ``xds serve`` with auditing on and with
   ``--no-audit`` (target: at most 10% slower), each server warmed up first (unmeasured), then
   rounds alternated (off-on, on-off, ...) so that drift hits both, the slowdown being the median
   of the rounds' pairs (``common.paired_slowdown``); floor:
   the same client against the lxml SOAP echo (same gunicorn settings). After each audited round
   the script waits until every record is stored (the audit process runs below the workers'
   priority and drains the durable outbox after a burst) and reports that delay, and the rate
   counting it.
2. What sealing the chain costs (issue 18): the same records appended in batches of 1, 20 and
   500 with and without a seal per append (alternated rounds, in-process CPU time), the
   difference per record compared with the CPU one audited ITI-18 costs on this machine (two
   cores over its measured rate): checkpoints must cost under 2% of ITI-18 throughput.
3. Syslog messages per second the ARR (``xds arr``) stores over TLS (RFC 5425, one connection)
   and over UDP (RFC 5426, paced bursts: UDP has no flow control); floors: the hash-chain append
   of the same messages in batches of 500 straight into the database, and one committed INSERT.
Bounded: every load stops at a count and a time limit; loopback only.
"""
from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its own name would shadow the
# project's ``audit`` package: put the project root first.
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [str(Path(__file__).resolve().parents[1])] + [p for p in sys.path if p not in (_HERE, "")] + [_HERE]

from common import (  # noqa: E402
    ROOT,
    EchoServer,
    database_urls,
    insert_floor,
    paired_slowdown,
    print_table,
    run_load,
    spread,
    start_xds,
)

from audit import fields, messages, seal, store, syslog  # noqa: E402
from audit.sender import client_context
from registry.register import Registry
from registry.store import migrate as migrate_registry
from storage.database import Database
from tests.audit.support import make_pki
from tests.audit.test_transactions import query_body
from tests.support.metadata import draft, fresh_patient
from tests.support.server import free_port, start_server
from xds.context import Caller
from xds.soap.client import encode_request
from xds.vocabulary import Actions

OK = b"ResponseStatusType:Success"


def seed(url: str, patients: int = 40, docs: int = 3) -> list[str]:
    db = Database(url)
    migrate_registry(db)
    reg = Registry(db)
    ids = [fresh_patient() for _ in range(patients)]
    for p in ids:
        reg.add_patient(p)
        for _ in range(docs):
            errors = reg.register(draft(p).objects())
            assert not errors.has_errors, errors
    db.dispose()
    return ids


WARM_UP = 500
"""Requests sent to each server before the measured rounds."""


def query_bodies(url: str, patients: list[str]) -> list[tuple[bytes, dict]]:
    return [encode_request(Actions.STORED_QUERY, url, query_body(p)) for p in patients]


def query_load(url: str, patients: list[str], args):
    load = run_load(url, query_bodies(url, patients), 8, args.max_requests, args.seconds, check=lambda c: OK in c)
    assert load.failures == 0, f"{load.failures} failed queries"
    return load


def drain_seconds(db, limit: float = 120.0) -> float:
    """Seconds until the audit process has stored every queued record (the outbox is empty).

    The audit process runs below the workers' priority (``audit_nice``): during a burst it
    lags and the records wait in the durable outbox. Waiting here also keeps the next round
    free of the previous round's delivery.
    """
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        if store.outbox_size(db) == 0:
            break
        time.sleep(0.05)
    return time.perf_counter() - t0


def bench_queries(tmp: Path, backend: str, url: str, args, echo_rate: float) -> list[list]:
    patients = seed(url)
    # one single-worker start first: every actor creates its tables before two workers race to
    warm = start_server(tmp / "warm", url, workers=1)
    warm.stop()
    on = start_xds(tmp, url)
    off = start_xds(tmp, url, "--no-audit")
    db = Database(url)
    rates: dict[str, list[float]] = {"on": [], "off": []}
    drains, sustained = [], []
    try:
        for server in (off, on):  # unmeasured: a cold first round (caches, prepared statements) strays
            run_load(server.registry_url, query_bodies(server.registry_url, patients), 8, WARM_UP, args.seconds)
        drain_seconds(db)
        for r in range(args.rounds):
            # the order swaps every round (off-on, on-off...): neither side always runs second
            for label, server in ((("off", off), ("on", on)) if r % 2 == 0 else (("on", on), ("off", off))):
                load = query_load(server.registry_url, patients, args)
                rates[label].append(load.rate)
                if label == "on":
                    drains.append(drain_seconds(db))
                    sustained.append(load.requests / (load.seconds + drains[-1]))
    finally:
        on.stop()
        off.stop()
        db.dispose()
    print(f"# {backend} ITI-18 rounds, requests/s: off " + " ".join(f"{r:.0f}" for r in rates["off"])
          + " | on " + " ".join(f"{r:.0f}" for r in rates["on"]), flush=True)
    r_on, r_off = statistics.median(rates["on"]), statistics.median(rates["off"])
    r_sus, drain = statistics.median(sustained), statistics.median(drains)
    return [[backend, "ITI-18 audit off", f"{r_off:.0f}", f"{echo_rate:.0f}", f"{r_off / echo_rate:.3f}", ""],
            [backend, "ITI-18 audit on", f"{r_on:.0f}", f"{echo_rate:.0f}", f"{r_on / echo_rate:.3f}",
             f"{paired_slowdown(rates['on'], rates['off']):+.1f}% slower, median of the rounds' pairs "
             f"({spread(rates['on'], rates['off'])}; medians {(1 - r_on / r_off) * 100:+.1f}%); records all "
             f"stored {drain:.1f} s after the load"],
            [backend, "ITI-18 audit on, until stored", f"{r_sus:.0f}", f"{echo_rate:.0f}",
             f"{r_sus / echo_rate:.3f}", f"{paired_slowdown(sustained, rates['off']):+.1f}% slower, counting the "
                                         "time to store every record"]]


def bench_seals(tmp: Path, backend: str, url: str, iti18_rate: float, rounds: int = 5,
                records: int = 2000) -> list[list]:
    """CPU per record of a sealed append minus an unsealed one, per batch size (see the docstring, 2)."""
    db = Database(url)
    store.migrate(db)
    sealer = seal.load_or_create(tmp / f"seal-{backend}.pem")
    incoming = [store.Incoming(m, "local", None, fields.extract(m)) for m in _messages(records)]
    rows = []
    budget = 2 * 1e6 / iti18_rate  # µs of CPU (two cores) per audited ITI-18
    try:
        for batch in (1, 20, 500):
            cost: dict[bool, list[float]] = {True: [], False: []}
            for r in range(rounds):
                for sealed in ((False, True) if r % 2 == 0 else (True, False)):
                    start = time.process_time()
                    for i in range(0, len(incoming), batch):
                        store.append(db, incoming[i:i + batch], sealer if sealed else None)
                    cost[sealed].append((time.process_time() - start) / len(incoming) * 1e6)
            extra = statistics.median(a - b for a, b in zip(cost[True], cost[False], strict=True))
            rows.append([backend, f"seal per append, batches of {batch}", f"{extra:+.1f} µs/record",
                         f"{budget:.0f} µs/ITI-18", f"{extra / budget * 100:+.2f}%",
                         f"append CPU {statistics.median(cost[False]):.0f} -> {statistics.median(cost[True]):.0f} "
                         "µs/record (median of alternated rounds)"])
    finally:
        db.dispose()
    return rows


def _messages(n: int) -> list[bytes]:
    caller = Caller(remote_addr="127.0.0.1", endpoint="http://127.0.0.1/registry")
    one = messages.stored_query(caller, "bench", 0, "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d",
                                b"<AdhocQueryRequest/>" * 5, "123^^^&1.2.250.1.213.1.4.10&ISO").to_xml()
    return [syslog.encode(one, "bench", procid=str(i)) for i in range(n)]


def _wait_count(db, target: int, limit: float) -> tuple[int, float]:
    t0 = time.perf_counter()
    last, still = -1, time.perf_counter()
    while time.perf_counter() - t0 < limit:
        n = store.count(db)
        if n >= target:
            break
        if n != last:
            last, still = n, time.perf_counter()
        elif time.perf_counter() - still > 3:
            break  # nothing more is coming (UDP losses)
        time.sleep(0.02)
    return store.count(db), time.perf_counter()


def bench_arr(tmp: Path, backend: str, url: str, args) -> list[list]:
    pki = make_pki(tmp)
    db = Database(url)
    migrate_registry(db)
    store.migrate(db)
    msgs = _messages(args.messages)
    # floor: the chain append of the same messages, batches of 500, in this process
    parsed = [store.Incoming(m, "udp", "127.0.0.1", fields.extract(m)) for m in msgs]
    t0 = time.perf_counter()
    for i in range(0, len(parsed), 500):
        store.append(db, parsed[i:i + 500])
    floor_chain = len(parsed) / (time.perf_counter() - t0)
    floor_insert = insert_floor(url)
    udp_port, tls_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "arr", "--data-dir", str(tmp / "arr"),
                             "--database-url", url, "--arr-udp-port", str(udp_port), "--arr-tls-port", str(tls_port),
                             "--tls-cert", pki["server_cert"], "--tls-key", pki["server_key"], "--tls-ca", pki["ca"]],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = []
    try:
        ctx = client_context(pki["client_cert"], pki["client_key"], pki["ca"])
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", tls_port), timeout=10)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        base = store.count(db)
        with ctx.wrap_socket(conn, server_hostname="127.0.0.1") as tls:
            t0 = time.perf_counter()
            for i in range(0, len(msgs), 200):
                tls.sendall(b"".join(syslog.frame(m) for m in msgs[i:i + 200]))
            got, t1 = _wait_count(db, base + len(msgs), args.seconds * 5)
        tls_rate = (got - base) / (t1 - t0)
        rows.append([backend, f"ARR stored over TLS ({got - base}/{len(msgs)})", f"{tls_rate:.0f}",
                     f"{floor_chain:.0f}", f"{tls_rate / floor_chain:.3f}", f"insert floor {floor_insert:.0f}/s"])
        base = store.count(db)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            t0 = time.perf_counter()
            for i in range(0, len(msgs), 100):
                for m in msgs[i:i + 100]:
                    s.sendto(m, ("127.0.0.1", udp_port))
                time.sleep(0.01)  # paced bursts
            got, t1 = _wait_count(db, base + len(msgs), args.seconds * 5)
        udp_rate = (got - base) / (t1 - t0)
        rows.append([backend, f"ARR stored over UDP ({got - base}/{len(msgs)})", f"{udp_rate:.0f}",
                     f"{floor_chain:.0f}", f"{udp_rate / floor_chain:.3f}", f"insert floor {floor_insert:.0f}/s"])
    finally:
        proc.terminate()
        proc.wait(30)
        db.dispose()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--seconds", type=float, default=6.0, help="time bound of each measurement")
    ap.add_argument("--max-requests", type=int, default=6000, help="count bound of each query measurement")
    ap.add_argument("--rounds", type=int, default=9, help="alternated on/off rounds (the median of the rounds' "
                    "pairs reported; single rounds stray by 20 to 60 points on a shared 2-core machine)")
    ap.add_argument("--messages", type=int, default=5000, help="syslog messages per ARR measurement")
    args = ap.parse_args()

    rows = []
    echo = EchoServer()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            sample = [encode_request(Actions.STORED_QUERY, echo.url, query_body(fresh_patient())) for _ in range(20)]
            echo_rate = run_load(echo.url, sample, 8, args.max_requests, args.seconds).rate
            for backend, url, handle in database_urls(tmp, args.backends.split(",")):
                try:
                    rows += bench_queries(tmp, backend, url, args, echo_rate)
                    print(rows[-3:], flush=True)
                    rows += bench_seals(tmp, backend, url, float(rows[-2][2]))
                    print(rows[-3:], flush=True)
                finally:
                    if handle is not None:
                        handle.close()
            for backend, url, handle in database_urls(tmp, args.backends.split(",")):
                try:
                    rows += bench_arr(tmp, backend, url, args)
                    print(rows[-2:], flush=True)
                finally:
                    if handle is not None:
                        handle.close()
    finally:
        echo.stop()
    print()
    print_table(["db", "measure", "per s", "floor per s", "ratio to floor", "note"], rows)


if __name__ == "__main__":
    main()
