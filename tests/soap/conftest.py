"""Helpers for calling SoapEndpoint as a WSGI app, without a server."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from wsgiref.util import setup_testing_defaults

import pytest
from lxml import etree

from xds.soap import NS_SOAP12, NS_WSA, Operation, SoapEndpoint, SoapResponse

NS_LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
NS_RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
NS_XDSB = "urn:ihe:iti:xds-b:2007"
ACTION_ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ACTION_ITI42 = "urn:ihe:iti:2007:RegisterDocumentSet-b"
ACTION_ITI43 = "urn:ihe:iti:2007:RetrieveDocumentSet"


class ShortReads(io.RawIOBase):
    """A wsgi.input that returns at most `step` bytes per read, like a slow socket."""

    def __init__(self, data: bytes, step: int = 7):
        self._buf = io.BytesIO(data)
        self._step = step

    def readable(self):
        return True

    def read(self, n=-1):
        if n is None or n < 0:
            n = self._step
        return self._buf.read(min(n, self._step))


class EndlessInput(io.RawIOBase):
    """A body that never ends (no Content-Length): the endpoint must stop at its limit."""

    def __init__(self, chunk=b"x" * 65536):
        self.chunk = chunk
        self.served = 0

    def readable(self):
        return True

    def read(self, n=-1):
        self.served += len(self.chunk)
        return self.chunk


@dataclass
class Result:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def xml(self) -> etree._Element:
        return etree.fromstring(self.body)

    def fault(self) -> dict:
        env = self.xml()
        ns = {"env": NS_SOAP12, "wsa": NS_WSA}
        return {
            "code": env.findtext("env:Body/env:Fault/env:Code/env:Value", namespaces=ns),
            "subcode": env.findtext("env:Body/env:Fault/env:Code/env:Subcode/env:Value", namespaces=ns),
            "reason": env.findtext("env:Body/env:Fault/env:Reason/env:Text", namespaces=ns),
            "action": env.findtext("env:Header/wsa:Action", namespaces=ns),
        }


def call(app, body: bytes = b"", content_type: str | None = "application/soap+xml; charset=UTF-8",
         method: str = "POST", query: str = "", content_length: int | None | str = "auto",
         wsgi_input=None, environ_extra: dict | None = None) -> Result:
    """Call the app as mounted at /xds by the composition root (SCRIPT_NAME=/xds, PATH_INFO="").

    ``environ_extra`` adds or overrides WSGI keys (REMOTE_ADDR, HTTP_HOST, xds.peer_subject, ...).
    """
    environ: dict = {"SCRIPT_NAME": "/xds", "PATH_INFO": ""}
    environ.update(environ_extra or {})
    setup_testing_defaults(environ)
    environ["REQUEST_METHOD"] = method
    environ["QUERY_STRING"] = query
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    if content_length == "auto":
        environ["CONTENT_LENGTH"] = str(len(body))
    elif content_length is not None:
        environ["CONTENT_LENGTH"] = str(content_length)
    else:
        environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = wsgi_input if wsgi_input is not None else io.BytesIO(body)
    captured = {}

    def start_response(status, headers, exc_info=None):
        captured["status"] = int(status.split()[0])
        captured["headers"] = {k.lower(): v for k, v in headers}

    iterable = app(environ, start_response)
    try:
        data = b"".join(iterable)
    finally:
        close = getattr(iterable, "close", None)
        if close:
            close()
    return Result(captured["status"], captured["headers"], data)


def envelope(body_xml: str, action: str | None = ACTION_ITI42, message_id: str | None = "urn:uuid:req-1",
             extra_headers: str = "", soap_ns: str = NS_SOAP12) -> bytes:
    headers = []
    if action is not None:
        headers.append(f"<wsa:Action>{action}</wsa:Action>")
    if message_id is not None:
        headers.append(f"<wsa:MessageID>{message_id}</wsa:MessageID>")
    headers.append("<wsa:ReplyTo><wsa:Address>http://www.w3.org/2005/08/addressing/anonymous</wsa:Address></wsa:ReplyTo>")
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{soap_ns}" xmlns:wsa="{NS_WSA}">'
        f'<s:Header>{"".join(headers)}{extra_headers}</s:Header>'
        f"<s:Body>{body_xml}</s:Body></s:Envelope>"
    ).encode()


SUBMIT = f'<lcm:SubmitObjectsRequest xmlns:lcm="{NS_LCM}"/>'


def provide(documents: str) -> str:
    return (f'<xdsb:ProvideAndRegisterDocumentSetRequest xmlns:xdsb="{NS_XDSB}">'
            f'<lcm:SubmitObjectsRequest xmlns:lcm="{NS_LCM}"/>{documents}'
            f"</xdsb:ProvideAndRegisterDocumentSetRequest>")


def multipart(parts: list[tuple[dict[str, str], bytes]], boundary: str = "MIME_b0undary", close: bool = True) -> bytes:
    out = b""
    for headers, data in parts:
        out += b"--" + boundary.encode() + b"\r\n"
        for k, v in headers.items():
            out += f"{k}: {v}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    if close:
        out += b"--" + boundary.encode() + b"--\r\n"
    return out


ROOT_HEADERS = {
    "Content-Type": 'application/xop+xml; charset=UTF-8; type="application/soap+xml"',
    "Content-Transfer-Encoding": "binary",
    "Content-ID": "<root@test>",
}


def mtom_ct(boundary: str = "MIME_b0undary", start: str | None = "<root@test>") -> str:
    ct = f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; start-info="application/soap+xml"'
    if start:
        ct += f'; start="{start}"'
    return ct


def ack_body() -> etree._Element:
    el = etree.Element(f"{{{NS_RS}}}RegistryResponse", nsmap={"rs": NS_RS})
    el.set("status", "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success")
    return el


class Recorder:
    """Handlers that record what they saw."""

    def __init__(self):
        self.seen = []

    def register(self, request):
        self.seen.append(request)
        return SoapResponse(ack_body(), ACTION_ITI42 + "Response")

    def provide(self, request):
        docs = request.body.findall(f"{{{NS_XDSB}}}Document")
        self.seen.append([(d.get("id"), request.binary_content(d)) for d in docs])
        for _, att in self.seen[-1]:
            att.data_copy = att.read()  # read while the request is live
            att.was_file_backed = att.file_backed
        return SoapResponse(ack_body(), ACTION_ITI41 + "Response")


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def app(recorder):
    return SoapEndpoint(
        [
            Operation(ACTION_ITI42, f"{{{NS_LCM}}}SubmitObjectsRequest", recorder.register),
            Operation(ACTION_ITI41, f"{{{NS_XDSB}}}ProvideAndRegisterDocumentSetRequest", recorder.provide,
                      accept_mtom=True),
        ],
        wsdl_path=None,
    )


def new_id() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def assert_fault(app, res: Result, code: str, status: int, *reason_parts: str, subcode: str | None = None) -> dict:
    """Check a fault reply, then check the endpoint still answers a good request."""
    assert res.status == status, res.body
    assert res.content_type.startswith("application/soap+xml"), res.content_type
    fault = res.fault()
    assert fault["code"] == f"env:{code}", fault
    assert fault["action"] == "http://www.w3.org/2005/08/addressing/soap/fault"
    for part in reason_parts:
        assert part in fault["reason"], fault["reason"]
    if subcode is not None:
        assert fault["subcode"] == subcode, fault
    good = call(app, envelope(SUBMIT, message_id="urn:uuid:after-bad"))
    assert good.status == 200, good.body
    return fault
