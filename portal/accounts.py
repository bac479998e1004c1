"""Portal accounts, server-side sessions and login attempt limiting (tables in the registry's database).

Passwords are hashed with scrypt (RFC 7914, ``hashlib.scrypt``: N=2**15, r=8, p=1, 16-byte salt);
the stored form is ``scrypt$N$r$p$salt$hash`` (base64), so parameters can be raised later and old
hashes still verify. Sessions are random 256-bit ids; only their SHA-256 is stored, so a leaked
table does not give live sessions away.

Failed logins slow down the pair (login, client address) that failed, not the account: a lock per
account would let anyone lock anyone out by typing wrong passwords (OWASP Authentication Cheat
Sheet, "Account Lockout"; OWASP Blocking Brute Force Attacks, exponential back-off). After
:data:`BACKOFF_AFTER` failures the pair waits :data:`BACKOFF_FIRST` seconds, twice as long after
each further failure, at most :data:`BACKOFF_MAX`; a success of that pair starts it afresh. One
address failing for many logins (password spraying) is slowed too, without touching other addresses.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from portal.web import unprintable

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "portal_alembic_version"
metadata = MetaData(naming_convention={"ix": "ix_%(table_name)s_%(column_0_N_name)s", "pk": "pk_%(table_name)s"})

users = Table(
    "portal_users", metadata,
    Column("login", String(128), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(256)),
    Column("display_name", String(256)),
    Column("patient_id", String(256)),
    Column("professional_id", String(128)),
    Column("organization", String(256)),
    Column("profession", String(128)),
    Column("created_at", Float, nullable=False),
    Index(None, "professional_id"),
)

sessions = Table(
    "portal_sessions", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("login", String(128), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("data", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("seen_at", Float, nullable=False),
    Index(None, "seen_at"),
)

attempts = Table(
    "portal_login_failures", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("login", String(128), nullable=False),
    Column("address", String(64), nullable=False),
    Column("at", Float, nullable=False),
    Index(None, "login", "at"),
    Index(None, "address", "at"),
)

ROLES = ("patient", "professional", "auditor")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 15, 8, 1
SESSION_IDLE = 30 * 60
SESSION_MAX = 12 * 3600
BACKOFF_AFTER = 5
BACKOFF_FIRST = 60
BACKOFF_MAX = 15 * 60
FAILURE_MEMORY = 24 * 3600
"""Failures older than this are forgotten (and deleted): a pair's back-off starts afresh a day later."""
FAILURE_WINDOW = 15 * 60
MAX_FAILURES_PER_ADDRESS = 20


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 * 1024 * 1024,
                            dklen=32)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str | None) -> bool:
    try:
        kind, n, r, p, salt, digest = (stored or "").split("$")
        if kind != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=128 * 1024 * 1024, dklen=len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


_DUMMY_HASH = None


def backoff(failures: int) -> float:
    """Seconds a pair waits after its ``failures``-th failure (0 below :data:`BACKOFF_AFTER`)."""
    if failures < BACKOFF_AFTER:
        return 0.0
    return float(min(BACKOFF_FIRST * 2 ** min(failures - BACKOFF_AFTER, 16), BACKOFF_MAX))


def valid_login(login: str) -> bool:
    """A login name is 1 to 128 characters, none of them a control or format character: such a name is no one's,
    and refusing it keeps NUL away from the database (PostgreSQL refuses it in text) and CR/LF out of the logs."""
    return 0 < len(login) <= 128 and not unprintable(login)


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_hex(8))
    return _DUMMY_HASH


@dataclass
class User:
    login: str
    role: str
    display_name: str | None = None
    patient_id: str | None = None
    professional_id: str | None = None
    organization: str | None = None
    profession: str | None = None

    @property
    def name(self) -> str:
        return self.display_name or self.login


@dataclass
class Session:
    id: str
    user: User
    csrf: str
    data: dict = field(default_factory=dict)


class AccountError(ValueError):
    pass


