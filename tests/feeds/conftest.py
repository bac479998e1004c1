"""Fixtures of the Patient Identity Feed tests: the server's own WSGI app (ITI-104) and an MLLP
listener (ITI-8) on one database, SQLite and PostgreSQL, with trusted sources configured."""
from __future__ import annotations

import threading

import pytest

from access.store import AccessStore
from audit.sender import Sender
from audit.store import iter_all
from bindings.mllp import MllpServer
from config import Settings
from server.app import Application, build_services, mounts
from server.serve import migrate_all
from tests.audit.support import xml_of
from transactions.patient_feed import PatientFeed

SOURCE = "hopital-feed"
TOKEN = "feed-token-5b1e0c3d9a7f4e21"
SOURCE_NODE = "CN=ipp.hopital.example,O=Hopital"
OTHER_NODE = "CN=lps.example,O=Clinique"


@pytest.fixture
def services(db, tmp_path):
    migrate_all(db)
    services = build_services(Settings(data_dir=tmp_path / "data", database_url=db.url,
                                       patient_feed_sources=[SOURCE_NODE], patient_feed_tokens={SOURCE: TOKEN}))
    yield services
    services.close()


@pytest.fixture
def app(services) -> Application:
    return Application(services, mounts(services))


@pytest.fixture
def access(services) -> AccessStore:
    return AccessStore(services.database)


@pytest.fixture
def mllp(services):
    """An ITI-8 listener on an ephemeral loopback port, in a thread of the test."""
    settings = services.settings
    settings.mllp_port = 0
    server = MllpServer(settings, PatientFeed.of(services), ("127.0.0.1", 0))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def trail(services) -> list:
    """Every audit record stored so far, as parsed AuditMessages."""
    services.auditor.flush()
    Sender(services.database).deliver_once()
    return [xml_of(r.raw) for r in iter_all(services.database)]


def feed_records(services, transaction: str) -> list[tuple[str, str, str, str]]:
    """(action, outcome, patient id, event type) of the Patient Record events of ``transaction``."""
    out = []
    for x in trail(services):
        ident = x.find("EventIdentification")
        if ident.find("EventID").get("csd-code") != "110110":
            continue
        kind = ident.find("EventTypeCode").get("csd-code")
        if kind != transaction:
            continue
        patient = next(o.get("ParticipantObjectID") for o in x.findall("ParticipantObjectIdentification")
                       if o.get("ParticipantObjectTypeCodeRole") == "1")
        out.append((ident.get("EventActionCode"), ident.get("EventOutcomeIndicator"), patient, kind))
    return out


def alerts(services) -> list:
    return [x for x in trail(services) if x.find("EventIdentification/EventID").get("csd-code") == "110113"]
