"""The HTTP front, old and new side by side (issue 19 finding 4): throughput and slow clients.

For the echo floor (benchmarks.echo) under stock gunicorn gthread (the front before issue 19),
``xds serve``'s XdsWorker and granian (when installed), and for ITI-18 FindDocuments under
``xds serve --front gthread`` and ``xds serve`` (XdsWorker), alternated over ``--rounds``:

- requests per second with 8 keep-alive clients;
- 30 sequential requests (a new connection each) unloaded, then with 200 connections trickling a
  request head (one header line every 2 s), then (xds serve only, HTTPS with mutual TLS) with 100
  connections that never start their TLS handshake: how many were answered within 3 s, and p95.

Loopback only, every loop bounded. ``XDS_BENCH_WORKERS`` / ``XDS_BENCH_THREADS`` as the others.
"""
from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import tempfile
from pathlib import Path

import requests
from common import (
    ECHO_FRONTS,
    THREADS,
    WORKERS,
    EchoServer,
    print_table,
    run_load,
    start_xds,
)

from client.queries import adhoc_query_request
from tests.access.test_tls import _cert, _write
from tests.support.server import start_server
from tests.support.slow import SlowClients, latencies, p95
from xds.soap.client import encode_request
from xds.vocabulary import Actions, Status

ECHO_BODY = (b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><a/></s:Body></s:Envelope>',
             {"Content-Type": "application/soap+xml"})
PATIENT = "bench-1^^^&1.3.6.1.4.1.21367.2005.3.7&ISO"


def _port(url: str) -> int:
    return int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


def _slow_figures(url: str, send, ok, mode: str, count: int) -> str:
    slow = SlowClients(_port(url), count, mode, interval=2.0)
    with slow:
        got = latencies(send, ok, n=30, max_failures=30)
    answered = [x for x in got if x != float("inf")]
    return f"{len(answered)}/30, p95 {_ms(p95(got))}"


def _ms(seconds: float) -> str:
    return "-" if seconds == float("inf") else f"{seconds * 1000:.1f} ms"


def echo_round(front: str, seconds: float) -> list:
    server = EchoServer(front)
    try:
        load = run_load(server.url, [ECHO_BODY], 8, 10**6, seconds)
        def send():
            return requests.post(server.url, data=ECHO_BODY[0], headers=ECHO_BODY[1], timeout=3)
        def ok(r):
            return r.status_code == 200
        unloaded = p95(latencies(send, ok))
        slow = _slow_figures(server.url, send, ok, "headers", 200)
        return [f"echo, {front}", f"{load.rate:,.0f}/s", _ms(unloaded), slow, "n/a"]
    finally:
        server.stop()


def xds_round(front: str, tmp: Path, seconds: float, tls: dict[str, str]) -> list:
    row = [f"ITI-18 FindDocuments, xds serve {'(XdsWorker)' if front == 'xds' else '--front gthread'}"]
    server = start_xds(tmp, f"sqlite:///{tmp / ('f-' + front + '.db')}", "--no-patient-check", "--front", front)
    try:
        body, headers = encode_request(Actions.STORED_QUERY, server.registry_url, adhoc_query_request(
            "FindDocuments", {"$XDSDocumentEntryPatientId": [PATIENT], "$XDSDocumentEntryStatus": [Status.APPROVED]}))
        load = run_load(server.registry_url, [(body, headers)], 8, 10**6, seconds,
                        check=lambda c: b"ResponseStatusType:Success" in c)
        def send():
            return requests.post(server.registry_url, data=body, headers=headers, timeout=3)
        def ok(r):
            return r.status_code == 200 and b"ResponseStatusType:Success" in r.content
        row += [f"{load.rate:,.0f}/s" + (f" ({load.failures} failed)" if load.failures else ""),
                _ms(p95(latencies(send, ok))), _slow_figures(server.registry_url, send, ok, "headers", 200)]
    finally:
        server.stop()
    server = start_server(tmp / f"data-t-{front}", f"sqlite:///{tmp / ('t-' + front + '.db')}",
                          "--no-patient-check", "--front", front, "--tls-cert", tls["cert"], "--tls-key", tls["key"],
                          "--tls-ca", tls["ca"], "--require-client-cert", workers=WORKERS, threads=THREADS,
                          scheme="https", health={"verify": tls["ca"], "cert": (tls["client"], tls["client_key"])})
    try:
        def send_tls():
            return requests.post(server.registry_url, data=body, headers=headers, timeout=3, verify=tls["ca"],
                                 cert=(tls["client"], tls["client_key"]))
        row.append(_slow_figures(server.registry_url, send_tls, ok, "handshake", 100))
    finally:
        server.stop()
    return row


def certificates(tmp: Path) -> dict[str, str]:
    ca_key, ca_cert = _cert("Bench CA", ca=True)
    ca, _ = _write(tmp / "ca", ca_key, ca_cert)
    cert, key = _write(tmp / "server", *_cert("localhost", ca_key, ca_cert.subject, san=True))
    client, client_key = _write(tmp / "client", *_cert("bench-node", ca_key, ca_cert.subject))
    return {"ca": ca, "cert": cert, "key": key, "client": client, "client_key": client_key}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each throughput load")
    args = parser.parse_args()
    fronts = [f for f in ECHO_FRONTS if f != "granian" or importlib.util.find_spec("granian")]
    tmp = Path(tempfile.mkdtemp(prefix="bench-front-"))
    tls = certificates(tmp)
    rows = []
    try:
        for r in range(args.rounds):
            for front in fronts:
                rows.append(echo_round(front, args.seconds) + [str(r + 1)])
            for front in ("gthread", "xds"):
                rows.append(xds_round(front, tmp, args.seconds, tls) + [str(r + 1)])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{WORKERS} workers x {THREADS} threads, 8 clients; slow: answered within 3 s of 30 sequential requests")
    print_table(["front", "req/s", "p95 unloaded", "200 slow heads", "100 stalled TLS handshakes", "round"],
                sorted(rows, key=lambda row: (row[0], row[-1])))
    rate = {(row[0], row[-1]): float(row[1].split("/")[0].replace(",", "")) for row in rows}
    rounds = [str(r + 1) for r in range(args.rounds)]
    pairs = [("echo, xds", "echo, gthread"), ("echo, granian", "echo, gthread"),
             ("ITI-18 FindDocuments, xds serve (XdsWorker)", "ITI-18 FindDocuments, xds serve --front gthread")]
    for new, old in pairs:
        if (new, "1") in rate:
            gains = sorted((rate[(new, r)] / rate[(old, r)] - 1) * 100 for r in rounds if rate[(old, r)])
            print(f"{new} vs {old}: {statistics.median(gains):+.1f}% req/s (median of the rounds' pairs, "
                  f"rounds {gains[0]:+.1f}% to {gains[-1]:+.1f}%)")


if __name__ == "__main__":
    main()
