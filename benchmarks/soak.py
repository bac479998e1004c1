"""A bounded mixed-load soak of ``xds serve`` (issue 19): errors, latency and memory minute by minute.

    python benchmarks/soak.py [--backend postgresql] [--minutes 30] [--load 0.8] [--clients 8]

1. Capacity: the mix below, unpaced, 8 clients, for ``--capacity-seconds`` (requests/s).
2. Soak: the same mix paced at ``--load`` x capacity for ``--minutes``, every request checked.
   Each minute prints: requests, errors, p50/p95/p99 (ms), the RSS of the master, of each worker
   and of the audit process (MB), and the audit outbox backlog. A steady soak has no errors, flat
   RSS and a backlog that stays small.

The mix: 60% ITI-18 FindDocuments (LeafClass) over 40 seeded patients, 20% ITI-43 of a 50 KB
document, 20% ITI-41 of a 50 KB CDA (MTOM), auditing on, open mode. Loopback only; bounded in time
and count.
"""
from __future__ import annotations

import argparse
import http.client
import itertools
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from common import database_urls, start_xds

from audit import store
from benchmarks.audit import OK, query_bodies, seed
from storage.database import Database
from tests.repository.support import PATIENT, REPOSITORY_UID, provide_request, retrieve_request, submission
from tests.support.server import child_processes


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _children(pid: int) -> list[tuple[int, str]]:
    return [(child, "audit" if b"audit.daemon" in cmdline else "worker") for child, cmdline in child_processes(pid)]


class Mix:
    """The requests of the soak, by index: 3 queries, 1 retrieve, 1 provide in every 5."""

    def __init__(self, server, patients: list[str]) -> None:
        self.queries = query_bodies(server.registry_url, patients)
        stored = submission([b"<ClinicalDocument>" + b"x" * 50_000 + b"</ClinicalDocument>"])
        body, ct = provide_request(stored)
        conn = http.client.HTTPConnection(urlsplit(server.base_url).hostname, urlsplit(server.base_url).port)
        conn.request("POST", "/repository", body=body, headers={"Content-Type": ct})
        assert OK in conn.getresponse().read()
        conn.close()
        rbody, rct = retrieve_request([(REPOSITORY_UID, stored.docs[0].unique_id)])
        self.retrieve = (rbody, {"Content-Type": rct})
        self.registry = urlsplit(server.registry_url).path
        self.repository = urlsplit(server.repository_url).path
        self.counter = itertools.count()
        self.lock = threading.Lock()

    def next(self) -> tuple[str, bytes, dict]:
        with self.lock:
            i = next(self.counter)
        kind = i % 5
        if kind < 3:
            body, headers = self.queries[i % len(self.queries)]
            return self.registry, body, headers
        if kind == 3:
            return self.repository, *self.retrieve
        fresh = submission([b"<ClinicalDocument>" + str(i).encode() + b"y" * 50_000 + b"</ClinicalDocument>"])
        body, ct = provide_request(fresh)
        return self.repository, body, {"Content-Type": ct}


class Window:
    """What happened in one minute."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self.lock = threading.Lock()

    def add(self, seconds: float, ok: bool) -> None:
        with self.lock:
            self.latencies.append(seconds)
            if not ok:
                self.errors += 1

    def pct(self, p: float) -> float:
        s = sorted(self.latencies)
        return s[min(len(s) - 1, int(p / 100 * len(s)))] * 1000 if s else float("nan")


def drive(server, mix: Mix, clients: int, seconds: float, rate: float | None, on_result) -> int:
    """Send the mix from ``clients`` threads for ``seconds``; ``rate``: requests/s in all (paced,
    each client on its own schedule), None: as fast as answered. Returns the requests sent."""
    parts = urlsplit(server.base_url)
    deadline = time.monotonic() + seconds
    sent = [0]
    lock = threading.Lock()

    def client(k: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        interval = clients / rate if rate else 0.0
        due = time.monotonic() + k * interval / clients
        try:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    return
                if interval and due > now:
                    time.sleep(min(due - now, deadline - now))
                    continue
                due += interval
                path, body, headers = mix.next()
                t0 = time.perf_counter()
                try:
                    conn.request("POST", path, body=body, headers=headers)
                    resp = conn.getresponse()
                    content = resp.read()
                    ok = resp.status == 200 and OK in content[:8192]
                except (OSError, http.client.HTTPException):
                    ok = False
                    conn.close()
                    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
                on_result(time.perf_counter() - t0, ok)
                with lock:
                    sent[0] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sent[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="postgresql")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--load", type=float, default=0.8, help="share of the measured capacity")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--capacity-seconds", type=float, default=30.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        for _backend, url, handle in database_urls(tmp_path, [args.backend]):
            patients = seed(url)
            server = start_xds(tmp_path, url)
            db = Database(url)
            try:
                server.add_patient(PATIENT)
                mix = Mix(server, patients)
                warm = Window()
                drive(server, mix, args.clients, 5, None, warm.add)
                cap = Window()
                n = drive(server, mix, args.clients, args.capacity_seconds, None, cap.add)
                capacity = n / args.capacity_seconds
                target = args.load * capacity
                print(f"# capacity {capacity:.0f} requests/s ({cap.errors} errors); soak at {target:.0f}/s "
                      f"for {args.minutes:g} min, {args.clients} clients, {args.backend}", flush=True)
                print("minute  requests  errors  p50 ms  p95 ms  p99 ms  master MB  workers MB  audit MB  backlog",
                      flush=True)
                totals = Window()
                for minute in range(1, int(args.minutes) + 1):
                    window = Window()

                    def both(seconds: float, ok: bool, window: Window = window, totals: Window = totals) -> None:
                        window.add(seconds, ok)
                        totals.add(seconds, ok)

                    drive(server, mix, args.clients, 60.0, target, both)
                    kids = _children(server.process.pid)
                    workers = " ".join(f"{_rss_mb(p):.0f}" for p, kind in kids if kind == "worker")
                    audit_mb = sum(_rss_mb(p) for p, kind in kids if kind == "audit")
                    backlog, _ = store.delivery_lag(db)
                    print(f"{minute:6d}  {len(window.latencies):8d}  {window.errors:6d}  {window.pct(50):6.1f}  "
                          f"{window.pct(95):6.1f}  {window.pct(99):6.1f}  {_rss_mb(server.process.pid):9.0f}  "
                          f"{workers:>10}  {audit_mb:8.0f}  {backlog:7d}", flush=True)
                print(f"# total {len(totals.latencies)} requests, {totals.errors} errors, p50 {totals.pct(50):.1f} "
                      f"p95 {totals.pct(95):.1f} p99 {totals.pct(99):.1f} ms; "
                      f"{len(totals.latencies) / (60 * max(1, int(args.minutes))):.0f} requests/s", flush=True)
            finally:
                code = server.stop()
                db.dispose()
                if handle is not None:
                    handle.close()
                print(f"# xds serve exited with {code}", flush=True)


if __name__ == "__main__":
    main()
