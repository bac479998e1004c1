"""The soap12:address of the served WSDL never echoes the request's Host header (issue #17 point 7)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from xds.soap import SoapEndpoint

from .conftest import call

WSDL = Path(__file__).resolve().parents[2] / "bindings" / "wsdl" / "registry.wsdl"
ADDRESS = "{http://schemas.xmlsoap.org/wsdl/soap12/}address"
HOSTILE = {
    "HTTP_HOST": "evil.example",
    "HTTP_X_FORWARDED_HOST": "evil.example",
    "HTTP_FORWARDED": "host=evil.example;proto=https",
}


def locations(app: SoapEndpoint, **environ: str) -> list[str]:
    res = call(app, b"", method="GET", query="wsdl", content_type=None, environ_extra=environ)
    assert res.status == 200, res.body
    assert b"evil.example" not in res.body
    addresses = list(etree.fromstring(res.body).iter(ADDRESS))
    assert addresses
    return [address.get("location") for address in addresses]


def test_wsdl_address_ignores_the_host_header():
    app = SoapEndpoint([], WSDL)
    assert set(locations(app, **HOSTILE)) == {"http://127.0.0.1/xds"}


def test_wsdl_address_is_the_public_url_when_set():
    app = SoapEndpoint([], WSDL, public_url="https://xds.example.fr/registry")
    assert set(locations(app, **HOSTILE)) == {"https://xds.example.fr/registry"}
    assert set(locations(app, SERVER_NAME="10.0.0.5", SERVER_PORT="8080")) == {"https://xds.example.fr/registry"}


def test_wsdl_address_is_built_from_the_server_name_port_scheme_and_mount_point():
    app = SoapEndpoint([], WSDL)
    assert locations(app, SERVER_NAME="xds.local", SERVER_PORT="8080", **HOSTILE) == ["http://xds.local:8080/xds"]
    assert locations(app, **{"wsgi.url_scheme": "https", "SERVER_PORT": "443"}) == ["https://127.0.0.1/xds"]
    assert locations(app, **{"wsgi.url_scheme": "https", "SERVER_PORT": "8443"}) == ["https://127.0.0.1:8443/xds"]
    assert locations(app, SERVER_NAME="::1", SERVER_PORT="8080") == ["http://[::1]:8080/xds"]
    mounted = locations(app, SCRIPT_NAME="/x ds/registry", PATH_INFO="/ignored")
    assert mounted == ["http://127.0.0.1/x%20ds/registry"]


def test_wsdl_is_not_served_when_the_server_name_is_not_a_host_name():
    app = SoapEndpoint([], WSDL)
    for name in ("a@evil.example", "evil.example/x", "h\r\nX: y"):
        res = call(app, b"", method="GET", query="wsdl", content_type=None, environ_extra={"SERVER_NAME": name})
        assert res.status == 500
        assert b"evil" not in res.body and b"X: y" not in res.body
    res = call(app, b"", method="GET", query="wsdl", content_type=None, environ_extra={"SERVER_PORT": "80@evil"})
    assert res.status == 500 and b"evil" not in res.body


@pytest.mark.parametrize("url", ["ftp://xds.example.fr/registry", "/registry", "https:///registry",
                                 "https://xds.example.fr/registry?x=1", "https://xds.example.fr/r#f",
                                 "https://u@xds.example.fr/registry", "https://xds.example.fr/r\nX",
                                 "https://xds.example.fr:0/registry", "https://xds.example.fr:99999/registry"])
def test_public_url_must_be_an_absolute_http_url(url):
    with pytest.raises(ValueError):
        SoapEndpoint([], WSDL, public_url=url)
