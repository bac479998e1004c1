"""ITI-42 Register Document Set-b throughput over HTTP (issue: registry foundation).

    python benchmarks/register.py [--backends sqlite,postgresql] [--seconds 8]

For each back-end: 1 and 8 concurrent clients, one-document and ten-document submission sets.
Each figure is printed with its floors measured in the same run: the same client against a
minimal lxml SOAP echo (same gunicorn settings), and one committed INSERT round trip.
Target (2 cores, PostgreSQL, 8 clients): >= 200 one-document registrations per second.

    python benchmarks/register.py --metadata-update [--patients 300] [--rounds 6]

ITI-57 Update Document Set (issue 21), per back-end, on two registries filled alike with one-document
ITI-42 submissions (``--patients`` x 10 documents, 8 clients: registrations/s): on one of them 30% of
the documents get two new versions (two rounds of ITI-57, each document once a round so that every
PreviousVersion is the latest, 8 clients: updates/s). Then FindDocuments (patient, Approved,
LeafClass: the latest versions, 10 entries either way), 8 clients, in alternating rounds on the
registry without versions and the one with: the median of the rounds' paired slowdowns must stay
within 10%.
"""
from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import tempfile
from pathlib import Path

from common import EchoServer, database_urls, insert_floor, paired_slowdown, print_table, run_load, spread, start_xds

from client.queries import adhoc_query_request
from registry.register import Registry
from storage.database import Database
from tests.support.metadata import document_entry, draft, fresh_patient
from xds.metadata import DocumentEntry, new_uuid
from xds.rim import Slot
from xds.soap.client import encode_request
from xds.vocabulary import Actions, Status
from xds.vocabulary import MetadataUpdate as MU

SUCCESS = b"ResponseStatusType:Success"


def bodies(url: str, patients: list[str], count: int, documents: int) -> list[tuple[bytes, dict]]:
    return [encode_request(Actions.REGISTER, url, draft(patients[i % len(patients)], documents).request())
            for i in range(count)]


# ----------------------------------------------------------------------------- ITI-57

VERSIONED_SHARE = 0.3
NEW_VERSIONS = 2


def registration(url: str, patient: str) -> tuple[tuple[bytes, dict], DocumentEntry]:
    """A one-document ITI-42 whose entryUUID is a UUID (kept by the registry: the lid of later versions)."""
    d = draft(patient, documents=0)
    doc = d.add_document(document_entry(patient, new_uuid()))
    return encode_request(Actions.REGISTER, url, d.request()), doc


def new_version(url: str, patient: str, doc: DocumentEntry, previous: int) -> tuple[bytes, dict]:
    """ITI-57: version ``previous + 1`` of ``doc`` with another title (ITI TF-2 3.57.4.1.3.3.1)."""
    d = draft(patient, documents=0)
    d.add_document(dataclasses.replace(doc, entry_uuid=new_uuid(), logical_id=doc.entry_uuid,
                                       title=f"version {previous + 1}"))
    d.associations[-1].extra_slots = [Slot(MU.PREVIOUS_VERSION, [str(previous)])]
    return encode_request(Actions.UPDATE, url, d.request())


def find_documents(url: str, patients: list[str]) -> list[tuple[bytes, dict]]:
    return [encode_request(Actions.STORED_QUERY, url, adhoc_query_request(
        "FindDocuments", {"$XDSDocumentEntryPatientId": [p], "$XDSDocumentEntryStatus": [Status.APPROVED]},
        "LeafClass")) for p in patients]


