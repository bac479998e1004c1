"""``xds portal user add|passwd|list``: the portal's local accounts."""
from __future__ import annotations

import argparse
import getpass
import os
import sys

from config import load_settings
from portal.accounts import AccountError, Accounts
from registry.store import migrate as migrate_registry
from storage.database import Database


def _accounts(args):
    from pathlib import Path


    settings = load_settings(args.config, data_dir=args.data_dir, database_url=args.database_url)
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url())
    migrate_registry(db)
    accounts = Accounts(db)
    accounts.ensure_schema()
    return db, accounts


def _password(args) -> str | None:
    if getattr(args, "password_env", None):
        value = os.environ.get(args.password_env)
        if not value:
            raise SystemExit(f"error: environment variable {args.password_env} is empty")
        return value
    if getattr(args, "no_password", False):
        return None
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise SystemExit("error: the passwords differ")
    return first


def cmd_user(args: argparse.Namespace) -> int:
    db, accounts = _accounts(args)
    try:
        if args.action == "add":
            user = accounts.add(args.login, args.role, _password(args), display_name=args.name,
                                patient_id=args.patient, professional_id=args.professional_id,
                                organization=args.organization, profession=args.profession)
            print(f"created {user.role} {user.login}")
        elif args.action == "passwd":
            if accounts.get(args.login) is None:
                print(f"error: no account {args.login}", file=sys.stderr)
                return 2
            accounts.set_password(args.login, _password(args))
            print(f"password changed for {args.login}")
    except AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    return 0


def add_commands(sub, common) -> None:
    p = sub.add_parser("portal", help="the web portal (/portal): accounts")
    psub = p.add_subparsers(dest="portal_command", required=True)
    u = psub.add_parser("user", help="portal accounts")
    usub = u.add_subparsers(dest="action", required=True)
    add = usub.add_parser("add", help="create an account (patient, professional or auditor)")
    common(add)
    add.add_argument("--role", required=True, choices=("patient", "professional", "auditor"))
    add.add_argument("--login", required=True)
    add.add_argument("--patient", help="patient account: the patient's INS as a CX")
    add.add_argument("--professional-id", help="professional account: national id (RPPS)")
    add.add_argument("--name", help="display name")
    add.add_argument("--organization", help="organisation the professional acts for")
    add.add_argument("--profession", help="profession (e.g. Médecin)")
    add.add_argument("--password-env", help="read the password from this environment variable")
    add.add_argument("--no-password", action="store_true", help="no password: OpenID Connect login only")
    add.set_defaults(func=cmd_user)
    pw = usub.add_parser("passwd", help="change an account's password")
    common(pw)
    pw.add_argument("--login", required=True)
    pw.add_argument("--password-env")
    pw.set_defaults(func=cmd_user)
