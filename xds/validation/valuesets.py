"""Affinity-domain value sets (ITI TF-1 10.4.4.1; codes of TF-3 4.2.3.1.2), loadable from IHE SVS XML."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

from lxml import etree

NS_SVS = "urn:ihe:iti:svs:2008"
ATTRIBUTES = ("classCode", "typeCode", "formatCode", "healthcareFacilityTypeCode", "practiceSettingCode",
              "confidentialityCode", "eventCodeList", "contentTypeCode", "folderCodeList")

Code = tuple[str, str]


@dataclass(frozen=True)
class ValueSets:
    """{attribute name: set of (code, codingScheme)}; an attribute absent from the mapping is not checked."""
    codes: Mapping[str, frozenset[Code]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.codes) - set(ATTRIBUTES)
        if unknown:
            raise ValueError(f"unknown value set attribute(s) {sorted(unknown)}; known: {', '.join(ATTRIBUTES)}")
        object.__setattr__(self, "codes", {k: frozenset((str(c), str(s)) for c, s in v)
                                           for k, v in self.codes.items()})

    def checks(self, attribute: str) -> bool:
        return attribute in self.codes

    def allows(self, attribute: str, code: str, scheme: str) -> bool:
        """True when ``attribute`` is not configured or (code, scheme) is in its set."""
        allowed = self.codes.get(attribute)
        return allowed is None or (code, scheme) in allowed

    @classmethod
    def from_svs_files(cls, files: Mapping[str, Iterable[str | PathLike[str]]]) -> ValueSets:
        """Read IHE SVS ``RetrieveValueSetResponse``/``ValueSet`` files (ITI TF-2 3.48): each ``Concept``'s
        ``code`` and ``codeSystem`` join the attribute's set. Several files for one attribute are merged."""
        codes: dict[str, set[Code]] = {}
        for attribute, paths in files.items():
            bucket = codes.setdefault(attribute, set())
            for path in paths:
                bucket |= read_svs(path)
        return cls({k: frozenset(v) for k, v in codes.items()})


def read_svs(path: str | PathLike[str]) -> set[Code]:
    """(code, codeSystem) of every ``svs:Concept`` of one SVS file; an empty file set is an error."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    root = etree.fromstring(Path(path).read_bytes(), parser)
    if root.getroottree().docinfo.doctype:  # type: ignore[union-attr]  # lxml-stubs' DocInfo lacks doctype
        raise ValueError(f"{path}: DTDs are not allowed in SVS files")
    found = {(c.get("code", ""), c.get("codeSystem", "")) for c in root.iter("{%s}Concept" % NS_SVS)}
    found.discard(("", ""))
    if not found:
        raise ValueError(f"{path}: no svs:Concept found (namespace {NS_SVS})")
    return found
