"""Every client command against a running ``xds serve`` (SQLite and PostgreSQL), and zeep beside us."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from client import XdsClient
from client.client import parse_query_response
from client.demo import generate
from tests.conftest import shared_path
from tests.support.metadata import fresh_oid, fresh_patient


def run(server, *args, env=None):
    """``xds`` with the server's endpoints from the environment (each command takes only the
    endpoint flags it uses: ``query`` has no ``--repository-url``)."""
    cmd = [sys.executable, "-m", "server.cli", *args]
    endpoints = {"XDS_REGISTRY_URL": server.registry_url, "XDS_REPOSITORY_URL": server.repository_url}
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **endpoints, **(env or {})},
                          timeout=300)


@pytest.fixture
def patient(live_server):
    pid = fresh_patient()
    live_server.add_patient(pid)
    return pid


def test_submit_dry_run_then_real_query_and_retrieve(live_server, patient, tmp_path):
    sample = shared_path("samples", "cda", "LDL-SES_2022.01.xml")
    uid = fresh_oid()
    dry = run(live_server, "submit", str(sample), "--patient", patient, "--override-patient", "--unique-id", uid, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run, nothing sent" in dry.stdout and "11490-0" in dry.stdout
    assert XdsClient(live_server.registry_url, live_server.repository_url).query(
        "find-documents", patient=patient).documents == []
    real = run(live_server, "submit", str(sample), "--patient", patient, "--override-patient", "--unique-id", uid)
    assert real.returncode == 0, real.stderr
    assert f"submitted {uid}" in real.stdout

    table = run(live_server, "query", "find-documents", "--patient", patient)
    assert table.returncode == 0 and uid in table.stdout and "1 object(s)" in table.stdout
    js = json.loads(run(live_server, "query", "find-documents", "--patient", patient, "--format", "json").stdout)
    (entry,) = js["documentEntries"]
    assert entry["unique_id"] == uid and entry["type_code"]["code"] == "11490-0"
    assert entry["hash"] == hashlib.sha1(sample.read_bytes()).hexdigest()
    ref = run(live_server, "query", "get-documents", "--unique-id", uid, "--return", "ref", "--format", "json")
    assert json.loads(ref.stdout)["objectRefs"] == [entry["entry_uuid"]]

    out = run(live_server, "retrieve", "--document", uid, "-o", str(tmp_path))
    assert out.returncode == 0, out.stderr
    got = tmp_path / (uid + ".xml")
    assert got.read_bytes() == sample.read_bytes() and "matches the registry" in out.stdout


def test_errors_and_exit_codes(live_server, patient, tmp_path):
    sample = shared_path("samples", "cda", "VSM_1.4_2022.01.xml")
    unknown = fresh_patient()  # never created: the registry refuses
    r = run(live_server, "submit", str(sample), "--patient", unknown, "--override-patient", "--unique-id", fresh_oid())
    assert r.returncode == 1 and "XDSUnknownPatientId" in r.stderr
    fake = tmp_path / "scan.pdf"
    fake.write_bytes(b"GIF89a")
    r = run(live_server, "submit", str(fake), "--patient", patient)
    assert r.returncode == 2 and "not a application/pdf file" in r.stderr
    down = subprocess.run([sys.executable, "-m", "server.cli", "query", "find-documents", "--patient", patient,
                           "--registry-url", "http://127.0.0.1:9/registry"], capture_output=True, text=True)
    assert down.returncode == 3 and "cannot connect" in down.stderr
    r = run(live_server, "retrieve", "--document", fresh_oid(), "-o", str(tmp_path))
    assert r.returncode == 1 and "no approved document" in r.stderr
    r = run(live_server, "query", "find-nothing")
    assert r.returncode == 2 and "unknown stored query" in r.stderr


def test_import_interrupted_then_resumed_submits_nothing_twice(live_server, tmp_path):
    plan = generate(tmp_path / "in", patients=2)
    for cx, *_ in plan:
        live_server.add_patient(cx)
    for p in (tmp_path / "in").rglob("*.pdf"):
        p.unlink()  # the PDF has no header: import takes CDA only here
    files = sorted((tmp_path / "in").rglob("*.xml"))
    killed = run(live_server, "import", str(tmp_path / "in"), "--jobs", "1", env={"XDS_IMPORT_STOP_AFTER": "3"})
    assert killed.returncode == 137, killed.stderr
    again = run(live_server, "import", str(tmp_path / "in"), "--jobs", "3")
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{len(files) - 3} submitted, 2 already imported, 1 recovered, 0 failed" in again.stdout
    assert "/" in again.stderr and f"{len(files)}/{len(files)}" in again.stderr  # the progress line
    third = run(live_server, "import", str(tmp_path / "in"))
    assert f"0 submitted, {len(files)} already imported" in third.stdout
    client = XdsClient(live_server.registry_url, live_server.repository_url)
    uids = [e.unique_id for cx, *_ in plan for e in client.query("find-documents", patient=cx).documents]
    assert len(uids) == len(set(uids)) == len(files)


def test_demo_fills_the_server(live_server, tmp_path):
    r = subprocess.run([sys.executable, "-m", "server.cli", "demo", "--patients", "2", "--out", str(tmp_path / "demo"),
                        "--data-dir", str(live_server.data_dir), "--database-url", live_server.database_url,
                        "--registry-url", live_server.registry_url, "--repository-url", live_server.repository_url],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "demo: 2 patients, 14 documents submitted" in r.stdout
    cx = r.stdout.split("--patient '")[1].split("'")[0]
    client = XdsClient(live_server.registry_url, live_server.repository_url)
    approved = client.query("find-documents", patient=cx).documents
    deprecated = client.query("find-documents", patient=cx, status="deprecated").documents
    assert len(approved) == 6 and len(deprecated) == 1  # the replaced lab report
    assert {e.mime_type for e in approved} == {"text/xml", "application/pdf"}
    folders = client.query("find-folders", patient=cx).folders
    assert [f.title for f in folders] == ["Hospitalisation mars 2024"]
    # three documents, and the replacement joins its original's folder (ITI TF-3 4.2.2.2.3)
    assert len(client.query("get-folder-and-contents", uuid=folders[0].entry_uuid).documents) == 4
    pdf = next(e for e in approved if e.mime_type == "application/pdf")
    got = client.retrieve(pdf.unique_id, pdf.repository_unique_id)
    assert got.content.startswith(b"%PDF-1.4") and hashlib.sha1(got.content).hexdigest() == pdf.hash


def test_zeep_query_agrees_with_ours(live_server, patient):
    zeep = pytest.importorskip("zeep")
    from zeep import Plugin, Settings

    from client import queries

    sample = shared_path("samples", "cda", "eP-MED-DM_2024.01_PosoStruct.xml")
    assert run(live_server, "submit", str(sample), "--patient", patient, "--override-patient", "--unique-id", fresh_oid()).returncode == 0
    ours = XdsClient(live_server.registry_url, live_server.repository_url).query("find-documents", patient=patient)

    class Raw(Plugin):
        """Our lxml AdhocQueryRequest in zeep's envelope out; the answer's raw body kept."""
        def egress(self, envelope, http_headers, operation, binding_options):
            body = envelope.find("{http://www.w3.org/2003/05/soap-envelope}Body")
            for c in list(body):
                body.remove(c)
            body.append(queries.adhoc_query_request(
                "FindDocuments", queries.build_params("FindDocuments", {"patient": patient})))
            return envelope, http_headers

        def ingress(self, envelope, http_headers, operation):
            self.answer = envelope.find("{http://www.w3.org/2003/05/soap-envelope}Body")[0]
            return envelope, http_headers

    raw = Raw()
    c = zeep.Client(str(shared_path("schemas", "ipf-wsdl", "iti18.wsdl")), settings=Settings(strict=False),
                    plugins=[raw])
    svc = c.create_service(next(iter(c.wsdl.bindings)), live_server.registry_url)
    op = next(iter(next(iter(c.wsdl.bindings.values()))._operations))
    result = svc[op](ResponseOption={"returnType": "LeafClass", "returnComposedObjects": True},
                     AdhocQuery={"id": queries.QUERY_IDS["FindDocuments"]})
    assert result.status.endswith(":Success")
    theirs = parse_query_response(raw.answer)
    assert [(e.entry_uuid, e.unique_id, e.hash) for e in theirs.documents] == \
        [(e.entry_uuid, e.unique_id, e.hash) for e in ours.documents]
    assert len(ours.documents) == 1 and ours.documents[0].type_code.code == "57833-6"
