"""Deliver the outbox: to our own record store and to each configured ARR (ITI TF-2 3.20.6).

One :class:`Sender` per server (it runs in the audit process, :mod:`audit.daemon`). Each pass:

1. ``local``: outbox rows after the local cursor are written as RFC 5424 messages
   (:func:`audit.compact.materialize`) and appended to the hash-chained store, cursor moved in
   the same transaction (exactly once);
2. each ARR (``udp://HOST:PORT``, RFC 5426; ``tls://HOST:PORT``, RFC 5425 with TLS 1.2+ and our
   client certificate): rows after its cursor are sent in order, the cursor moved after they
   were sent (at-least-once: a crash between the two sends them again). An ARR that is down
   keeps its cursor; it is retried with a capped back-off while the others go on;
3. outbox rows every destination has are deleted, and on PostgreSQL the outbox is vacuumed
   after every :data:`VACUUM_EVERY` deletes (a queue table must not wait for autovacuum).

Cursors live in the database, so a restart (or a second server process) resumes where delivery
stopped: nothing is lost.
"""
from __future__ import annotations

import logging
import select
import socket
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from audit import compact, store, syslog
from audit.seal import Sealer

log = logging.getLogger(__name__)

VACUUM_EVERY = 5000
"""Outbox rows deleted between two vacuums of the outbox (PostgreSQL, store.vacuum_outbox)."""
UDP_MAX = 65507
"""Largest UDP payload over IPv4; bigger messages are sent truncated, as RFC 5426 3.2 allows."""


