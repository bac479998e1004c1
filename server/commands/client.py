"""``xds submit | query | retrieve | update | import | demo``: the client as commands (loaded by server.cli).

Exit codes: 0 success, 1 XDS failure, 2 usage or input error, 3 transport error.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import mimetypes
import os
import re
import sys
import tomllib
from pathlib import Path

from lxml import etree

from client.client import DEFAULT_REGISTRY_URL, DEFAULT_REPOSITORY_URL, Document, QueryResult, XdsClient
from client.demo import generate, run_demo
from client.documents import Overrides, load_document, resolve_references
from client.errors import InputError, XdsClientError
from client.importer import JOURNAL_NAME, run_import
from client.queries import BY_FRIENDLY
from client.remove import plan_removal, remove_documents_request, remove_metadata_request, send_removal
from client.transport import TlsOptions
from client.update import Changes, UpdatePlan, latest_version, parse_status, plan_update, send_update, update_request
from config import load_settings
from registry.register import Registry
from registry.store import migrate as migrate_registry
from storage.database import Database

EXTENSIONS = {"text/xml": ".xml", "application/xml": ".xml", "application/pdf": ".pdf", "text/plain": ".txt",
              "application/hl7-v3": ".xml", "application/dicom": ".dcm"}


# ----------------------------------------------------------------------------- options and client

def client_options(p: argparse.ArgumentParser, add_common_options, repository: bool = True,
                   store: bool = False) -> None:
    """The connection options; ``repository``: the command talks to a repository too; ``store``:
    it also opens the server's store (``--data-dir``, ``--database-url``)."""
    add_common_options(p, store=store)
    g = p.add_argument_group("connection")
    g.add_argument("--registry-url", help=f"ITI-18/42 endpoint (XDS_REGISTRY_URL; default {DEFAULT_REGISTRY_URL})")
    if repository:
        g.add_argument("--repository-url",
                       help=f"ITI-41/43 endpoint (XDS_REPOSITORY_URL; default {DEFAULT_REPOSITORY_URL})")
    g.add_argument("--tls-cert", help="client certificate (PEM) for mutual TLS")
    g.add_argument("--tls-key", help="private key of --tls-cert (PEM)")
    g.add_argument("--tls-ca", help="CA bundle (PEM) to check the server's certificate with")
    g.add_argument("--assertion", metavar="FILE", help="XUA SAML assertion (XML) sent in a wsse:Security header")
    g.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for an answer (default 120)")


