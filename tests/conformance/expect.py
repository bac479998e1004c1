"""Evaluation of a step's expected outcome against the reply body."""
from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from tests.conformance import deviations
from tests.conformance.ebrim import DE_OBJECT_TYPE, DE_ONDEMAND_TYPE, FOL_NODE, RIM, RS, SS_NODE

STATUS_URNS = {
    "Success": "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success",
    "Failure": "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure",
    "PartialSuccess": "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess",
}
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
IHE_ASSOC = "urn:ihe:iti:2007:AssociationType:"


@dataclass
class RegistryError:
    code: str
    context: str
    severity: str


@dataclass
class Outcome:
    status: str  # suffix: Success / Failure / PartialSuccess / ""
    errors: list[RegistryError] = field(default_factory=list)


def outcome(body: etree._Element | None) -> Outcome:
    """Status and errors of RegistryResponse, AdhocQueryResponse or
    RetrieveDocumentSetResponse."""
    if body is None:
        return Outcome("")
    resp = body
    if etree.QName(body).localname == "RetrieveDocumentSetResponse":
        resp = body.find(f"{{{RS}}}RegistryResponse")
        if resp is None:
            return Outcome("")
    status = resp.get("status", "")
    suffix = status.rsplit(":", 1)[-1]
    errors = [RegistryError(e.get("errorCode", ""), e.get("codeContext", ""),
                            e.get("severity", ""))
              for e in resp.iter(f"{{{RS}}}RegistryError")]
    return Outcome(suffix, errors)


def check_status(expected: str, got: Outcome) -> str | None:
    if expected == got.status:
        return None
    detail = ""
    if got.errors:
        detail = " (" + "; ".join(f"{e.code}: {e.context[:120]}" for e in got.errors[:3]) + ")"
    return f"expected {expected}, got {got.status or 'no status'}{detail}"


def check_errors(messages: list[str], codes: list[str], got: Outcome,
                 expected_status: str) -> str | None:
    for m in messages:
        accepted = deviations.accepted_codes(m)
        if not any(a in e.code or a in e.context for e in got.errors for a in accepted):
            return (f"expected {expected_status} with {m}, got "
                    f"{got.status or 'no status'}" + _codes(got))
    for c in codes:
        accepted = deviations.accepted_codes(c)
        if not any(e.code in accepted for e in got.errors):
            return (f"expected {expected_status} with errorCode {c}, got "
                    f"{got.status or 'no status'}" + _codes(got))
    return None


def _codes(got: Outcome) -> str:
    if not got.errors:
        return " and no error"
    return " with " + ", ".join(sorted({e.code for e in got.errors}))


# --- query contents ------------------------------------------------------------

@dataclass
class Contents:
    object_refs: list[str]
    documents: list[etree._Element]
    submission_sets: list[etree._Element]
    folders: list[etree._Element]
    associations: list[etree._Element]
    other_packages: list[etree._Element]

    @property
    def empty(self) -> bool:
        return not (self.object_refs or self.documents or self.submission_sets
                    or self.folders or self.associations or self.other_packages)


def _package_kind(pkg: etree._Element, classifications: list[etree._Element]) -> str:
    pid = pkg.get("id")
    for c in list(pkg.iter(f"{{{RIM}}}Classification")) + classifications:
        if c.get("classifiedObject") == pid:
            if c.get("classificationNode") == SS_NODE:
                return "ss"
            if c.get("classificationNode") == FOL_NODE:
                return "fol"
    # fall back on the uniqueId identification schemes
    for ei in pkg.iter(f"{{{RIM}}}ExternalIdentifier"):
        s = ei.get("identificationScheme")
        if s == "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8":
            return "ss"
        if s == "urn:uuid:75df8f67-9973-4fbe-a900-df66cefecc5a":
            return "fol"
    return "other"


def contents(body: etree._Element | None) -> Contents:
    c = Contents([], [], [], [], [], [])
    if body is None:
        return c
    lst = body.find(f"{{{RIM}}}RegistryObjectList")
    if lst is None:
        return c
    top = [e for e in lst if isinstance(e.tag, str)]
    classifications = [e for e in top if etree.QName(e).localname == "Classification"]
    for e in top:
        name = etree.QName(e).localname
        if name == "ObjectRef":
            c.object_refs.append(e.get("id"))
        elif name == "ExtrinsicObject":
            c.documents.append(e)
        elif name == "Association":
            c.associations.append(e)
        elif name == "RegistryPackage":
            kind = _package_kind(e, classifications)
            {"ss": c.submission_sets, "fol": c.folders}.get(kind, c.other_packages).append(e)
    return c


def _has_member(c: Contents, source: etree._Element, target: etree._Element) -> bool:
    return any(a.get("associationType") == HAS_MEMBER and a.get("sourceObject") == source.get("id")
               and a.get("targetObject") == target.get("id") for a in c.associations)


def _shape(c: Contents, docs: int, fols: int, docs_in_fol: int = 0) -> str | None:
    if len(c.submission_sets) != 1:
        return f"expected 1 SubmissionSet, got {len(c.submission_sets)}"
    if len(c.documents) != docs:
        return f"expected {docs} DocumentEntries, got {len(c.documents)}"
    if len(c.folders) != fols:
        return f"expected {fols} Folders, got {len(c.folders)}"
    ss = c.submission_sets[0]
    for d in c.documents:
        if not _has_member(c, ss, d):
            return f"no SubmissionSet HasMember association to DocumentEntry {d.get('id')}"
    for f in c.folders:
        if not _has_member(c, ss, f):
            return f"no SubmissionSet HasMember association to Folder {f.get('id')}"
    if docs_in_fol:
        n = sum(1 for f in c.folders for d in c.documents if _has_member(c, f, d))
        if n != docs_in_fol:
            return f"expected {docs_in_fol} DocumentEntries in the Folder, got {n}"
    return None


