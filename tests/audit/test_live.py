"""Through ``xds serve`` (the ``live_server`` fixture, SQLite and PostgreSQL): register, query,
provide, retrieve; then read the trail with ITI-81 and ``xds audit``."""
from __future__ import annotations

import json
import time

import requests

from tests.audit.test_transactions import query_body
from tests.conftest import AUDITOR_TOKEN
from tests.repository.support import (
    REPOSITORY_UID,
    parse_reply,
    provide_request,
    retrieve_request,
    submission,
)
from tests.support.metadata import draft, fresh_patient
from xds.soap.client import call
from xds.vocabulary import Actions

SOAP = 'application/soap+xml; charset=UTF-8; action="{}"'
AUDITOR = {"Authorization": f"Bearer {AUDITOR_TOKEN}"}


def _events(server, **params) -> list[dict]:
    params.setdefault("date", "ge2000-01-01")
    r = requests.get(server.base_url + "/audit/AuditEvent", params=params, timeout=10, headers=AUDITOR)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["resourceType"] == "Bundle" and doc["type"] == "searchset"
    # each read is itself audited (110101 Audit Log Used) and names the patient it asked for
    return [e["resource"] for e in doc.get("entry", []) if e["resource"]["type"]["code"] != "110101"]


def _wait(server, n: int, **params) -> list[dict]:
    deadline = time.monotonic() + 15
    while True:
        got = _events(server, **params)
        if len(got) >= n or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_trail_of_a_live_server(live_server):
    patient = fresh_patient()
    live_server.add_patient(patient)
    t0 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 2))
    assert call(live_server.registry_url, Actions.REGISTER, draft(patient).request()).body.get("status").endswith(
        "Success")
    call(live_server.registry_url, Actions.STORED_QUERY, query_body(patient))
    sub = submission([b"live audit"], patient=patient)
    body, ctype = provide_request(sub)
    r = requests.post(live_server.repository_url, data=body, headers={"Content-Type": ctype}, timeout=30)
    assert parse_reply(r.status_code, r.headers["content-type"], r.content).status_value.endswith("Success")
    body, ctype = retrieve_request([(REPOSITORY_UID, sub.docs[0].unique_id)])
    r = requests.post(live_server.repository_url, data=body, headers={"Content-Type": ctype}, timeout=30)
    assert r.status_code == 200

    pid = patient.split("^")[0]
    mine = _wait(live_server, 5, **{"patient.identifier": f"urn:oid:1.2.250.1.213.1.4.10|{pid}"})
    kinds = sorted((e["subtype"][0]["code"], e["type"]["code"]) for e in mine)
    assert kinds == [("ITI-18", "110112"), ("ITI-41", "110107"), ("ITI-42", "110106"), ("ITI-42", "110107"),
                     ("ITI-42", "110107")]
    assert all(e["outcome"] == "0" for e in mine)
    retrieved = _wait(live_server, 1, **{"entity.identifier": sub.docs[0].unique_id, "date": f"ge{t0}"})
    assert [(e["subtype"][0]["code"], e["action"]) for e in retrieved] == [("ITI-43", "R")]
    ent = retrieved[0]["entity"][0]
    assert ent["type"]["code"] == "2" and ent["role"]["code"] == "3"
    assert ent["detail"][0]["type"] == "Repository Unique Id"
    assert _events(live_server, **{"type": "110112", "patient.identifier": f"1.2.250.1.213.1.4.10|{pid}"})[0][
        "entity"][1]["query"]
    assert _events(live_server, date="le2000-01-01") == []
    assert _events(live_server, **{"date": f"ge{t0}", "outcome": "8", "patient.identifier": patient}) == []
    assert requests.get(live_server.base_url + "/audit/AuditEvent", timeout=10, headers=AUDITOR).status_code == 400
    assert requests.get(live_server.base_url + "/audit/AuditEvent", params={"date": "ge2000-01-01"},
                        timeout=10).status_code == 401

    out = live_server.xds("audit", "search", "--patient", patient, "--format", "json")
    rows = [r for r in json.loads(out.stdout) if r["event"] != "110101"]
    assert len(rows) == 5 and all(patient in r["patients"] for r in rows)
    csv_out = live_server.xds("audit", "search", "--event", "ITI-43", "--since", t0, "--format", "csv").stdout
    assert csv_out.splitlines()[0].startswith("seq,time,event") and len(csv_out.splitlines()) >= 2
    assert "audit trail intact" in live_server.xds("audit", "verify").stdout
    starts = _events(live_server, type="110100", subtype="110120")
    assert starts and starts[0]["agent"][0]["who"]["identifier"]["value"] == "xds serve"


def _nice(pid: int) -> int:
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[16])


def _children(pid: int) -> list[int]:
    import os
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry))
            except OSError:
                continue
    return out


def test_the_audit_process_runs_below_the_workers(live_server):
    """audit_nice (default 19): under full load the forwarding waits, not the transactions."""
    from config import Settings
    daemons = [p for p in _children(live_server.process.pid)
               if b"audit.daemon" in open(f"/proc/{p}/cmdline", "rb").read()]
    assert len(daemons) == 1
    assert _nice(daemons[0]) == _nice(live_server.process.pid) + Settings().audit_nice == 19
