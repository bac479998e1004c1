"""The built-in Audit Record Repository: syslog over UDP (RFC 5426) and TLS (RFC 5425).

ITI TF-2 3.20.7 (Audit Record Repository): accept any RFC 5424 message from any secure node;
keep it. What this listener does with each input:

* an RFC 5424 message: stored (raw bytes kept), with its indexed fields when MSG is a DICOM
  AuditMessage; a truncated one is repaired for indexing (status ``repaired``); a MSG that is not
  XML or not UTF-8 is stored unindexed (status ``not-audit`` / ``invalid``);
* not syslog at all (no ``<PRI>VERSION`` header): rejected, counted, not stored;
* over TLS a frame that is not ``MSG-LEN SP`` or longer than :data:`audit.syslog.MAX_FRAME`:
  the connection is closed (octet counting cannot resynchronise), the listener goes on;
* a UDP flood: datagrams wait in a bounded queue; beyond it they are dropped and counted
  (UDP is lossy by definition, RFC 5426 section 3.6), never blocking the receiver.

One store thread writes batches to the hash chain (:mod:`audit.store`).
"""
from __future__ import annotations

import collections
import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from audit import fields, store, syslog
from audit.seal import Sealer

log = logging.getLogger(__name__)


@dataclass
class Stats:
    received: int = 0
    stored: int = 0
    rejected: int = 0
    dropped: int = 0
    connections: int = 0


def server_context(cert: str, key: str = "", ca: str = "") -> ssl.SSLContext:
    """TLS 1.2+ server; with a CA, client certificates are required (ITI-19 secure node)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key or None)
    if ca:
        ctx.load_verify_locations(ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class ArrServer:
    """UDP and/or TLS listeners feeding one store thread."""

    def __init__(self, database, host: str = "127.0.0.1", udp_port: int | None = None,
                 tls_port: int | None = None, tls_context: ssl.SSLContext | None = None,
                 max_queue: int = 20000, max_connections: int = 64, batch: int = 500,
                 sealer: Sealer | None = None) -> None:
        self.database = database
        self.sealer = sealer
        self.host = host
        self.udp_port = udp_port
        self.tls_port = tls_port
        self.tls_context = tls_context
        self.max_queue = max_queue
        self.batch = batch
        self.stats = Stats()
        self._queue: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._slots = threading.BoundedSemaphore(max_connections)
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None

    # -- life cycle -----------------------------------------------------------------------------
    def start(self) -> ArrServer:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        if self.udp_port is not None:
            self._udp = socket.socket(family, socket.SOCK_DGRAM)
            self._udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            self._udp.bind((self.host, self.udp_port))
            self._udp.settimeout(0.2)
            self.udp_port = self._udp.getsockname()[1]
            self._spawn(self._udp_loop, "arr-udp")
        if self.tls_port is not None:
            if self.tls_context is None:
                raise ValueError("the ARR's TLS listener needs a server certificate (--tls-cert/--tls-key)")
            self._tcp = socket.socket(family, socket.SOCK_STREAM)
            self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._tcp.bind((self.host, self.tls_port))
            self._tcp.listen(128)
            self._tcp.settimeout(0.2)
            self.tls_port = self._tcp.getsockname()[1]
            self._spawn(self._accept_loop, "arr-tls")
        self._store_thread = self._spawn(self._store_loop, "arr-store")
        return self

    def _spawn(self, target, name: str) -> threading.Thread:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)
        return t

    def stop(self, timeout: float = 10.0) -> None:
        """Stop listening, store what was received, return."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)
        for s in (self._udp, self._tcp):
            if s is not None:
                s.close()

    def wait_stored(self, n: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stats.stored + self.stats.rejected >= n:
                return True
            time.sleep(0.01)
        return False

    # -- intake ---------------------------------------------------------------------------------
    def _offer(self, raw: bytes, transport: str, peer: str | None, block: bool) -> bool:
        with self._cond:
            while len(self._queue) >= self.max_queue:
                if not block or self._stop.is_set():
                    self.stats.dropped += 1
                    return False
                self._cond.wait(0.1)
            self.stats.received += 1
            self._queue.append((raw, transport, peer, time.time()))
            self._cond.notify_all()
        return True

    def _udp_loop(self) -> None:
        sock = self._udp
        assert sock is not None, "started with the UDP listener"
        while not self._stop.is_set():
            try:
                data, addr = sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            if data:
                self._offer(data, "udp", addr[0], block=False)

    def _accept_loop(self) -> None:
        listener = self._tcp
        assert listener is not None, "started with the TLS listener"
        while not self._stop.is_set():
            try:
                conn, addr = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            if not self._slots.acquire(blocking=False):
                conn.close()
                self.stats.rejected += 1
                continue
            threading.Thread(target=self._connection, args=(conn, addr[0]), name="arr-tls-conn",
                             daemon=True).start()

    def _connection(self, conn: socket.socket, peer: str) -> None:
        self.stats.connections += 1
        try:
            conn.settimeout(30)
            assert self.tls_context is not None, "the TLS listener starts only with a context"
            tls = self.tls_context.wrap_socket(conn, server_side=True)
            tls.settimeout(300)
            reader = syslog.FrameReader(tls)
            while not self._stop.is_set():
                message = reader.next()
                if message is None:
                    break
                self._offer(message, "tls", peer, block=True)
        except syslog.SyslogError as exc:
            self.stats.rejected += 1
            log.warning("ARR: closing TLS connection from %s: %s", peer, exc)
        except (OSError, ssl.SSLError) as exc:
            log.info("ARR: TLS connection from %s ended: %s", peer, exc)
        finally:
            try:
                conn.close()
            except OSError:
                pass
            self._slots.release()

    # -- store ----------------------------------------------------------------------------------
    def _store_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait(0.2)
                if not self._queue and self._stop.is_set():
                    return
                items = [self._queue.popleft() for _ in range(min(self.batch, len(self._queue)))]
                self._cond.notify_all()
            incoming = []
            for raw, transport, peer, at in items:
                try:
                    f = fields.extract(raw)
                except syslog.SyslogError as exc:
                    self.stats.rejected += 1
                    log.info("ARR: rejected a message from %s over %s: %s", peer, transport, exc)
                    continue
                incoming.append(store.Incoming(raw, transport, peer, f, at))
            while incoming:
                try:
                    store.append(self.database, incoming, self.sealer)
                    self.stats.stored += len(incoming)
                    break
                except Exception as exc:  # noqa: BLE001 - database down: keep the batch, retry
                    log.warning("ARR: could not store %d records (%s), retrying", len(incoming), exc)
                    if self._stop.wait(0.5):
                        log.error("ARR: stopping with %d unstored records", len(incoming))
                        return
