"""Unit tests of the conformance replay harness pieces (no server needed)."""
from __future__ import annotations

import os
from functools import lru_cache

import pytest
from lxml import etree

from tests.conformance import ebrim, kit

pytestmark = pytest.mark.skipif(
    not kit.tests_dir().is_dir() and not os.environ.get("CI"),
    reason=f"NIST test kit not found at {kit.tests_dir()} (set XDS_SHARED_DIR)",
)


@lru_cache(maxsize=1)
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(kit.parse_file(kit.schema_path()))


def submission_files():
    """(test, section, step, file) for every Register / PnR step of the kit."""
    out = []
    for t in kit.all_test_ids():
        test = kit.load_test(t)
        for sec in sorted(p for p in test.path.iterdir() if (p / "testplan.xml").exists()):
            for step in kit.read_section(t, sec).steps:
                if step.transaction in ("RegisterTransaction",
                                        "ProvideAndRegisterTransaction") and step.metadata_file:
                    out.append((t, sec.name, step.id, sec / step.metadata_file))
    return out


def test_kit_has_52_conformance_tests():
    assert len(kit.conformance_test_ids()) == 52


def test_every_submission_file_translates_to_valid_ebrim_3():
    files = submission_files()
    assert len(files) > 90
    bad = []
    for t, sec, step, path in files:
        sor = ebrim.to_submit_objects_request(kit.parse_file(path).getroot())
        if not schema().validate(sor):
            bad.append((t, sec, step, path.name, str(schema().error_log.last_error)))
    assert not bad, bad
