"""Malformed ITI-41 requests: each a clear SOAP fault, nothing stored, and the endpoint keeps serving."""
from __future__ import annotations

import pytest

from tests.repository.support import (
    BOUNDARY,
    SUCCESS,
    call_wsgi,
    envelope,
    mtom_message,
    provide_body,
    provide_request,
    submission,
)
from xds.vocabulary import Actions

ROOT = (b"Content-Type: application/xop+xml; charset=UTF-8; type=\"application/soap+xml\"\r\n"
        b"Content-ID: <root.message@test>\r\n\r\n")
CT = (f'multipart/related; boundary="{BOUNDARY}"; type="application/xop+xml"; start="<root.message@test>"; '
      f'start-info="application/soap+xml"')


def _provide_env(sub):
    body, parts = provide_body(sub, mtom=True)
    return envelope(body, Actions.PROVIDE), parts


def missing_part(sub):
    env, _parts = _provide_env(sub)
    return mtom_message(env, [])


def wrong_content_id(sub):
    env, parts = _provide_env(sub)
    return mtom_message(env, [("not-the-one@test", parts[0][1])])


def boundary_never_closes(sub):
    body, ct = provide_request(sub)
    return body[: body.rindex(b"\r\n--" + BOUNDARY.encode() + b"--")], ct


def start_part_not_envelope(sub):
    env, parts = _provide_env(sub)
    b = BOUNDARY.encode()
    body = (b"--" + b + b"\r\nContent-Type: application/octet-stream\r\nContent-ID: <root.message@test>\r\n\r\n"
            + parts[0][1] + b"\r\n--" + b + b"\r\n" + ROOT.replace(b"root.message", b"other") + env
            + b"\r\n--" + b + b"--\r\n")
    return body, CT


def nested_multipart(sub):
    env, parts = _provide_env(sub)
    inner, inner_ct = mtom_message(b"<x/>", [], boundary="inner_boundary_1")
    b = BOUNDARY.encode()
    body = (b"--" + b + b"\r\n" + ROOT + env + b"\r\n--" + b + b"\r\nContent-Type: " + inner_ct.encode()
            + b"\r\nContent-ID: <" + parts[0][0].encode() + b">\r\n\r\n" + inner + b"\r\n--" + b + b"--\r\n")
    return body, CT


def bad_base64(sub):
    body, _ = provide_body(sub, mtom=False)
    body.find("{urn:ihe:iti:xds-b:2007}Document").text = "PGRvYz4*!not base64"
    return envelope(body, Actions.PROVIDE), "application/soap+xml; charset=UTF-8"


CASES = {
    "missing-part": (missing_part, "not found"),
    "wrong-content-id": (wrong_content_id, "not referenced"),
    "boundary-never-closes": (boundary_never_closes, ""),
    "start-part-not-envelope": (start_part_not_envelope, ""),
    "nested-multipart": (nested_multipart, ""),
    "bad-base64": (bad_base64, "base64"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_request_is_a_fault_and_nothing_is_stored(env, case):
    build, reason = CASES[case]
    sub = submission([b"<doc>bad input</doc>"])
    r = call_wsgi(env.app, *build(sub))
    if case == "nested-multipart" and r.fault_reason is None:
        # a nested multipart is opaque bytes to MTOM: if accepted, it must be stored byte-exact
        pytest.fail(f"nested multipart accepted: {r.status_value}")
    assert r.status in (400, 413, 415, 500) and r.status != 500, r.status
    assert r.fault_reason, "expected a SOAP fault"
    assert reason in r.fault_reason
    assert env.index_rows() == [] and env.stored_files() == [] and env.staged_files() == []
    good = submission([b"<doc>good after bad</doc>"])
    assert call_wsgi(env.app, *provide_request(good)).status_value == SUCCESS


def test_body_over_the_size_limit(db, tmp_path):
    from tests.repository.conftest import build_env
    env = build_env(db, tmp_path, max_request_bytes=64 * 1024)
    sub = submission([b"x" * 100_000])
    for mtom in (True, False):
        r = call_wsgi(env.app, *provide_request(sub, mtom=mtom))
        assert r.status == 413 and "maximum size" in r.fault_reason
    assert env.index_rows() == [] and env.stored_files() == []
    assert call_wsgi(env.app, *provide_request(submission([b"<small/>"]))).status_value == SUCCESS
