"""Document bytes: the ``DocumentStore`` interface and its content-addressed folder implementation.

A document is written in two steps so that the transactions can keep the index and the bytes
consistent whatever happens (DESIGN.md section 4):

1. ``stage(chunks)`` streams the bytes into a private staging object while computing SHA-1 (the
   XDS ``hash``), SHA-256 (the content address) and the size. Nothing is visible yet.
2. ``place(staged)`` makes the bytes durable under their content address. Same bytes, same
   address: a document stored twice takes the room of one.

``guard(address)`` serialises, for one address, "record a reference, then place" against "drop a
reference, then delete the bytes if no reference is left"; without it a rollback could delete
bytes another submission has just referenced. The folder store uses ``flock`` on striped lock
files (good for every process on one host); an S3-compatible store would use a database advisory
lock instead, and nothing in the transactions changes.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

CHUNK_SIZE = 64 * 1024
LOCK_STRIPES = 256


@dataclass(frozen=True)
class ContentRef:
    """Where a document's bytes are, and what they are."""
    address: str
    """Lower-case hex SHA-256 of the bytes."""
    sha1: str
    """Lower-case hex SHA-1 of the bytes (the XDS DocumentEntry ``hash``, ITI TF-3 4.2.3.2.12)."""
    size: int


@dataclass
class StagedContent:
    """Bytes written and hashed, not yet placed; ``handle`` is the store's own token."""
    ref: ContentRef
    handle: object


