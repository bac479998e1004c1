"""``xds dmp ...`` (the patient's decisions on a record), ``xds xua issue`` (test assertions) and ``xds iua
issue`` (test IUA access tokens)."""
from __future__ import annotations

import argparse
import json
import sys

from lxml import etree

from access.iua import local_token_issuer
from access.store import AUTHORISED, BLOCKED
from access.wiring import ensure_schema
from access.xua import PATIENT_ROLES, PROFESSION_SYSTEM, local_issuer, wrap_security
from audit.auditor import build_auditor
from config import load_settings
from registry.store import migrate as migrate_registry
from storage.database import Database
from transactions.policy_admin import PolicyAdmin, PolicyError
from xds.context import Caller


def _settings(args):
    return load_settings(args.config, data_dir=args.data_dir, database_url=args.database_url)


def _open(settings):
    from pathlib import Path


    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url())
    migrate_registry(db)
    ensure_schema(settings, db)
    auditor = None
    try:
        auditor = build_auditor(settings, db)
    except (ImportError, AttributeError):
        pass
    return db, auditor


def cmd_dmp(args: argparse.Namespace) -> int:
    import getpass
    import json



    settings = _settings(args)
    db, auditor = _open(settings)
    actor = Caller(user_id=getattr(args, "actor", None) or f"cli:{getpass.getuser()}", kind="node",
                   authenticated=True, endpoint="xds dmp")
    admin = PolicyAdmin(db, auditor)
    try:
        a = args.action
        if a == "show":
            print(json.dumps(admin.show(args.patient_id), indent=2, ensure_ascii=False))
        elif a == "authorise":
            admin.set_professional(actor, args.patient_id, args.professional_id, AUTHORISED)
        elif a == "block":
            admin.set_professional(actor, args.patient_id, args.professional_id, BLOCKED)
        elif a == "forget":
            admin.set_professional(actor, args.patient_id, args.professional_id, None)
        elif a == "treating":
            prof = args.professional_id
            admin.set_treating_physician(actor, args.patient_id, None if prof in (None, "none", "-") else prof)
        elif a == "emergency":
            admin.set_emergency(actor, args.patient_id, args.mode, args.setting == "allow")
        elif a in ("close", "reopen"):
            admin.set_state(actor, args.patient_id, "closed" if a == "close" else "open")
        elif a in ("mask", "unmask", "mask-default"):
            admin.mask(actor, args.unique_id, {"mask": True, "unmask": False, "mask-default": None}[a])
        elif a in ("disclose", "undisclose"):
            admin.disclose(actor, args.unique_id, a == "disclose")
        elif a == "emergency-log":
            for row in admin.emergency_accesses(args.patient_id):
                print(f"{row['at']}\t{row['mode']}\t{row['professional_id']}\t{row['professional_name'] or ''}\t"
                      f"{row['organization'] or ''}")
        if a not in ("show", "emergency-log"):
            print(f"ok: {a}")
        return 0
    except PolicyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if auditor is not None:
            try:
                auditor.flush()
                auditor.close()
            except Exception:  # noqa: BLE001
                pass
        db.dispose()