def client_settings(args: argparse.Namespace) -> dict:
    """Flags, then XDS_REGISTRY_URL / XDS_REPOSITORY_URL, then the [client] table of the configuration file."""
    file_values: dict = {}
    path = getattr(args, "config", None) or os.environ.get("XDS_CONFIG")
    if path:
        try:
            with open(path, "rb") as fh:
                file_values = tomllib.load(fh).get("client", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InputError(f"cannot read the configuration file {path}: {exc}") from None
    out = {}
    for name, env, default in (("registry_url", "XDS_REGISTRY_URL", DEFAULT_REGISTRY_URL),
                               ("repository_url", "XDS_REPOSITORY_URL", DEFAULT_REPOSITORY_URL),
                               ("tls_cert", None, None), ("tls_key", None, None), ("tls_ca", None, None),
                               ("assertion", None, None)):
        out[name] = (getattr(args, name, None) or (os.environ.get(env) if env else None)
                     or file_values.get(name.replace("_", "-")) or file_values.get(name) or default)
    return out


def make_client(args: argparse.Namespace) -> XdsClient:
    s = client_settings(args)
    for name in ("tls_cert", "tls_key", "tls_ca", "assertion"):
        if s[name] and not Path(s[name]).is_file():
            raise InputError(f"--{name.replace('_', '-')}: no such file {s[name]}")
    return XdsClient(s["registry_url"], s["repository_url"], tls=TlsOptions(s["tls_cert"], s["tls_key"], s["tls_ca"]),
                     assertion=s["assertion"], timeout=args.timeout)


def _run(func):
    """Turn client errors into a message on stderr and the documented exit code."""
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except XdsClientError as exc:
            kind = {1: "XDS failure", 2: "input error", 3: "transport error"}[exc.exit_code]
            print(f"xds {args.command}: {kind}: {exc}", file=sys.stderr)
            return exc.exit_code
    return wrapper


def metadata_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("metadata (fill or override what the CDA header gives; all of it for other formats)")
    g.add_argument("--patient", metavar="CX", help="patientId, e.g. 123^^^&1.2.250.1.213.1.4.10&ISO^NH "
                   "(a CDA's header must name the same patient)")
    g.add_argument("--override-patient", action="store_true",
                   help="file a CDA under --patient although its header names another patient "
                        "(sourcePatientId keeps the header's)")
    g.add_argument("--unique-id", help="document uniqueId (default: CDA id, else a new 2.25 OID)")
    g.add_argument("--title")
    g.add_argument("--type-code", metavar="CODE[|SCHEME[|NAME]]", help="typeCode (LOINC by default)")
    g.add_argument("--class-code", metavar="CODE[|SCHEME[|NAME]]", help="classCode (TRE_A03 by default)")
    g.add_argument("--format-code", metavar="CODE[|SCHEME[|NAME]]")
    g.add_argument("--confidentiality-code", metavar="CODE[,CODE]", help="N, R, V, MASQUE_PS, ...")
    g.add_argument("--facility-type-code", metavar="CODE[|SCHEME[|NAME]]", help="healthcareFacilityTypeCode")
    g.add_argument("--practice-setting-code", metavar="CODE[|SCHEME[|NAME]]")
    g.add_argument("--creation-time", metavar="YYYYMMDDHHMMSS[+ZZZZ]")
    g.add_argument("--language", metavar="fr-FR")
    g.add_argument("--mime-type", help="the file's format (default: from its name)")
    g.add_argument("--author", action="append", default=[], metavar="XCN", help="authorPerson (repeatable)")
    g.add_argument("--institution", action="append", default=[], metavar="XON", help="authorInstitution")


def overrides(args: argparse.Namespace) -> Overrides:
    return Overrides(patient=args.patient, unique_id=args.unique_id, title=args.title, type_code=args.type_code,
                     class_code=args.class_code, format_code=args.format_code,
                     confidentiality_code=args.confidentiality_code, facility_type_code=args.facility_type_code,
                     practice_setting_code=args.practice_setting_code, creation_time=args.creation_time,
                     language=args.language, mime_type=args.mime_type, authors=args.author,
                     institutions=args.institution, override_patient=args.override_patient)


# ----------------------------------------------------------------------------- submit

def _code_text(c) -> str:
    return f"{c.code} ({c.display_name}, {c.scheme})" if c else ""


def describe(entry) -> list[tuple[str, str]]:
    rows = [("uniqueId", entry.unique_id), ("patientId", entry.patient_id), ("title", entry.title),
            ("mimeType", entry.mime_type), ("classCode", _code_text(entry.class_code)),
            ("typeCode", _code_text(entry.type_code)), ("formatCode", _code_text(entry.format_code)),
            ("confidentialityCode", ", ".join(_code_text(c) for c in entry.confidentiality_codes)),
            ("languageCode", entry.language_code), ("creationTime", entry.creation_time),
            ("serviceStartTime", entry.service_start_time), ("serviceStopTime", entry.service_stop_time),
            ("healthcareFacilityTypeCode", _code_text(entry.healthcare_facility_type_code)),
            ("practiceSettingCode", _code_text(entry.practice_setting_code)),
            ("eventCodeList", ", ".join(_code_text(c) for c in entry.event_codes))]
    for a in entry.authors:
        rows += [("authorPerson", a.person or ""), ("authorInstitution", "; ".join(a.institutions)),
                 ("authorRole", "; ".join(a.roles)), ("authorSpecialty", "; ".join(a.specialties))]
    rows += [("legalAuthenticator", entry.legal_authenticator), ("sourcePatientId", entry.source_patient_id),
             ("sourcePatientInfo", "; ".join(entry.source_patient_info)),
             ("referenceIdList", "; ".join(entry.reference_ids)), ("hash", entry.hash), ("size", entry.size)]
    return [(k, str(v)) for k, v in rows if v not in (None, "", [])]


@_run
def cmd_submit(args: argparse.Namespace) -> int:
    o = overrides(args)
    o.replaces = list(args.replaces)
    docs = []
    problems = []
    for f in args.files:
        try:
            docs.append(load_document(Path(f), o))
        except InputError as exc:
            problems.append(str(exc))
    if problems:
        for p in problems:
            print(f"xds submit: input error: {p}", file=sys.stderr)
        return 2
    for d in docs:
        for warning in d.warnings:
            print(f"xds submit: warning: {warning}", file=sys.stderr)
    client = make_client(args)
    with client:
        for d in docs:
            resolve_references(client, d)
        to_send: list[Document] = list(docs)
        if args.dry_run:
            body, _parts, ss = client.provide_request(to_send)
        else:
            result = client.submit(to_send)
    if args.dry_run:
        for d in docs:
            print(f"# {d.entry.entry_uuid}  ({len(d.content)} bytes)")
            width = max(len(k) for k, _ in describe(d.entry))
            for k, v in describe(d.entry):
                print(f"  {k.ljust(width)}  {v}")
        print(f"# submission set {ss.unique_id} for {ss.patient_id}, {len(docs)} document(s): dry run, nothing sent")
        if args.raw:
            print(etree.tostring(body[0], pretty_print=True, encoding="unicode"))
        return 0
    for d in docs:
        print(f"submitted {d.entry.unique_id}  {d.entry.title}  ({d.entry.mime_type}, {d.entry.size} bytes)")
    print(f"submission set {result.submission_set.unique_id}  patient {result.submission_set.patient_id}")
    for w in result.warnings:
        print(f"  {w}", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------- query

def _obj_dict(o) -> dict:
    d = dataclasses.asdict(o)
    d.pop("extra_slots", None)
    return {k: v for k, v in d.items() if v not in (None, [], "", False)}


def result_json(r: QueryResult) -> str:
    return json.dumps({"status": r.status.rsplit(":", 1)[-1],
                       "documentEntries": [_obj_dict(e) for e in r.documents],
                       "submissionSets": [_obj_dict(s) for s in r.submission_sets],
                       "folders": [_obj_dict(f) for f in r.folders],
                       "associations": [_obj_dict(a) for a in r.associations],
                       "objectRefs": r.object_refs,
                       "warnings": [dataclasses.asdict(w) for w in r.warnings]}, indent=2, ensure_ascii=False)


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def _status(s: str | None) -> str:
    return (s or "").rsplit(":", 1)[-1]


def result_table(r: QueryResult) -> str:
    out = []
    if r.documents:
        out.append(table(["uniqueId", "created", "type", "class", "status", "mime", "size", "title"],
                         [[e.unique_id or "", e.creation_time or "", e.type_code.code if e.type_code else "",
                           e.class_code.code if e.class_code else "", _status(e.status), e.mime_type or "",
                           str(e.size or ""), (e.title or "")[:50]] for e in r.documents]))
    if r.submission_sets:
        out.append(table(["submission set uniqueId", "submitted", "status", "sourceId", "title"],
                         [[s.unique_id or "", s.submission_time or "", _status(s.status), s.source_id or "",
                           s.title or ""] for s in r.submission_sets]))
    if r.folders:
        out.append(table(["folder uniqueId", "last update", "status", "title"],
                         [[f.unique_id or "", f.last_update_time or "", _status(f.status), f.title or ""]
                          for f in r.folders]))
    if r.associations:
        out.append(table(["association", "type", "source", "target"],
                         [[a.entry_uuid, a.association_type.rsplit(":", 1)[-1], a.source, a.target]
                          for a in r.associations]))
    if r.object_refs:
        out.append(table(["objectRef"], [[x] for x in r.object_refs]))
    n = len(r.documents) + len(r.submission_sets) + len(r.folders) + len(r.associations) + len(r.object_refs)
    out.append(f"{n} object(s)")
    return "\n\n".join(out)


QUERY_FLAGS = ("patient", "status", "uuid", "unique_id", "class_code", "type_code", "format_code",
               "practice_setting_code", "facility_type_code", "event_code", "confidentiality_code", "author",
               "creation_time_from", "creation_time_to", "service_start_from", "service_start_to",
               "service_stop_from", "service_stop_to", "reference_id", "association_type", "source_id",
               "content_type", "document_type")


@_run
def cmd_query(args: argparse.Namespace) -> int:
    params = {k: getattr(args, k) for k in QUERY_FLAGS if getattr(args, k)}
    for raw in args.param:
        name, sep, value = raw.partition("=")
        if not sep:
            raise InputError(f"--param {raw!r}: expected NAME=VALUE")
        params.setdefault(name if name.startswith("$") else "$" + name, []).append(value)
    with make_client(args) as client:
        result = client.query(args.stored_query, return_type="ObjectRef" if args.ret == "ref" else "LeafClass",
                              **params)
    if args.raw:
        assert result.raw is not None  # query() keeps the response it parsed
        print(etree.tostring(result.raw, pretty_print=True, encoding="unicode"), end="")
    elif args.format == "json":
        print(result_json(result))
    else:
        print(result_table(result))
    for w in result.warnings:
        print(f"  {w}", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------- retrieve

def safe_name(unique_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", unique_id)


@_run
def cmd_retrieve(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        found = client.query("get-documents", unique_id=args.document).documents
        if not found:
            print(f"xds retrieve: XDS failure: the registry has no approved document {args.document}",
                  file=sys.stderr)
            return 1
        entry = found[0]
        repository = args.repository or entry.repository_unique_id
        if not repository:
            raise InputError("the registry gives no repositoryUniqueId: pass --repository")
        doc = client.retrieve(args.document, repository, entry.home)
    sha1 = hashlib.sha1(doc.content).hexdigest()
    problems = []
    if entry.size is not None and entry.size != len(doc.content):
        problems.append(f"size {len(doc.content)} differs from the registry's {entry.size}")
    if entry.hash and entry.hash.lower() != sha1:
        problems.append(f"SHA-1 {sha1} differs from the registry's {entry.hash}")
    if problems:
        print(f"xds retrieve: XDS failure: {args.document}: " + "; ".join(problems), file=sys.stderr)
        return 1
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    ext = EXTENSIONS.get(doc.mime_type.split(";")[0].strip()) or mimetypes.guess_extension(doc.mime_type) or ".bin"
    path = out_dir / (safe_name(args.document) + ext)
    path.write_bytes(doc.content)
    print(f"{path}  {doc.mime_type}  {len(doc.content)} bytes  sha1 {sha1} (matches the registry)")
    return 0


# ----------------------------------------------------------------------------- import

@_run
def cmd_import(args: argparse.Namespace) -> int:
    folder = Path(args.directory)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder")
    o = overrides(args)
    journal = Path(args.journal) if args.journal else folder / JOURNAL_NAME
    stop_after = int(os.environ["XDS_IMPORT_STOP_AFTER"]) if os.environ.get("XDS_IMPORT_STOP_AFTER") else None
    with make_client(args) as client:
        report = run_import(client, folder, journal, args.jobs, o, stop_after=stop_after)
    for w in (w for outcome in report.outcomes for w in outcome.warnings):
        print(f"xds import: warning: {w}", file=sys.stderr)
    print(f"{report.count('submitted')} submitted, {report.count('skipped')} already imported, "
          f"{report.count('recovered')} recovered, {len(report.failures)} failed  (journal {journal})")
    for f in report.failures:
        print(f"  FAILED {f.path}: {f.reason}")
    if report.interrupted:
        print(f"interrupted: {report.total - len(report.outcomes)} of {report.total} file(s) not done; "
              "run the same command again to resume (what is registered is skipped)", file=sys.stderr)
        return 130
    return report.exit_code


# ----------------------------------------------------------------------------- update

def update_changes(args: argparse.Namespace) -> Changes:
    """The attribute flags of ``xds update`` (the same grammar as ``xds submit``'s) and the status."""
    attributes = Overrides(title=args.title, type_code=args.type_code, class_code=args.class_code,
                           format_code=args.format_code, confidentiality_code=args.confidentiality_code,
                           facility_type_code=args.facility_type_code,
                           practice_setting_code=args.practice_setting_code, creation_time=args.creation_time,
                           language=args.language)
    status = parse_status(args.status) if args.status else None
    return Changes(attributes=attributes, comments=args.comments, status=status)


def describe_update(plan: UpdatePlan) -> list[str]:
    lines = []
    if plan.new_version is not None:
        lines.append(f"# {plan.unique_id}: new version {plan.version + 1} ({plan.new_version.entry_uuid}) of "
                     f"version {plan.version} ({plan.latest.entry_uuid}), logicalID {plan.new_version.logical_id}")
        width = max(len(name) for name, _, _ in plan.changed)
        lines += [f"  {name.ljust(width)}  {before or '(none)'}  ->  {after or '(none)'}"
                  for name, before, after in plan.changed]
    if plan.status_change is not None:
        original, new = plan.status_change
        lines.append(f"# {plan.unique_id}: availabilityStatus {_status(original)} -> {_status(new)}")
    return lines


@_run
def cmd_update(args: argparse.Namespace) -> int:
    changes = update_changes(args)
    with make_client(args) as client:
        plan = plan_update(client, latest_version(client, args.document), changes)
        if args.dry_run:
            for line in describe_update(plan):
                print(line)
            print(f"# submission set {plan.submission_set.unique_id} for {plan.latest.patient_id}: "
                  "dry run, nothing sent")
            if args.raw:
                print(etree.tostring(update_request(plan), pretty_print=True, encoding="unicode"), end="")
            return 0
        result = send_update(client, plan)
    for line in describe_update(plan):
        print(line.lstrip("# "))
    print(f"updated {plan.unique_id}  submission set {plan.submission_set.unique_id}  patient "
          f"{plan.latest.patient_id}")
    for w in result.warnings:
        print(f"  {w}", file=sys.stderr)
    return 0


def add_update_command(subparsers, add_common_options) -> None:
    p = subparsers.add_parser("update", help="ITI-57: change a registered document's metadata or status",
                              description="A new version of the document's entry (same uniqueId and logicalID) "
                                          "with the changed attributes, and/or an UpdateAvailabilityStatus "
                                          "(deprecate, approve again); the latest version is fetched first.",
                              epilog="examples:\n  xds update 1.2.250.1.999.1.42 --title 'Compte rendu corrige' "
                                     "--dry-run\n  xds update 1.2.250.1.999.1.42 --confidentiality-code MASQUE_PS "
                                     "--assertion author.xml\n  xds update 1.2.250.1.999.1.42 --deprecate",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    client_options(p, add_common_options, repository=False)
    p.add_argument("document", metavar="UID_OR_UUID", help="the document's uniqueId or an entryUUID (urn:uuid:...)")
    g = p.add_argument_group("attributes of the new version")
    g.add_argument("--title")
    g.add_argument("--comments")
    g.add_argument("--confidentiality-code", metavar="CODE[,CODE]", help="N, R, V, MASQUE_PS, ... (replaces all)")
    g.add_argument("--type-code", metavar="CODE[|SCHEME[|NAME]]")
    g.add_argument("--class-code", metavar="CODE[|SCHEME[|NAME]]")
    g.add_argument("--format-code", metavar="CODE[|SCHEME[|NAME]]")
    g.add_argument("--facility-type-code", metavar="CODE[|SCHEME[|NAME]]", help="healthcareFacilityTypeCode")
    g.add_argument("--practice-setting-code", metavar="CODE[|SCHEME[|NAME]]")
    g.add_argument("--creation-time", metavar="YYYYMMDDHHMMSS[+ZZZZ]")
    g.add_argument("--language", metavar="fr-FR")
    s = p.add_mutually_exclusive_group()
    s.add_argument("--status", choices=("approved", "deprecated"), help="new availabilityStatus")
    s.add_argument("--deprecate", dest="status", action="store_const", const="deprecated",
                   help="same as --status deprecated")
    s.add_argument("--approve", dest="status", action="store_const", const="approved",
                   help="same as --status approved (approve a deprecated document again)")
    p.add_argument("--dry-run", action="store_true", help="print what would be sent, send nothing")
    p.add_argument("--raw", action="store_true", help="with --dry-run: also print the ebRIM SubmitObjectsRequest")
    p.set_defaults(func=cmd_update)


# ----------------------------------------------------------------------------- remove

@_run
def cmd_remove(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        plan = plan_removal(client, args.document)
        doc = plan.document
        if args.dry_run:
            for kind, uuid in plan.objects:
                print(f"# ITI-62 would remove {kind} {uuid}")
            print(f"# ITI-86 would remove the bytes of {doc.unique_id} at repository "
                  f"{doc.repository_unique_id or '(none given)'}; dry run, nothing sent")
            if args.raw:
                print(etree.tostring(remove_metadata_request(plan), pretty_print=True, encoding="unicode"), end="")
                print(etree.tostring(remove_documents_request(doc), pretty_print=True, encoding="unicode"), end="")
            return 0
        result = send_removal(client, plan)
    print(f"removed {doc.unique_id} ({doc.entry_uuid}) of {doc.patient_id}: {len(plan.objects)} registry objects"
          + (f", its bytes at repository {doc.repository_unique_id}" if result.bytes_removed else ""))
    for w in result.warnings:
        print(f"  {w}", file=sys.stderr)
    return 0


def add_remove_command(subparsers, add_common_options) -> None:
    p = subparsers.add_parser("remove", help="ITI-62 + ITI-86: remove a document's metadata, then its bytes",
                              description="Removes the DocumentEntry with every Association that references it "
                                          "and each SubmissionSet left empty (ITI-62 Remove Metadata), then the "
                                          "document's bytes (ITI-86 Remove Documents). Only the author of the "
                                          "document or the patient may, under the dmp policy.",
                              epilog="examples:\n  xds remove 1.2.250.1.999.1.42 --dry-run\n"
                                     "  xds remove 1.2.250.1.999.1.42 --assertion author.xml",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    client_options(p, add_common_options)
    p.add_argument("document", metavar="UID_OR_UUID", help="the document's uniqueId or entryUUID (urn:uuid:...)")
    p.add_argument("--dry-run", action="store_true", help="print what would be removed, send nothing")
    p.add_argument("--raw", action="store_true", help="with --dry-run: also print the two requests")
    p.set_defaults(func=cmd_remove)


# ----------------------------------------------------------------------------- demo

def create_patients(args: argparse.Namespace, patients: list[str]) -> bool:
    """Create the records in the server's store (``xds patients add`` semantics); False without a store."""
    if not (args.data_dir or args.database_url or os.environ.get("XDS_DATA_DIR")
            or os.environ.get("XDS_DATABASE_URL")):
        return False
    settings = load_settings(args.config, data_dir=args.data_dir, database_url=args.database_url)
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url())
    try:
        migrate_registry(db)
        registry = Registry(db)
        for pid in patients:
            registry.add_patient(pid)
    finally:
        db.dispose()
    return True


@_run
def cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    plan = generate(out, args.patients, args.seed)
    cxs = [cx for cx, *_ in plan]
    if create_patients(args, cxs):
        print(f"created {len(cxs)} patient records in the server's store")
    else:
        print("no --data-dir/--database-url: patients not created (the server must know them, "
              "or run with --no-patient-check)", file=sys.stderr)
    with make_client(args) as client:
        patients = run_demo(client, plan)
    total = sum(len(p.documents) for p in patients)
    print(f"demo: {len(patients)} patients, {total} documents submitted; files under {out}/")
    first = patients[0]
    print(f"try:  xds query find-documents --patient '{first.cx}'")
    return 0


# ----------------------------------------------------------------------------- wiring

def add_commands(subparsers, add_common_options) -> None:
    p = subparsers.add_parser("submit", help="ITI-41: submit documents (CDA metadata from the header)")
    client_options(p, add_common_options)
    p.add_argument("files", nargs="+", metavar="FILE")
    metadata_options(p)
    p.add_argument("--replaces", action="append", default=[], metavar="UID_OR_UUID",
                   help="uniqueId or entryUUID (urn:uuid:...) of a document this one replaces (RPLC)")
    p.add_argument("--dry-run", action="store_true", help="print the metadata, send nothing")
    p.add_argument("--raw", action="store_true", help="with --dry-run: also print the ebRIM SubmitObjectsRequest")
    p.set_defaults(func=cmd_submit)

    p = subparsers.add_parser("query", help="ITI-18: run a stored query",
                              description="stored queries: " + ", ".join(sorted(BY_FRIENDLY)))
    client_options(p, add_common_options, repository=False)
    p.add_argument("stored_query", metavar="STORED_QUERY", help="friendly name (find-documents), TF name or UUID")
    g = p.add_argument_group("parameters")
    for flag in QUERY_FLAGS:
        g.add_argument("--" + flag.replace("_", "-"), action="append", metavar="VALUE")
    g.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="any parameter by its TF name, e.g. XDSDocumentEntryTypeCode=11490-0^^2.16.840.1.113883.6.1")
    p.add_argument("--return", dest="ret", choices=("leaf", "ref"), default="leaf", help="LeafClass or ObjectRef")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--raw", action="store_true", help="print the AdhocQueryResponse ebRIM as received")
    p.set_defaults(func=cmd_query)

    p = subparsers.add_parser("retrieve", help="ITI-43: fetch a document, checked against the registry")
    client_options(p, add_common_options)
    p.add_argument("--document", required=True, metavar="UID", help="document uniqueId")
    p.add_argument("--repository", metavar="UID", help="repositoryUniqueId (default: from the registry)")
    p.add_argument("-o", "--output", default=".", metavar="DIR", help="folder to write to (default .)")
    p.set_defaults(func=cmd_retrieve)

    add_update_command(subparsers, add_common_options)

    add_remove_command(subparsers, add_common_options)

    p = subparsers.add_parser("import", help="bulk ITI-41 of a folder, resumable")
    client_options(p, add_common_options)
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--jobs", type=int, default=4, help="concurrent submissions (default 4)")
    p.add_argument("--journal", metavar="FILE", help="journal file (default DIR/.xds-import.journal)")
    metadata_options(p)
    p.set_defaults(func=cmd_import)

    p = subparsers.add_parser("demo", help="fill a fresh system with a synthetic French record set")
    client_options(p, add_common_options, store=True)
    p.add_argument("--patients", type=int, default=3, choices=range(1, 6), metavar="N", help="1 to 5 (default 3)")
    p.add_argument("--out", default="xds-demo", metavar="DIR", help="where the generated files go (default xds-demo)")
    p.add_argument("--seed", type=int, help="random seed (INS numbers)")
    p.set_defaults(func=cmd_demo)
