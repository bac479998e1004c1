"""xds.logsafe: a request value can never start a new line in the server log (issue #17 point 7)."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest

from xds import logsafe

FORGED = "2026-01-01 00:00:00,000 INFO xds.access: login ok for admin"


@pytest.fixture
def stream() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def logger(stream: io.StringIO) -> Iterator[logging.Logger]:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("tests.logsafe")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG)
    logsafe.install(handler)
    yield log
    log.handlers[:] = []
    log.propagate = True


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_newline_in_a_logged_value_stays_on_one_line(logger, stream):
    logger.info("query patientId=%s", f"123\n{FORGED}\r\n{FORGED}")
    (line,) = lines(stream)
    assert line == f"INFO tests.logsafe: query patientId=123\\n{FORGED}\\r\\n{FORGED}"


def test_nul_in_a_logged_value_is_escaped(logger, stream):
    logger.warning("uniqueId %s", "1.2.3\x00.4")
    text = stream.getvalue()
    assert "\x00" not in text
    assert lines(stream) == ["WARNING tests.logsafe: uniqueId 1.2.3\\x00.4"]


def test_other_control_and_line_separator_characters_are_escaped(logger, stream):
    logger.info("%s", "a\tb\x1b[31mc\x7fd\x85e\u2028f\u2029g\x0bh\x0ci")
    (line,) = lines(stream)
    assert line == "INFO tests.logsafe: a\\tb\\x1b[31mc\\x7fd\\x85e\\u2028f\\u2029g\\x0bh\\x0ci"


def test_value_rendered_from_an_object_is_escaped(logger, stream):
    class Hostile:
        def __str__(self) -> str:
            return f"x\n{FORGED}"

    logger.info("got %s", Hostile())
    logger.info(Hostile())
    assert lines(stream) == [f"INFO tests.logsafe: got x\\n{FORGED}", f"INFO tests.logsafe: x\\n{FORGED}"]


def test_exception_text_from_the_request_is_escaped_but_the_traceback_keeps_its_lines(logger, stream):
    try:
        try:
            raise KeyError(f"id\n{FORGED}")
        except KeyError as exc:
            raise ValueError(f"bad value\n{FORGED}") from exc
    except ValueError:
        logger.exception("handler for %s raised", f"urn:x\n{FORGED}")
    out = lines(stream)
    assert out[0] == f"ERROR tests.logsafe: handler for urn:x\\n{FORGED} raised"
    assert "Traceback (most recent call last):" in out
    assert any(line.startswith('  File "') for line in out)
    assert f"ValueError: bad value\\n{FORGED}" in out
    assert any(line.startswith("KeyError: ") and "\\n" + FORGED in line for line in out)
    assert "The above exception was the direct cause of the following exception:" in out
    assert not any(line.startswith(FORGED) for line in out)


def test_exception_text_cached_by_a_plain_formatter_is_not_trusted(logger, stream):
    try:
        raise ValueError(f"v\n{FORGED}")
    except ValueError:
        record = logger.makeRecord("tests.logsafe", logging.ERROR, __file__, 1, "m", (), exc_info=sys.exc_info())
    logging.Formatter().format(record)
    assert record.exc_text and FORGED in record.exc_text.splitlines()[-1]
    logger.handle(record)
    assert not any(line.startswith(FORGED) for line in lines(stream))


def test_install_on_a_logger_covers_its_handlers_keeps_their_format_and_is_idempotent():
    streams = [io.StringIO(), io.StringIO()]
    log = logging.getLogger("tests.logsafe.root")
    log.propagate = False
    log.setLevel(logging.INFO)
    first, second = (logging.StreamHandler(s) for s in streams)
    first.setFormatter(logging.Formatter("%(levelname)s|%(name)s|%(message)s"))
    log.handlers[:] = [first, second]
    try:
        secured = logsafe.install(log)
        assert secured == [first, second]
        assert logsafe.install(log) == [first, second]
        assert isinstance(first.formatter, logsafe.SafeFormatter)
        log.info("a\nb")
    finally:
        log.handlers[:] = []
        log.propagate = True
    assert streams[0].getvalue() == "INFO|tests.logsafe.root|a\\nb\n"
    assert streams[1].getvalue() == "a\\nb\n"


def test_escape_keeps_printable_text():
    text = "Dupont, Jérôme <urn:oid:1.2.250.1.213> 'x' \"y\" \\ é € 漢"
    assert logsafe.escape(text) == text
