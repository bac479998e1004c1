"""Checkpoints: the chain's latest seal published where the database's writers cannot reach.

A seal kept only in ``audit_seals`` can be deleted with the records it covers. So the audit
process publishes the latest seal every ``audit_checkpoint_records`` records or
``audit_checkpoint_seconds`` seconds (and when it stops): one JSON line appended to the anchor
file (opened for append, fsynced) and an RFC 5424 message to every forwarded Audit Record
Repository. ``xds audit verify --anchor FILE`` then sees a deleted tail, or a rewrite before a
checkpoint, even when the seals went with it.

The syslog message uses its own MSGID (:data:`MSGID`) so that an ARR keeps it apart from the
DICOM audit messages (MSGID ``IHE+RFC-3881``, ITI TF-2 3.20.6.1); its MSG is the seal's JSON.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from audit import store, syslog
from audit.seal import Seal

log = logging.getLogger(__name__)

MSGID = "DMPXDS-CHECKPOINT"


def message(seal: Seal, hostname: str | None = None) -> bytes:
    """The checkpoint as one RFC 5424 message (facility 10, notice), its JSON as MSG."""
    return syslog.encode(seal.to_json().encode(), hostname=hostname, msgid=MSGID)


def read_anchor(path: str | Path) -> list[Seal]:
    """The checkpoints of an anchor file; a line that is not one raises ValueError naming it."""
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(Seal.from_json(line))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}, line {n}: not a checkpoint ({exc})") from None
    return out


class Checkpoints:
    """Decides when the latest seal is due and publishes it (anchor file, forward callbacks)."""

    def __init__(self, database, anchor_file: str = "", every_records: int = 1000, every_seconds: float = 60.0,
                 forward: Callable[[bytes], None] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.database = database
        self.anchor_file = anchor_file
        self.every_records = max(1, every_records)
        self.every_seconds = every_seconds
        self.forward = forward
        self.clock = clock
        self.published: Seal | None = None
        self._published_at = clock()

    def tick(self, force: bool = False) -> Seal | None:
        """Publish the latest seal when due (``force``: whenever it is new); returns it if published."""
        latest = store.last_seal(self.database)
        if latest is None or (self.published is not None and latest.to_seq == self.published.to_seq):
            return None
        since = latest.to_seq - (self.published.to_seq if self.published is not None else 0)
        if not (force or self.published is None or since >= self.every_records
                or self.clock() - self._published_at >= self.every_seconds):
            return None
        self.publish(latest)
        return latest

    def publish(self, seal: Seal) -> None:
        if self.anchor_file:
            line = (seal.to_json() + "\n").encode()
            fd = os.open(self.anchor_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        if self.forward is not None:
            self.forward(message(seal))
        self.published, self._published_at = seal, self.clock()
