"""Required (R) attributes of DocumentEntry, SubmissionSet and Folder, one rule each.

DocumentEntry: ITI TF-3 4.2.3.2 and Table 4.3.1-1 (XDS column); SubmissionSet: TF-3 4.2.3.3 and
Table 4.3.1-2; Folder: TF-3 4.2.3.4 and Table 4.3.1-3. R2 and O attributes have no rule here; they
are checked for form only when present (:mod:`xds.validation.formats`).

``hash``, ``size`` and ``repositoryUniqueId`` are R in Register (ITI-42) but the Document
Repository computes them in Provide and Register (ITI-41, TF-2 3.41.4.1.3.1), so their rules run
for ITI-42 only and apply to stable DocumentEntries (an On-Demand entry has none, TF-3 4.2.3.2.10).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from xds.errors import ErrorCode
from xds.metadata import Submission
from xds.rim import RegistryObject
from xds.validation.core import Check, Context, Problem, Rule, classifications, identifiers
from xds.vocabulary import DOC, FOL, SS, ObjectType

Present = Callable[[RegistryObject], bool]


def _slot(name: str) -> Present:
    return lambda o: any(v.strip() for v in o.slot_values(name))


def _code(scheme: str) -> Present:
    return lambda o: bool(classifications(o, scheme))


def _ident(scheme: str) -> Present:
    return lambda o: any((e.get("value") or "").strip() for e in identifiers(o, scheme))


def _attr(name: str) -> Present:
    return lambda o: bool((o.get(name) or "").strip())


def _title(o: RegistryObject) -> bool:
    return bool(o.name and any(ls.value.strip() for ls in o.name))


@dataclass(frozen=True)
class Required:
    owner: str          # "document_entry", "submission_set", "folder"
    attribute: str      # the TF attribute name
    section: str        # the TF-3 section defining it
    present: Present
    transactions: tuple[str, ...] = ("ITI-41", "ITI-42", "ITI-57")
    stable_only: bool = False

    @property
    def rule_name(self) -> str:
        snake = "".join("_" + c.lower() if c.isupper() else c for c in self.attribute)
        return f"{self.owner}_{snake}_required"


REQUIRED: tuple[Required, ...] = (
    Required("document_entry", "classCode", "4.2.3.2.3", _code(DOC.CLASS_CODE)),
    Required("document_entry", "confidentialityCode", "4.2.3.2.5", _code(DOC.CONFIDENTIALITY_CODE)),
    Required("document_entry", "creationTime", "4.2.3.2.6", _slot("creationTime")),
    Required("document_entry", "formatCode", "4.2.3.2.9", _code(DOC.FORMAT_CODE)),
    Required("document_entry", "hash", "4.2.3.2.10", _slot("hash"), ("ITI-42", "ITI-57"), True),
    Required("document_entry", "healthcareFacilityTypeCode", "4.2.3.2.11", _code(DOC.HEALTHCARE_FACILITY_TYPE_CODE)),
    Required("document_entry", "languageCode", "4.2.3.2.13", _slot("languageCode")),
    Required("document_entry", "mimeType", "4.2.3.2.15", _attr("mimeType")),
    Required("document_entry", "patientId", "4.2.3.2.16", _ident(DOC.PATIENT_ID)),
    Required("document_entry", "practiceSettingCode", "4.2.3.2.17", _code(DOC.PRACTICE_SETTING_CODE)),
    Required("document_entry", "repositoryUniqueId", "4.2.3.2.18", _slot("repositoryUniqueId"), ("ITI-42", "ITI-57"), True),
    Required("document_entry", "size", "4.2.3.2.21", _slot("size"), ("ITI-42", "ITI-57"), True),
    Required("document_entry", "sourcePatientId", "4.2.3.2.22", _slot("sourcePatientId")),
    Required("document_entry", "typeCode", "4.2.3.2.25", _code(DOC.TYPE_CODE)),
    Required("document_entry", "uniqueId", "4.2.3.2.26", _ident(DOC.UNIQUE_ID)),
    Required("submission_set", "contentTypeCode", "4.2.3.3.4", _code(SS.CONTENT_TYPE_CODE)),
    Required("submission_set", "patientId", "4.2.3.3.9", _ident(SS.PATIENT_ID)),
    Required("submission_set", "sourceId", "4.2.3.3.10", _ident(SS.SOURCE_ID)),
    Required("submission_set", "submissionTime", "4.2.3.3.11", _slot("submissionTime")),
    Required("submission_set", "uniqueId", "4.2.3.3.13", _ident(SS.UNIQUE_ID)),
    Required("folder", "codeList", "4.2.3.4.2", _code(FOL.CODE_LIST)),
    Required("folder", "patientId", "4.2.3.4 (patientId)", _ident(FOL.PATIENT_ID)),
    Required("folder", "title", "4.2.3.4 (title)", _title),
    Required("folder", "uniqueId", "4.2.3.4 (uniqueId)", _ident(FOL.UNIQUE_ID)),
)

_LABEL = {"document_entry": "DocumentEntry", "submission_set": "SubmissionSet", "folder": "Folder"}


def _checker(req: Required) -> Check:
    def check(sub: Submission, ctx: Context) -> Iterator[Problem]:
        owners: dict[str, Sequence[tuple[object, RegistryObject]]] = {
            "document_entry": ctx.documents, "submission_set": ctx.submission_sets, "folder": ctx.folders}
        for _model, o in owners[req.owner]:
            if req.stable_only and o.get("objectType") != ObjectType.STABLE_DOCUMENT:
                continue
            if not req.present(o):
                yield Problem(f"{_LABEL[req.owner]} {o.id}: {req.attribute} is missing (TF-3 {req.section}: R)", o.id)

    check.__name__ = req.rule_name
    check.__doc__ = (f"{_LABEL[req.owner]}.{req.attribute} is required (TF-3 {req.section}: R"
                     f"{'; ITI-42 only, stable entries' if req.stable_only else ''}).")
    return check


def required_rules() -> list[Rule]:
    return [Rule(r.rule_name, ErrorCode.REGISTRY_METADATA_ERROR, _checker(r), r.transactions) for r in REQUIRED]