def metadata_update(args: argparse.Namespace) -> None:
    rows, finds = [], []
    rnd = random.Random(57)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for backend in args.backends.split(","):
            registries = []
            try:
                for label in ("no versions", "30% versioned"):
                    (_, url, handle), = database_urls(tmp, [backend]) or [(None, None, None)]
                    if url is None:
                        break
                    server = start_xds(tmp, url)
                    registries.append((label, server, handle))
                    db = Database(url)
                    patients = [fresh_patient() for _ in range(args.patients)]
                    for p in patients:
                        Registry(db).add_patient(p)
                    db.dispose()
                    docs = [(p, registration(server.registry_url, p)) for p in patients for _ in range(10)]
                    load = run_load(server.registry_url, [body for _, (body, _) in docs], 8, len(docs), 3600,
                                    check=lambda content: SUCCESS in content)
                    rows.append([backend, label, "ITI-42 register (1 doc)", load.requests, f"{load.rate:.0f}",
                                 f"{load.pct(50):.1f}", f"{load.pct(95):.1f}", load.failures])
                    print(rows[-1], flush=True)
                    if label == "30% versioned":
                        chosen = rnd.sample(docs, int(len(docs) * VERSIONED_SHARE))
                        for previous in range(1, NEW_VERSIONS + 1):
                            bodies_ = [new_version(server.registry_url, p, doc, previous) for p, (_, doc) in chosen]
                            load = run_load(server.registry_url, bodies_, 8, len(bodies_), 3600,
                                            check=lambda content: SUCCESS in content)
                            rows.append([backend, label, f"ITI-57 version {previous + 1}", load.requests,
                                         f"{load.rate:.0f}", f"{load.pct(50):.1f}", f"{load.pct(95):.1f}",
                                         load.failures])
                            print(rows[-1], flush=True)
                    registries[-1] = (label, server, handle, find_documents(server.registry_url, patients))
                if len(registries) < 2:
                    continue
                rates: dict[str, list[float]] = {label: [] for label, *_ in registries}
                for _ in range(args.rounds):
                    for label, server, _handle, queries in registries:
                        load = run_load(server.registry_url, rnd.sample(queries, len(queries)), 8, 100_000,
                                        args.seconds, check=lambda content: SUCCESS in content)
                        assert load.failures == 0, f"{label}: {load.failures} FindDocuments failed"
                        rates[label].append(load.rate)
                plain, versioned = rates["no versions"], rates["30% versioned"]
                finds.append([backend, f"{statistics.median(plain):.0f}", f"{statistics.median(versioned):.0f}",
                              f"{paired_slowdown(versioned, plain):+.1f}%", spread(versioned, plain)])
                print(finds[-1], flush=True)
            finally:
                for _label, server, handle, *_ in registries:
                    server.stop()
                    if handle is not None:
                        handle.close()
    print()
    print_table(["db", "registry", "transaction", "requests", "per s", "p50 ms", "p95 ms", "failed"], rows)
    print()
    print_table(["db", "FindDocuments/s no versions", "FindDocuments/s 30% versioned", "slowdown (median of pairs)",
                 "spread"], finds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--seconds", type=float, default=8.0, help="time bound of each measurement")
    ap.add_argument("--max-requests", type=int, default=3000, help="count bound of each measurement")
    ap.add_argument("--metadata-update", action="store_true", help="the ITI-57 runs instead (see above)")
    ap.add_argument("--patients", type=int, default=300, help="--metadata-update: patients of 10 documents each")
    ap.add_argument("--rounds", type=int, default=6, help="--metadata-update: FindDocuments rounds per registry")
    args = ap.parse_args()
    if args.metadata_update:
        args.seconds = min(args.seconds, 4.0)
        metadata_update(args)
        return

    echo = EchoServer()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            sample = bodies(echo.url, [fresh_patient()], 50, 1)
            echo_rate = {c: run_load(echo.url, sample, c, args.max_requests, args.seconds).rate for c in (1, 8)}
            for backend, url, handle in database_urls(tmp, args.backends.split(",")):
                server = start_xds(tmp, url)
                try:
                    db = Database(url)
                    registry = Registry(db)
                    patients = [fresh_patient() for _ in range(50)]
                    for p in patients:
                        registry.add_patient(p)
                    db.dispose()
                    floor_db = insert_floor(url)
                    for documents in (1, 10):
                        for clients in (1, 8):
                            n = args.max_requests if documents == 1 else args.max_requests // 4
                            load = run_load(server.registry_url, bodies(server.registry_url, patients, n, documents),
                                            clients, n, args.seconds, check=lambda content: SUCCESS in content)
                            rows.append([backend, documents, clients, load.requests, f"{load.rate:.0f}",
                                         f"{load.pct(50):.1f}", f"{load.pct(95):.1f}", load.failures,
                                         f"{echo_rate[clients]:.0f}", f"{load.rate / echo_rate[clients]:.3f}",
                                         f"{floor_db:.0f}", f"{load.rate / floor_db:.3f}"])
                            print(rows[-1], flush=True)
                finally:
                    server.stop()
                    if handle is not None:
                        handle.close()
    finally:
        echo.stop()
    print()
    print_table(["db", "docs/set", "clients", "requests", "reg/s", "p50 ms", "p95 ms", "failed",
                 "echo req/s", "ratio to echo", "insert/s", "ratio to insert"], rows)


if __name__ == "__main__":
    main()
