"""Kit test 20004 (DEVIATIONS.md): both of its update steps send the SubmissionSet uniqueId the file
holds, 'SubmissionSet01_uniqueid' (``<NoAssignUids/>`` without an id: no uniqueId assigned), which
is not an OID (ITI TF-3 4.2.3.3.12); the registry's message-level validation answers that with
XDSRegistryMetadataError before any Metadata Update rule, for the failing and the succeeding step
alike. If the harness or the kit changes so that the SubmissionSet gets an OID, this test fails and
20004's strict expected failure must be looked at again."""
from __future__ import annotations

from tests.conformance import kit, runner
from tests.conformance.test_harness_units import FakeRun, pytestmark  # noqa: F401 - the kit's skip mark
from xds import rim
from xds.metadata import Submission
from xds.validation import validate_submission
from xds.vocabulary import NS_RIM, SS, q


def built(section_name: str):
    test = kit.load_test("20004")
    section = kit.read_section("20004", test.path / section_name)
    (step,) = section.steps
    sor, _ = FakeRun().build_submission(test, section, step, runner.StepRecord())
    return step, sor


def test_20004_update_steps_send_a_submission_set_unique_id_that_is_not_an_oid():
    for name in ("failed_update", "success_update"):
        step, sor = built(name)
        assert None in step.no_assign_uids, name
        uids = [ei.get("value") for ei in sor.iter(q(NS_RIM, "ExternalIdentifier"))
                if ei.get("identificationScheme") == SS.UNIQUE_ID]
        assert uids == ["SubmissionSet01_uniqueid"], name
        objects = rim.nest_free_standing(rim.parse_object_list(sor.find(q(NS_RIM, "RegistryObjectList"))))
        errors = validate_submission(Submission.from_objects(objects), transaction="ITI-57")
        codes = {e.code for e in errors if e.is_error}
        assert codes == {"XDSRegistryMetadataError"}, (name, [e.context for e in errors])
        assert any("SubmissionSet01_uniqueid" in e.context and "OID" in e.context for e in errors), name
