"""ITI-20 transport: the sender against real TLS and UDP listeners on loopback, ARR outages and
restarts, and the built-in ARR facing bad input."""
from __future__ import annotations

import socket
import ssl
import time

import pytest

from audit import fields, messages, store, syslog
from audit.arr import ArrServer, server_context
from audit.sender import Sender, client_context
from registry.store import migrate as migrate_registry
from tests.audit.support import assert_valid, record_stored_queries, xml_of
from tests.support.server import free_port
from xds.context import Caller

CALLER = Caller(remote_addr="10.0.0.7", endpoint="http://h/registry")


_record = record_stored_queries


def _query_ids(db) -> list[str]:
    out = []
    for r in store.iter_all(db):
        out += [v for k, v in fields.extract(bytes(r.raw)).keys if k == "object"]
    return out


def test_syslog_header_is_rfc5424():
    m = syslog.encode(b"<AuditMessage/>", "host1", procid="42")
    assert m.startswith(b"<85>1 ") and b" host1 dmp-xds 42 IHE+RFC-3881 - <AuditMessage/>" in m
    p = syslog.parse(m)
    assert (p.pri, p.version, p.hostname, p.app_name, p.procid, p.msgid, p.msg) == (
        85, 1, "host1", "dmp-xds", "42", "IHE+RFC-3881", b"<AuditMessage/>")
    assert syslog.parse(b'<85>1 - - - - - [ex@1 a="x]y"][b@2] \xef\xbb\xbfhello').msg == b"hello"
    assert syslog.frame(b"abc") == b"3 abc"


def test_sender_over_tls_with_client_certificate(audit_db, pki):
    arr = ArrServer(audit_db, tls_port=0, tls_context=server_context(pki["server_cert"], pki["server_key"],
                                                                     pki["ca"])).start()
    try:
        _record(audit_db, 5)
        s = Sender(audit_db, forward=[f"tls://127.0.0.1:{arr.tls_port}"], local=False,
                   tls_cert=pki["client_cert"], tls_key=pki["client_key"], tls_ca=pki["ca"])
        assert s.deliver_once() == 5
        assert arr.wait_stored(5)
        s.close()
    finally:
        arr.stop()
    rows = list(store.iter_all(audit_db))
    assert [r.transport for r in rows] == ["tls"] * 5 and rows[0].peer == "127.0.0.1"
    assert _query_ids(audit_db) == [f"urn:uuid:q{i}" for i in range(5)]
    for r in rows:
        assert_valid(xml_of(r.raw))
    assert store.verify(audit_db).ok