def cmd_xua_issue(args: argparse.Namespace) -> int:
    settings = _settings(args)
    issuer = local_issuer(settings.data_dir)
    role = (args.role, PROFESSION_SYSTEM if args.role not in PATIENT_ROLES else "", args.role_name or "")
    assertion = issuer.assertion(args.professional_id, name=args.name, role=role, organization=args.organization,
                                 organization_id=args.organization_id, patient_id=args.patient,
                                 mode=args.mode, audience=args.audience, validity=args.validity,
                                 one_time_use=args.one_time_use)
    out = etree.tostring(wrap_security(assertion), xml_declaration=True, encoding="UTF-8")
    if args.output and args.output != "-":
        with open(args.output, "wb") as fh:
            fh.write(out)
        print(f"assertion {assertion.get('ID')} written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(out + b"\n")
    if args.print_certificate:
        print(issuer.cert_pem.decode(), file=sys.stderr)
    return 0


def cmd_iua_issue(args: argparse.Namespace) -> int:
    """A test IUA access token (ITI-72, JWT ES256) signed by the key under ``<data dir>/iua/``,
    which the server trusts where it trusts its own XUA issuer (``xua_trust_local_issuer``)."""
    settings = _settings(args)
    issuer = local_token_issuer(settings.data_dir)
    if issuer is None:
        print("no IUA issuer key could be made under the data dir", file=sys.stderr)
        return 1
    audience = args.audience or settings.iua_audience or (
        settings.public_url.rstrip("/") + "/fhir" if settings.public_url else f"http://{settings.host}:{settings.port}/fhir")
    role = (args.role, PROFESSION_SYSTEM if args.role not in PATIENT_ROLES else "", args.role_name or "")
    token = issuer.token(args.professional_id, audience, name=args.name, role=role, organization=args.organization,
                         organization_id=args.organization_id, patient_id=args.patient, mode=args.mode,
                         validity=args.validity)
    print(token)
    if args.print_jwks:
        print(json.dumps(issuer.jwks()), file=sys.stderr)
    return 0


def add_commands(sub, add_common_options) -> None:
    p = sub.add_parser("dmp", help="the patient's decisions on a DMP record (access policy)")
    dsub = p.add_subparsers(dest="action", required=True)

    def cmd(name: str, help_text: str, *positional: tuple[str, str]):
        pp = dsub.add_parser(name, help=help_text)
        add_common_options(pp)
        pp.add_argument("--actor", help="who makes the change (audited); default cli:<user>")
        for arg, arg_help in positional:
            pp.add_argument(arg, help=arg_help)
        pp.set_defaults(func=cmd_dmp)
        return pp

    pid = ("patient_id", "the patient (CX, e.g. 123^^^&1.2.250.1.213.1.4.10&ISO)")
    prof = ("professional_id", "the professional's national id (XUA NameID, authorPerson id)")
    uid = ("unique_id", "the document's uniqueId")
    cmd("show", "show a record's policy and emergency accesses", pid)
    cmd("authorise", "authorise a professional", pid, prof)
    cmd("block", "block a professional (outranks every other rule, emergency included)", pid, prof)
    cmd("forget", "remove a professional from the authorised and blocked lists", pid, prof)
    pp = cmd("treating", "set the treating physician (medecin traitant); none to clear", pid)
    pp.add_argument("professional_id", nargs="?", default=None)
    pp = cmd("emergency", "allow or oppose emergency access", pid)
    pp.add_argument("mode", choices=("bris_de_glace", "centre_15"))
    pp.add_argument("setting", choices=("allow", "oppose"))
    cmd("close", "close the record: submissions and queries refused, data kept", pid)
    cmd("reopen", "reopen a closed record", pid)
    cmd("mask", "mask a document to professionals (the treating physician and the author still see it)", uid)
    cmd("unmask", "unmask a document to professionals", uid)
    cmd("mask-default", "forget the patient's mask choice: as the registered confidentialityCode", uid)
    cmd("disclose", "disclose a document registered INVISIBLE_PATIENT / INVISIBLE_REPRESENTANTS_LEGAUX", uid)
    cmd("undisclose", "hide a disclosed document again", uid)
    cmd("emergency-log", "list the emergency accesses to a record", pid)

    p = sub.add_parser("xua", help="XUA (ITI-40) SAML assertions")
    xsub = p.add_subparsers(dest="xua_action", required=True)
    pp = xsub.add_parser("issue", help="issue a signed test assertion (key under the data dir) as wsse:Security")
    add_common_options(pp)
    pp.add_argument("professional_id", help="NameID: the professional's national id (or the patient's INS)")
    pp.add_argument("--name", help="subject-id (display name)")
    pp.add_argument("--role", default="10", help="profession code (TRE_G15, default 10 Medecin); PATIENT or "
                                                 "REPRESENTANT_LEGAL for the patient's side")
    pp.add_argument("--role-name", help="display name of the role")
    pp.add_argument("--organization")
    pp.add_argument("--organization-id")
    pp.add_argument("--patient", help="resource-id: the patient's INS (CX)")
    pp.add_argument("--mode", default="normal", choices=("normal", "bris_de_glace", "centre_15"),
                    help="access mode (TRE_R248)")
    pp.add_argument("--audience")
    pp.add_argument("--validity", type=int, default=300, help="seconds (default 300)")
    pp.add_argument("--one-time-use", action="store_true",
                    help="add saml2:OneTimeUse: accepted once (others serve until they expire)")
    pp.add_argument("-o", "--output", help="file to write (default stdout)")
    pp.add_argument("--print-certificate", action="store_true", help="also print the issuer certificate (stderr)")
    pp.set_defaults(func=cmd_xua_issue)

    example = ("example:\n  xds iua issue 810000000042 --patient '274017512345613^^^&1.2.250.1.213.1.4.10&ISO'\n"
               "  curl -H \"Authorization: Bearer $TOKEN\" 'http://127.0.0.1:8080/fhir/DocumentReference?"
               "patient.identifier=urn:oid:1.2.250.1.213.1.4.10|274017512345613&status=current'")
    p = sub.add_parser("iua", help="IUA (ITI-72) bearer access tokens for /fhir", epilog=example,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    isub = p.add_subparsers(dest="iua_action", required=True)
    pp = isub.add_parser("issue", help="issue a signed test access token (ES256 key under the data dir)",
                         epilog=example, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(pp)
    pp.add_argument("professional_id", help="the professional's national id (or the patient's INS)")
    pp.add_argument("--name", help="subject_name (display name)")
    pp.add_argument("--role", default="10", help="profession code (TRE_G15, default 10 Medecin); PATIENT or "
                                                 "REPRESENTANT_LEGAL for the patient's side")
    pp.add_argument("--role-name", help="display name of the role")
    pp.add_argument("--organization")
    pp.add_argument("--organization-id")
    pp.add_argument("--patient", help="person_id: the patient's INS (CX)")
    pp.add_argument("--mode", default="normal", choices=("normal", "bris_de_glace", "centre_15"),
                    help="access mode (TRE_R248), as a purpose of use")
    pp.add_argument("--audience", help="aud (default iua_audience, else public_url/fhir, else host:port/fhir)")
    pp.add_argument("--validity", type=int, default=300, help="seconds (default 300)")
    pp.add_argument("--print-jwks", action="store_true", help="also print the issuer's public JWKS (stderr)")
    pp.set_defaults(func=cmd_iua_issue)
