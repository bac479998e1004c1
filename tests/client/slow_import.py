"""``python -m tests.client.slow_import FOLDER REGISTERED``: ``run_import`` against a slow in-memory
registry (each submission takes 0.4 s); what it registers is appended to the REGISTERED file, which
a rerun reads back. Used to interrupt an import with SIGINT at a known pace."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from client.client import SubmitResult, XdsClient
from client.importer import run_import
from xds.metadata import DocumentEntry, SubmissionSet, new_uuid
from xds.vocabulary import Status


class SlowRegistry(XdsClient):
    def __init__(self, registered: Path) -> None:
        super().__init__()
        self.registered = registered

    def _known(self) -> dict[str, str]:
        if not self.registered.exists():
            return {}
        return dict(line.split(" ", 1) for line in self.registered.read_text().splitlines() if " " in line)

    def find_document(self, unique_id: str) -> DocumentEntry | None:
        known = self._known()
        if unique_id not in known:
            return None
        return DocumentEntry(new_uuid(), unique_id=unique_id, hash=known[unique_id], status=Status.APPROVED)

    def submit(self, documents, submission_set=None, folder=None) -> SubmitResult:
        time.sleep(0.4)
        with self.registered.open("a") as fh:
            for d in documents:
                self.build_submission([d])
                fh.write(f"{d.entry.unique_id} {d.entry.hash}\n")
        return SubmitResult(SubmissionSet(new_uuid()), documents, None, [])


if __name__ == "__main__":
    report = run_import(SlowRegistry(Path(sys.argv[2])), Path(sys.argv[1]), jobs=2)
    print(f"submitted={report.count('submitted')} skipped={report.count('skipped')} "
          f"recovered={report.count('recovered')} failed={len(report.failures)} interrupted={report.interrupted}",
          flush=True)
    sys.exit(130 if report.interrupted else 0)
