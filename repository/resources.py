"""Which failures mean "out of resources": a full disk or quota, for the bytes or for the database.

ITI TF-3 Table 4.2.4.1-2 gives the Document Repository ``XDSRepositoryOutOfResources`` for this;
answering a SOAP fault "internal error" (issue 19 finding 6) tells a Document Source nothing it
can act on.
"""
from __future__ import annotations

import errno
import sqlite3

from psycopg import errors as pg_errors
from sqlalchemy.exc import DBAPIError

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
SQLITE_FULL = 13
"""SQLite's primary result code "database or disk is full" (https://sqlite.org/rescode.html#full)."""


def out_of_resources(exc: BaseException) -> bool:
    """Whether ``exc``, or one of the exceptions it was raised from, is a full disk or quota:
    ``ENOSPC``/``EDQUOT`` from the file system, ``SQLITE_FULL`` from SQLite, SQLSTATE 53100
    (disk_full) from PostgreSQL."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in FULL_ERRNOS:
            return True
        if isinstance(current, DBAPIError) and current.orig is not None and out_of_resources(current.orig):
            return True
        if isinstance(current, sqlite3.Error) and current.sqlite_errorcode & 0xFF == SQLITE_FULL:
            return True
        if isinstance(current, pg_errors.DiskFull):
            return True
        current = current.__cause__ or current.__context__
    return False
