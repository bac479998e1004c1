"""Stopping and losing ``xds serve``'s master (issue 19 finding 6, the front's part).

- SIGTERM under load: every request is answered (200 while in flight, 503 ``Retry-After`` once
  the drain began) or refused by the kernel (no listener left); none sees a connection reset or a
  connection closed without an answer. Stock gthread reset about a third of them.
- SIGKILL of the master: its workers notice at once (``PR_SET_PDEATHSIG``), close the listening
  socket and exit within seconds (stock gthread kept the port about 22 s), so a server started
  right away on the same port binds it and serves.
"""
from __future__ import annotations

import http.client
import os
import signal
import socket
import threading
import time
from collections import Counter
from pathlib import Path

from client.queries import adhoc_query_request
from tests.support.server import LiveServer, start_server
from xds.soap.client import encode_request
from xds.vocabulary import Actions, Status

PATIENT = "drain-1^^^&1.3.6.1.4.1.21367.2005.3.7&ISO"


def _query(server: LiveServer) -> tuple[bytes, dict]:
    return encode_request(Actions.STORED_QUERY, server.registry_url, adhoc_query_request(
        "FindDocuments", {"$XDSDocumentEntryPatientId": [PATIENT], "$XDSDocumentEntryStatus": [Status.APPROVED]}))


def _port(server: LiveServer) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


def _outcome(port: int, body: bytes, headers: dict) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/registry", body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return str(resp.status)
    except ConnectionRefusedError:
        return "refused"
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    except http.client.RemoteDisconnected:
        return "closed without an answer"
    except OSError as exc:
        return type(exc).__name__
    finally:
        conn.close()


def _slow_request(port: int, body: bytes, headers: dict, pause: float, result: list) -> None:
    """A query whose body arrives in two halves ``pause`` seconds apart: in flight at SIGTERM."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        s.sendall(f"POST /registry HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}Content-Length: {len(body)}\r\n\r\n"
                  .encode() + body[:100])
        time.sleep(pause)
        s.sendall(body[100:])
        reply = b""
        while b"\r\n\r\n" not in reply and (chunk := s.recv(4096)):
            reply += chunk
        result.append(reply.split(b"\r\n", 1)[0])


def test_sigterm_drain_answers_or_refuses_every_request_without_reset(tmp_path):
    server = start_server(tmp_path / "data", f"sqlite:///{tmp_path / 'registry.db'}", "--no-patient-check",
                          workers=2, threads=8)
    port = _port(server)
    body, headers = _query(server)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            result = _outcome(port, body, headers)
            with lock:
                outcomes[result] += 1
            if result == "refused":
                time.sleep(0.01)

    in_flight: list[bytes] = []
    slow = threading.Thread(target=_slow_request, args=(port, body, headers, 2.0, in_flight))
    clients = [threading.Thread(target=load) for _ in range(6)]
    try:
        for t in clients:
            t.start()
        slow.start()
        time.sleep(0.7)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(30) == 0
        time.sleep(0.5)
    finally:
        stop.set()
        for t in clients:
            t.join(15)
        slow.join(15)
        server.stop()
    assert in_flight == [b"HTTP/1.1 200 OK"], "the request in flight at SIGTERM is completed"
    assert outcomes["200"] > 0 and outcomes["refused"] > 0, outcomes
    assert set(outcomes) <= {"200", "503", "refused"}, outcomes


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _worker_pids(server: LiveServer) -> list[int]:
    return [int(line.rsplit(":", 1)[1]) for line in server.log().splitlines() if "Booting worker with pid" in line]


def test_orphaned_workers_exit_promptly_and_an_immediate_restart_binds_the_port(tmp_path):
    """At the kill the old workers hold an idle kept-alive connection and a request whose body
    stopped coming: stock gthread kept listening while it waited for them (graceful_timeout, 20 s)
    and the restart could not bind the port."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    first = start_server(tmp_path / "data", url, "--no-patient-check", workers=2, threads=4)
    port = _port(first)
    workers = _worker_pids(first)
    assert len(workers) == 2, first.log()
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    idle.request("GET", "/health")
    idle.getresponse().read()
    stalled = socket.create_connection(("127.0.0.1", port), timeout=10)
    stalled.sendall(b"POST /registry HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n<a>")
    time.sleep(0.3)
    first.process.kill()
    first.process.wait()
    killed = time.monotonic()
    second = None
    try:
        second = start_server(tmp_path / "data2", url, "--no-patient-check", workers=1, threads=4, port=port)
        while any(_running(w) for w in workers) and time.monotonic() < killed + 8:
            time.sleep(0.1)
        gone_after = time.monotonic() - killed
        assert not any(_running(w) for w in workers), f"orphaned workers still running {gone_after:.1f} s later"
        assert second.process.poll() is None and "Listening at" in second.log(), second.log()
        body, headers = _query(second)
        assert _outcome(port, body, headers) == "200"
    finally:
        idle.close()
        stalled.close()
        if second is not None:
            second.stop()
        for w in workers:
            if _running(w):
                os.kill(w, signal.SIGKILL)
