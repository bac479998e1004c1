"""The outbox form of our own audit events: compact JSON, turned into RFC 5424 by the audit process.

A worker only serializes the :class:`~audit.messages.AuditEvent` model (a JSON dump, a few
microseconds), or for an ITI-18 only the transaction's facts (:func:`encode_facts`), and queues
it; the event of the facts, the DICOM XML, the syslog header, the indexed fields and the hash
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
from collections.abc import Sequence
from datetime import UTC, datetime

from audit import fields, messages, syslog
from audit.fields import Fields
from audit.messages import AuditEvent, Code, Participant, ParticipantObject
from xds.context import Caller, CodedValue

BUILDERS = {"iti18": messages.stored_query_of_request}
"""The builders the audit process runs for rows a worker queued as facts (:func:`encode_facts`)."""

_TEXT = ("utf-8", "surrogateescape")


def _code(c: Code) -> list:
    return [c.code, c.system, c.text]


def _bytes(value: bytes | None) -> str | None:
    return None if value is None else value.decode(*_TEXT)


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


def caller_facts(c: Caller) -> list:
    """What the audit messages read of a Caller, as JSON values (taken on the request's thread:
    the Caller may change after the transaction)."""
    return [c.remote_addr, c.node_subject, c.endpoint, c.reply_to, c.user_id, c.user_name,
            [[r.code, r.scheme, r.display] for r in c.roles], c.organization, c.organization_id,
            [[p.code, p.scheme, p.display] for p in c.purpose_of_use], c.patient_id, c.access_mode, c.kind]


def _caller(v: list) -> Caller:
    (remote_addr, node_subject, endpoint, reply_to, user_id, user_name, roles, organization, organization_id,
     purposes, patient_id, access_mode, kind) = v
    return Caller(remote_addr=remote_addr, node_subject=node_subject, endpoint=endpoint, reply_to=reply_to,
                  user_id=user_id, user_name=user_name, roles=[CodedValue(*r) for r in roles],
                  organization=organization, organization_id=organization_id,
                  purpose_of_use=[CodedValue(*p) for p in purposes], patient_id=patient_id,
                  access_mode=access_mode, kind=kind)


def encode_facts(builder: str, caller: list, args: Sequence, when: float, source_id: str, hostname: str,
                 app_name: str = syslog.APP_NAME, procid: str | None = None) -> bytes:
    """The facts of a transaction, for the audit process to build its event with
    ``BUILDERS[builder](caller, source_id, *args)``.

    Why not the event itself: for the hottest transaction (ITI-18) building the event and
    dumping it cost the worker three times what the facts cost (benchmarks/audit.py, issue 5);
    the audit process, below the workers' priority, does it instead. ``args`` are JSON values,
    bytes excepted (kept as text, any byte preserved). ``caller``: :func:`caller_facts`.
    """
    return json.dumps({
        "b": builder, "h": hostname, "a": app_name, "p": procid or str(os.getpid()), "t": when, "s": source_id,
        "c": caller, "x": [a.decode(*_TEXT) if isinstance(a, bytes) else a for a in args],
        "xb": [i for i, a in enumerate(args) if isinstance(a, bytes)],
    }, separators=(",", ":")).encode("ascii")


def _from_facts(v: dict) -> AuditEvent:
    args = v["x"]
    for i in v["xb"]:
        args[i] = args[i].encode(*_TEXT)
    token = messages.SERVED_BY.set(str(v["p"]))
    try:
        event = BUILDERS[v["b"]](_caller(v["c"]), v["s"], *args)
    finally:
        messages.SERVED_BY.reset(token)
    event.time = datetime.fromtimestamp(v["t"], UTC)
    return event


def decode(data: bytes) -> tuple[AuditEvent, str, str, str]:
    """(event, hostname, application name, process id) of a compact form (an event or facts)."""
    v = json.loads(data)
    if "b" in v:
        return _from_facts(v), v["h"], v["a"], v["p"]
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
