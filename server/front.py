"""The HTTP front of ``xds serve``: gunicorn's threaded worker, hardened against slow clients.

Why not stock gthread (issue 19, finding 4): a gthread worker hands a connection to one of its
threads as soon as the first byte arrives, and that thread then blocks reading the rest of the
request head and the TLS handshake. Sixteen clients sending one header line every few seconds
held all 2 x 8 threads and the service answered nothing until they left. Why not granian
(benchmarks/README.md, "The HTTP front"): its WSGI environ carries no client certificate, so the
mutual-TLS subject (ITI TF-2 3.19 ATNA secure node, :func:`server.tls.peer_subject`) could not
reach the transaction.

What this worker changes, all in the worker's event loop, so that no thread waits on a client:

- the TLS handshake runs non-blocking in the loop and is cut after ``handshake_timeout``;
- the request head is read non-blocking in the loop up to its blank line and must be complete
  within ``header_timeout`` (then ``408``), at most ``max_head`` bytes (then ``431``); only a
  complete head is given to a thread;
- a thread reading the body or writing the response waits at most ``body_timeout`` for the
  client between two reads or writes, and a body must arrive at ``min_body_rate`` bytes per
  second on average, after a grace of ``header_timeout`` seconds: else the connection is dropped;
- one client address holds at most ``max_connections_per_client`` connections per worker
  process; further ones are answered ``503`` (plain HTTP) or closed (TLS) at once;
- graceful stop (SIGTERM): in-flight requests finish; connections the kernel queued meanwhile are
  accepted before the listening socket is closed and answered ``503 Retry-After`` with
  ``Connection: close`` rather than reset; every refusal closes its connection by half-closing
  and reading what the client still sends (RFC 9112 9.6), so no response is lost to a reset;
- a worker whose master died (SIGKILL) is told at once (``PR_SET_PDEATHSIG``), closes its
  listening socket so that a new ``xds serve`` can bind the port, finishes within
  ``ORPHAN_GRACE`` seconds and exits.
"""
from __future__ import annotations

import ctypes
import errno
import os
import selectors
import signal
import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from gunicorn import http
from gunicorn import sock as gsock
from gunicorn.app.base import BaseApplication
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

ORPHAN_GRACE = 3.0
"""Seconds an orphaned worker gives its in-flight requests once its master is gone."""

LINGER = 2.0
"""Seconds a refused connection is read from (and discarded) before it is closed."""

PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class FrontLimits:
    """How long and how much one client may hold a worker (``xds serve`` options)."""
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    min_body_rate: int = 1024
    handshake_timeout: float = 10.0
    max_connections_per_client: int = 64
    max_head: int = 64 * 1024


def _reply(status: str, extra: str = "") -> bytes:
    body = status.split(" ", 1)[1].encode() + b"\n"
    return (f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n{extra}"
            "Connection: close\r\n\r\n").encode() + body


BUSY = _reply("503 Service Unavailable", "Retry-After: 1\r\n")
TOO_SLOW = _reply("408 Request Timeout")
HEAD_TOO_LARGE = _reply("431 Request Header Fields Too Large")


class FrontApplication(BaseApplication):
    """A gunicorn application served by :class:`XdsWorker` with ``limits``."""

    def __init__(self, wsgi: Callable, options: dict, limits: FrontLimits) -> None:
        self.wsgi_app = wsgi
        self.options = options
        self.limits = limits
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.wsgi_app


class PacedUnreader(SocketUnreader):
    """gunicorn's socket reader with a minimum average rate for each request (slow-body clients):
    ``start`` at each request; a read may wait until the bytes received so far are late, and at
    most ``body_timeout``; the socket's timeout is ``body_timeout`` again after it (response writes)."""

    def __init__(self, sock, limits: FrontLimits) -> None:
        super().__init__(sock)
        self.limits = limits
        self.started = time.monotonic()
        self.received = 0

    def start(self) -> None:
        self.started = time.monotonic()
        self.received = 0

    def chunk(self, size_hint=None) -> bytes:
        due = self.started + self.limits.header_timeout + self.received / self.limits.min_body_rate
        wait = min(self.limits.body_timeout, due - time.monotonic())
        if wait <= 0:
            raise TimeoutError(f"request body slower than {self.limits.min_body_rate} bytes/s")
        self.sock.settimeout(wait)
        try:
            data: bytes = super().chunk(size_hint)
        finally:
            self.sock.settimeout(self.limits.body_timeout)
        self.received += len(data)
        return data


