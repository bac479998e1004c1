"""Shared pieces of the benchmark scripts: servers, a bounded load generator, floors.

Every figure is printed next to its floor measured in the same run (DESIGN.md: absolute numbers
drift on shared machines). Load goes to 127.0.0.1 only and every loop is bounded in count and time.
"""
from __future__ import annotations

import http.client
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.databases import PG_BASE, PostgresSchema, postgres_available  # noqa: E402
from tests.support.server import LiveServer, free_port, start_server  # noqa: E402

WORKERS = int(os.environ.get("XDS_BENCH_WORKERS", "2"))
THREADS = int(os.environ.get("XDS_BENCH_THREADS", "8"))


@dataclass
class Load:
    requests: int
    seconds: float
    latencies: list[float]
    failures: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        s = sorted(self.latencies)
        return s[min(len(s) - 1, int(p / 100 * len(s)))] * 1000


def run_load(url: str, bodies: Sequence[tuple[bytes, dict]] | Callable[[int], tuple[bytes, dict]], clients: int,
             max_requests: int, max_seconds: float, check: Callable[[bytes], bool] | None = None) -> Load:
    """POST bodies from ``clients`` threads until ``max_requests`` or ``max_seconds``."""
    lock = threading.Lock()
    counter = iter(range(max_requests))
    latencies: list[float] = []
    failures = [0]
    deadline = time.monotonic() + max_seconds

    def next_body():
        with lock:
            i = next(counter, None)
        if i is None:
            return None
        return bodies(i) if callable(bodies) else bodies[i % len(bodies)]

    parts = urlsplit(url)

    def worker():
        # http.client on a kept-alive connection: the cheapest Python client, so that the
        # load generator takes as little as possible of the two cores from the server.
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        try:
            while time.monotonic() < deadline:
                item = next_body()
                if item is None:
                    return
                data, headers = item
                t0 = time.perf_counter()
                conn.request("POST", parts.path or "/", body=data, headers=headers)
                resp = conn.getresponse()
                content = resp.read()
                dt = time.perf_counter() - t0
                ok = resp.status == 200 and (check is None or check(content))
                with lock:
                    latencies.append(dt)
                    if not ok:
                        failures[0] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return Load(len(latencies), time.perf_counter() - t0, latencies, failures[0])


ECHO_FRONTS = ("gthread", "xds", "granian")
"""Stock gunicorn gthread (the front before issue 19), ``xds serve``'s worker, granian (a Rust
HTTP front for WSGI, when installed: it is not a dependency)."""


class EchoServer:
    """benchmarks.echo under ``front`` with ``xds serve``'s workers and threads (default: the
    front ``xds serve`` runs)."""

    def __init__(self, front: str = "xds") -> None:
        self.port = free_port()
        self.front = front
        if front == "granian":
            cmd = [sys.executable, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port",
                   str(self.port), "--workers", str(WORKERS), "--blocking-threads", str(THREADS), "--no-log",
                   "benchmarks.echo:app"]
        else:
            cmd = [sys.executable, "-m", "benchmarks.echo", "--front", front, "--port", str(self.port),
                   "--workers", str(WORKERS), "--threads", str(THREADS)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT)
        self.url = f"http://127.0.0.1:{self.port}/"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.post(self.url, data=b"<a/>", timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError(f"echo server ({front}) did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def database_urls(tmp: Path, backends: Sequence[str]) -> list[tuple[str, str, object | None]]:
    out = []
    for b in backends:
        if b == "sqlite":
            out.append((b, f"sqlite:///{tmp / ('bench-' + uuid.uuid4().hex[:6] + '.db')}", None))
        else:
            reason = postgres_available()
            if reason:
                print(f"# skipping PostgreSQL: {reason}")
                continue
            schema = PostgresSchema()
            out.append((b, schema.url, schema))
    return out


def insert_floor(url: str, n: int = 300) -> float:
    """Round trips per second of one committed single-row INSERT: the database's own floor."""
    from sqlalchemy import Column, Integer, MetaData, String, Table

    from storage.database import Database
    db = Database(url)
    md = MetaData()
    table = Table("bench_floor_" + uuid.uuid4().hex[:6], md, Column("id", Integer, primary_key=True),
                  Column("v", String(64)))
    md.create_all(db.writer)
    t0 = time.perf_counter()
    for i in range(n):
        with db.write() as conn:
            conn.execute(table.insert().values(v=str(i)))
    rate = n / (time.perf_counter() - t0)
    md.drop_all(db.writer)
    db.dispose()
    return rate


def start_xds(tmp: Path, url: str, *extra: str, env: dict | None = None) -> LiveServer:
    return start_server(tmp / ("data-" + uuid.uuid4().hex[:6]), url, *extra, workers=WORKERS, threads=THREADS,
                        env=env)


def _slowdowns(slow: Sequence[float], fast: Sequence[float]) -> list[float]:
    """Round by round, how much slower ``slow`` was than ``fast`` measured next to it, in percent."""
    return [(1 - s / f) * 100 for s, f in zip(slow, fast) if f]


def spread(slow: Sequence[float], fast: Sequence[float]) -> str:
    """The range of the rounds' slowdowns (:func:`_slowdowns`): how far single rounds strayed
    from the headline, which on a shared machine is often more than the difference measured."""
    each = sorted(_slowdowns(slow, fast))
    if not each:
        return "no rounds"
    return f"rounds {each[0]:+.1f}% to {each[-1]:+.1f}%"


def paired_slowdown(slow: Sequence[float], fast: Sequence[float]) -> float:
    """How much slower ``slow`` is than ``fast``, in percent: the median over rounds of each round's
    pair (measured next to each other).

    A pair shares the machine's state of the moment; on a shared VM whose speed swings by 20 to 60
    points from one round to the next, the median of the pairs' ratios is steadier than the ratio
    of two medians taken over different moments."""
    return statistics.median(_slowdowns(slow, fast))


def print_table(headers: list[str], rows: list[list]) -> None:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(str(h).ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


__all__ = ["Load", "run_load", "EchoServer", "ECHO_FRONTS", "database_urls", "insert_floor", "start_xds", "print_table",
           "paired_slowdown", "spread", "PG_BASE", "statistics"]
