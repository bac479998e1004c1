"""Least-privilege PostgreSQL roles (issue 19, operations): the owner migrates, ``xds serve`` runs as
an application role that serves ITI-41, ITI-18 and ITI-43 and delivers the audit trail, and can
never UPDATE or DELETE an audit row."""
from __future__ import annotations

import time

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError

from client.client import Document, XdsClient
from config import Settings
from tests.operations.support import PostgresRoles, xds
from tests.support.databases import require_postgres
from tests.support.metadata import document_entry, fresh_patient
from tests.support.server import start_server

APPEND_ONLY = {"audit_records": "seq", "audit_record_keys": "seq", "audit_seals": "to_seq"}


@pytest.fixture
def roles():
    require_postgres()
    r = PostgresRoles()
    yield r
    r.close()


def test_db_roles_prints_grants_that_leave_the_audit_trail_append_only():
    out = xds("db", "roles", "--owner", "xds_owner", "--app", "xds_app")
    assert out.returncode == 0, out.stderr
    sql = out.stdout
    for table in APPEND_ONLY:
        assert f'GRANT SELECT, INSERT ON TABLE "public"."{table}" TO "xds_app";' in sql
    assert 'GRANT SELECT, INSERT, DELETE ON TABLE "public"."audit_outbox" TO "xds_app";' in sql
    assert 'GRANT SELECT, INSERT, UPDATE ON TABLE "public"."audit_cursors" TO "xds_app";' in sql
    assert 'GRANT SELECT ON TABLE "public"."audit_alembic_version" TO "xds_app";' in sql
    assert 'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE "public"."repository_documents" TO "xds_app";' in sql
    assert 'ALTER SCHEMA "public" OWNER TO "xds_owner";' in sql


def test_db_roles_refuses_one_role_for_both_and_sqlite_for_apply(tmp_path):
    same = xds("db", "roles", "--owner", "xds", "--app", "xds")
    assert same.returncode == 2 and "two roles" in same.stderr
    lite = xds("db", "roles", "--owner", "o", "--app", "a", "--apply", "--data-dir", str(tmp_path))
    assert lite.returncode == 2 and "PostgreSQL" in lite.stderr


def test_the_application_role_serves_and_audits_but_cannot_update_or_delete_audit_rows(roles, tmp_path):
    base = ["--owner", roles.owner, "--app", roles.app, "--schema", roles.schema, "--apply"]
    first = xds("db", "roles", *base, "--database-url", roles.admin_url)
    assert first.returncode == 0 and "do not exist yet" in first.stdout, first.stdout + first.stderr
    owner_url, app_url = roles.url_for(roles.owner), roles.url_for(roles.app)
    data = tmp_path / "data"
    refused = xds("migrate", "--data-dir", str(data), "--database-url", app_url)
    assert refused.returncode != 0, "the application role must not be able to create the schema"
    migrated = xds("migrate", "--data-dir", str(data), "--database-url", owner_url)
    assert migrated.returncode == 0, migrated.stderr
    second = xds("db", "roles", *base, "--database-url", roles.admin_url)
    assert second.returncode == 0 and "do not exist yet" not in second.stdout, second.stdout + second.stderr

    server = start_server(data, app_url)
    try:
        patient = fresh_patient()
        server.add_patient(patient)
        content = b"<doc>least privilege</doc>"
        entry = document_entry(patient, content=content, repository_unique_id=Settings().repository_unique_id)
        client = XdsClient(server.registry_url, server.repository_url)
        client.submit([Document(content, entry)])
        found = client.query("find-documents", patient=patient).documents
        assert [d.unique_id for d in found] == [entry.unique_id]
        assert client.retrieve(entry.unique_id, Settings().repository_unique_id).content == content
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            audit = requests.get(server.base_url + "/health", timeout=5).json()["audit"]
            if audit["backlog"] == 0:
                break
            time.sleep(0.3)
        assert audit["backlog"] == 0, server.log()
        assert requests.get(server.base_url + "/ready", timeout=5).status_code == 200
    finally:
        assert server.stop() == 0, server.log()

    app_engine = create_engine(app_url)
    try:
        with app_engine.connect() as conn:
            events = set(conn.execute(text("SELECT event_type FROM audit_records")).scalars())
        assert {"ITI-41", "ITI-18", "ITI-43"} <= events, events
        for table, column in APPEND_ONLY.items():
            for statement in (f"UPDATE {table} SET {column} = {column}", f"DELETE FROM {table}", f"TRUNCATE {table}"):
                with app_engine.connect() as conn, pytest.raises(ProgrammingError, match="permission denied"):
                    conn.execute(text(statement))
        with app_engine.connect() as conn, pytest.raises(ProgrammingError, match="permission denied"):
            conn.execute(text("CREATE TABLE intruder (id int)"))
    finally:
        app_engine.dispose()
    verified = xds("audit", "verify", "--data-dir", str(data), "--database-url", app_url)
    assert verified.returncode == 0 and "audit trail intact" in verified.stdout, verified.stdout + verified.stderr
    reindexed = xds("audit", "reindex", "--data-dir", str(data), "--database-url", owner_url)
    assert reindexed.returncode == 0, reindexed.stderr
