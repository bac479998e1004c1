"""ITI-8 Patient Identity Feed (HL7 v2, ITI TF-2 3.8) over MLLP, the door ``xds serve`` opens on
``mllp_port``.

A Patient Identity Source sends ADT messages framed by MLLP (HL7 v2.5 Appendix C: ``<VT>``
message ``<FS><CR>``) and gets one acknowledgment per message, in the original acknowledgment
mode (HL7 v2.5 2.9.2): ``MSA-1`` AA when the registry took it, AE (with an ``ERR`` segment: the
HL7 error code of table 0357, its location, a message) when its content cannot be taken, AR when
the message type, event or version is not one this actor accepts, or the registry is down.

* ADT^A01, A04, A05 (admit, register, pre-admit) and A08 (update patient information) create or
  revise the record of the patient of ``PID-3`` with ``PID-5`` (name), ``PID-7`` (birth date),
  ``PID-8`` (sex) (ITI TF-2 3.8.4.1);
* ADT^A40 (merge patient, patient identifier list) merges the record of ``MRG-1`` into the one of
  ``PID-3`` (3.8.4.2).

Both go through :mod:`transactions.patient_feed`, as ITI-104 does. ``PID-3`` and ``MRG-1`` list
identifiers (``~``); the record's is the one in an INS authority, else the only one with an ISO
assigning authority. A message is at most ``mllp_max_message_bytes``: a longer one is answered AR
and the connection closed.

Who may send: with ``mllp_tls`` a TLS 1.2+ client whose certificate chains to ``tls_ca`` and whose
subject is listed in ``patient_feed_sources``; without, a peer whose address is listed in
``patient_feed_addresses`` (loopback by default: an interface engine on the host). Anyone else is
disconnected before a message is read, and audited as a Security Alert.

The listener runs in a process of its own (``python -m bindings.mllp``) that the master of
``xds serve`` starts and supervises like the audit process (:class:`MllpProcess`): gunicorn's
workers are forks of the master, which therefore runs no listener thread of its own.
"""
from __future__ import annotations

import logging
import pickle
import signal
import socket
import socketserver
import ssl
import sys
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from audit.auditor import build_auditor
from registry.register import PatientIdentity, Registry
from storage import Database
from storage.database import DatabaseUnavailable
from transactions import patient_feed
from transactions.patient_feed import FeedError, Origin, PatientFeed
from xds.context import Caller
from xds.patient import INS_AUTHORITIES
from xds.supervisor import SupervisedProcess

log = logging.getLogger(__name__)

START, END = b"\x0b", b"\x1c\x0d"
ENCODING = "^~\\&"
EVENTS = {"A01", "A04", "A05", "A08", "A40"}
VERSIONS = {"2.3.1", "2.4", "2.5", "2.5.1"}
SEXES = {"M": "male", "F": "female", "O": "other", "A": "other", "U": "unknown", "N": "unknown"}
"""HL7 table 0001 (Administrative Sex) to FHIR AdministrativeGender."""
IDLE_TIMEOUT = 60.0
MAX_CONNECTIONS = 32

# HL7 table 0357 (Message error condition codes)
REQUIRED_FIELD_MISSING, DATA_TYPE_ERROR = "101", "102"
UNSUPPORTED_MESSAGE_TYPE, UNSUPPORTED_EVENT, UNSUPPORTED_VERSION = "200", "201", "203"
UNKNOWN_KEY, INTERNAL_ERROR = "204", "207"
ERROR_TEXT = {REQUIRED_FIELD_MISSING: "Required field missing", DATA_TYPE_ERROR: "Data type error",
              UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type", UNSUPPORTED_EVENT: "Unsupported event code",
              UNSUPPORTED_VERSION: "Unsupported version id", UNKNOWN_KEY: "Unknown key identifier",
              INTERNAL_ERROR: "Application internal error"}


class Hl7Error(Exception):
    """Why a message is acknowledged AE or AR: ``ack`` (AE/AR), the table 0357 ``code``, the
    ``location`` (ERL: segment^sequence^field) and a message."""

    def __init__(self, ack: str, code: str, message: str, location: str = "") -> None:
        super().__init__(message)
        self.ack, self.code, self.location = ack, code, location


