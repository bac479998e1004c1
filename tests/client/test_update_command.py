"""``xds update`` (ITI-57 Update Document Set, the Document Administrator of ITI TF-2 3.57) against a
running ``xds serve`` on SQLite and PostgreSQL: a new version of the entry (same uniqueId and
logicalID, PreviousVersion) for a changed attribute, an UpdateAvailabilityStatus for a status,
``--dry-run`` sending nothing, answers and errors printed as the other client commands do."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from client import XdsClient
from client.client import Document
from client.errors import XdsFailure
from client.update import Changes, latest_version, plan_update, send_update
from tests.support.metadata import document_entry, fresh_oid, fresh_patient
from xds.metadata import new_uuid
from xds.vocabulary import Status

HL7 = "2.16.840.1.113883.5.25"
TRE_A07 = "1.2.250.1.213.1.1.4.13"


def run(server, *args, registry_url: str | None = None):
    cmd = [sys.executable, "-m", "server.cli", *args, "--registry-url", registry_url or server.registry_url]
    return subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=300)


@pytest.fixture
def client(live_server):
    with XdsClient(live_server.registry_url, live_server.repository_url) as c:
        yield c


@pytest.fixture
def registered(live_server, client):
    """One document registered over ITI-41: its uniqueId and the entryUUID the registry gave it."""
    patient = fresh_patient()
    live_server.add_patient(patient)
    entry = document_entry(patient, new_uuid(), hash=None, size=None, repository_unique_id=None)
    client.submit([Document(b"<ClinicalDocument>update me</ClinicalDocument>", entry)])
    found = client.query("get-documents", unique_id=entry.unique_id).documents
    assert [e.version for e in found] == ["1"]
    return entry.unique_id, found[0].entry_uuid


def all_versions(client, unique_id: str):
    """Every version of the document, oldest first ($MetadataLevel 2, ITI TF-2 3.18.4.1.2.3.5.1)."""
    found = client.query("get-documents", unique_id=unique_id, **{"$MetadataLevel": ["2"]}).documents
    return sorted(found, key=lambda e: int(e.version or 0))


def test_changed_attributes_are_a_new_version_with_the_same_unique_id_and_logical_id(live_server, client, registered):
    """ITI TF-2 3.57.4.1.3.3.1: the new version has a new entryUUID, the lid and uniqueId of the
    logical document, the changed title and confidentialityCode; the registry numbers it 2 and
    deprecates version 1."""
    uid, first_uuid = registered
    r = run(live_server, "update", uid, "--title", "Compte rendu corrige", "--confidentiality-code", "MASQUE_PS")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"updated {uid}" in r.stdout and "new version 2" in r.stdout and "MASQUE_PS" in r.stdout
    v1, v2 = all_versions(client, uid)
    assert (v1.entry_uuid, v1.status, v1.version) == (first_uuid, Status.DEPRECATED, "1")
    assert (v2.status, v2.version, v2.logical_id, v2.unique_id) == (Status.APPROVED, "2", first_uuid, uid)
    assert v2.entry_uuid != first_uuid and v2.title == "Compte rendu corrige" and v1.title == "Compte rendu"
    assert [(c.code, c.scheme) for c in v2.confidentiality_codes] == [("MASQUE_PS", TRE_A07)]
    assert v2.hash == v1.hash and v2.repository_unique_id == v1.repository_unique_id


def test_a_second_update_follows_the_latest_version_named_by_an_older_entry_uuid(live_server, client, registered):
    """The latest version is fetched first: an update naming version 1's entryUUID after version 2
    exists sends PreviousVersion 2 (ITI TF-2 3.57.4.1.3.1.3.3), not 1."""
    uid, first_uuid = registered
    assert run(live_server, "update", uid, "--title", "v2").returncode == 0
    r = run(live_server, "update", first_uuid, "--comments", "relu")
    assert r.returncode == 0, r.stdout + r.stderr
    assert [(e.version, e.status, e.title, e.comments) for e in all_versions(client, uid)] == [
        ("1", Status.DEPRECATED, "Compte rendu", None), ("2", Status.DEPRECATED, "v2", None),
        ("3", Status.APPROVED, "v2", "relu")]


def test_dry_run_prints_the_update_and_sends_nothing(live_server, client, registered):
    uid, first_uuid = registered
    r = run(live_server, "update", uid, "--title", "jamais envoye", "--deprecate", "--dry-run", "--raw")
    assert r.returncode == 0, r.stderr
    assert "dry run, nothing sent" in r.stdout
    assert "title  Compte rendu  ->  jamais envoye" in r.stdout
    assert "availabilityStatus Approved -> Deprecated" in r.stdout
    assert 'name="PreviousVersion"' in r.stdout and f'lid="{first_uuid}"' in r.stdout
    assert "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus" in r.stdout
    assert [(e.version, e.status, e.title) for e in all_versions(client, uid)] == [
        ("1", Status.APPROVED, "Compte rendu")]


def test_deprecate_then_approve_again_changes_the_status_without_a_new_version(live_server, client, registered):
    """UpdateAvailabilityStatus Approved -> Deprecated and back (ITI TF-2 3.57.4.1.3.3.2): the same
    entry, version 1, no new version; FindDocuments sees it under its current status."""
    uid, first_uuid = registered
    patient = client.query("get-documents", unique_id=uid).documents[0].patient_id
    r = run(live_server, "update", first_uuid, "--deprecate")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "availabilityStatus Approved -> Deprecated" in r.stdout and "new version" not in r.stdout
    assert [(e.entry_uuid, e.status) for e in all_versions(client, uid)] == [(first_uuid, Status.DEPRECATED)]
    assert client.query("find-documents", patient=patient).documents == []
    r = run(live_server, "update", uid, "--approve")
    assert r.returncode == 0, r.stdout + r.stderr
    assert [e.unique_id for e in client.query("find-documents", patient=patient).documents] == [uid]


def test_new_version_and_status_change_in_one_update(live_server, client, registered):
    """A new version and an UpdateAvailabilityStatus of that new version in one transaction: the new
    version takes version 1's status, then the status changes (ITI TF-2 3.57.4.1.3.3.1, .2)."""
    uid, _ = registered
    r = run(live_server, "update", uid, "--title", "archive", "--status", "deprecated")
    assert r.returncode == 0, r.stdout + r.stderr
    assert [(e.version, e.status, e.title) for e in all_versions(client, uid)] == [
        ("1", Status.DEPRECATED, "Compte rendu"), ("2", Status.DEPRECATED, "archive")]


