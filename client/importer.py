"""Bulk import of a folder: concurrent ITI-41 submissions, a progress bar, a journal to resume.

The journal (JSON lines, ``.xds-import.journal`` in the folder unless told otherwise) records
``start`` before a document is sent and ``done`` once the repository said Success, keyed by the
document's uniqueId and SHA-1. A rerun skips what is ``done``. Every other document is first
looked up in the registry by uniqueId (ITI-18 GetDocuments, whatever its status): one that is
registered is not sent again, so a folder submitted partly by other means, or a replaced
(Deprecated) original, is never registered a second time, and nothing goes twice.

Documents whose header names a parent in the same folder (relatedDocument RPLC, APND, XFRM) go
after it, so a correction always finds its original registered.

Ctrl-C stops the run at once: no new submission starts, the journal is closed line-complete, and
the submissions in flight either completed (registered) or not; the rerun resumes from there.
"""
from __future__ import annotations

import hashlib
import json
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tqdm import tqdm  # type: ignore[import-untyped]

from client.client import XdsClient
from client.documents import Overrides, SourceDocument, load_document, resolve_references
from client.errors import XdsClientError

JOURNAL_NAME = ".xds-import.journal"
SKIP_SUFFIXES = {".journal", ".tmp", ".part"}
POLL_SECONDS = 0.1
"""How often the main thread looks up from its wait: Ctrl-C is handled within this."""


def key(unique_id: str, sha1: str) -> str:
    return f"{unique_id}#{sha1}"


