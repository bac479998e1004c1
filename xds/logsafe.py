"""Log records that stay one record per line, whatever a request put into them.

A value from a request (a query parameter, a wsa:Action, an id, an exception message that
quotes one) that is written to a text log as it is can carry a line break, and the text
after it then reads as a record of its own: a forged "login ok" line, or a NUL or terminal
escape that hides what follows from ``grep`` or ``less``. That is log injection (CWE-117,
OWASP Logging Cheat Sheet, "Event data from untrusted sources ... sanitize to prevent log
injection attacks, e.g. CR, LF and delimiter characters"). Escaping at the call sites is
forgotten at the next one, so it is done once, by the formatter of every handler:
:func:`install` is what the composition root calls once logging is configured.

What is escaped, as Python escapes (``\\n``, ``\\r``, ``\\t``, ``\\x00``, ``\\x1b``,
``\\u2028``): every C0 control character, DEL, every C1 control (NEL, U+0085, ends a line for
some readers) and the Unicode line and paragraph separators (``str.splitlines`` breaks on
them). Backslashes are left alone: an escape sequence that a value spells out itself stays
on its line, which is all that matters here, and Windows paths stay readable.

Where: the whole first line of a record (the formatted message with its asctime, level,
logger name, and every interpolated argument), and, in a traceback, the text of each
exception in the chain (``ValueError: <message>``), which is where request data lands when
code raises with a value in the message. The traceback's own lines (frames, source lines,
"The above exception was the direct cause ...") keep their newlines: they come from the code.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Generator, Mapping
from types import TracebackType
from typing import Any, Literal

__all__ = ["SafeFormatter", "escape", "install"]

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPES = {
    code: _NAMED.get(chr(code), f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)
}


def escape(text: str) -> str:
    """``text`` with every control and line-breaking character written as its Python escape."""
    return text.translate(_ESCAPES)


def _escape_lines(text: str) -> str:
    """Each line of a text that the code wrote (a traceback) escaped, the line breaks kept."""
    return "\n".join(escape(line) for line in text.split("\n"))


class _EscapedTracebackException(traceback.TracebackException):
    """Formats the text of its exception (``Type: message``) on one line, escaped.

    The frames are the code's; the message is whatever the raiser put in it, request
    values included.
    """

    def format_exception_only(self, **kwargs: Any) -> Generator[str, None, None]:
        for chunk in super().format_exception_only(**kwargs):
            if chunk.endswith("\n"):
                yield escape(chunk[:-1]) + "\n"
            else:
                yield escape(chunk)


def _escape_exception_texts(top: traceback.TracebackException) -> None:
    """Make ``top`` and every exception chained to or grouped in it escape their own text.

    ``TracebackException`` builds the ``__cause__``, ``__context__`` and group members as
    plain instances, so a subclass alone would only cover the last exception; re-classing
    the nodes keeps the standard chain formatting (and its cycle handling) as it is.
    """
    pending = [top]
    seen: set[int] = set()
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        node.__class__ = _EscapedTracebackException
        pending.extend(other for other in (node.__cause__, node.__context__) if other is not None)
        pending.extend(node.exceptions or ())


class SafeFormatter(logging.Formatter):
    """A ``logging.Formatter`` whose records are one line, but for a traceback's own lines.

    Used directly it takes the arguments of ``logging.Formatter``. With ``wrapped`` it keeps
    another formatter's layout (gunicorn's, ``basicConfig``'s) and escapes its output: the
    wrapped formatter renders the record without exception and stack, this one adds them.
    A traceback that another formatter cached in ``record.exc_text`` is not reused: it was
    rendered unescaped.
    """

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: Literal["%", "{", "$"] = "%",
        validate: bool = True,
        *,
        defaults: Mapping[str, Any] | None = None,
        wrapped: logging.Formatter | None = None,
    ) -> None:
        super().__init__(fmt, datefmt, style, validate, defaults=defaults)
        self.wrapped = wrapped

    def format(self, record: logging.LogRecord) -> str:
        text = escape(self._first_line(record))
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            text += "\n" + _escape_lines(record.exc_text)
        if record.stack_info:
            text += "\n" + _escape_lines(self.formatStack(record.stack_info))
        return text

    def formatException(self, ei: ExcInfo) -> str:
        _, value, tb = ei
        if value is None:
            return "NoneType: None"
        rendered = traceback.TracebackException(type(value), value, tb, compact=True)
        _escape_exception_texts(rendered)
        return "".join(rendered.format()).removesuffix("\n")

    def _first_line(self, record: logging.LogRecord) -> str:
        """The record as its layout renders it without exception or stack (not yet escaped)."""
        if self.wrapped is None:
            record.message = record.getMessage()
            if self.usesTime():
                record.asctime = self.formatTime(record, self.datefmt)
            return self.formatMessage(record)
        bare = logging.makeLogRecord(record.__dict__)
        bare.exc_info = None
        bare.exc_text = None
        bare.stack_info = None
        return self.wrapped.format(bare)


def install(target: logging.Handler | logging.Logger) -> list[logging.Handler]:
    """Make ``target`` (a handler, or every handler a logger has now) escape what it writes.

    Each handler keeps its layout: its formatter is wrapped in a :class:`SafeFormatter`
    (a handler without one gets the ``logging`` default, ``%(message)s``). Idempotent.
    Handlers added to the logger later are not covered: call it once logging is configured,
    for the root logger and for every logger that does not propagate to it (under gunicorn,
    ``gunicorn.error``). Returns the handlers now escaping, so a caller can tell that a
    logger had none (its records then go to ``logging.lastResort``, unescaped).
    """
    handlers = list(target.handlers) if isinstance(target, logging.Logger) else [target]
    for handler in handlers:
        if not isinstance(handler.formatter, SafeFormatter):
            handler.setFormatter(SafeFormatter(wrapped=handler.formatter))
    return handlers