def test_errors_are_printed_with_the_client_exit_codes(live_server, registered):
    """1 for what the registry refuses or does not hold, 2 for a request that changes nothing (nothing
    sent), 3 when the registry cannot be reached."""
    uid, _ = registered
    unknown = fresh_oid()
    r = run(live_server, "update", unknown, "--title", "x")
    assert r.returncode == 1 and f"the registry has no document {unknown}" in r.stderr
    assert r.stderr.startswith("xds update: XDS failure")
    r = run(live_server, "update", uid, "--title", "Compte rendu")
    assert r.returncode == 2 and "nothing to change" in r.stderr
    r = run(live_server, "update", uid, "--approve")
    assert r.returncode == 2 and "nothing to change" in r.stderr and "Approved" in r.stderr
    r = run(live_server, "update", uid, "--creation-time", "yesterday")
    assert r.returncode == 2 and "--creation-time" in r.stderr
    down = run(live_server, "update", uid, "--title", "x", registry_url="http://127.0.0.1:9/registry")
    assert down.returncode == 3 and "cannot connect" in down.stderr


def test_a_stale_previous_version_is_the_registry_s_xds_metadata_version_error(client, registered):
    """Two updates planned from the same version: the second one's PreviousVersion is no longer the
    latest, the registry answers XDSMetadataVersionError (ITI TF-2 3.57.4.1.3.1.3.3), the client
    raises it with the registry's words and nothing changes."""
    uid, _ = registered
    latest = latest_version(client, uid)
    first = plan_update(client, latest, Changes(comments="first"))
    second = plan_update(client, latest, Changes(comments="second"))
    send_update(client, first)
    with pytest.raises(XdsFailure) as info:
        send_update(client, second)
    assert [e.code for e in info.value.errors] == ["XDSMetadataVersionError"]
    assert [e.comments for e in all_versions(client, uid)] == [None, "first"]
