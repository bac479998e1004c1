"""Safe XML parsing: not XML, DTDs, external and internal entities."""

from __future__ import annotations

import pytest

from xds.soap import SoapFault, parse_xml, safe_parser

from .conftest import SUBMIT, assert_fault, call, envelope


def test_not_xml(app):
    res = call(app, b"this is not <xml")
    assert_fault(app, res, "Sender", 400, "request is not well-formed XML:")


def test_empty_body(app):
    res = call(app, b"")
    assert_fault(app, res, "Sender", 400, "not well-formed XML")


def test_dtd_with_external_entity_pointing_at_etc_passwd(app):
    body = (b'<?xml version="1.0"?>\n<!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
            + envelope(SUBMIT.replace("/>", ">&xxe;</lcm:SubmitObjectsRequest>")).split(b"?>", 1)[1])
    res = call(app, body)
    assert_fault(app, res, "Sender", 400, "DTDs are not allowed")
    assert b"root:" not in res.body


def test_external_entity_is_never_read_even_by_the_parser():
    data = b'<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><r>&xxe;</r>'
    from lxml import etree

    root = etree.fromstring(data, safe_parser())  # the raw parser: nothing expanded
    assert "root:" not in etree.tostring(root, encoding="unicode").split("]>")[-1]
    with pytest.raises(SoapFault, match="DTDs are not allowed"):
        parse_xml(data)


def test_billion_laughs_internal_entities(app):
    lol = ['<!ENTITY lol "lol">']
    for i in range(1, 10):
        prev = "lol" if i == 1 else f"lol{i - 1}"
        lol.append(f'<!ENTITY lol{i} "{("&" + prev + ";") * 10}">')
    body = (f'<?xml version="1.0"?><!DOCTYPE lolz [{"".join(lol)}]>'.encode()
            + envelope(SUBMIT.replace("/>", ">&lol9;</lcm:SubmitObjectsRequest>")).split(b"?>", 1)[1])
    res = call(app, body)
    assert_fault(app, res, "Sender", 400, "DTDs are not allowed")


def test_doctype_in_utf16_is_refused():
    data = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY a "b">]><r>&a;</r>'.encode("utf-16")
    with pytest.raises(SoapFault, match="DTDs are not allowed"):
        parse_xml(data)


def test_doctype_text_inside_the_document_is_just_text():
    root = parse_xml(b"<r><![CDATA[<!DOCTYPE html>]]></r>")
    assert root.text == "<!DOCTYPE html>"


def test_undefined_entity_is_not_well_formed():
    with pytest.raises(SoapFault, match="not well-formed"):
        parse_xml(b"<r>&nope;</r>")
