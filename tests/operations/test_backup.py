"""The backup and restore of docs/operations.md, run as written (SQLite: ``xds db backup`` and tar;
PostgreSQL: pg_dump and pg_restore), then ``xds audit verify`` and an ITI-43 of a document stored
before the backup (issue 19, operations)."""
from __future__ import annotations

import shutil
import subprocess

import pytest
from sqlalchemy.engine import make_url

from client.client import Document, XdsClient
from config import Settings
from tests.operations.support import xds
from tests.support.databases import BACKENDS, database_url
from tests.support.metadata import document_entry, fresh_patient
from tests.support.server import start_server


def sh(command: str) -> None:
    done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command}\n{done.stdout}{done.stderr}"


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql", query={}).render_as_string(hide_password=False)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_restored_backup_verifies_and_retrieves_a_document_stored_before_it(backend, tmp_path):
    if backend == "postgresql":
        assert shutil.which("pg_dump") and shutil.which("pg_restore"), "pg_dump and pg_restore must be on PATH"
    url, handle = database_url(backend, tmp_path)
    data, backup = tmp_path / "data", tmp_path / "backup"
    backup.mkdir()
    uid = Settings().repository_unique_id
    server = start_server(data, url)
    try:
        patient = fresh_patient()
        server.add_patient(patient)
        content = b"<doc>kept by the backup</doc>"
        entry = document_entry(patient, content=content, repository_unique_id=uid)
        XdsClient(server.registry_url, server.repository_url).submit([Document(content, entry)])
        if backend == "sqlite":
            made = xds("db", "backup", "--data-dir", str(data), "--database-url", url, str(backup / "registry.db"))
            assert made.returncode == 0, made.stderr
            sh(f"tar -C {data} --exclude='registry.db*' --exclude=metrics -czf {backup}/data.tar.gz .")
        else:
            schema = handle.name
            sh(f"pg_dump --format=custom --schema={schema} --file={backup}/xds.dump '{libpq(url)}'")
            sh(f"tar -C {data} --exclude=metrics -czf {backup}/data.tar.gz .")
    finally:
        assert server.stop() == 0, server.log()

    shutil.rmtree(data)
    if backend == "sqlite":
        for lost in tmp_path.glob("registry.db*"):
            lost.unlink()
    else:
        handle._admin.connect().execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            f'DROP SCHEMA "{handle.name}" CASCADE').close()
    try:
        data.mkdir()
        sh(f"tar -C {data} -xzf {backup}/data.tar.gz")
        if backend == "sqlite":
            sh(f"cp {backup}/registry.db {make_url(url).database}")
        else:
            sh(f"pg_restore --no-owner --dbname='{libpq(url)}' {backup}/xds.dump")
        migrated = xds("migrate", "--data-dir", str(data), "--database-url", url)
        assert migrated.returncode == 0, migrated.stderr
        verified = xds("audit", "verify", "--data-dir", str(data), "--database-url", url)
        assert verified.returncode == 0 and "audit trail intact" in verified.stdout, verified.stdout + verified.stderr
        restored = start_server(data, url)
        try:
            got = XdsClient(restored.registry_url, restored.repository_url).retrieve(entry.unique_id, uid)
            assert got.content == content
        finally:
            assert restored.stop() == 0, restored.log()
    finally:
        if handle is not None:
            handle.close()