class Accounts:
    def __init__(self, database, clock: Callable[[], float] = time.time) -> None:
        self.db = database
        self.clock = clock

    def ensure_schema(self) -> None:
        """Migrate the portal tables (a no-op once ``xds serve`` has migrated them in its master)."""
        self.db.migrate(MIGRATIONS)

    # -- accounts ---------------------------------------------------------------------------------
    def add(self, login: str, role: str, password: str | None, *, display_name: str | None = None,
            patient_id: str | None = None, professional_id: str | None = None, organization: str | None = None,
            profession: str | None = None) -> User:
        login = (login or "").strip()
        if not valid_login(login):
            raise AccountError("a login (1 to 128 characters, no control character) is required")
        if role not in ROLES:
            raise AccountError(f"role must be one of {', '.join(ROLES)}")
        if role == "patient" and not patient_id:
            raise AccountError("a patient account needs --patient (the patient's INS as a CX)")
        if role == "professional" and not professional_id:
            raise AccountError("a professional account needs --professional-id (national id, e.g. RPPS)")
        if password is not None and len(password) < 8:
            raise AccountError("the password must have at least 8 characters")
        row = {"login": login, "role": role, "password_hash": hash_password(password) if password else None,
               "display_name": display_name, "patient_id": patient_id if role == "patient" else None,
               "professional_id": professional_id if role == "professional" else None,
               "organization": organization, "profession": profession, "created_at": self.clock()}
        with self.db.write() as conn:
            if conn.execute(select(users.c.login).where(users.c.login == login)).first() is not None:
                raise AccountError(f"login {login} already exists")
            conn.execute(insert(users).values(row))
        user = self.get(login)
        assert user is not None, "the account was just created"
        return user

    def set_password(self, login: str, password: str) -> None:
        if len(password) < 8:
            raise AccountError("the password must have at least 8 characters")
        with self.db.write() as conn:
            conn.execute(update(users).where(users.c.login == login).values(password_hash=hash_password(password)))

    def get(self, login: str) -> User | None:
        with self.db.read() as conn:
            row = conn.execute(select(users).where(users.c.login == login)).first()
        return _user(row) if row is not None else None

    def professionals(self, text: str, limit: int = 20) -> list[User]:
        """Professional accounts whose name or national id contains ``text`` (the portal's directory)."""
        text = (text or "").strip().lower()
        if not text:
            return []
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        stmt = (select(users).where(users.c.role == "professional",
                                    or_(func.lower(users.c.display_name).like(pattern, escape="\\"),
                                        func.lower(users.c.professional_id).like(pattern, escape="\\")))
                .order_by(users.c.display_name).limit(limit))
        with self.db.read() as conn:
            return [_user(r) for r in conn.execute(stmt)]

    def professional(self, professional_id: str) -> User | None:
        with self.db.read() as conn:
            row = conn.execute(select(users).where(users.c.role == "professional",
                                                   users.c.professional_id == professional_id).limit(1)).first()
        return _user(row) if row is not None else None

    # -- login ------------------------------------------------------------------------------------
    def wait(self, login: str, address: str) -> float:
        """Seconds before ``login`` may be tried again from ``address`` (0: now): the back-off of this pair, or
        of this address if it failed :data:`MAX_FAILURES_PER_ADDRESS` times in :data:`FAILURE_WINDOW` whatever
        the logins. Failures from other addresses never delay anyone here."""
        now = self.clock()
        address = address[:64]
        with self.db.read() as conn:
            count, last = conn.execute(select(func.count(), func.max(attempts.c.at))
                                       .where(attempts.c.login == login, attempts.c.address == address,
                                              attempts.c.at >= now - FAILURE_MEMORY)).one()
            spraying = conn.execute(select(attempts.c.at)
                                    .where(attempts.c.address == address, attempts.c.at >= now - FAILURE_WINDOW)
                                    .order_by(attempts.c.at.desc()).offset(MAX_FAILURES_PER_ADDRESS - 1)
                                    .limit(1)).scalar()
        pair = last + backoff(count) - now if count else 0.0
        by_address = spraying + FAILURE_WINDOW - now if spraying is not None else 0.0
        return max(pair, by_address, 0.0)

    def authenticate(self, login: str, password: str, address: str) -> User | None:
        """The user, or None (wrong login or password). Call :meth:`wait` first: this checks the password."""
        login = (login or "").strip()
        if not valid_login(login):
            return None
        address = address[:64]
        with self.db.read() as conn:
            row = conn.execute(select(users).where(users.c.login == login)).first()
        stored = row.password_hash if row is not None and row.password_hash else _dummy_hash()
        ok = verify_password(password or "", stored) and row is not None and bool(row.password_hash)
        now = self.clock()
        with self.db.write() as conn:
            if not ok:
                conn.execute(insert(attempts).values(login=login, address=address, at=now))
                conn.execute(delete(attempts).where(attempts.c.at < now - FAILURE_MEMORY))
                return None
            conn.execute(delete(attempts).where(attempts.c.login == login, attempts.c.address == address))
        return _user(row)

    # -- sessions ---------------------------------------------------------------------------------
    def open_session(self, user: User, data: dict | None = None) -> Session:
        sid = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self.clock()
        with self.db.write() as conn:
            conn.execute(delete(sessions).where(sessions.c.seen_at < now - SESSION_IDLE))
            conn.execute(insert(sessions).values(id_hash=_h(sid), login=user.login, csrf=csrf,
                                                 data=json.dumps(data or {}), created_at=now, seen_at=now))
        return Session(sid, user, csrf, dict(data or {}))

    def session(self, sid: str | None) -> Session | None:
        if not sid or len(sid) > 100:
            return None
        now = self.clock()
        with self.db.read() as conn:
            row = conn.execute(select(sessions).where(sessions.c.id_hash == _h(sid))).first()
        if row is None or row.seen_at < now - SESSION_IDLE or row.created_at < now - SESSION_MAX:
            return None
        user = self.get(row.login)
        if user is None:
            return None
        if now - row.seen_at > 30:
            with self.db.write() as conn:
                conn.execute(update(sessions).where(sessions.c.id_hash == _h(sid)).values(seen_at=now))
        return Session(sid, user, row.csrf, json.loads(row.data or "{}"))

    def save(self, session: Session) -> None:
        with self.db.write() as conn:
            conn.execute(update(sessions).where(sessions.c.id_hash == _h(session.id))
                         .values(data=json.dumps(session.data), seen_at=self.clock()))

    def close_session(self, sid: str) -> None:
        with self.db.write() as conn:
            conn.execute(delete(sessions).where(sessions.c.id_hash == _h(sid)))


def _h(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def _user(row) -> User:
    return User(row.login, row.role, row.display_name, row.patient_id, row.professional_id, row.organization,
                row.profession)
