"""ITI-42 Register Document Set-b throughput over HTTP (issue: registry foundation).

    python benchmarks/register.py [--backends sqlite,postgresql] [--seconds 8]

For each back-end: 1 and 8 concurrent clients, one-document and ten-document submission sets.
Each figure is printed with its floors measured in the same run: the same client against a
minimal lxml SOAP echo (same gunicorn settings), and one committed INSERT round trip.
Target (2 cores, PostgreSQL, 8 clients): >= 200 one-document registrations per second.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import EchoServer, database_urls, insert_floor, print_table, run_load, start_xds

from registry.register import Registry
from storage.database import Database
from tests.support.metadata import draft, fresh_patient
from xds.soap.client import encode_request
from xds.vocabulary import Actions

SUCCESS = b"ResponseStatusType:Success"


def bodies(url: str, patients: list[str], count: int, documents: int) -> list[tuple[bytes, dict]]:
    return [encode_request(Actions.REGISTER, url, draft(patients[i % len(patients)], documents).request())
            for i in range(count)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--seconds", type=float, default=8.0, help="time bound of each measurement")
    ap.add_argument("--max-requests", type=int, default=3000, help="count bound of each measurement")
    args = ap.parse_args()

    echo = EchoServer()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            sample = bodies(echo.url, [fresh_patient()], 50, 1)
            echo_rate = {c: run_load(echo.url, sample, c, args.max_requests, args.seconds).rate for c in (1, 8)}
            for backend, url, handle in database_urls(tmp, args.backends.split(",")):
                server = start_xds(tmp, url)
                try:
                    db = Database(url)
                    registry = Registry(db)
                    patients = [fresh_patient() for _ in range(50)]
                    for p in patients:
                        registry.add_patient(p)
                    db.dispose()
                    floor_db = insert_floor(url)
                    for documents in (1, 10):
                        for clients in (1, 8):
                            n = args.max_requests if documents == 1 else args.max_requests // 4
                            load = run_load(server.registry_url, bodies(server.registry_url, patients, n, documents),
                                            clients, n, args.seconds, check=lambda content: SUCCESS in content)
                            rows.append([backend, documents, clients, load.requests, f"{load.rate:.0f}",
                                         f"{load.pct(50):.1f}", f"{load.pct(95):.1f}", load.failures,
                                         f"{echo_rate[clients]:.0f}", f"{load.rate / echo_rate[clients]:.3f}",
                                         f"{floor_db:.0f}", f"{load.rate / floor_db:.3f}"])
                            print(rows[-1], flush=True)
                finally:
                    server.stop()
                    if handle is not None:
                        handle.close()
    finally:
        echo.stop()
    print()
    print_table(["db", "docs/set", "clients", "requests", "reg/s", "p50 ms", "p95 ms", "failed",
                 "echo req/s", "ratio to echo", "insert/s", "ratio to insert"], rows)


if __name__ == "__main__":
    main()