def test_tls_listener_refuses_clients_without_certificate(audit_db, pki):
    arr = ArrServer(audit_db, tls_port=0, tls_context=server_context(pki["server_cert"], pki["server_key"],
                                                                     pki["ca"])).start()
    try:
        ctx = client_context(ca=pki["ca"])  # no client certificate
        with pytest.raises((ssl.SSLError, OSError)):
            with socket.create_connection(("127.0.0.1", arr.tls_port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    tls.sendall(syslog.frame(syslog.encode(b"<AuditMessage/>")))
                    tls.recv(1)  # TLS 1.3 reports the refused certificate on the first read
        assert store.count(audit_db) == 0
    finally:
        arr.stop()


def test_sender_over_udp_to_a_plain_listener(audit_db):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    try:
        _record(audit_db, 3)
        s = Sender(audit_db, forward=[f"udp://127.0.0.1:{sock.getsockname()[1]}"], local=False)
        assert s.deliver_once() == 3
        got = [sock.recvfrom(70000)[0] for _ in range(3)]
    finally:
        sock.close()
    assert all(g.startswith(b"<85>1 ") and b" IHE+RFC-3881 - <?xml" in g for g in got)
    assert [syslog.parse(g).msg.count(b"urn:uuid:q") for g in got] == [1, 1, 1]
    assert_valid(xml_of(got[0]))


def test_outage_and_restart_lose_nothing(audit_db, pki):
    """ARR down: records wait; sender restarted in the middle; ARR up: all delivered, in order."""
    port = free_port()
    url = f"tls://127.0.0.1:{port}"
    kw = {"forward": [url], "tls_cert": pki["client_cert"], "tls_key": pki["client_key"], "tls_ca": pki["ca"]}
    _record(audit_db, 4)
    s1 = Sender(audit_db, **kw)
    s1.deliver_once()  # local store gets them, the ARR is down
    assert store.count(audit_db) == 4
    assert len(store.pending(audit_db, url)[1]) == 4
    s1.close()  # "process restart": a new sender, state only in the database
    _record(audit_db, 3, start=4)
    s2 = Sender(audit_db, **kw)
    s2.deliver_once()
    assert len(store.pending(audit_db, url)[1]) == 7
    from storage.database import Database
    arr_db = Database(audit_db.url.replace("registry.db", "arr.db")) if audit_db.is_sqlite else None
    if arr_db is not None:
        migrate_registry(arr_db)
        store.migrate(arr_db)
    target = arr_db or audit_db
    before = store.count(target)
    arr = ArrServer(target, tls_port=port, tls_context=server_context(pki["server_cert"], pki["server_key"],
                                                                      pki["ca"])).start()
    try:
        assert s2.drain(timeout=20)
        assert arr.wait_stored(7)
    finally:
        arr.stop()
        s2.close()
    received = [r for r in store.iter_all(target) if r.transport == "tls"]
    assert len(received) == 7 and store.count(target) == before + 7
    ids = []
    for r in received:
        ids += [v for k, v in fields.extract(bytes(r.raw)).keys if k == "object"]
    assert ids == [f"urn:uuid:q{i}" for i in range(7)]
    assert store.outbox_size(audit_db) == 0
    if arr_db is not None:
        arr_db.dispose()


def _udp(port: int, payloads: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for p in payloads:
            s.sendto(p, ("127.0.0.1", port))


def test_arr_bad_input(audit_db, pki):
    arr = ArrServer(audit_db, udp_port=0, tls_port=0, max_queue=300,
                    tls_context=server_context(pki["server_cert"], pki["server_key"], pki["ca"])).start()
    good = syslog.encode(messages.application_activity("src", True).to_xml())
    try:
        _udp(arr.udp_port, [
            b"hello, not syslog",                                       # rejected
            syslog.encode(b"plain text message"),                       # stored, not indexed
            syslog.encode(b"<AuditMessage>\xff\xfe</AuditMessage>"),    # invalid UTF-8: stored raw
            good[:len(good) - 120],                                     # truncated: repaired
            good,
        ])
        assert arr.wait_stored(5)
        ctx = client_context(pki["client_cert"], pki["client_key"], pki["ca"])
        for bad in (b"x" * 20, b"99999999999 " + good, b"12 short"):  # not a frame / oversize / cut short
            with socket.create_connection(("127.0.0.1", arr.tls_port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    tls.sendall(bad)
                    tls.shutdown(socket.SHUT_WR) if bad == b"12 short" else None
                    try:
                        tls.recv(1)  # the ARR closes the connection
                    except OSError:
                        pass
        deadline = time.monotonic() + 5
        while arr.stats.rejected < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert arr.stats.rejected == 4
        flood = [syslog.encode(b"<AuditMessage/>", procid=str(i)) for i in range(2000)]
        _udp(arr.udp_port, flood)
        deadline = time.monotonic() + 20
        while arr.stats.stored + arr.stats.dropped < 4 + 2000 and time.monotonic() < deadline:
            time.sleep(0.05)
        # listener still alive after all that
        before = arr.stats.stored
        with socket.create_connection(("127.0.0.1", arr.tls_port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(syslog.frame(good))
        deadline = time.monotonic() + 10
        while arr.stats.stored < before + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        arr.stop()
    rows = list(store.iter_all(audit_db))
    statuses = [r.status for r in rows[:4]]
    assert statuses == ["not-audit", "invalid", "repaired", "ok"]
    assert rows[2].event_id == "110100" and rows[2].raw == good[:len(good) - 120]
    assert [r.event_id for r in rows if r.transport == "tls"] == ["110100"]
    assert arr.stats.stored + arr.stats.dropped >= 4 + 2000 - 5  # the kernel may drop a few more
    assert arr.stats.stored >= 300
    assert store.verify(audit_db).ok