class Conn(TConn):
    """A client connection, its head being read by the loop until it goes to a thread."""

    def __init__(self, cfg, sock, client, server, forget: Callable[[Conn], None], counted: bool,
                 limits: FrontLimits) -> None:
        super().__init__(cfg, sock, client, server)
        self.limits = limits
        self.forget = forget
        self.counted = counted
        self.closed = False
        self.handshaking = False
        self.head = bytearray()
        self.deadline = 0.0
        self.late = False
        self.initialized: bool = False
        self.registered = False

    @property
    def address(self) -> str:
        return self.client[0] if isinstance(self.client, tuple) and self.client else ""

    def init(self) -> None:
        if not self.initialized:
            self.initialized = True
            self.parser = http.get_parser(self.cfg, self.sock, self.client)
            self.parser.unreader = PacedUnreader(self.sock, self.limits)

    def close(self, graceful: bool = False) -> None:
        if not self.closed:
            self.closed = True
            self.forget(self)
        super().close(graceful)


class XdsWorker(ThreadWorker):
    """gthread with the head, the handshake and refusals in the event loop (module docstring)."""

    def init_process(self) -> None:
        self.limits: FrontLimits = self.app.limits
        self.per_client: Counter[str] = Counter()
        self.conns: set[Conn] = set()
        self.heading: set[Conn] = set()
        self.lingering: dict[Conn, float] = {}
        self.tls = gsock.ssl_context(self.cfg) if self.cfg.is_ssl else None
        self.next_expiry = 0.0
        _die_with_parent()
        super().init_process()

    # -- accounting --------------------------------------------------------------------------

    def _forget(self, conn: Conn) -> None:
        self.conns.discard(conn)
        self.heading.discard(conn)
        self.lingering.pop(conn, None)
        if conn.counted:
            self.nr_conns -= 1
            self.per_client[conn.address] -= 1
            if self.per_client[conn.address] <= 0:
                del self.per_client[conn.address]

    def _unregister(self, conn: Conn) -> None:
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    # -- accepting ---------------------------------------------------------------------------

    def accept(self, listener) -> bool:
        """Accept one connection if one is queued (True), and start reading its head."""
        try:
            client, address = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                return exc.errno == errno.ECONNABORTED
            raise
        ip = address[0] if isinstance(address, tuple) else ""
        counted = self.per_client[ip] < self.limits.max_connections_per_client
        conn = Conn(self.cfg, client, address, listener.getsockname(), self._forget, counted, self.limits)
        if counted:
            self.nr_conns += 1
            self.per_client[ip] += 1
        self.conns.add(conn)
        conn.late = not self.alive
        if not counted:
            self._linger(conn, None if self.tls else BUSY)
            return True
        now = time.monotonic()
        if self.tls is not None:
            conn.sock = self.tls.wrap_socket(client, server_side=True, do_handshake_on_connect=False,
                                             suppress_ragged_eofs=self.cfg.suppress_ragged_eofs)
            conn.handshaking = True
            conn.deadline = now + self.limits.handshake_timeout
        else:
            conn.deadline = now + self.limits.header_timeout
        self._read_head(conn)
        return True

    def _read_head(self, conn: Conn) -> None:
        """Read what is there at once (a kept-alive request usually is whole): the poller is
        asked to wait only for a head that is not complete yet."""
        conn.sock.setblocking(False)
        self.heading.add(conn)
        self._on_head_event(conn)

    def _wait(self, conn: Conn, events: int) -> None:
        if conn.registered:
            self.poller.modify(conn.sock, events, partial(self._on_head_event, conn))
        else:
            self.poller.register(conn.sock, events, partial(self._on_head_event, conn))
            conn.registered = True

    def _on_head_event(self, conn: Conn, _fileobj=None) -> None:
        if conn not in self.heading:
            return
        try:
            if conn.handshaking:
                conn.sock.do_handshake()
                conn.handshaking = False
                conn.deadline = time.monotonic() + self.limits.header_timeout
                if conn.registered:
                    self._wait(conn, selectors.EVENT_READ)
            while True:
                data = conn.sock.recv(16384)
                if not data:
                    self._drop(conn)
                    return
                conn.head += data
                if b"\r\n\r\n" in conn.head:
                    self._dispatch(conn)
                    return
                if len(conn.head) > self.limits.max_head:
                    self._stop_heading(conn)
                    self._linger(conn, HEAD_TOO_LARGE)
                    return
        except (ssl.SSLWantReadError, BlockingIOError):
            self._wait(conn, selectors.EVENT_READ)
        except ssl.SSLWantWriteError:
            self._wait(conn, selectors.EVENT_WRITE)
        except (ssl.SSLError, OSError, ValueError):
            self._drop(conn)

    def _stop_heading(self, conn: Conn) -> None:
        self.heading.discard(conn)
        if conn.registered:
            self._unregister(conn)
            conn.registered = False

    def _drop(self, conn: Conn) -> None:
        self._stop_heading(conn)
        conn.close()

    def _dispatch(self, conn: Conn) -> None:
        self._stop_heading(conn)
        head = bytes(conn.head)
        conn.head.clear()
        if conn.late:
            self._linger(conn, BUSY)
            return
        conn.init()
        conn.parser.unreader.unread(head)
        conn.data_ready = True
        self.enqueue_req(conn)

    def on_client_socket_readable(self, conn, client) -> None:
        """A kept-alive connection's next request is read by the loop like a new one's."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        conn.deadline = time.monotonic() + self.limits.header_timeout
        if not self.alive:
            conn.deadline = min(conn.deadline, time.monotonic() + STOP_KEEPALIVE_LINGER)
        self._read_head(conn)

    # -- refusing ----------------------------------------------------------------------------

    def _linger(self, conn: Conn, reply: bytes | None) -> None:
        """Send ``reply`` if any, half-close, and read until the client closes (at most LINGER s)."""
        sock = conn.sock
        try:
            sock.setblocking(False)
            if reply is not None and not conn.handshaking:
                sock.send(reply)
            sock.shutdown(socket.SHUT_WR)
        except (ssl.SSLError, OSError, ValueError):
            pass
        self.lingering[conn] = time.monotonic() + LINGER
        try:
            self.poller.register(sock, selectors.EVENT_READ, partial(self._on_linger_event, conn))
        except (KeyError, ValueError, OSError):
            conn.close()

    def _on_linger_event(self, conn: Conn, _fileobj=None) -> None:
        try:
            for _ in range(16):
                if not conn.sock.recv(65536):
                    break
            else:
                return
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return
        except (ssl.SSLError, OSError, ValueError):
            pass
        self._unregister(conn)
        conn.close()

    def _expire(self, force: bool = False) -> None:
        now = time.monotonic()
        if now < self.next_expiry and not force:
            return
        self.next_expiry = now + 0.25
        for conn in [c for c in self.heading if c.deadline <= now]:
            self._stop_heading(conn)
            if conn.handshaking:
                conn.close()
            else:
                self._linger(conn, TOO_SLOW)
        for conn in [c for c, deadline in self.lingering.items() if deadline <= now]:
            self._unregister(conn)
            conn.close()

    # -- serving -----------------------------------------------------------------------------

    def handle(self, conn):
        """One request on a connection whose head is buffered: the body and the response wait
        at most ``body_timeout`` for the client at a time."""
        req = None
        try:
            conn.sock.settimeout(self.limits.body_timeout)
            conn.parser.unreader.start()
            req = next(conn.parser)
            if not req:
                return False
            return self._keepalive_after(conn, self.handle_request(req, conn))
        except (TimeoutError, http.errors.NoMoreData, StopIteration) as exc:
            self.log.debug("closing %s: %r", conn.client, exc)
        except ssl.SSLError as exc:
            if exc.args[0] != ssl.SSL_ERROR_EOF:
                self.handle_error(req, conn.sock, conn.client, exc)
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.exception("Socket error processing request.")
        except Exception as exc:  # noqa: BLE001 - gunicorn answers 400/500 for parser and app errors
            self.handle_error(req, conn.sock, conn.client, exc)
        return False

    def finish_request(self, conn, fs) -> None:
        try:
            keep = fs.result() if not fs.cancelled() else False
            if not keep:
                # Half-close and read what the client still sends in the loop (gthread's
                # close_graceful would block the loop up to 2 s per connection).
                self._linger(conn, None)
                return
            pending = conn.parser.unreader.take_buffered()
            if pending:
                # Bytes of the next request read ahead with the body: its head is completed by
                # the loop like any other.
                conn.head += pending
                conn.deadline = time.monotonic() + self.limits.header_timeout
                if b"\r\n\r\n" in pending:
                    self._dispatch(conn)
                else:
                    self._read_head(conn)
                return
            conn.sock.setblocking(False)
            conn.set_timeout()
            if not self.alive:
                conn.timeout = min(conn.timeout, time.monotonic() + STOP_KEEPALIVE_LINGER)
            self.keepalived_conns.append(conn)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))
        except Exception:  # noqa: BLE001 - a broken connection must not stop the loop
            self.log.debug("dropping %s after its request", conn.client, exc_info=True)
            conn.close()

    def murder_keepalived(self, force: bool = False) -> None:
        now = time.monotonic()
        while self.keepalived_conns:
            conn = self.keepalived_conns[0]
            if conn.timeout > now and not force:
                break
            self.keepalived_conns.popleft()
            self._unregister(conn)
            conn.close()

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        self.poller.register(self.method_queue.fileno(), selectors.EVENT_READ, self.method_queue.run_callbacks)
        self.set_accept_enabled(True)
        while self.alive:
            self.notify()
            can_accept = self.nr_conns < self.worker_connections
            if can_accept != self._accepting:
                self.set_accept_enabled(can_accept)
            self.wait_for_and_dispatch_events(timeout=0.5)
            if not self.is_parent_alive():
                break
            self.murder_keepalived()
            self._expire()
        self._drain()

    def _orphaned(self) -> bool:
        return self.ppid != os.getppid()

    def _drain(self) -> None:
        """Graceful stop: see the module docstring."""
        self.alive = False
        self.set_accept_enabled(False)
        limit = time.monotonic() + self.cfg.graceful_timeout
        cap = time.monotonic() + STOP_KEEPALIVE_LINGER
        self._cap_keepalive(cap)
        for conn in self.heading:
            conn.deadline = min(conn.deadline, cap)
        listening = True
        while time.monotonic() < limit:
            if listening and (self._orphaned() or all(c.late for c in self.conns)):
                self._sweep_and_close()
                listening = False
                limit = min(limit, time.monotonic() + (ORPHAN_GRACE if self._orphaned() else LINGER + 1))
            if not listening and not self.conns:
                break
            self.notify()
            self.wait_for_and_dispatch_events(timeout=0.2)
            self.murder_keepalived()
            self._expire(force=True)
        if listening:
            self._sweep_and_close()
        self.murder_keepalived(force=True)
        for conn in list(self.conns):
            # A thread still blocked on this client returns now (not after body_timeout): the
            # interpreter joins the pool's threads before the process can exit.
            self._unregister(conn)
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self.tpool.shutdown(wait=False)
        self.poller.close()
        self.method_queue.close()

    def _sweep_and_close(self) -> None:
        """Accept what the kernel queued, then close the listening sockets: what arrives later is
        refused by the kernel (no listener), what was queued is answered, none is reset."""
        for listener in self.sockets:
            listener.setblocking(False)
            for _ in range(10000):
                if not self.accept(listener):
                    break
            listener.close()


def _die_with_parent() -> None:
    """Ask Linux for SIGTERM when the master dies: an orphan must free the port promptly."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:
        os.kill(os.getpid(), signal.SIGTERM)


__all__ = ["FrontApplication", "FrontLimits", "XdsWorker"]
