"""Test-only fault injection for the crash tests of issue 19, read once from the settings.

``repository_faults`` (``XDS_REPOSITORY_FAULTS``) lists ``point=N`` pairs; the point fires at the
N-th, 2N-th... time this process reaches it. Empty (the default) injects nothing. Each
:class:`~repository.transactions.Repository` holds its own plan: no process-wide state.

Points:

* ``exit_after_register``: the process dies (``os._exit``) once the registry has answered Success
  and before the index rows are committed - the window of issue 19 finding 2;
* ``commit_error``: every attempt to mark one submission's index rows committed fails, as on a
  full disk or a lost database connection (finding 2);
* ``enospc``: storing a document fails with ``ENOSPC``, as on a full disk (finding 6);
* ``exit_in_removal``: the process dies during an ITI-86 removal once the index row is deleted and
  before the bytes are (issue 21: a removal killed half-way leaves the old or the new state).
"""
from __future__ import annotations

import errno
import os
import threading
from dataclasses import dataclass, field

POINTS = ("exit_after_register", "commit_error", "enospc", "exit_in_removal")

EXIT_STATUS = 87
"""Exit status of a process stopped by ``exit_after_register`` (tests tell it from other deaths)."""


class InjectedFault(RuntimeError):
    """An injected failure of the index commit."""


@dataclass
class FaultPlan:
    every: dict[str, int] = field(default_factory=dict)
    _seen: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        """``"exit_after_register=7,enospc=3"``; an unknown point or a count below 1 is refused."""
        every: dict[str, int] = {}
        for item in filter(None, (p.strip() for p in text.split(","))):
            point, sep, count = item.partition("=")
            point = point.strip()
            if point not in POINTS or not sep or not count.strip().isdigit() or int(count) < 1:
                raise ValueError(f"repository_faults: {item!r} is not one of {', '.join(POINTS)} = a count >= 1")
            every[point] = int(count)
        return cls(every)

    def fires(self, point: str) -> bool:
        n = self.every.get(point)
        if n is None:
            return False
        with self._lock:
            seen = self._seen[point] = self._seen.get(point, 0) + 1
        return seen % n == 0

    def exit_after_register(self) -> None:
        if self.fires("exit_after_register"):
            os._exit(EXIT_STATUS)

    def exit_in_removal(self) -> None:
        if self.fires("exit_in_removal"):
            os._exit(EXIT_STATUS)

    def enospc(self) -> None:
        if self.fires("enospc"):
            raise OSError(errno.ENOSPC, "No space left on device (injected: repository_faults)")