class DocumentStore(Protocol):
    """What the ITI-41 and ITI-43 transactions need from a place that keeps bytes."""

    def stage(self, chunks: Iterable[bytes]) -> StagedContent:
        """Write and hash the bytes; they are not retrievable until ``place``."""

    def place(self, staged: StagedContent) -> None:
        """Make staged bytes durable under their address (idempotent for the same bytes)."""

    def discard(self, staged: StagedContent) -> None:
        """Forget staged bytes that will not be placed."""

    def put(self, chunks: Iterable[bytes]) -> ContentRef:
        """``stage`` then ``place``."""

    def exists(self, ref: ContentRef) -> bool: ...

    def open(self, ref: ContentRef) -> Iterator[bytes]:
        """The bytes, chunk by chunk."""

    def delete(self, ref: ContentRef) -> None:
        """Remove the bytes (no error if they are already gone)."""

    def guard(self, address: str) -> AbstractContextManager[None]:
        """Mutual exclusion for reference changes of one address (see the module docstring)."""

    def sweep_staging(self, older_than: float = 0.0) -> int:
        """Remove staged objects left by a crash; returns how many."""

    def mark_removal(self, address: str) -> None:
        """Record, durably, that the bytes at ``address`` may lose their last reference (ITI-86)."""

    def removal_marks(self) -> list[str]:
        """The addresses of removals a crash may have left unfinished."""

    def clear_removal_mark(self, address: str) -> None:
        """The removal of ``address`` is finished (its bytes deleted or still referenced)."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileSystemStore:
    """Content-addressed folder: ``objects/ab/cd/abcd...`` (SHA-256), staging in ``staging/<process>/``.

    Placing is ``os.replace`` of a fsynced staging file followed by a fsync of the target folder,
    so a placed document survives a power cut and a reader never sees half a file.
    """

    def __init__(self, root: str | os.PathLike, fsync: bool = True) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.staging_root = self.root / "staging"
        self.locks = self.root / "locks"
        self.removing = self.root / "removing"
        self.fsync = fsync
        for d in (self.objects, self.staging_root, self.locks, self.removing):
            d.mkdir(parents=True, exist_ok=True)
        self._thread_locks = [threading.Lock() for _ in range(LOCK_STRIPES)]
        self._own: tuple[int, Path] | None = None

    @property
    def staging(self) -> Path:
        """This process's staging folder: ``staging/<host>-<pid>-<start ms>``.

        Per process (issue 19 finding 1): ``xds serve`` emptied the whole staging folder at start,
        under the feet of another server sharing the store and of the workers of a server killed a
        moment ago. Named after the process so that :meth:`sweep_staging` can tell whether its owner
        is alive; computed again after a fork (gunicorn workers are forked from the master)."""
        pid = os.getpid()
        if self._own is None or self._own[0] != pid:
            path = self.staging_root / f"{host_name()}-{pid}-{int(time.time() * 1000)}"
            path.mkdir(parents=True, exist_ok=True)
            self._own = (pid, path)
        return self._own[1]

    # -- paths
    def path(self, address: str) -> Path:
        if len(address) != 64 or any(c not in "0123456789abcdef" for c in address):
            raise ValueError(f"not a content address: {address!r}")
        return self.objects / address[:2] / address[2:4] / address

    # -- writing
    def stage(self, chunks: Iterable[bytes]) -> StagedContent:
        sha1 = hashlib.sha1()
        sha256 = hashlib.sha256()
        size = 0
        tmp = self.staging / f"{uuid.uuid4().hex}.part"
        try:
            with open(tmp, "xb", buffering=0) as fh:
                for chunk in chunks:
                    if not chunk:
                        continue
                    sha1.update(chunk)
                    sha256.update(chunk)
                    size += len(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[fh.write(view):]
                if self.fsync:
                    os.fsync(fh.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return StagedContent(ContentRef(sha256.hexdigest(), sha1.hexdigest(), size), tmp)

    @staticmethod
    def _staged_path(staged: StagedContent) -> Path:
        """The staging file of bytes this store staged (its handle is the file's path)."""
        if not isinstance(staged.handle, Path):
            raise TypeError(f"not staged by a FileSystemStore: {staged.handle!r}")
        return staged.handle

    def place(self, staged: StagedContent) -> None:
        tmp = self._staged_path(staged)
        target = self.path(staged.ref.address)
        if target.exists():
            tmp.unlink(missing_ok=True)  # same bytes already there: stored once
            return
        try:
            os.replace(tmp, target)
        except FileNotFoundError:  # first document of this fan-out folder
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
            if self.fsync:  # the new folders' own entries must be durable too
                _fsync_dir(target.parent.parent)
                _fsync_dir(self.objects)
        if self.fsync:
            _fsync_dir(target.parent)

    def discard(self, staged: StagedContent) -> None:
        self._staged_path(staged).unlink(missing_ok=True)

    def put(self, chunks: Iterable[bytes]) -> ContentRef:
        staged = self.stage(chunks)
        self.place(staged)
        return staged.ref

    # -- reading
    def exists(self, ref: ContentRef) -> bool:
        return self.path(ref.address).exists()

    def open(self, ref: ContentRef) -> Iterator[bytes]:
        """Chunks of the document; the file is opened at once, so a missing file fails here."""
        fh = open(self.path(ref.address), "rb")

        def chunks() -> Iterator[bytes]:
            with fh:
                while chunk := fh.read(CHUNK_SIZE):
                    yield chunk
        return chunks()

    # -- deleting
    def delete(self, ref: ContentRef) -> None:
        target = self.path(ref.address)
        try:
            target.unlink()
        except FileNotFoundError:
            return
        if self.fsync:
            _fsync_dir(target.parent)

    def mark_removal(self, address: str) -> None:
        """An empty file ``removing/<address>``, fsynced with its folder before the index row goes:
        a crash between the row's deletion and the bytes' leaves the mark, and
        :func:`repository.removal.finish_removals` deletes the bytes no row holds (ITI-86)."""
        self.path(address)  # refuses anything but a content address
        mark = self.removing / address
        fd = os.open(mark, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if self.fsync:
            _fsync_dir(self.removing)

    def removal_marks(self) -> list[str]:
        return sorted(p.name for p in self.removing.iterdir() if len(p.name) == 64)

    def clear_removal_mark(self, address: str) -> None:
        try:
            (self.removing / address).unlink()
        except FileNotFoundError:
            pass

    @contextmanager
    def guard(self, address: str) -> Iterator[None]:
        stripe = int(address[:2], 16) % LOCK_STRIPES
        with self._thread_locks[stripe]:  # flock is per open file: threads need their own lock
            fd = os.open(self.locks / f"{stripe:02x}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the flock

    def sweep_staging(self, older_than: float = 0.0) -> int:
        """Remove staged files left by processes that are gone; returns how many files.

        A folder of a live process on this host is never touched, whatever its age. A folder of a
        process of this host that is gone (pid not alive) loses its files at once and goes. A folder
        of another host (liveness unknown) loses its files older than ``older_than``, and goes when
        empty and older than the bound: a request lasts at most the gunicorn timeout, so an older
        file of another host is a crash's leftover. Files directly in ``staging/`` (the layout
        before per-process folders) follow the age rule.
        """
        removed = 0
        now = time.time()
        own = self._own[1] if self._own is not None and self._own[0] == os.getpid() else None
        for p in self.staging_root.iterdir():
            try:
                if p.is_dir():
                    if p == own:
                        continue
                    state = _owner_state(p.name)
                    if state == ALIVE:
                        continue
                    limit = now if state == GONE else now - older_than
                    folder_old = p.stat().st_mtime <= limit  # before unlinking, which touches it
                    for f in p.iterdir():
                        if f.stat().st_mtime <= limit:
                            f.unlink()
                            removed += 1
                    if folder_old and not any(p.iterdir()):
                        p.rmdir()
                elif p.stat().st_mtime <= now - older_than:
                    p.unlink()
                    removed += 1
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.ENOTEMPTY):
                    log.warning("could not remove staged file %s: %s", p, exc)
        return removed


def host_name() -> str:
    """This host's name as a file name part (owner ids and staging folders)."""
    return socket.gethostname().replace(os.sep, "_") or "localhost"


ALIVE, GONE, UNKNOWN = "alive", "gone", "unknown"


def _owner_state(name: str) -> str:
    """Whether the staging folder ``<host>-<pid>-<start>`` belongs to a live process of this host.

    :data:`UNKNOWN` for another host (its liveness cannot be seen from here: the age bound decides)
    and for a name that is not a process folder. A reused pid reads as alive: the folder is kept (a
    leak until that process ends, never a loss)."""
    host, sep, rest = name.rpartition("-")
    host, sep2, pid_text = host.rpartition("-")
    if not (sep and sep2 and pid_text.isdigit() and rest.isdigit()) or host != host_name():
        return UNKNOWN
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return GONE
    except PermissionError:
        return ALIVE
    return ALIVE
