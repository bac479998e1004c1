"""The one table of places where the NIST toolkit's expectation is contradicted by
the IHE Technical Framework. DEVIATIONS.md documents each row; keep them in step.

Each row: what the toolkit expects (an error code or message it looks for, or a
test/section/step) -> what we accept instead, and the TF reference.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Deviation:
    key: str           # toolkit expectation (error code / message substring)
    accept: tuple[str, ...]  # what the TF requires (accepted in addition)
    tf: str            # Technical Framework reference
    note: str


# Error code substitutions: the toolkit's expected code -> codes the TF mandates.
ERROR_CODES: tuple[Deviation, ...] = (
)


def accepted_codes(expected: str) -> tuple[str, ...]:
    for d in ERROR_CODES:
        if d.key == expected:
            return (expected,) + d.accept
    return (expected,)


# Steps whose toolkit expectation is replaced as a whole:
# (test, section, step) -> (expected status, error code or None, TF ref, note).
STEP_OVERRIDES: dict[tuple[str, str, str], tuple[str, str | None, str, str]] = {
}
