"""The WSDL served at ``?wsdl`` publishes ITI-62 on /registry and ITI-86 on /repository with the
WS-Addressing actions the endpoints dispatch on (ITI TF-2 3.62.4.1.2, 3.86.4.1.2; Appendix V)."""
from __future__ import annotations

import pytest
from lxml import etree

from bindings import registry, repository
from xds.soap import SoapEndpoint
from xds.vocabulary import Actions

from .conftest import call

WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
WSAW_ACTION = "{http://www.w3.org/2006/05/addressing/wsdl}Action"
SOAP12_OPERATION = "{http://schemas.xmlsoap.org/wsdl/soap12/}operation"


def served(path) -> etree._Element:
    res = call(SoapEndpoint([], path), b"", method="GET", query="wsdl", content_type=None)
    assert res.status == 200
    return etree.fromstring(res.body)


@pytest.mark.parametrize("wsdl, action, response", [
    (registry.WSDL, Actions.REMOVE_METADATA, Actions.REMOVE_METADATA_RESPONSE),
    (repository.WSDL, Actions.REMOVE_DOCUMENTS, Actions.REMOVE_DOCUMENTS_RESPONSE),
], ids=["ITI-62", "ITI-86"])
def test_removal_operation_published_with_its_actions(wsdl, action, response):
    root = served(wsdl)
    inputs = [el.get(WSAW_ACTION) for el in root.iter(f"{{{WSDL_NS}}}input")]
    outputs = [el.get(WSAW_ACTION) for el in root.iter(f"{{{WSDL_NS}}}output")]
    assert action in inputs and response in outputs
    assert action in [el.get("soapAction") for el in root.iter(SOAP12_OPERATION)]


@pytest.mark.parametrize("operations, wsdl", [(registry.removal_operations, registry.WSDL),
                                              (repository.removal_operations, repository.WSDL)],
                         ids=["registry", "repository"])
def test_every_dispatched_removal_action_is_in_the_wsdl(operations, wsdl):
    inputs = {el.get(WSAW_ACTION) for el in served(wsdl).iter(f"{{{WSDL_NS}}}input")}
    assert {op.action for op in operations(None)} <= inputs
