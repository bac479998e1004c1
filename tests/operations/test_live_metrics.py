"""``xds serve`` with two gunicorn workers: ``/metrics`` adds up both workers' counts, every response
carries its request id and the JSON log names it (issue 19, operations)."""
from __future__ import annotations

import json
import re
import struct
import time

import pytest
import requests

from server import metrics
from tests.support.databases import BACKENDS, database_url
from tests.support.server import start_server


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"ops-{request.param}")
    url, handle = database_url(request.param, tmp)
    live = start_server(tmp / "data", url, "--log-format", "json", workers=2, threads=2)
    yield live
    code = live.stop()
    if handle is not None:
        handle.close()
    assert code == 0, live.log()


def registry_requests_by_worker(data_dir) -> dict[str, float]:
    """The ``registry`` transaction's count in each worker's own file."""
    (run,) = (data_dir / "metrics").glob("run-*")
    base = metrics.TRANSACTIONS.index("registry") * metrics._WIDTH
    counts = {}
    for path in run.glob("worker-*.bin"):
        values = struct.unpack(f"{metrics._SLOTS}d", path.read_bytes())
        counts[path.name] = sum(values[base:base + len(metrics.OUTCOMES)])
    return counts


def test_two_workers_counts_add_up_in_metrics(server):
    sent = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for _ in range(10):
            # a new connection each time: the kernel hands it to either worker
            r = requests.post(server.registry_url, data=b"<not-soap", timeout=10,
                              headers={"Content-Type": "application/soap+xml", "Connection": "close"})
            assert r.status_code >= 400
            sent += 1
        if len([c for c in registry_requests_by_worker(server.data_dir).values() if c]) == 2:
            break
    # a request is counted once its last byte is sent, which may be just after the client read it
    settle = time.monotonic() + 5
    per_worker = registry_requests_by_worker(server.data_dir)
    while sum(per_worker.values()) < sent and time.monotonic() < settle:
        time.sleep(0.05)
        per_worker = registry_requests_by_worker(server.data_dir)
    assert len([c for c in per_worker.values() if c]) == 2, per_worker
    assert sum(per_worker.values()) == sent
    text = requests.get(server.base_url + "/metrics", timeout=10).text
    total = float(re.search(r'^xds_requests_total\{transaction="registry",outcome="client_error"\} (\S+)$', text,
                            re.M).group(1))
    assert total == sent
    assert re.search(r"^xds_audit_lag_seconds \S+$", text, re.M)
    assert re.search(r"^xds_repository_pending_submissions 0$", text, re.M)


def test_metrics_refuse_a_request_relayed_by_a_proxy(server):
    r = requests.get(server.base_url + "/metrics", headers={"X-Forwarded-For": "198.51.100.7"}, timeout=10)
    assert r.status_code == 403


def test_the_request_id_is_returned_and_in_the_json_log_lines_of_its_request(server):
    r = requests.post(server.registry_url, data=b"<not-soap", timeout=10,
                      headers={"Content-Type": "application/soap+xml", "X-Request-ID": "ops-test-4711"})
    assert r.headers["X-Request-ID"] == "ops-test-4711"
    assert requests.get(server.base_url + "/ready", timeout=10).status_code == 200
    deadline = time.monotonic() + 10
    mine: list[dict] = []
    while time.monotonic() < deadline and not mine:
        lines = [line for line in server.log().splitlines() if line.startswith("{")]
        mine = [json.loads(line) for line in lines if "ops-test-4711" in line]
        time.sleep(0.2)
    assert mine and all(entry["request_id"] == "ops-test-4711" for entry in mine), server.log()
    assert any("security alert" in entry["message"] for entry in mine)
