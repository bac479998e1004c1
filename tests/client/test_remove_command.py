"""``xds remove`` (ITI-62 Remove Metadata then ITI-86 Remove Documents, the Document Administrator
of ITI TF-2 3.62 and 3.86) against a running ``xds serve`` on SQLite and PostgreSQL: the whole set
the registry needs (the entry, its associations, a SubmissionSet left empty) worked out with stored
queries, ``--dry-run`` sending nothing, and the removed document then unknown to ITI-18 and ITI-43."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from client import XdsClient
from client.client import Document
from client.errors import XdsFailure
from tests.support.metadata import document_entry, fresh_patient
from xds.metadata import new_uuid


def run(server, *args):
    cmd = [sys.executable, "-m", "server.cli", *args, "--registry-url", server.registry_url,
           "--repository-url", server.repository_url]
    return subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=300)


@pytest.fixture
def client(live_server):
    with XdsClient(live_server.registry_url, live_server.repository_url) as c:
        yield c


def submitted(live_server, client, n: int):
    patient = fresh_patient()
    live_server.add_patient(patient)
    entries = [document_entry(patient, new_uuid(), hash=None, size=None, repository_unique_id=None) for _ in range(n)]
    client.submit([Document(f"<ClinicalDocument>{i}</ClinicalDocument>".encode(), e) for i, e in enumerate(entries)])
    return patient, [client.find_document(e.unique_id) for e in entries]


def test_remove_dry_run_then_removal_of_metadata_and_bytes(live_server, client):
    patient, (doc,) = submitted(live_server, client, 1)
    dry = run(live_server, "remove", doc.unique_id, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"ITI-62 would remove DocumentEntry {doc.entry_uuid}" in dry.stdout
    assert dry.stdout.count("would remove Association") == 1 and "would remove SubmissionSet" in dry.stdout
    assert "dry run, nothing sent" in dry.stdout
    assert client.find_document(doc.unique_id) is not None
    assert client.retrieve(doc.unique_id, doc.repository_unique_id).content

    real = run(live_server, "remove", doc.unique_id)
    assert real.returncode == 0, real.stderr
    assert f"removed {doc.unique_id}" in real.stdout and "its bytes" in real.stdout
    assert client.find_document(doc.unique_id) is None
    assert client.query("find-documents", patient=patient, status=["approved", "deprecated"]).documents == []
    with pytest.raises(XdsFailure) as failed:
        client.retrieve(doc.unique_id, doc.repository_unique_id)
    assert [e.code for e in failed.value.errors] == ["XDSDocumentUniqueIdError"]

    again = run(live_server, "remove", doc.unique_id)
    assert again.returncode == 1 and "XDSDocumentUniqueIdError" in again.stderr


def test_remove_one_document_of_a_submission_keeps_the_other(live_server, client):
    _, (gone, kept) = submitted(live_server, client, 2)
    dry = run(live_server, "remove", gone.entry_uuid, "--dry-run")
    assert "would remove SubmissionSet" not in dry.stdout, "the SubmissionSet keeps a member"
    assert run(live_server, "remove", gone.entry_uuid).returncode == 0
    assert client.find_document(gone.unique_id) is None
    assert client.retrieve(kept.unique_id, kept.repository_unique_id).content == b"<ClinicalDocument>1</ClinicalDocument>"