@dataclass
class Message:
    """An HL7 v2 message in ER7: its segments, each a list of fields (MSH's field 1 is the separator)."""
    segments: list[list[str]] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> Message:
        lines = [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s.strip()]
        if not lines or not lines[0].startswith("MSH") or len(lines[0]) < 8:
            raise Hl7Error("AR", REQUIRED_FIELD_MISSING, "the message does not start with an MSH segment", "MSH")
        if lines[0][3] != "|" or lines[0][4:8] != ENCODING:
            raise Hl7Error("AR", DATA_TYPE_ERROR, "only the encoding characters |^~\\& are accepted", "MSH^1^2")
        segments = []
        for line in lines:
            fields = line.split("|")
            if fields[0] == "MSH":
                fields = ["MSH", "|", *fields[1:]]
            segments.append(fields)
        return cls(segments)

    def segment(self, name: str) -> list[str] | None:
        return next((s for s in self.segments if s[0] == name), None)

    def get(self, name: str, number: int) -> str:
        """Field ``number`` of the first ``name`` segment (MSH-1 is the field separator), '' if absent."""
        seg = self.segment(name)
        return seg[number] if seg is not None and number < len(seg) else ""


def unescape(value: str) -> str:
    """HL7 v2.5 2.7 escape sequences of the standard encoding characters."""
    for seq, char in (("\\F\\", "|"), ("\\S\\", "^"), ("\\T\\", "&"), ("\\R\\", "~"), ("\\E\\", "\\")):
        value = value.replace(seq, char)
    return value


def record_identifier(value: str, location: str) -> str:
    """The CX of the record among the identifiers of ``value`` (PID-3, MRG-1: repeated with ``~``):
    the one in an INS authority, else the only one with an ISO assigning authority. Raises AE."""
    ids = []
    for rep in value.split("~"):
        comps = rep.split("^")
        if len(comps) < 4 or not comps[0]:
            continue
        sub = comps[3].split("&")
        if len(sub) >= 3 and sub[2] == "ISO" and sub[1]:
            cx = f"{unescape(comps[0])}^^^&{sub[1]}&ISO"
            ids.append((sub[1] in INS_AUTHORITIES, cx))
    chosen = [cx for ins, cx in ids if ins] or [cx for _ins, cx in ids]
    if len(chosen) != 1:
        raise Hl7Error("AE", REQUIRED_FIELD_MISSING if not ids else DATA_TYPE_ERROR,
                       f"{location} must hold the patient's identifier in an ISO assigning authority "
                       "(id^^^&OID&ISO; the INS when several)", location.replace("-", "^1^"))
    return chosen[0]


def identity_of(msg: Message) -> PatientIdentity:
    """PID-5 (XPN: family^given), PID-7 (birth date, DTM), PID-8 (sex, table 0001)."""
    name = msg.get("PID", 5).split("~")[0].split("^")
    family = unescape(name[0].split("&")[0]) or None
    given = unescape(" ".join(n for n in name[1:3] if n)) or None
    born = msg.get("PID", 7)
    birth = None
    if born:
        digits = born.split("+")[0].split("-")[0].split(".")[0]
        if not digits.isdigit() or len(digits) < 4:
            raise Hl7Error("AE", DATA_TYPE_ERROR, f"PID-7 {born!r} is not an HL7 date/time", "PID^1^7")
        birth = "-".join(p for p in (digits[:4], digits[4:6], digits[6:8]) if p)
    sex = msg.get("PID", 8)
    if sex and sex not in SEXES:
        raise Hl7Error("AE", DATA_TYPE_ERROR, f"PID-8 {sex!r} is not in HL7 table 0001", "PID^1^8")
    return PatientIdentity(family, given, birth, SEXES.get(sex))


def acknowledge(msg: Message | None, ack: str, error: Hl7Error | None = None) -> bytes:
    """The ACK of ``msg`` (HL7 v2.5 2.9.2, 2.14.1 MSA, 2.15.5 ERR), sender and receiver swapped."""
    get = msg.get if msg is not None else (lambda _s, _n: "")
    event = get("MSH", 9).split("^")
    trigger = event[1] if len(event) > 1 else ""
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")
    version = get("MSH", 12) if get("MSH", 12) in VERSIONS else "2.5"
    lines = ["|".join(["MSH", ENCODING, get("MSH", 5), get("MSH", 6), get("MSH", 3), get("MSH", 4), now, "",
                       f"ACK^{trigger}^ACK", uuid.uuid4().hex[:20], get("MSH", 11) or "P", version]),
             "|".join(["MSA", ack, get("MSH", 10)])]
    if error is not None:
        text = _escape(str(error))
        lines.append("|".join(["ERR", "", error.location, f"{error.code}^{ERROR_TEXT[error.code]}^HL70357", "E",
                               "", "", "", text]))
    return START + ("\r".join(lines) + "\r").encode("utf-8") + END


