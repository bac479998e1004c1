"""What the operations tests share: an in-process application on a back-end, WSGI calls, PostgreSQL roles."""
from __future__ import annotations

import io
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote
from wsgiref.util import setup_testing_defaults

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from config import load_settings
from server.app import Application, create_app
from server.serve import migrate_all
from storage.database import Database
from tests.support.databases import PG_BASE

ROOT = Path(__file__).resolve().parents[2]


def make_app(url: str, data_dir: Path, **overrides) -> Application:
    settings = load_settings(None, environ={}, data_dir=str(data_dir), database_url=url, **overrides)
    data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(url)
    try:
        migrate_all(db)
    finally:
        db.dispose()
    return create_app(settings)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def call(app, path: str, method: str = "GET", body: bytes = b"", content_type: str = "text/plain",
         remote_addr: str = "127.0.0.1", headers: dict[str, str] | None = None) -> Answer:
    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update(REQUEST_METHOD=method, PATH_INFO=path, CONTENT_TYPE=content_type, CONTENT_LENGTH=str(len(body)),
                   REMOTE_ADDR=remote_addr, **{"wsgi.input": io.BytesIO(body)})
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    got: dict = {}

    def start_response(status, response_headers, exc_info=None):
        got["status"] = int(status.split()[0])
        got["headers"] = {k.lower(): v for k, v in response_headers}

    it = app(environ, start_response)
    try:
        data = b"".join(it)
    finally:
        it.close()
    return Answer(got["status"], got["headers"], data)


def xds(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)


class PostgresRoles:
    """An owner and an application role (unique names) and a schema, dropped on close."""

    def __init__(self) -> None:
        suffix = uuid.uuid4().hex[:10]
        self.owner, self.app, self.schema = f"xds_o_{suffix}", f"xds_a_{suffix}", f"xds_r_{suffix}"
        self.admin = create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
        self.admin_url = self.url_for(None)

    def url_for(self, role: str | None) -> str:
        base = make_url(PG_BASE)
        if role is not None:
            base = base.set(username=role, password=None)
        return base.render_as_string(hide_password=False) + "?options=" + quote(f"-csearch_path={self.schema}")

    def close(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
            for role in (self.app, self.owner):
                exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
                if exists:
                    conn.execute(text(f'DROP OWNED BY "{role}" CASCADE'))
                    conn.execute(text(f'DROP ROLE "{role}"'))
        self.admin.dispose()
