"""A request id in every log line of a request, and the log's JSON layout (issue 19, operations).

One id per HTTP request: the caller's ``X-Request-ID`` when it is well-formed (a proxy or a
client that already correlates its own logs keeps its id), else a new one. It is returned in the
response's ``X-Request-ID`` header and carried by a context variable, so every record a request's
thread logs (SOAP edge, policy, registry, repository) names it without any call site passing it.

The well-formed check matters: the header is request data, and a log line must stay one line
(:mod:`xds.logsafe`): 1 to 128 characters of letters, digits and ``-_.:@+=/``, which covers UUIDs,
the W3C ``traceparent`` ids and the ids of the usual proxies (nginx ``$request_id``, HAProxy
``unique-id``), and nothing that could break a line or a JSON string.
"""
from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from xds import logsafe

HEADER = "X-Request-ID"
ENVIRON_KEY = "HTTP_X_REQUEST_ID"
_WELL_FORMED = re.compile(r"[A-Za-z0-9\-_.:@+=/]{1,128}")

current: contextvars.ContextVar[str | None] = contextvars.ContextVar("xds_request_id", default=None)
"""The id of the request the running thread serves (None outside a request)."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
"""One line per record; ``-`` in place of the id outside a request (start-up, the audit process)."""

FORMATS = ("text", "json")


def request_id(environ: dict[str, Any]) -> str:
    """The caller's id when well-formed, else a new UUID (hex, 32 characters)."""
    given = environ.get(ENVIRON_KEY)
    if isinstance(given, str) and _WELL_FORMED.fullmatch(given):
        return given
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (the current request's, or ``-``): a handler filter, so records
    of every logger that reaches the handler carry it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current.get() or "-"
        return True


class JsonFormatter(logsafe.SafeFormatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
    ``request_id`` (when in a request), ``process``, ``thread`` and ``exception`` (the traceback,
    one string). JSON escapes every control character, so a value from a request cannot break the
    line either; a subclass of :class:`~xds.logsafe.SafeFormatter` so that ``logsafe.install``
    keeps it as it is."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = record.__dict__.get("request_id") or current.get()
        if rid and rid != "-":
            entry["request_id"] = rid
        entry["process"] = record.process
        entry["thread"] = record.threadName
        if record.exc_info and record.exc_info[1] is not None:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=True)


def install(handler: logging.Handler, log_format: str = "text") -> None:
    """Make ``handler`` carry request ids, in ``log_format`` (``text`` or ``json``)."""
    if log_format not in FORMATS:
        raise ValueError(f"unknown log format {log_format!r}: one of {', '.join(FORMATS)}")
    if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
        handler.addFilter(RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logsafe.SafeFormatter(wrapped=logging.Formatter(TEXT_FORMAT)))
