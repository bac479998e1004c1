"""Prometheus metrics of the server: per-transaction counts and latency, audit and repository backlogs.

Exposed at ``/metrics`` in the Prometheus text exposition format 0.0.4 (issue 19, operations).

Gunicorn's workers are separate processes and a scrape reaches one of them, so each worker
counts into its own small file, memory-mapped (``<data_dir>/metrics/run-<master>/worker-<pid>.bin``:
an array of float64 in a fixed layout), and a scrape adds up every file of the run. A counter
update is a few stores into shared memory under the worker's lock, no system call. Files of
workers that exited stay in the run's directory: their counts remain part of the totals, as
counters must (they only reset when the server restarts, which Prometheus' ``rate`` expects). A
run is one master process: a new ``xds serve`` starts from zero and removes the directories of runs
whose master is gone.

The gauges (audit outbox backlog and lag, pending repository submissions) are read from the
database at scrape time: they are the same for every worker.
"""
from __future__ import annotations

import hmac
import ipaddress
import mmap
import os
import shutil
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

TRANSACTIONS = ("ITI-18", "ITI-41", "ITI-42", "ITI-43", "ITI-81", "portal", "policy-api", "registry", "repository",
                "other")
"""The ``transaction`` label: the IHE transaction a SOAP operation ran, the door for the others
(``registry``/``repository``: a SOAP request refused before any operation took it, or a WSDL)."""

OUTCOMES = ("success", "partial_success", "failure", "client_error", "server_error")
"""The ``outcome`` label: a SOAP answer's RegistryResponse status (Success, PartialSuccess,
Failure: ITI TF-3 4.2.4); otherwise the HTTP status class (2xx/3xx success, 4xx client_error,
5xx server_error), a SOAP fault included."""

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds (seconds) of the latency histogram, ``+Inf`` implied."""

_WIDTH = len(OUTCOMES) + len(BUCKETS) + 2  # outcome counts, buckets, +Inf bucket, sum of seconds
_SLOTS = len(TRANSACTIONS) * _WIDTH
_SIZE = 8 * _SLOTS
_DOUBLE = struct.Struct("d")
_TX_INDEX = {t: i for i, t in enumerate(TRANSACTIONS)}
_OUTCOME_INDEX = {o: i for i, o in enumerate(OUTCOMES)}

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _start_time(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, Linux), None when it is gone:
    with the pid it names one process, whatever pid reuse happens later."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def run_directory(data_dir: str | os.PathLike[str], master: int) -> Path:
    """The run's directory: one per master process (its pid and start time)."""
    started = _start_time(master)
    return Path(data_dir) / "metrics" / (f"run-{master}-{started}" if started else f"run-{master}")


def _remove_ended_runs(run: Path) -> None:
    """Remove the directories of runs whose master process is gone (never this run's)."""
    for other in run.parent.glob("run-*"):
        if other == run:
            continue
        _, pid, *started = other.name.split("-")
        if not pid.isdigit():
            continue
        if started and _start_time(int(pid)) == started[0]:
            continue
        if not started and _start_time(int(pid)) is not None:
            continue
        shutil.rmtree(other, ignore_errors=True)


class WorkerMetrics:
    """This process's counters in ``run``'s directory. Thread-safe (gthread workers)."""

    def __init__(self, run: Path) -> None:
        self.run = run
        self._lock = threading.Lock()
        self._pid = 0
        self._map: mmap.mmap | None = None
        run.mkdir(parents=True, exist_ok=True)
        _remove_ended_runs(run)

    def _mapped(self) -> mmap.mmap:
        """This process's file, mapped (opened again after a fork: a child never counts into its parent's)."""
        if self._map is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self.run.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.run / f"worker-{self._pid}.bin", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size < _SIZE:
                    os.ftruncate(fd, _SIZE)
                self._map = mmap.mmap(fd, _SIZE)
            finally:
                os.close(fd)
        return self._map

    def observe(self, transaction: str, outcome: str, seconds: float) -> None:
        """Count one request of ``transaction`` that ended with ``outcome`` after ``seconds``."""
        base = _TX_INDEX.get(transaction, _TX_INDEX["other"]) * _WIDTH
        bucket = next((i for i, bound in enumerate(BUCKETS) if seconds <= bound), len(BUCKETS))
        slots = (base + _OUTCOME_INDEX.get(outcome, _OUTCOME_INDEX["server_error"]),
                 base + len(OUTCOMES) + bucket)
        with self._lock:
            m = self._mapped()
            for slot in slots:
                _DOUBLE.pack_into(m, slot * 8, _DOUBLE.unpack_from(m, slot * 8)[0] + 1.0)
            total = (base + _WIDTH - 1) * 8
            _DOUBLE.pack_into(m, total, _DOUBLE.unpack_from(m, total)[0] + seconds)

    def close(self) -> None:
        with self._lock:
            if self._map is not None:
                self._map.close()
                self._map = None


