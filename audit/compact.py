"""The outbox form of our own audit events: compact JSON, turned into RFC 5424 by the audit process.

A worker only serializes the :class:`~audit.messages.AuditEvent` model (a JSON dump, a few
microseconds) and queues it; the DICOM XML, the syslog header, the indexed fields and the hash
chain are built by the audit process, which runs below the workers' priority (``audit_nice``).
Writing the XML in the worker was most of what auditing cost a transaction (benchmarks/audit.py).

The form carries everything the message depends on (the worker's host name, application name
and process id for the syslog header, the event time), so every delivery of one outbox row, to
the local store or to each ARR, produces the same bytes. Rows that are already RFC 5424 messages
(written by an earlier version) start with ``<`` and are delivered as they are.
"""
from __future__ import annotations

import json
import os
from datetime import datetime

from lxml import etree

from . import fields, syslog
from .fields import Fields
from .messages import AuditEvent, Code, Participant, ParticipantObject

_TEXT = ("utf-8", "surrogateescape")


def _code(c: Code) -> list:
    return [c.code, c.system, c.text]


def _bytes(value: bytes | etree._Element | None) -> str | None:
    if value is None:
        return None
    raw = value if isinstance(value, bytes) else etree.tostring(value, encoding="UTF-8")
    return raw.decode(*_TEXT)


def encode(event: AuditEvent, hostname: str, app_name: str = syslog.APP_NAME, procid: str | None = None) -> bytes:
    """The compact form of ``event`` as this process would send it."""
    return json.dumps({
        "h": hostname, "a": app_name, "p": procid or str(os.getpid()), "t": event.time.isoformat(),
        "id": _code(event.event_id), "ac": event.action, "o": event.outcome,
        "et": [_code(c) for c in event.event_types],
        "pa": [[p.user_id, p.requestor, p.alt_user_id, p.user_name, p.network_id, [_code(c) for c in p.roles]]
               for p in event.participants],
        "ob": [[o.object_id, o.type_code, o.role, _code(o.id_type), o.name, _bytes(o.query),
                [[k, v.decode(*_TEXT)] for k, v in o.details]] for o in event.objects],
        "s": event.source_id, "si": event.site_id, "pu": [_code(c) for c in event.purpose_of_use],
        "d": event.description,
    }, separators=(",", ":")).encode("ascii")


def decode(data: bytes) -> tuple[AuditEvent, str, str, str]:
    """(event, hostname, application name, process id) of a compact form."""
    v = json.loads(data)
    event = AuditEvent(
        event_id=Code(*v["id"]), action=v["ac"], outcome=v["o"], event_types=[Code(*c) for c in v["et"]],
        participants=[Participant(u, r, alt, name, net, [Code(*c) for c in roles])
                      for u, r, alt, name, net, roles in v["pa"]],
        objects=[ParticipantObject(oid, tc, role, Code(*idt), name, None if q is None else q.encode(*_TEXT),
                                   [(k, d.encode(*_TEXT)) for k, d in details])
                 for oid, tc, role, idt, name, q, details in v["ob"]],
        source_id=v["s"], site_id=v["si"], purpose_of_use=[Code(*c) for c in v["pu"]], description=v["d"],
        time=datetime.fromisoformat(v["t"]))
    return event, v["h"], v["a"], v["p"]


def is_compact(message: bytes) -> bool:
    return message[:1] == b"{"


def materialize(message: bytes, indexed: str | None = None) -> tuple[bytes, Fields]:
    """The RFC 5424 message of an outbox row and its indexed fields."""
    if is_compact(message):
        event, hostname, app_name, procid = decode(message)
        return (syslog.encode(event.to_xml(), hostname, app_name, procid=procid, timestamp=event.time),
                event.index_fields())
    return message, fields.from_json(indexed) if indexed else fields.of_message(message)
