"""The floor every HTTP benchmark is divided by: a minimal lxml SOAP echo under ``xds serve``'s
HTTP front (gunicorn with :class:`server.front.XdsWorker`), or under another front to compare them
(benchmarks/front.py).

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


def main() -> None:
    """``python -m benchmarks.echo --front xds|gthread --port N``: the echo under gunicorn with
    ``xds serve``'s worker class (granian is started by its own command: benchmarks.common)."""
    import argparse

    from server.front import FrontApplication, FrontLimits
    from server.serve import FRONTS

    parser = argparse.ArgumentParser()
    parser.add_argument("--front", choices=sorted(FRONTS), default="xds")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    FrontApplication(app, {"bind": f"127.0.0.1:{args.port}", "worker_class": FRONTS[args.front],
                           "workers": args.workers, "threads": args.threads, "keepalive": 30,
                           "loglevel": "warning", "control_socket_disable": True}, FrontLimits()).run()


if __name__ == "__main__":
    main()