class Transport:
    def send(self, messages: list[bytes]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class UdpTransport(Transport):
    """RFC 5426: one message per datagram. UDP cannot tell whether the ARR is there."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self.sock: socket.socket | None = None

    def send(self, messages: list[bytes]) -> None:
        if self.sock is None:
            self.sock = socket.socket(socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET, socket.SOCK_DGRAM)
        for m in messages:
            self.sock.sendto(m[:UDP_MAX], self.address)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def client_context(cert: str = "", key: str = "", ca: str = "") -> ssl.SSLContext:
    """TLS 1.2+ client (ITI TF-2 3.19.6.1: mutual authentication with our node certificate)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        ctx.load_cert_chain(cert, key or None)
    return ctx


class TlsTransport(Transport):
    """RFC 5425: one long-lived TLS connection, messages octet-counted."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, timeout: float = 10.0) -> None:
        self.host, self.port, self.context, self.timeout = host, port, context, timeout
        self.sock: ssl.SSLSocket | None = None

    def _connect(self) -> ssl.SSLSocket:
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            return self.context.wrap_socket(raw, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise

    def send(self, messages: list[bytes]) -> None:
        """Send and return only when the connection is still open afterwards.

        RFC 5425 has no acknowledgement: a batch written into a connection the ARR has already
        closed is accepted by our kernel and lost (issue 19: 3 records per ARR restart, up to 500
        under load). So a connection the peer has closed is replaced before sending, and after
        sending the peer gets :data:`SETTLE` seconds to reset it; a reset raises, and the caller
        sends the batch again on a new connection (at-least-once, as ITI-20 asks)."""
        if self.sock is not None and _peer_closed(self.sock, 0.0):
            self.close()
        if self.sock is None:
            self.sock = self._connect()
        try:
            self.sock.sendall(b"".join(syslog.frame(m) for m in messages))
            if _peer_closed(self.sock, SETTLE):
                raise ConnectionResetError("the ARR closed the connection while the batch was sent")
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None


SETTLE = 0.02
"""Seconds a TLS ARR has, after a batch, to show that it closed the connection under it."""


def _peer_closed(sock: ssl.SSLSocket, wait: float) -> bool:
    """Whether the ARR closed or reset the connection. An ARR never sends application data
    (RFC 5425 4.3), so anything readable is its close_notify, its FIN or its RST."""
    readable, _, _ = select.select([sock], [], [], wait)
    if not readable and not sock.pending():
        return False
    previous = sock.gettimeout()
    sock.settimeout(0.0)
    try:
        return sock.recv(1) == b""
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(previous)


def transport_for(url: str, cert: str = "", key: str = "", ca: str = "") -> Transport:
    parts = urlsplit(url)
    if parts.scheme not in ("udp", "tls") or not parts.hostname or not parts.port:
        raise ValueError(f"audit destination {url!r}: expected udp://HOST:PORT or tls://HOST:PORT")
    if parts.scheme == "udp":
        return UdpTransport(parts.hostname, parts.port)
    return TlsTransport(parts.hostname, parts.port, client_context(cert, key, ca))


@dataclass
class _Destination:
    url: str
    transport: Transport
    retry_at: float = 0.0
    failures: int = 0
    last_error: str = ""
    checkpoint: bytes | None = None
    """The latest checkpoint not yet sent here (audit.checkpoint); a newer one replaces it."""


@dataclass
class Sender:
    """Delivers the outbox of ``database`` to the local store (if ``local``) and to ``forward`` ARRs."""
    database: object
    forward: list[str] = field(default_factory=list)
    local: bool = True
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    batch: int = 500
    max_backoff: float = 30.0
    sync_commit: bool = True
    """PostgreSQL: wait for the WAL flush of each append, cursor move and prune (``audit_sync_commit``)."""
    sealer: Sealer | None = None
    """Seals each append to the local chain (audit.seal)."""

    def __post_init__(self) -> None:
        self._pruned = 0
        """The outbox id deleted through (store.prune); 0 until the first prune of this process."""
        self._unvacuumed = 0
        self.destinations = [_Destination(u, transport_for(u, self.tls_cert, self.tls_key, self.tls_ca))
                             for u in self.forward]

    def names(self) -> list[str]:
        return ([store.LOCAL] if self.local else []) + [d.url for d in self.destinations]

    def deliver_once(self) -> int:
        """One pass over every destination; returns how many messages moved."""
        moved = 0
        made: dict[int, tuple] = {}

        def message(row_id: int, raw: bytes, indexed: str | None = None) -> tuple:
            """An outbox row as RFC 5424, written once per pass for the local store and every ARR."""
            if row_id not in made:
                if len(made) >= 4 * self.batch:  # a long backlog: keep the memory bounded
                    made.clear()
                made[row_id] = compact.materialize(raw, indexed)
            return made[row_id]

        if self.local:
            while True:
                _, rows = store.pending(self.database, store.LOCAL, self.batch, with_fields=True)
                if not rows:
                    break
                incoming = [(i, store.Incoming(raw, store.LOCAL, None, indexed))
                            for i, (raw, indexed) in ((i, message(i, m, f)) for i, m, f in rows)]
                store.append_from_outbox(self.database, incoming, self.sync_commit, self.sealer)
                moved += len(rows)
                if len(rows) < self.batch:
                    break
        now = time.monotonic()
        for d in self.destinations:
            if d.retry_at > now:
                continue
            while True:
                _, rows = store.pending(self.database, d.url, self.batch)
                if not rows:
                    break
                try:
                    d.transport.send([message(i, m)[0] for i, m in rows])
                except OSError as exc:
                    d.failures += 1
                    d.last_error = f"{exc.__class__.__name__}: {exc}"
                    d.retry_at = time.monotonic() + min(self.max_backoff, 0.2 * 2 ** min(d.failures, 10))
                    log.warning("audit: ARR %s unreachable (%s); %d messages wait", d.url, d.last_error, len(rows))
                    break
                d.failures = 0
                store.advance(self.database, d.url, rows[-1][0], self.sync_commit)
                moved += len(rows)
                if len(rows) < self.batch:
                    break
            self._send_checkpoint(d)
        if moved:
            deleted, self._pruned = store.prune(self.database, self.names(), self._pruned, self.sync_commit)
            self._unvacuumed += deleted
            if self._unvacuumed >= VACUUM_EVERY:
                self._unvacuumed = 0
                try:
                    store.vacuum_outbox(self.database)
                except Exception:  # noqa: BLE001 - e.g. not the table's owner: autovacuum's job then
                    log.warning("audit: could not vacuum the outbox", exc_info=True)
        return moved

    def queue_checkpoint(self, message: bytes) -> None:
        """Send ``message`` (audit.checkpoint) to every ARR, after the records before it."""
        for d in self.destinations:
            d.checkpoint = message

    def _send_checkpoint(self, d: _Destination) -> None:
        if d.checkpoint is None or d.retry_at > time.monotonic():
            return
        try:
            d.transport.send([d.checkpoint])
        except OSError as exc:
            d.failures += 1
            d.last_error = f"{exc.__class__.__name__}: {exc}"
            d.retry_at = time.monotonic() + min(self.max_backoff, 0.2 * 2 ** min(d.failures, 10))
            return
        d.checkpoint = None

    def drain(self, timeout: float = 10.0) -> bool:
        """Deliver until nothing is left or ``timeout``; True if everything went out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for d in self.destinations:
                d.retry_at = 0.0
            self.deliver_once()
            if all(not store.pending(self.database, n, 1)[1] for n in self.names()) \
                    and all(d.checkpoint is None for d in self.destinations):
                return True
            time.sleep(0.1)
        return False

    def close(self) -> None:
        for d in self.destinations:
            d.transport.close()

