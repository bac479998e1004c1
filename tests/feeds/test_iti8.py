"""ITI-8 Patient Identity Feed (HL7 v2, ITI TF-2 3.8) over MLLP: ADT^A01/A04/A05/A08 create or
revise the DMP record, ADT^A40 merges it into the survivor, each acknowledged in the original mode
(HL7 v2.5 2.9.2: MSA AA/AE/AR, ERR with table 0357 codes); bounded messages, TLS optional, only
trusted sources; audited like ITI-104 (Patient Record 110110, ITI-8, MSH-10). A listener on a
loopback port over the server's services, SQLite and PostgreSQL; one test through ``xds serve``."""
from __future__ import annotations

import base64
import random
import socket
import ssl
import threading

import pytest

from access.store import BLOCKED
from bindings.mllp import END, START, MllpServer, frames
from tests.audit.support import make_pki
from tests.feeds.conftest import alerts, feed_records, trail
from tests.feeds.test_iti104 import find
from tests.support.metadata import draft
from transactions.patient_feed import PatientFeed

NIR_TEST = "1.2.250.1.213.1.4.10"
NIA = "1.2.250.1.213.1.4.9"
_control = iter(range(1, 10**6))


def ins(authority: str = NIR_TEST) -> str:
    number = random.randrange(10**12, 10**13)
    return f"{number}{97 - number % 97:02d}^^^&{authority}&ISO"


def adt(event: str, patient: str, *, family: str = "MOHR", given: str = "ALICE", born: str = "19580130",
        sex: str = "F", merged: str | None = None, version: str = "2.5", kind: str = "ADT",
        control: str | None = None) -> bytes:
    control = control or f"MSG{next(_control)}"
    segments = [f"MSH|^~\\&|IPP|HOPITAL|DMP|ANS|20261203101500||{kind}^{event}^{kind}_{event}|{control}|P|{version}",
                f"EVN|{event}|20261203101500",
                f"PID|1||IPP-42^^^HOPITAL&1.2.250.1.999.42&ISO^PI~{patient}^NH||{family}^{given}||{born}|{sex}"]
    if merged:
        segments.append(f"MRG|{merged}^NH")
    return "\r".join(segments).encode() + b"\r"


def send(server, *messages: bytes, wrap=None) -> list[str]:
    """Send each message in one MLLP connection; the ACKs' text."""
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as raw:
        sock = wrap(raw) if wrap else raw
        answers = []
        for message in messages:
            sock.sendall(START + message + END)
            got = next(frames(sock, 10**6))
            answers.append(got.decode())
        return answers


def field(ack: str, segment: str, number: int) -> str:
    seg = next(s for s in ack.split("\r") if s.startswith(segment + "|")).split("|")
    if segment == "MSH":
        number -= 1
    return seg[number] if number < len(seg) else ""


# ----------------------------------------------------------------------------- create, revise, merge

@pytest.mark.parametrize("event", ["A01", "A04", "A05"])
def test_admit_or_register_creates_the_record_and_answers_aa(mllp, services, event):
    patient = ins()
    [ack] = send(mllp, adt(event, patient, control="CTRL-1"))
    assert (field(ack, "MSA", 1), field(ack, "MSA", 2)) == ("AA", "CTRL-1")
    assert field(ack, "MSH", 9) == f"ACK^{event}^ACK"
    assert (field(ack, "MSH", 3), field(ack, "MSH", 5)) == ("DMP", "IPP"), "sender and receiver swapped"
    record = services.registry.patient_record(patient)
    assert record.state == "open"
    assert (record.identity.family_name, record.identity.given_name, record.identity.birth_date,
            record.identity.sex) == ("MOHR", "ALICE", "1958-01-30", "female")
    assert feed_records(services, "ITI-8") == [("C", "0", patient, "ITI-8")]
    message = next(x for x in trail(services) if x.find("EventIdentification/EventTypeCode") is not None
                   and x.find("EventIdentification/EventTypeCode").get("csd-code") == "ITI-8")
    source = next(p for p in message.findall("ActiveParticipant") if p.get("UserIsRequestor") == "true")
    assert source.get("UserID") == "IPP|HOPITAL" and source.get("NetworkAccessPointID") == "127.0.0.1"
    detail = message.find("ParticipantObjectIdentification/ParticipantObjectDetail")
    assert detail.get("type") == "MSH-10" and base64.b64decode(detail.get("value")) == b"CTRL-1"


def test_update_patient_information_revises_the_demographics(mllp, services):
    patient = ins()
    acks = send(mllp, adt("A01", patient), adt("A08", patient, given="ALISSA", sex="U", born="1958"))
    assert [field(a, "MSA", 1) for a in acks] == ["AA", "AA"]
    record = services.registry.patient_record(patient)
    assert (record.identity.given_name, record.identity.sex, record.identity.birth_date) == ("ALISSA", "unknown",
                                                                                             "1958")
    assert [a for a, *_ in feed_records(services, "ITI-8")] == ["C", "U"]


def test_latin1_names_are_read_as_sent(mllp, services):
    patient = ins()
    message = adt("A01", patient).decode().replace("MOHR", "HÉLÈNE").encode("latin-1")
    [ack] = send(mllp, message)
    assert field(ack, "MSA", 1) == "AA"
    assert services.registry.patient_record(patient).identity.family_name == "HÉLÈNE"


