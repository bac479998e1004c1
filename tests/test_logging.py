"""The server's log: one line per record, whatever a request puts in a value (issue 17)."""
from __future__ import annotations

import io
import logging

from server.cli import configure_logging


def test_a_newline_in_a_logged_query_value_does_not_forge_a_line():
    out = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging(out)
        logging.getLogger("registry").info("query value %s", "x'\n2026-12-02 INFO audit: forged\x00")
        lines = out.getvalue().splitlines()
        assert len(lines) == 1 and "\\n" in lines[0] and "\\x00" in lines[0]
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
