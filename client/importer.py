"""Bulk import of a folder: concurrent ITI-41 submissions, a progress line, a journal to resume.

The journal (JSON lines, ``.xds-import.journal`` in the folder unless told otherwise) records
``start`` before a document is sent and ``done`` once the repository said Success, keyed by the
document's uniqueId and SHA-1. A rerun skips what is ``done``; a document ``start``-ed without
``done`` (the process died while the request was in flight) is looked up in the registry first
(GetDocuments by uniqueId) and only sent if the registry does not have it: nothing goes twice.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from client.client import XdsClient
from client.documents import Overrides, load_document
from client.errors import XdsClientError

JOURNAL_NAME = ".xds-import.journal"
SKIP_SUFFIXES = {".journal", ".tmp", ".part"}


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
        self._fh = open(path, "a", encoding="utf-8")

    def in_flight(self, k: str) -> bool:
        return k in self.started and k not in self.done

    def record(self, event: str, k: str, **info) -> None:
        rec = {"event": event, "key": k, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **info}
        with self._lock:
            self._fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
            if event == "done":
                self.done[k] = rec
            else:
                self.started[k] = rec

    def close(self) -> None:
        self._fh.close()


@dataclass
class Outcome:
    path: Path
    status: str          # submitted, skipped, recovered, failed
    unique_id: str = ""
    reason: str = ""
    exit_code: int = 0


@dataclass
class ImportReport:
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def exit_code(self) -> int:
        return max((o.exit_code for o in self.failures), default=0)


class Progress:
    """One plain-text line on stderr, rewritten in place on a terminal, every ~10 % otherwise."""

    def __init__(self, total: int, stream=None, width: int = 30) -> None:
        self.total, self.stream, self.width = total, stream or sys.stderr, width
        self.done = self.failed = 0
        self._lock = threading.Lock()
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_step = -1

    def update(self, ok: bool) -> None:
        with self._lock:
            self.done += 1
            self.failed += 0 if ok else 1
            n = self.done
            filled = self.width * n // max(self.total, 1)
            line = (f"[{'#' * filled}{'.' * (self.width - filled)}] {n}/{self.total} "
                    f"({self.done - self.failed} ok, {self.failed} failed)")
            if self._tty:
                self.stream.write("\r" + line + ("\n" if n == self.total else ""))
            else:
                step = 10 * n // max(self.total, 1)
                if step != self._last_step or n == self.total:
                    self._last_step = step
                    self.stream.write(line + "\n")
            self.stream.flush()


def files_in(folder: Path, journal_path: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p != journal_path
                  and not p.name.startswith(".") and p.suffix not in SKIP_SUFFIXES)


def run_import(client: XdsClient, folder: Path, journal_path: Path | None = None, jobs: int = 4,
               overrides: Overrides | None = None, progress_stream=None, stop_after: int | None = None
               ) -> ImportReport:
    """Submit every document of ``folder`` (one submission set each), resuming from the journal.

    ``stop_after``: die (``os._exit``) right after the N-th successful submission, before its
    ``done`` line is written -- the worst moment for a kill; used by the tests.
    """
    journal_path = journal_path or folder / JOURNAL_NAME
    journal = Journal(journal_path)
    report = ImportReport()
    files = files_in(folder, journal_path)
    progress = Progress(len(files), progress_stream)
    sent = [0]
    sent_lock = threading.Lock()

    def one(path: Path) -> Outcome:
        try:
            doc = load_document(path, overrides)
        except XdsClientError as exc:
            return Outcome(path, "failed", reason=str(exc), exit_code=exc.exit_code)
        sha1 = hashlib.sha1(doc.content).hexdigest()
        unique_id = doc.entry.unique_id
        assert unique_id is not None  # load_document refuses a document without one (MissingMetadata)
        k = key(unique_id, sha1)
        if k in journal.done:
            return Outcome(path, "skipped", unique_id, "already imported (journal)")
        try:
            if journal.in_flight(k):
                found = client.query("get-documents", unique_id=unique_id).documents
                if any(e.hash and e.hash.lower() == sha1 for e in found):
                    journal.record("done", k, file=str(path), recovered=True)
                    return Outcome(path, "recovered", unique_id,
                                   "interrupted earlier, found in the registry: not sent again")
            journal.record("start", k, file=str(path))
            client.submit([doc])
        except XdsClientError as exc:
            return Outcome(path, "failed", unique_id, str(exc), exc.exit_code)
        if stop_after is not None:
            with sent_lock:
                sent[0] += 1
                if sent[0] >= stop_after:
                    os._exit(137)
        journal.record("done", k, file=str(path))
        return Outcome(path, "submitted", unique_id)

    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [pool.submit(one, p) for p in files]
            for fut in as_completed(futures):
                outcome = fut.result()
                report.outcomes.append(outcome)
                progress.update(outcome.status != "failed")
    finally:
        journal.close()
    report.outcomes.sort(key=lambda o: str(o.path))
    return report
