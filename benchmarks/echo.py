"""The floor every HTTP benchmark is divided by: a minimal lxml SOAP echo under gunicorn.

It reads the body, parses it with the same safe parser settings and answers a tiny SOAP 1.2
envelope: what any SOAP service on this machine pays before doing its own work.
"""
from lxml import etree

PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
REPLY = (b'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">'
         b'<s:Body><rs:RegistryResponse xmlns:rs="urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0" '
         b'status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"/></s:Body></s:Envelope>')


def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    root = etree.fromstring(body, PARSER)
    reply = etree.tostring(root) and REPLY
    start_response("200 OK", [("Content-Type", "application/soap+xml; charset=UTF-8"),
                              ("Content-Length", str(len(reply)))])
    return [reply]
