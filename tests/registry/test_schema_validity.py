"""What we send and answer for ITI-42 is valid ebRS 3.0 (../shared/schemas/nist-v3)."""
from __future__ import annotations

import functools

import pytest
import requests
from lxml import etree

from tests.conftest import shared_path
from tests.support.metadata import draft, fresh_patient
from xds.errors import ErrorCode, ErrorList
from xds.responses import registry_response
from xds.soap.client import decode_reply, encode_request
from xds.vocabulary import Actions


@functools.lru_cache(maxsize=1)
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(shared_path("schemas", "nist-v3", "XDS.b_DocumentRepository.xsd"))))


def assert_valid(el: etree._Element) -> None:
    schema = _schema()
    assert schema.validate(el), schema.error_log.last_error


def test_submit_objects_request_we_build_is_valid():
    d = draft(fresh_patient(), documents=3)
    d.add_folder()
    assert_valid(d.request())


@pytest.mark.parametrize("errors", [[], [ErrorCode.UNKNOWN_PATIENT_ID], [ErrorCode.NON_IDENTICAL_HASH] * 2])
def test_registry_response_is_valid(errors):
    el = ErrorList()
    for code in errors:
        el.add(code, "context", "location")
    assert_valid(registry_response(el))


def test_live_register_request_and_answers_are_valid(live_server):
    patient = fresh_patient()
    for known in (False, True):
        if known:
            live_server.add_patient(patient)
        body = draft(patient).request()
        assert_valid(body)
        data, headers = encode_request(Actions.REGISTER, live_server.registry_url, body)
        reply = decode_reply(200, requests.post(live_server.registry_url, data=data, headers=headers, timeout=30).content)
        assert_valid(reply.body)
        assert reply.body.get("status").endswith("Success" if known else "Failure")