def _status_all(objs, status: str, what: str, vacuous: bool = False) -> str | None:
    """Every object has ``status``; with ``vacuous`` (the toolkit's DocApp / DocDep, which 20001 and
    20005 pair with <Documents count="0"/>) an empty answer passes."""
    if not objs:
        return None if vacuous else f"no {what} returned"
    bad = [o.get("id") for o in objs if o.get("status") != status]
    return f"{what} not {status.rsplit(':', 1)[-1]}: {bad}" if bad else None


def _exactly(objs, status: str, what: str, n: int = 1) -> str | None:
    k = sum(1 for o in objs if o.get("status") == status)
    return None if k == n else f"expected {n} {what} {status.rsplit(':', 1)[-1]}, got {k}"


def _has_assoc(c: Contents, kind: str) -> str | None:
    if any(a.get("associationType") == IHE_ASSOC + kind for a in c.associations):
        return None
    return f"no {kind} association in " + str([a.get("associationType") for a in c.associations])


def _count(n: int, label: str, expected: str) -> str | None:
    return None if int(expected) == n else f"expected {expected} {label}, got {n}"


def check_contents(spec: etree._Element | None, body: etree._Element | None,
                   resolve=lambda s: s) -> str | None:
    """Check every child of ``<ExpectedContents>``; first failure message or None.

    ``resolve`` maps a ``<UseId>`` element (inside MustOnlyInclude) to its value.
    """
    if spec is None:
        return None
    c = contents(body)
    for item in spec:
        if not isinstance(item.tag, str):
            continue
        name = item.tag
        n = item.get("count")
        if name == "ObjectRefs":
            err = _count(len(c.object_refs), "ObjectRefs", n)
        elif name == "Documents":
            err = _count(len(c.documents), "DocumentEntries", n)
        elif name == "SubmissionSets":
            err = _count(len(c.submission_sets), "SubmissionSets", n)
        elif name == "Folders":
            err = _count(len(c.folders), "Folders", n)
        elif name == "Associations":
            err = _count(len(c.associations), "Associations", n)
        elif name == "None":
            err = None if c.empty else (
                f"expected no objects, got {len(c.object_refs)} ObjectRefs, "
                f"{len(c.documents)} DocumentEntries, {len(c.submission_sets)} SubmissionSets, "
                f"{len(c.folders)} Folders, {len(c.associations)} Associations")
        elif name == "SSwithOneDoc":
            err = _shape(c, 1, 0)
        elif name == "SSwithTwoDoc":
            err = _shape(c, 2, 0)
        elif name == "SSwithOneFol":
            err = _shape(c, 0, 1)
        elif name == "SSwithOneDocOneFol":
            err = _shape(c, 1, 1)
        elif name == "SSwithTwoDocOneFol":
            err = _shape(c, 2, 1)
        elif name == "SSwithTwoDocOneFolOneDocInFol":
            err = _shape(c, 2, 1, docs_in_fol=1)
        elif name == "SSApproved":
            err = _status_all(c.submission_sets, APPROVED, "SubmissionSets")
        elif name == "DocApp":
            err = _status_all(c.documents, APPROVED, "DocumentEntries", vacuous=True)
        elif name == "DocDep":
            err = _status_all(c.documents, DEPRECATED, "DocumentEntries", vacuous=True)
        elif name == "FolApp":
            err = _status_all(c.folders, APPROVED, "Folders")
        elif name == "OneDocApp":
            err = _exactly(c.documents, APPROVED, "DocumentEntry")
        elif name == "OneDocDep":
            err = _exactly(c.documents, DEPRECATED, "DocumentEntry")
        elif name.startswith("Has") and name[3:] in ("RPLC", "XFRM", "APND", "XFRM_RPLC", "signs"):
            err = _has_assoc(c, name[3:])
        elif name == "DocumentEntries":
            err = _check_document_entries(item, c, resolve)
        else:
            err = f"unsupported ExpectedContents item <{name}>"
        if err:
            return f"{name}: {err}"
    return None


def _check_document_entries(item: etree._Element, c: Contents, resolve) -> str | None:
    only = item.find("MustOnlyInclude")
    if only is None:
        return "unsupported DocumentEntries content"
    wanted = []
    for de in only.findall("DocumentEntry"):
        u = de.find("UseId")
        ident = resolve(u) if u is not None else None
        t = de.findtext("DocumentEntryType", "").strip() or None
        wanted.append((ident, t))
    got = [(d.get("id"), d.get("objectType")) for d in c.documents]
    if len(got) != len(wanted):
        return f"expected exactly {len(wanted)} DocumentEntries, got {len(got)}"
    for ident, t in wanted:
        if not any(g[0] == ident and (t is None or g[1] == t) for g in got):
            return f"DocumentEntry {ident} ({t}) not returned; got {got}"
    return None


def is_document_entry_type(t: str | None) -> bool:
    return t in (DE_OBJECT_TYPE, DE_ONDEMAND_TYPE)