def _escape(value: str) -> str:
    out = value.replace("\\", "\\E\\")
    for char, seq in (("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\")):
        out = out.replace(char, seq)
    return out.replace("\r", " ").replace("\n", " ")


def decode(data: bytes) -> str:
    """The message's text: MSH-18 ``8859/1`` is Latin-1, else UTF-8 (ASCII's superset), Latin-1
    when it is not UTF-8 (French names from systems that do not fill MSH-18)."""
    head = data.split(b"\r", 1)[0].split(b"|")
    if len(head) > 17 and head[17].strip() == b"8859/1":
        return data.decode("latin-1")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def handle(feed: PatientFeed, caller: Caller, data: bytes) -> tuple[bytes, str]:
    """One MLLP message's payload in, its framed ACK out, with the ACK code."""
    msg = None
    try:
        msg = Message.parse(decode(data))
        kind = msg.get("MSH", 9).split("^")
        if kind[0] != "ADT":
            raise Hl7Error("AR", UNSUPPORTED_MESSAGE_TYPE, f"MSH-9 {kind[0]!r}: ITI-8 takes ADT messages", "MSH^1^9")
        if len(kind) < 2 or kind[1] not in EVENTS:
            raise Hl7Error("AR", UNSUPPORTED_EVENT, f"ADT event {kind[1] if len(kind) > 1 else ''!r}: ITI-8 takes "
                           "A01, A04, A05, A08 and A40", "MSH^1^9")
        if msg.get("MSH", 12).split("^")[0] not in VERSIONS:
            raise Hl7Error("AR", UNSUPPORTED_VERSION, f"MSH-12 {msg.get('MSH', 12)!r}: versions "
                           f"{', '.join(sorted(VERSIONS))}", "MSH^1^12")
        if not msg.get("MSH", 10):
            raise Hl7Error("AR", REQUIRED_FIELD_MISSING, "MSH-10 (message control id) is empty", "MSH^1^10")
        if msg.segment("PID") is None:
            raise Hl7Error("AE", REQUIRED_FIELD_MISSING, "the PID segment is missing", "PID")
        origin = Origin("ITI-8", f"{msg.get('MSH', 3)}|{msg.get('MSH', 4)}", f"{msg.get('MSH', 5)}|{msg.get('MSH', 6)}",
                        msg.get("MSH", 10))
        patient = record_identifier(msg.get("PID", 3), "PID-3")
        identity = identity_of(msg)
        try:
            if kind[1] == "A40":
                if msg.segment("MRG") is None:
                    raise Hl7Error("AE", REQUIRED_FIELD_MISSING, "ADT^A40 needs its MRG segment", "MRG")
                merged = record_identifier(msg.get("MRG", 1), "MRG-1")
                patient_feed.merge(feed, caller, origin, merged, patient, surviving_identity=identity)
            else:
                patient_feed.add_or_revise(feed, caller, origin, patient, identity)
        except FeedError as exc:
            raise Hl7Error("AE", UNKNOWN_KEY if "merged" in str(exc) else DATA_TYPE_ERROR, str(exc),
                           "" if kind[1] == "A40" else "PID^1^3") from exc
        return acknowledge(msg, "AA"), "AA"
    except Hl7Error as exc:
        log.info("ITI-8: %s %s", exc.ack, exc)
        return acknowledge(msg, exc.ack, exc), exc.ack
    except (SQLAlchemyError, DatabaseUnavailable) as exc:
        log.error("ITI-8: the registry is unavailable: %s", exc)
        return acknowledge(msg, "AR", Hl7Error("AR", INTERNAL_ERROR, "the registry is unavailable; send again")), "AR"


# ----------------------------------------------------------------------------- the listener

def peer_subject(sock: Any) -> str | None:
    """RFC 4514 subject of a TLS peer's verified certificate, as ``xds serve`` names HTTPS clients."""
    try:
        cert = sock.getpeercert()
    except (ValueError, OSError, AttributeError):
        return None
    if not cert:
        return None
    short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
             "localityName": "L", "stateOrProvinceName": "ST"}
    return ",".join(f"{short.get(k, k)}={v}" for rdn in reversed(cert.get("subject", ())) for k, v in rdn) or None


class MllpServer(socketserver.ThreadingTCPServer):
    """The ITI-8 listener: one thread per connection (at most MAX_CONNECTIONS), messages in order."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, settings: Any, feed: PatientFeed, address: tuple[str, int] | None = None) -> None:
        self.settings, self.feed = settings, feed
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.context: ssl.SSLContext | None = None
        if settings.mllp_tls:
            if not (settings.tls_cert and settings.tls_ca):
                raise ValueError("mllp_tls needs tls_cert (and tls_key) and tls_ca, the CA of the sources' "
                                 "certificates")
            self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=settings.tls_ca)
            self.context.minimum_version = ssl.TLSVersion.TLSv1_2
            self.context.load_cert_chain(settings.tls_cert, settings.tls_key or None)
            self.context.verify_mode = ssl.CERT_REQUIRED
        host = settings.host
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__(address or (host, settings.mllp_port), _Connection)

    @property
    def endpoint(self) -> str:
        host, port = self.server_address[0], self.server_address[1]
        return f"mllp{'s' if self.context else ''}://{host!s}:{port}"


class _Connection(socketserver.BaseRequestHandler):
    server: MllpServer

    def handle(self) -> None:
        if not self.server.slots.acquire(blocking=False):
            log.warning("ITI-8: over %d connections; closing one from %s", MAX_CONNECTIONS, self.client_address[0])
            return
        try:
            self._serve()
        finally:
            self.server.slots.release()

    def _serve(self) -> None:
        settings, feed = self.server.settings, self.server.feed
        sock = self.request
        sock.settimeout(IDLE_TIMEOUT)
        caller = Caller(remote_addr=self.client_address[0], endpoint=self.server.endpoint)
        if self.server.context is not None:
            try:
                sock = self.server.context.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                patient_feed.refused(feed, caller, "ITI-8", f"TLS handshake failed: {exc}")
                return
            caller.node_subject = peer_subject(sock)
            if caller.node_subject not in settings.patient_feed_sources:
                patient_feed.refused(feed, caller, "ITI-8", f"the client certificate {caller.node_subject!r} is not a "
                                     "Patient Identity Source's (patient_feed_sources)", "restricted")
                sock.close()
                return
        elif caller.remote_addr not in settings.patient_feed_addresses:
            patient_feed.refused(feed, caller, "ITI-8", f"plain MLLP from {caller.remote_addr}, which is not in "
                                 "patient_feed_addresses (use mllp_tls with a source's certificate)")
            return
        caller.authenticated, caller.kind = True, "patient-identity-source"
        try:
            for payload in frames(sock, settings.mllp_max_message_bytes):
                if payload is None:
                    error = Hl7Error("AR", INTERNAL_ERROR, f"the message is over {settings.mllp_max_message_bytes} "
                                     "bytes (mllp_max_message_bytes)")
                    sock.sendall(acknowledge(None, "AR", error))
                    log.warning("ITI-8: message over %d bytes from %s", settings.mllp_max_message_bytes,
                                caller.remote_addr)
                    return
                reply, _code = handle(feed, caller, payload)
                sock.sendall(reply)
        except (OSError, TimeoutError):
            return


def frames(sock: Any, limit: int):
    """The payloads of the MLLP blocks read from ``sock``, until the peer closes; None (then the
    end) for a block over ``limit`` bytes. Bytes outside a block are ignored (MLLP's framing)."""
    buf = b""
    while True:
        start = buf.find(START)
        if start < 0:
            buf = b""
        else:
            buf = buf[start:]
            end = buf.find(END)
            if end > limit + 1:
                yield None
                return
            if end >= 0:
                yield buf[1:end]
                buf = buf[end + 2:]
                continue
        if len(buf) > limit + 3:
            yield None
            return
        chunk = sock.recv(65536)
        if not chunk:
            return
        buf += chunk


# ----------------------------------------------------------------------------- the process

def main() -> int:
    """``python -m bindings.mllp``: pickled Settings on stdin; prints ``ready`` once listening; serves until SIGTERM."""
    settings = pickle.loads(sys.stdin.buffer.read())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s mllp %(levelname)s %(message)s")
    database = Database(settings.effective_database_url())
    auditor = build_auditor(settings, database)
    feed = PatientFeed(Registry(database, check_patient_ids=settings.check_patient_ids), auditor)
    server = MllpServer(settings, feed)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    print("ready", flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()
    auditor.close()
    database.dispose()
    return 0


class MllpProcess(SupervisedProcess):
    """The ITI-8 listener, started and supervised by ``xds serve``'s master as the audit process is."""

    def __init__(self, settings: Any) -> None:
        super().__init__(settings, "bindings.mllp", "ITI-8 MLLP listener", start_timeout=30.0, stop_timeout=10.0)

    def start(self, supervise: bool = True) -> SupervisedProcess:
        return super().start(supervise)


if __name__ == "__main__":
    sys.exit(main())
