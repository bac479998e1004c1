"""Page times of the portal with long records (issue 23): "Mes documents" (the patient's first page, a
type-filtered page and the last page), the access history and a professional's list of the patient's
documents, for a patient with 10, 500 and 5,000 documents and 20,000 audit records naming her.

Server time only: each page is one call of the portal's WSGI app in this process (no HTTP, no browser), the
median and p90 of ``--rounds`` calls after a warm-up, on SQLite and PostgreSQL. The issue's target is under
60 ms at 5,000 documents.

    .venv/bin/python benchmarks/portal.py [--sizes 10,500,5000] [--audit 20000] [--backends sqlite,postgresql]
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its own name would shadow the
# project's ``portal`` package: put the project root first.
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [str(Path(__file__).resolve().parents[1])] + [p for p in sys.path if p not in (_HERE, "")] + [_HERE]

from common import database_urls, print_table  # noqa: E402
from sqlalchemy import text  # noqa: E402

from audit import messages, store  # noqa: E402
from audit.sender import Sender  # noqa: E402
from client.documents import Overrides, load_document  # noqa: E402
from config import Settings  # noqa: E402
from portal.app import Portal, portal_app  # noqa: E402
from registry.store import migrate as migrate_registry  # noqa: E402
from server.app import build_services  # noqa: E402
from storage.database import Database  # noqa: E402
from tests.portal.support import WsgiBrowser, cda  # noqa: E402
from xds.context import Caller, CodedValue  # noqa: E402

PASSWORD = "benchmark password 0123"
PRO = "810000000011"
LOINC = "2.16.840.1.113883.6.1"
TYPES = [f"11502-2|{LOINC}|CR d'examens biologiques", f"18748-4|{LOINC}|CR d'imagerie médicale",
         f"11490-0|{LOINC}|Lettre de liaison à la sortie"]


def professional() -> Caller:
    return Caller(remote_addr="10.0.0.7", endpoint="http://xds.bench/registry", user_id=PRO, kind="professional",
                  user_name="Dr Alice Martin", authenticated=True, organization="Hôpital Saint-Louis",
                  roles=[CodedValue("10", "1.2.250.1.213.1.1.5.5", "Médecin")])


def patient_id(n: int) -> str:
    number = 1800212345000 + n
    return f"{number}{97 - number % 97:02d}^^^&1.2.250.1.213.1.4.10&ISO^NH"


def seed_documents(portal: Portal, pid: str, count: int, batch: int = 250) -> None:
    start = datetime(2015, 1, 1, 9, 30, tzinfo=UTC)
    for first in range(0, count, batch):
        docs = []
        for i in range(first, min(count, first + batch)):
            when = (start + timedelta(hours=7 * i)).strftime("%Y%m%d%H%M%S") + "+0000"
            docs.append(load_document(Path(f"cr{i}.xml"), Overrides(mime_type="text/xml", type_code=TYPES[i % 3]),
                                      cda(pid, PRO, f"Compte rendu {i}", effective=when)))
        portal.records.provide(professional(), docs)


def seed_audit(services, pid: str, count: int) -> None:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    sender = Sender(services.database)
    for i in range(count):
        event = messages.stored_query(professional(), "bench", 0, "urn:uuid:q", b"<q/>", pid)
        event.time = start + timedelta(minutes=17 * i)
        services.auditor.record(event)
        if i % 2000 == 1999:
            services.auditor.flush()
            while sender.deliver_once():
                pass
    services.auditor.flush()
    while sender.deliver_once():
        pass


def timed(browser: WsgiBrowser, path: str, rounds: int) -> tuple[float, float]:
    assert browser.get(path).status == 200, path
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        r = browser.get(path)
        samples.append((time.perf_counter() - t0) * 1000)
        assert r.status == 200, (path, r.status)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.9))]


def bench(backend: str, url: str, tmp: Path, sizes: list[int], audit: int, rounds: int) -> list[list]:
    db = Database(url)
    migrate_registry(db)
    store.migrate(db)
    db.dispose()
    services = build_services(Settings(data_dir=tmp / f"data-{backend}", database_url=url, access_policy="dmp"))
    portal = portal_app(services)
    assert isinstance(portal, Portal)
    portal.accounts.add("alice", "professional", PASSWORD, display_name="Dr Alice Martin", professional_id=PRO)
    rows = []
    try:
        for n, size in enumerate(sizes):
            pid = patient_id(n)
            services.registry.add_patient(pid)
            portal.records.admin.set_professional(professional(), pid, PRO, "authorised")
            portal.accounts.add(f"patient{n}", "patient", PASSWORD, display_name="Camille", patient_id=pid)
            t0 = time.perf_counter()
            seed_documents(portal, pid, size)
            seed_audit(services, pid, audit if n == len(sizes) - 1 else min(audit, 1000))
            if backend == "postgresql":  # what autovacuum does after a bulk load: plans on real statistics
                with services.database.write() as conn:
                    conn.execute(text("ANALYZE"))
            print(f"# {backend}: {size} documents and their audit seeded in {time.perf_counter() - t0:.0f} s",
                  flush=True)
            me = WsgiBrowser(portal)
            assert me.login(f"patient{n}", PASSWORD).status == 303
            pro = WsgiBrowser(portal, address="192.0.2.20")
            assert pro.login("alice", PASSWORD).status == 303
            pages = max(1, -(-size // 20))
            records = audit if n == len(sizes) - 1 else min(audit, 1000)
            for label, who, path in (
                    ("Mes documents, page 1", me, "/me/documents"),
                    ("Mes documents, one type", me, "/me/documents?type=18748-4"),
                    (f"Mes documents, last page ({pages})", me, f"/me/documents?page={pages}"),
                    ("history, page 1", me, "/me/history"),
                    ("professional's list", pro, "/pro/patient?ins=" + pid.split("^")[0])):
                median, p90 = timed(who, path, rounds)
                rows.append([backend, size, records, label, f"{median:.1f}", f"{p90:.1f}"])
    finally:
        services.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--sizes", default="10,500,5000", help="documents of each patient")
    ap.add_argument("--audit", type=int, default=20000, help="audit records naming the largest record's patient")
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    logging.getLogger("client").setLevel(logging.ERROR)  # the synthetic CDA's generic formatCode, once per document
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[list] = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend, url, handle in database_urls(Path(tmp), args.backends.split(",")):
            try:
                rows += bench(backend, url, Path(tmp), sizes, args.audit, args.rounds)
            finally:
                if handle is not None:
                    handle.close()
    print_table(["backend", "documents", "audit records", "page", "median ms", "p90 ms"], rows)


if __name__ == "__main__":
    main()
