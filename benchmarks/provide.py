"""ITI-41 Provide and Register and ITI-43 Retrieve over HTTP, and the server's memory on a 200 MB document.

    python benchmarks/provide.py [--backends sqlite,postgresql] [--seconds 8] [--big-mb 200]

For each back-end: ITI-41 submissions/s of a 50 KB CDA and of a 1 MB PDF (MTOM, one document
per submission) with 1 and 8 clients, and ITI-43 MB/s (1 MB document, 8 clients). Each figure is
printed with its floors from the same run: the same client against a minimal lxml SOAP echo under
the same gunicorn settings (fed the same submission, inline base64, since the echo reads no MTOM),
and one committed INSERT round trip on the same database.

Memory: one worker, a 200 MB document streamed in (MTOM) and out (ITI-43); the worker's RSS is
sampled from /proc every 10 ms and its peak is reported above its idle RSS (target <= 64 MB).
Target (2 cores, PostgreSQL, 8 clients): >= 100 ITI-41 submissions/s of a 50 KB document.
Loopback only; every loop is bounded in count and time.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import threading
import time
from pathlib import Path

import requests
from common import EchoServer, database_urls, insert_floor, print_table, run_load, start_xds

from tests.repository.support import (
    PATIENT,
    REPOSITORY_UID,
    envelope,
    mtom_message,
    provide_body,
    provide_request,
    retrieve_request,
    submission,
)
from tests.support.server import start_server
from xds.vocabulary import Actions

SUCCESS = b"ResponseStatusType:Success"
CDA_HEAD = (b'<?xml version="1.0" encoding="UTF-8"?>\n<ClinicalDocument xmlns="urn:hl7-org:v3">'
            b"<title>Compte rendu</title><component><structuredBody>")


CDA_END = b"</structuredBody></component></ClinicalDocument>\n"


def cda(size: int, seed: int) -> bytes:
    section = b"<section><text>Resultat %d: glycemie normale.</text></section>" % seed
    body = CDA_HEAD + section * ((size - len(CDA_HEAD)) // len(section))
    return body[: size - len(CDA_END)].ljust(size - len(CDA_END), b" ") + CDA_END


def pdf(size: int, seed: int) -> bytes:
    return b"%PDF-1.7\n" + os.urandom(size - 20) + b"%d\n%%%%EOF\n" % (seed % 10)


def ok(content: bytes) -> bool:
    return SUCCESS in content[:4096]


def provide_bodies(make, size: int, count: int, mtom: bool = True) -> list[tuple[bytes, dict]]:
    out = []
    for i in range(count):
        sub = submission([make(size, i)], mime="application/pdf" if make is pdf else "text/xml")
        body, ct = provide_request(sub, mtom=mtom)
        out.append((body, {"Content-Type": ct}))
    return out


def worker_pid(master_pid: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                try:
                    if int((p / "stat").read_text().split(") ")[1].split()[1]) == master_pid:
                        return int(p.name)
                except (OSError, IndexError, ValueError):
                    continue
        time.sleep(0.1)
    raise RuntimeError("no gunicorn worker found")


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def memory_run(tmp: Path, url: str, big_mb: int) -> dict:
    data_dir = tmp / "mem-data"
    server = start_server(data_dir, url, workers=1, threads=4,
                          env={"XDS_MAX_REQUEST_BYTES": str(big_mb * 1024 * 1024 + 10 * 1024 * 1024)})
    try:
        server.add_patient(PATIENT)
        pid = worker_pid(server.process.pid)
        # warm up: one small submission and retrieval, so that idle RSS includes imports and pools
        small = submission([b"<warm/>"])
        requests.post(server.repository_url, data=provide_request(small)[0],
                      headers={"Content-Type": provide_request(small)[1]}, timeout=60)
        time.sleep(0.5)
        idle = rss_kb(pid)
        # the request body on disk (client memory is not what is measured, but keep it small too)
        sub = submission([b"x"], mime="application/octet-stream")
        body_el, _ = provide_body(sub, mtom=True)
        cid = "big@bench"
        inc = body_el.find("{urn:ihe:iti:xds-b:2007}Document/{http://www.w3.org/2004/08/xop/include}Include")
        inc.set("href", "cid:" + cid)
        env = envelope(body_el, Actions.PROVIDE)
        head, ct = mtom_message(env, [(cid, b"")])
        tail_marker = head.rindex(b"\r\n--")
        sha1 = hashlib.sha1()
        path = tmp / "big.mtom"
        block = os.urandom(1024 * 1024)
        with open(path, "wb") as fh:
            fh.write(head[:tail_marker])
            for i in range(big_mb):
                chunk = block[:-4] + i.to_bytes(4, "big")
                sha1.update(chunk)
                fh.write(chunk)
            fh.write(head[tail_marker:])
        peak = [idle]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                try:
                    peak[0] = max(peak[0], rss_kb(pid))
                except OSError:
                    pass
                time.sleep(0.01)
        t = threading.Thread(target=sample)
        t.start()
        t0 = time.perf_counter()
        with open(path, "rb") as fh:
            res = requests.post(server.repository_url, data=fh, headers={"Content-Type": ct}, timeout=600)
        t_in = time.perf_counter() - t0
        assert ok(res.content), res.content[:2000]
        body, rct = retrieve_request([(REPOSITORY_UID, sub.docs[0].unique_id)])
        t0 = time.perf_counter()
        got = 0
        with requests.post(server.repository_url, data=body, headers={"Content-Type": rct}, timeout=600,
                           stream=True) as res:
            for chunk in res.iter_content(1024 * 1024):
                got += len(chunk)
        t_out = time.perf_counter() - t0
        stop.set()
        t.join()
        path.unlink()
        hwm = rss_kb(pid, "VmHWM")
        return {"idle_mb": idle / 1024, "peak_mb": peak[0] / 1024, "hwm_mb": hwm / 1024,
                "delta_mb": (peak[0] - idle) / 1024, "in_s": t_in, "out_s": t_out, "out_bytes": got}
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--seconds", type=float, default=8.0, help="time bound of each measurement")
    ap.add_argument("--max-requests", type=int, default=2000, help="count bound of each measurement")
    ap.add_argument("--big-mb", type=int, default=200)
    args = ap.parse_args()

    echo = EchoServer()
    rows = []
    mem_rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            kinds = {"50KB CDA": (cda, 50 * 1024, 400), "1MB PDF": (pdf, 1024 * 1024, 40)}
            echo_rate = {}
            for name, (make, size, _) in kinds.items():
                inline = provide_bodies(make, size, 10, mtom=False)
                for c in (1, 8):
                    echo_rate[name, c] = run_load(echo.url, inline, c, args.max_requests // 2, args.seconds / 2).rate
            one_mb = pdf(1024 * 1024, 0)
            echo_mb = run_load(echo.url, provide_bodies(pdf, 1024 * 1024, 4, mtom=False), 8, 400,
                               args.seconds / 2).rate * len(one_mb) / 1e6
            for backend, url, handle in database_urls(tmp, args.backends.split(",")):
                floor_insert = insert_floor(url)
                server = start_xds(tmp, url)
                try:
                    server.add_patient(PATIENT)
                    for name, (make, size, count) in kinds.items():
                        for c in (1, 8):
                            n = min(args.max_requests, count * (2 if c == 8 else 1))
                            load = run_load(server.repository_url, provide_bodies(make, size, n), c, n,
                                            args.seconds, check=ok)
                            rows.append([backend, f"ITI-41 {name}", c, f"{load.rate:.1f}/s", f"{load.pct(50):.1f}",
                                         f"{load.pct(95):.1f}", load.failures,
                                         f"{load.rate / echo_rate[name, c]:.2f}", f"{load.rate / floor_insert:.3f}"])
                    sub = submission([one_mb], mime="application/pdf")
                    body, ct = provide_request(sub)
                    assert ok(requests.post(server.repository_url, data=body, headers={"Content-Type": ct},
                                            timeout=60).content)
                    rbody, rct = retrieve_request([(REPOSITORY_UID, sub.docs[0].unique_id)])
                    load = run_load(server.repository_url, [(rbody, {"Content-Type": rct})], 8, 400, args.seconds,
                                    check=lambda content: len(content) > len(one_mb))
                    mbps = load.rate * len(one_mb) / 1e6
                    rows.append([backend, "ITI-43 1MB", 8, f"{mbps:.1f} MB/s", f"{load.pct(50):.1f}",
                                 f"{load.pct(95):.1f}", load.failures, f"{mbps / echo_mb:.2f}",
                                 f"{load.rate / floor_insert:.3f}"])
                finally:
                    server.stop()
                if args.big_mb:
                    m = memory_run(tmp / backend, url, args.big_mb)
                    mem_rows.append([backend, f"{args.big_mb} MB", f"{m['idle_mb']:.1f}", f"{m['peak_mb']:.1f}",
                                     f"{m['delta_mb']:.1f}", f"{m['hwm_mb']:.1f}",
                                     "yes" if m["delta_mb"] <= 64 else "NO",
                                     f"{args.big_mb * 1.048576 / m['in_s']:.0f}",
                                     f"{m['out_bytes'] / 1e6 / m['out_s']:.0f}"])
                if handle is not None:
                    handle.close()
                print(f"# {backend}: insert floor {floor_insert:.0f} commits/s", flush=True)
    finally:
        echo.stop()
    print("# echo floor (same client, inline base64 of the same submissions): "
          + ", ".join(f"{k[0]} x{k[1]} {v:.0f}/s" for k, v in echo_rate.items()) + f", 1MB x8 {echo_mb:.0f} MB/s")
    print_table(["backend", "benchmark", "clients", "rate", "p50 ms", "p95 ms", "fail", "/echo", "/insert"], rows)
    if mem_rows:
        print()
        print_table(["backend", "document", "idle MB", "peak MB", "peak-idle MB", "VmHWM MB", "<=64MB",
                     "in MB/s", "out MB/s"], mem_rows)


if __name__ == "__main__":
    main()