def test_merge_moves_the_record_and_its_policy_to_the_surviving_patient(mllp, services, access):
    old, new = ins(NIA), ins()
    send(mllp, adt("A01", old))
    assert not services.registry.register(draft(old + "^NH", documents=2).objects()).has_errors
    access.set_professional(old, "810000000002", BLOCKED)
    [ack] = send(mllp, adt("A40", new, family="MOHR", given="ALICE", merged=old))
    assert field(ack, "MSA", 1) == "AA", ack
    assert len(find(services, new).ids) == 2 and not find(services, old).ids
    assert access.record(new).blocked == {"810000000002"}
    merged = services.registry.patient_record(old)
    assert (merged.state, merged.replaced_by) == ("merged", new)
    assert services.registry.patient_record(new).identity.given_name == "ALICE"
    assert feed_records(services, "ITI-8")[-2:] == [("D", "0", old, "ITI-8"), ("U", "0", new, "ITI-8")]
    [again] = send(mllp, adt("A01", old))
    assert field(again, "MSA", 1) == "AE" and "merged into" in field(again, "ERR", 8)


# ----------------------------------------------------------------------------- AE, AR

def test_unsupported_type_event_and_version_are_rejected_ar_with_their_error(mllp):
    patient = ins()
    acks = send(mllp, adt("R01", patient, kind="ORU"), adt("A03", patient), adt("A01", patient, version="2.2"))
    assert [field(a, "MSA", 1) for a in acks] == ["AR", "AR", "AR"]
    assert [field(a, "ERR", 3).split("^")[0] for a in acks] == ["200", "201", "203"]
    assert all(field(a, "ERR", 3).endswith("^HL70357") and field(a, "ERR", 4) == "E" for a in acks)


def test_an_invalid_ins_or_a_missing_identifier_is_an_application_error(mllp, services):
    good = ins()
    bad = good[:13] + f"{(int(good[13:15]) + 1) % 100:02d}" + good[15:]
    acks = send(mllp, adt("A01", bad), adt("A01", "").replace(b"IPP-42^^^HOPITAL&1.2.250.1.999.42&ISO^PI~^NH", b""))
    assert [field(a, "MSA", 1) for a in acks] == ["AE", "AE"]
    assert field(acks[0], "ERR", 3).startswith("102^") and field(acks[0], "ERR", 2) == "PID^1^3"
    assert "check key" in field(acks[0], "ERR", 8)
    assert field(acks[1], "ERR", 3).startswith("101^")
    assert services.registry.patient_record(bad) is None
    assert feed_records(services, "ITI-8") == [("U", "4", bad, "ITI-8")]


def test_a_message_over_the_limit_is_refused_and_the_connection_closed(mllp, services):
    services.settings.mllp_max_message_bytes = 2000
    patient = ins()
    huge = adt("A01", patient) + b"NTE|1||" + b"x" * 5000 + b"\r"
    host, port = mllp.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(START + huge + END)
        reply = sock.recv(65536)
        assert b"MSA|AR|" in reply and b"207^" in reply
        assert sock.recv(65536) == b"", "closed"
    assert services.registry.patient_record(patient) is None


def test_split_and_batched_frames_are_each_acknowledged():
    class Chunks:
        def __init__(self, data: bytes) -> None:
            self.parts = [data[i:i + 7] for i in range(0, len(data), 7)]

        def recv(self, _n: int) -> bytes:
            return self.parts.pop(0) if self.parts else b""

    stream = b"noise" + START + b"one" + END + START + b"two" + END
    assert list(frames(Chunks(stream), 100)) == [b"one", b"two"]


# ----------------------------------------------------------------------------- trusted sources

def test_plain_mllp_from_an_unlisted_address_is_disconnected_and_alerted(mllp, services):
    services.settings.patient_feed_addresses = ["192.0.2.1"]
    patient = ins()
    host, port = mllp.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as sock:
        try:
            sock.sendall(START + adt("A01", patient) + END)
            assert sock.recv(65536) == b""
        except ConnectionResetError:
            pass
    assert services.registry.patient_record(patient) is None
    found = alerts(services)
    assert len(found) == 1 and "ITI-8 Patient Identity Feed from 127.0.0.1 refused" in \
        found[0].find("EventIdentification/EventOutcomeDescription").text


def test_mllp_over_tls_takes_a_source_certificate_only(services, tmp_path):
    pki = make_pki(tmp_path)
    settings = services.settings
    settings.mllp_tls, settings.tls_cert, settings.tls_key, settings.tls_ca = (
        True, pki["server_cert"], pki["server_key"], pki["ca"])
    server = MllpServer(settings, PatientFeed.of(services), ("127.0.0.1", 0))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        client = ssl.create_default_context(cafile=pki["ca"])
        client.load_cert_chain(pki["client_cert"], pki["client_key"])

        def wrap(sock):
            return client.wrap_socket(sock, server_hostname="localhost")

        patient = ins()
        settings.patient_feed_sources = ["CN=someone else"]
        with pytest.raises((ConnectionError, ssl.SSLError, StopIteration, OSError)):
            send(server, adt("A01", patient), wrap=wrap)
        assert services.registry.patient_record(patient) is None
        settings.patient_feed_sources = ["CN=xds node"]
        [ack] = send(server, adt("A01", patient), wrap=wrap)
        assert field(ack, "MSA", 1) == "AA"
        assert services.registry.patient_record(patient).state == "open"
        assert any("is not a Patient Identity Source's" in x.find("EventIdentification/EventOutcomeDescription").text
                   for x in alerts(services))
    finally:
        server.shutdown()
        server.server_close()
