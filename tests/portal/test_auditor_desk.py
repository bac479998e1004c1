"""The portal's auditor desk reads the trail through ITI-81's transaction (issue 18): each search,
record view and CSV export is audited as ITI-81 audits a read (DICOM 110101 Audit Log Used, R,
event type ITI-81), naming the auditor and the patients read. In-process, SQLite and PostgreSQL."""
from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, quote

import pytest

from audit import messages, store
from audit.sender import Sender
from config import Settings
from portal.app import Portal, portal_app
from server.app import Services, build_services
from storage.database import Database
from tests.audit.support import assert_valid, xml_of
from xds.context import Caller

from .support import WsgiBrowser

LOGIN = "audrey"
PASSWORD = "correct horse battery"
PATIENT = "274017512345613^^^&1.2.250.1.213.1.4.10&ISO"


@pytest.fixture
def desk(db: Database, tmp_path: Path) -> Iterator[tuple[Services, WsgiBrowser]]:
    store.migrate(db)
    services = build_services(Settings(data_dir=tmp_path / "data", database_url=db.url))
    portal = portal_app(services)
    assert isinstance(portal, Portal)
    portal.accounts.add(LOGIN, "auditor", PASSWORD, display_name="Audrey Auditrice")
    caller = Caller(remote_addr="192.0.2.7", endpoint="http://xds.test/registry", user_id="899700000001")
    services.auditor.record(messages.stored_query(caller, "src", messages.SUCCESS, "urn:uuid:q", b"<q/>", PATIENT))
    _trail(services)
    browser = WsgiBrowser(portal)
    assert browser.login(LOGIN, PASSWORD).status in (200, 303)
    yield services, browser
    services.close()


def _trail(services: Services) -> list:
    services.auditor.flush()
    Sender(services.database).deliver_once()
    return [xml_of(r.raw) for r in store.iter_all(services.database)]


def _reads(services: Services) -> list:
    out = []
    for x in _trail(services):
        ei = x.find("EventIdentification")
        if ei.find("EventID").get("csd-code") == "110101":
            assert_valid(x)
            assert ei.get("EventActionCode") == "R"
            out.append(x)
    return out


def _is_an_iti81_read_by_the_auditor(x) -> list[str]:
    """The checks every desk read passes; the patients it names."""
    assert [t.get("csd-code") for t in x.iterfind("EventIdentification/EventTypeCode")] == ["ITI-81"]
    assert LOGIN in [p.get("UserID") for p in x.iterfind("ActiveParticipant") if p.get("UserIsRequestor") == "true"]
    roles = [o.get("ParticipantObjectTypeCodeRole") for o in x.iterfind("ParticipantObjectIdentification")]
    assert roles.count("13") == 1
    return [o.get("ParticipantObjectID") for o in x.iterfind("ParticipantObjectIdentification")
            if o.get("ParticipantObjectTypeCodeRole") == "1"]


def test_desk_search_is_an_audited_iti81_read(desk) -> None:
    services, browser = desk
    page = browser.get("/audit/?patient=" + quote(PATIENT, safe=""))
    assert page.status == 200 and "table" in page.text
    (read,) = _reads(services)
    assert _is_an_iti81_read_by_the_auditor(read) == [PATIENT]
    log = next(o for o in read.iterfind("ParticipantObjectIdentification")
               if o.get("ParticipantObjectTypeCodeRole") == "13")
    asked = dict(parse_qsl(base64.b64decode(log.findtext("ParticipantObjectQuery")).decode()))
    assert asked["patient.identifier"] == PATIENT


def test_desk_record_view_is_an_audited_iti81_read(desk) -> None:
    services, browser = desk
    seq = next(iter(store.iter_all(services.database))).seq
    page = browser.get(f"/audit/records/{seq}")
    assert page.status == 200 and "AuditMessage" in page.text
    (read,) = _reads(services)
    assert _is_an_iti81_read_by_the_auditor(read) == [PATIENT]


def test_desk_csv_export_is_an_audited_iti81_read(desk) -> None:
    services, browser = desk
    export = browser.get("/audit/export.csv?patient=" + quote(PATIENT, safe=""))
    assert export.status == 200 and export.header("content-type").startswith("text/csv")
    assert PATIENT.split("^")[0] in export.text
    (read,) = _reads(services)
    assert _is_an_iti81_read_by_the_auditor(read) == [PATIENT]
    assert "CSV" in read.findtext("EventIdentification/EventOutcomeDescription")
