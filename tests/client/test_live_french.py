"""Issue 20 against a running ``xds serve`` (SQLite and PostgreSQL): self-displaying CDA, the header's
patient, relatedDocument associations, an import rerun over registered documents."""
from __future__ import annotations

from client import XdsClient
from tests.client.test_cda_french import FIXTURES, HEADER_INS, related_document, structured
from tests.client.test_live import run
from tests.support.metadata import fresh_oid, fresh_patient
from xds.vocabulary import AssocType, Status


def with_uid(path, uid: str):
    path.write_text(path.read_text("utf-8").replace('root="1.2.250.1.999.7" extension="DOC-STRUCT-1"',
                                                    f'root="{uid}"'), "utf-8")
    return path


def test_self_displaying_cda_goes_in_and_back_byte_exact(live_server, tmp_path):
    live_server.add_patient(HEADER_INS)
    uid = fresh_oid()
    src = tmp_path / "auto.xsl"
    src.write_text((FIXTURES / "auto-presentable.xsl").read_text("utf-8").replace(
        'root="1.2.250.1.999.7" extension="DOC-AUTO-1"', f'root="{uid}"'), "utf-8")
    r = run(live_server, "submit", str(src))
    assert r.returncode == 0, r.stdout + r.stderr
    (entry,) = XdsClient(live_server.registry_url, live_server.repository_url).query(
        "get-documents", unique_id=uid).documents
    assert entry.mime_type == "application/xslt+xml" and entry.format_code.code == "urn:asip:ci-sis:idap:2011"
    out = run(live_server, "retrieve", "--document", uid, "-o", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    assert next((tmp_path / "out").iterdir()).read_bytes() == src.read_bytes()


def test_patient_flag_must_match_the_header_or_be_overridden_visibly(live_server, tmp_path):
    other = fresh_patient()
    live_server.add_patient(other)
    path = with_uid(structured(tmp_path), uid := fresh_oid())
    refused = run(live_server, "submit", str(path), "--patient", other)
    assert refused.returncode == 2 and "not the patient of the CDA header" in refused.stderr
    assert "248039263001064" in refused.stderr
    done = run(live_server, "submit", str(path), "--patient", other, "--override-patient")
    assert done.returncode == 0, done.stdout + done.stderr
    (entry,) = XdsClient(live_server.registry_url, live_server.repository_url).query(
        "get-documents", unique_id=uid).documents
    assert entry.patient_id == other and entry.source_patient_id == HEADER_INS


def test_related_document_and_replaces_by_unique_id_make_the_associations(live_server, tmp_path):
    live_server.add_patient(HEADER_INS)
    client = XdsClient(live_server.registry_url, live_server.repository_url)
    v1, v2, v3, v4 = (fresh_oid() for _ in range(4))
    assert run(live_server, "submit", str(with_uid(structured(tmp_path, name="v1.xml"), v1))).returncode == 0
    r = run(live_server, "submit", str(with_uid(structured(tmp_path, related=related_document("RPLC", v1),
                                                           name="v2.xml"), v2)))
    assert r.returncode == 0, r.stdout + r.stderr
    r = run(live_server, "submit", str(with_uid(structured(tmp_path, related=related_document("APND", v2),
                                                           name="v3.xml"), v3)))
    assert r.returncode == 0, r.stdout + r.stderr
    assert client.find_document(v1).status == Status.DEPRECATED
    parent = client.find_document(v2)
    assocs = client.query("get-associations", uuid=parent.entry_uuid).associations
    original = client.find_document(v1)
    assert (AssocType.RPLC, parent.entry_uuid, original.entry_uuid) in {
        (a.association_type, a.source, a.target) for a in assocs}
    assert AssocType.APND in {a.association_type for a in assocs if a.target == parent.entry_uuid}
    r = run(live_server, "submit", str(with_uid(structured(tmp_path, name="v4.xml"), v4)), "--replaces", v2)
    assert r.returncode == 0, r.stdout + r.stderr
    assert client.find_document(v2).status == Status.DEPRECATED
    again = run(live_server, "submit", str(with_uid(structured(tmp_path, name="v5.xml"), fresh_oid())),
                "--replaces", v1)
    assert again.returncode == 2 and "Deprecated, not Approved" in again.stderr


def test_import_rerun_skips_registered_and_never_revives_a_replaced_document(live_server, tmp_path):
    live_server.add_patient(HEADER_INS)
    folder = tmp_path / "in"
    folder.mkdir()
    v1, v2 = fresh_oid(), fresh_oid()
    with_uid(structured(folder, related=related_document("RPLC", v1), name="a-correction.xml"), v2)
    with_uid(structured(folder, name="b-original.xml"), v1)
    first = run(live_server, "import", str(folder))
    assert first.returncode == 0 and "2 submitted" in first.stdout, first.stdout + first.stderr
    (folder / ".xds-import.journal").unlink()
    again = run(live_server, "import", str(folder))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 submitted, 2 already imported" in again.stdout
    client = XdsClient(live_server.registry_url, live_server.repository_url)
    assert client.find_document(v1).status == Status.DEPRECATED
    assert [e.unique_id for e in client.query("find-documents", patient=HEADER_INS).documents].count(v1) == 0