def totals(run: Path) -> list[float]:
    """Every worker file of ``run`` added up, slot by slot (a file of another layout is skipped)."""
    sums = [0.0] * _SLOTS
    for path in run.glob("worker-*.bin"):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if len(data) != _SIZE:
            continue
        for i, value in enumerate(struct.unpack(f"{_SLOTS}d", data)):
            sums[i] += value
    return sums


@dataclass(frozen=True)
class Gauges:
    """What the database says at scrape time."""
    audit_outbox_rows: int | None = None
    audit_backlog: int | None = None
    audit_lag_seconds: float | None = None
    pending_submissions: int | None = None
    pending_oldest_seconds: float | None = None
    database_up: bool = True


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def render(run: Path, gauges: Gauges) -> bytes:
    """The exposition text (format 0.0.4) of the run's counters and ``gauges``."""
    sums = totals(run)
    out: list[str] = [
        "# HELP xds_requests_total HTTP requests answered, by IHE transaction and outcome.",
        "# TYPE xds_requests_total counter",
    ]
    for t, name in enumerate(TRANSACTIONS):
        for o, outcome in enumerate(OUTCOMES):
            out.append(f'xds_requests_total{{transaction="{name}",outcome="{outcome}"}} '
                       f"{_number(sums[t * _WIDTH + o])}")
    out += ["# HELP xds_request_duration_seconds Time from the request's arrival to the last byte of the answer.",
            "# TYPE xds_request_duration_seconds histogram"]
    for t, name in enumerate(TRANSACTIONS):
        base = t * _WIDTH + len(OUTCOMES)
        cumulative = 0.0
        for b, bound in enumerate((*BUCKETS, None)):
            cumulative += sums[base + b]
            le = "+Inf" if bound is None else repr(bound)
            out.append(f'xds_request_duration_seconds_bucket{{transaction="{name}",le="{le}"}} {_number(cumulative)}')
        out.append(f'xds_request_duration_seconds_sum{{transaction="{name}"}} {sums[base + len(BUCKETS) + 1]!r}')
        out.append(f'xds_request_duration_seconds_count{{transaction="{name}"}} {_number(cumulative)}')
    out += _gauges(gauges)
    return ("\n".join(out) + "\n").encode()


def _gauges(g: Gauges) -> Iterable[str]:
    described = (
        ("xds_database_up", "1 when the database answered this scrape.", 1 if g.database_up else 0),
        ("xds_audit_outbox_rows", "Audit messages queued in the outbox: not yet taken by every destination "
                                  "(the local store and each forwarded ARR).", g.audit_outbox_rows),
        ("xds_audit_backlog", "Audit messages not yet stored in the local hash-chained trail.", g.audit_backlog),
        ("xds_audit_lag_seconds", "Age of the oldest audit message not yet stored (0: none waiting).",
         g.audit_lag_seconds),
        ("xds_repository_pending_submissions", "Documents of ITI-41 submissions not committed yet (in flight, "
                                               "or left by a crash for the reconciler).", g.pending_submissions),
        ("xds_repository_pending_oldest_seconds", "Age of the oldest uncommitted document (0: none).",
         g.pending_oldest_seconds),
    )
    for name, help_text, value in described:
        if value is None:
            continue
        yield f"# HELP {name} {help_text}"
        yield f"# TYPE {name} gauge"
        yield f"{name} {_number(float(value))}"


def _loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


RELAYED = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


def refusal(environ: dict, token: str) -> tuple[str, str] | None:
    """Why this request may not read ``/metrics`` (HTTP status, reason), or None.

    With a token, the request must carry ``Authorization: Bearer <token>`` (compared in constant
    time). Without one, only a direct request from loopback: a request that a proxy on this host
    relayed (it says so in a forwarding header) is refused, since it may come from anywhere.
    """
    if token:
        scheme, _, given = (environ.get("HTTP_AUTHORIZATION") or "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return None
        return "401 Unauthorized", "a bearer token is required (metrics_token)"
    if _loopback(environ.get("REMOTE_ADDR")) and not any(environ.get(h) for h in RELAYED):
        return None
    return "403 Forbidden", "metrics are served to this host's loopback only unless metrics_token is set"
