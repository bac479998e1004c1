"""Slow and hostile clients for the front's tests and benchmarks, on loopback only.

:class:`SlowClients` holds ``count`` connections that either trickle a request head (one header
line every ``interval`` seconds, the "slowloris" of issue 19 finding 4) or open TCP and never
start the TLS handshake. A connection the server closes is opened again, as an attacker would.
Sources are spread over 127.0.0.2 and up (Linux answers the whole 127.0.0.0/8 on ``lo``), 20 per
address, so that a per-client cap does not hide the test's own clients.
"""
from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Callable

import requests

PER_SOURCE = 20


class SlowClients:
    def __init__(self, port: int, count: int, mode: str = "headers", interval: float = 2.0,
                 first_source: int = 2) -> None:
        assert mode in ("headers", "handshake")
        self.port = port
        self.count = count
        self.mode = mode
        self.interval = interval
        self.sources = [f"127.0.0.{first_source + i // PER_SOURCE}" for i in range(count)]
        self.socks: list[socket.socket | None] = [None] * count
        self.connects = 0
        self.closed_by_server = 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, i: int) -> None:
        s = socket.socket()
        try:
            s.bind((self.sources[i], 0))
            s.settimeout(2)
            s.connect(("127.0.0.1", self.port))
            if self.mode == "headers":
                s.sendall(b"POST /registry HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            s.setblocking(False)
            self.socks[i] = s
            self.connects += 1
        except OSError:
            s.close()
            self.socks[i] = None

    def _run(self) -> None:
        for i in range(self.count):
            self._open(i)
        line = 0
        while not self.stop_event.wait(self.interval):
            line += 1
            sel = selectors.DefaultSelector()
            for i, s in enumerate(self.socks):
                if s is not None:
                    sel.register(s, selectors.EVENT_READ, i)
            closed = {key.data for key, _ in sel.select(0)}
            sel.close()
            for i in range(self.count):
                s = self.socks[i]
                if s is not None and i not in closed and self.mode == "headers":
                    try:
                        s.send(f"X-Slow-{line}: {'a' * 20}\r\n".encode())
                    except OSError:
                        closed.add(i)
                if s is None or i in closed:
                    if s is not None:
                        self.closed_by_server += 1
                        s.close()
                    if not self.stop_event.is_set():
                        self._open(i)

    def __enter__(self) -> SlowClients:
        self.thread.start()
        deadline = time.monotonic() + 10
        while self.connects < self.count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        self.thread.join(10)
        for s in self.socks:
            if s is not None:
                s.close()


def latencies(send: Callable[[], requests.Response], ok: Callable[[requests.Response], bool], n: int = 30,
              max_failures: int = 3) -> list[float]:
    """Seconds of ``n`` sequential requests; a failed one counts as infinitely slow (and after
    ``max_failures`` the rest are not tried: the answer is known)."""
    out: list[float] = []
    failures = 0
    for _ in range(n):
        t0 = time.perf_counter()
        try:
            good = ok(send())
        except requests.RequestException:
            good = False
        out.append(time.perf_counter() - t0 if good else float("inf"))
        failures += not good
        if failures >= max_failures:
            out += [float("inf")] * (n - len(out))
            break
    return out


def p95(values: list[float]) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(0.95 * len(s)))]


__all__ = ["SlowClients", "latencies", "p95"]
