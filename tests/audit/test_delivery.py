"""Audit delivery that never loses or doubles a record (issue 19, finding 3): a TLS ARR that
closed the connection, several servers sharing one database, the process that served a request."""
from __future__ import annotations

import os
import socket
import ssl
import threading

from audit import compact, fields, store, syslog
from audit.sender import Sender
from tests.audit.support import record_stored_queries
from xds.context import Caller

_record = record_stored_queries


class _Receiver:
    """A TLS syslog receiver (RFC 5425) that can close its current connection, as an ARR that
    restarts does."""

    def __init__(self, pki: dict[str, str]) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(pki["server_cert"], pki["server_key"])
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.messages: list[bytes] = []
        self.connections: list[ssl.SSLSocket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            conn = self.context.wrap_socket(raw, server_side=True)
            self.connections.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: ssl.SSLSocket) -> None:
        reader = syslog.FrameReader(conn)
        try:
            while (m := reader.next()) is not None:
                with self.lock:
                    self.messages.append(m)
        except (OSError, ValueError):
            pass

    def close_current(self) -> None:
        for c in self.connections:
            c.close()

    def stop(self) -> None:
        self.listener.close()
        self.close_current()


def _object_ids(raw: list[bytes]) -> list[str]:
    return [v for m in raw for k, v in fields.extract(m).keys if k == "object"]


def test_a_batch_sent_after_the_arr_closed_the_connection_is_sent_again(audit_db, pki):
    arr = _Receiver(pki)
    sender = Sender(audit_db, forward=[f"tls://127.0.0.1:{arr.port}"], local=False, tls_ca=pki["ca"])
    try:
        _record(audit_db, 3)
        assert sender.deliver_once() == 3
        _wait(lambda: len(arr.messages) == 3)
        arr.close_current()  # the ARR restarts: its end of our connection is gone
        _record(audit_db, 3, start=3)
        assert sender.drain(timeout=10)
        _wait(lambda: len(arr.messages) >= 6)
    finally:
        sender.close()
        arr.stop()
    assert sorted(set(_object_ids(arr.messages))) == [f"urn:uuid:q{i}" for i in range(6)]
    assert len(arr.connections) == 2


def _wait(condition, timeout: float = 10.0) -> None:
    deadline = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        deadline.wait(0.05)
    raise AssertionError("condition not met in time")


def test_two_servers_sharing_a_database_store_each_record_once(audit_db):
    _record(audit_db, 60)
    senders = [Sender(audit_db, batch=7) for _ in range(2)]
    go = threading.Barrier(2)

    def deliver(s: Sender) -> None:
        go.wait()
        for _ in range(20):
            s.deliver_once()

    threads = [threading.Thread(target=deliver, args=(s,)) for s in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert store.count(audit_db) == 60
    assert sorted(v for r in store.iter_all(audit_db) for k, v in fields.extract(bytes(r.raw)).keys
                  if k == "object") == sorted(f"urn:uuid:q{i}" for i in range(60))
    assert store.verify(audit_db).ok


def test_the_record_names_the_process_that_served_the_request_not_the_audit_process():
    caller = Caller(remote_addr="10.0.0.6", endpoint="http://h/registry", user_id="810002")
    adhoc = (b'<query:AdhocQueryRequest xmlns:query="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0" '
             b'xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"><rim:AdhocQuery id="urn:uuid:x"/>'
             b'</query:AdhocQueryRequest>')
    worker_pid = "4242"
    row = compact.encode_facts("iti18", compact.caller_facts(caller), [0, adhoc, None], 1_790_000_000.0, "src",
                               "host-1", procid=worker_pid)
    raw, _ = compact.materialize(row)
    assert syslog.parse(raw).procid == worker_pid
    xml = syslog.parse(raw).msg
    assert b'AlternativeUserID="4242"' in xml
    assert f'AlternativeUserID="{os.getpid()}"'.encode() not in xml