class Journal:
    """Append-only JSON lines, flushed and fsync-ed per record (a kill loses at most the line in flight)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: dict[str, dict] = {}
        self.started: dict[str, dict] = {}
        if path.exists():
            for line in path.read_text("utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line torn by a kill
                (self.done if rec.get("event") == "done" else self.started)[rec["key"]] = rec
        self._lock = threading.Lock()
        self._fh: TextIO | None = open(path, "a", encoding="utf-8")

    def in_flight(self, k: str) -> bool:
        return k in self.started and k not in self.done

    def record(self, event: str, k: str, **info) -> None:
        """Append one line; after :meth:`close` (an interrupted run) nothing more is written."""
        rec = {"event": event, "key": k, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **info}
        with self._lock:
            if self._fh is None:
                return
            self._fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
            if event == "done":
                self.done[k] = rec
            else:
                self.started[k] = rec

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


@dataclass
class Outcome:
    path: Path
    status: str          # submitted, skipped, recovered, failed
    unique_id: str = ""
    reason: str = ""
    exit_code: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    outcomes: list[Outcome] = field(default_factory=list)
    interrupted: bool = False
    """Ctrl-C: the files without an outcome were not sent; rerunning resumes."""
    total: int = 0

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def exit_code(self) -> int:
        return max((o.exit_code for o in self.failures), default=0)


class Progress:
    """A tqdm bar on stderr: done/total, documents per second and the time left."""

    def __init__(self, total: int, stream=None) -> None:
        self.done = self.failed = 0
        self._lock = threading.Lock()
        self.bar = tqdm(total=total, file=stream or sys.stderr, unit="doc", mininterval=0.5, smoothing=0.1,
                        dynamic_ncols=True, desc="import")

    def update(self, ok: bool) -> None:
        with self._lock:
            self.done += 1
            self.failed += 0 if ok else 1
            self.bar.set_postfix_str(f"{self.done - self.failed} ok, {self.failed} failed", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        with self._lock:
            self.bar.close()


def files_in(folder: Path, journal_path: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p != journal_path
                  and not p.name.startswith(".") and p.suffix not in SKIP_SUFFIXES)


def waves(docs: list[SourceDocument]) -> list[list[SourceDocument]]:
    """Documents in dependency order: a parent named by uniqueId in the same folder goes first."""
    by_uid = {d.entry.unique_id: d for d in docs}
    depth: dict[int, int] = {}

    def level(d: SourceDocument, seen: frozenset[int]) -> int:
        if id(d) in depth:
            return depth[id(d)]
        parents = [by_uid[ref] for _kind, ref in d.references if ref in by_uid and id(by_uid[ref]) not in seen]
        depth[id(d)] = 1 + max((level(p, seen | {id(d)}) for p in parents), default=-1)
        return depth[id(d)]

    out: list[list[SourceDocument]] = []
    for d in docs:
        n = level(d, frozenset())
        while len(out) <= n:
            out.append([])
        out[n].append(d)
    return out


def run_import(client: XdsClient, folder: Path, journal_path: Path | None = None, jobs: int = 4,
               overrides: Overrides | None = None, progress_stream=None, stop_after: int | None = None
               ) -> ImportReport:
    """Submit every document of ``folder`` (one submission set each), resuming from the journal.

    Ctrl-C (KeyboardInterrupt in this thread) returns within :data:`POLL_SECONDS` a report with
    ``interrupted`` set. The workers are daemon threads: a request in flight is left to finish or
    fail on its own, and the next run finds it registered or not by its uniqueId.

    ``stop_after``: die (``os._exit``) right after the N-th successful submission, before its
    ``done`` line is written -- the worst moment for a kill; used by the tests.
    """
    journal_path = journal_path or folder / JOURNAL_NAME
    journal = Journal(journal_path)
    report = ImportReport()
    stop = threading.Event()
    sent = [0]
    lock = threading.Lock()
    progress: Progress | None = None

    def one(doc: SourceDocument) -> Outcome:
        path = Path(doc.source)
        sha1 = hashlib.sha1(doc.content).hexdigest()
        unique_id = doc.entry.unique_id
        assert unique_id is not None  # load_document refuses a document without one (MissingMetadata)
        k = key(unique_id, sha1)
        if k in journal.done:
            return Outcome(path, "skipped", unique_id, "already imported (journal)")
        try:
            registered = client.find_document(unique_id)
            if registered is not None:
                if registered.hash and registered.hash.lower() != sha1:
                    return Outcome(path, "failed", unique_id,
                                   f"uniqueId {unique_id} is registered with other content (SHA-1 "
                                   f"{registered.hash}): not sent", 1)
                recovered = journal.in_flight(k)
                journal.record("done", k, file=str(path), recovered=recovered, registered=True)
                if recovered:
                    return Outcome(path, "recovered", unique_id,
                                   "interrupted earlier, found in the registry: not sent again")
                return Outcome(path, "skipped", unique_id, "already registered (GetDocuments by uniqueId)")
            if stop.is_set():
                return Outcome(path, "cancelled", unique_id)
            resolve_references(client, doc)
            journal.record("start", k, file=str(path))
            client.submit([doc])
        except XdsClientError as exc:
            return Outcome(path, "failed", unique_id, str(exc), exc.exit_code)
        if stop_after is not None:
            with lock:
                sent[0] += 1
                if sent[0] >= stop_after:
                    os._exit(137)
        journal.record("done", k, file=str(path))
        return Outcome(path, "submitted", unique_id)

    def worker(tasks: queue.Queue, results: queue.Queue) -> None:
        while not stop.is_set():
            try:
                doc = tasks.get_nowait()
            except queue.Empty:
                return
            try:
                outcome = one(doc)
            except Exception as exc:  # noqa: BLE001 - a bug in one document must not hang the run: reported as failed
                outcome = Outcome(Path(doc.source), "failed", doc.entry.unique_id or "", repr(exc), 1)
            outcome.warnings = doc.warnings
            results.put(outcome)

    try:
        files = files_in(folder, journal_path)
        report.total = len(files)
        progress = Progress(len(files), progress_stream)
        docs: list[SourceDocument] = []
        for path in files:
            try:
                docs.append(load_document(path, overrides))
            except XdsClientError as exc:
                report.outcomes.append(Outcome(path, "failed", reason=str(exc), exit_code=exc.exit_code))
                progress.update(False)
        for wave in waves(docs):
            tasks: queue.Queue = queue.Queue()
            results: queue.Queue = queue.Queue()
            for d in wave:
                tasks.put(d)
            for _ in range(max(1, min(jobs, len(wave)))):
                threading.Thread(target=worker, args=(tasks, results), daemon=True, name="xds-import").start()
            pending = len(wave)
            while pending:
                try:
                    outcome = results.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    continue
                pending -= 1
                if outcome.status != "cancelled":
                    report.outcomes.append(outcome)
                    progress.update(outcome.status != "failed")
    except KeyboardInterrupt:
        stop.set()
        report.interrupted = True
    finally:
        journal.close()
        if progress is not None:
            progress.close()
    report.outcomes.sort(key=lambda o: str(o.path))
    return report
