"""Transport security (ATNA secure node): TLS 1.2+ for gunicorn, the peer certificate's subject.

``xds serve --tls-cert --tls-key [--tls-ca [--require-client-cert]]``: gunicorn serves HTTPS with
TLS 1.2 as the minimum. With ``--tls-ca`` a client certificate is asked for and, when sent, must
chain to that CA (the handshake fails otherwise). ``--require-client-cert`` refuses requests
without one at the HTTP layer (403) rather than in the handshake, so that the refusal is answered
and audited as a security alert instead of a silently dropped connection.
"""
from __future__ import annotations

import ssl
from collections.abc import Callable

from transactions.alerts import security_alert
from transactions.services import Services
from xds.context import caller_from_environ


def gunicorn_tls_options(settings) -> dict:
    if not settings.tls_cert:
        return {}
    options = {"certfile": settings.tls_cert, "keyfile": settings.tls_key or None,
               "ssl_context": tls_context_hook, "do_handshake_on_connect": True}
    if settings.tls_ca:
        options["ca_certs"] = settings.tls_ca
        options["cert_reqs"] = ssl.CERT_OPTIONAL
    elif settings.require_client_cert:
        raise ValueError("--require-client-cert needs --tls-ca (the CA client certificates must chain to)")
    return options


def tls_context_hook(config, default_ssl_context_factory):
    """gunicorn ``ssl_context`` hook: its context, with TLS 1.2 as the lowest version."""
    context = default_ssl_context_factory()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def peer_subject(environ: dict) -> str | None:
    """RFC 4514 subject of the verified client certificate (None without TLS or certificate)."""
    sock = environ.get("gunicorn.socket")
    getpeercert = getattr(sock, "getpeercert", None)
    if getpeercert is None:
        return None
    try:
        cert = getpeercert()
    except (ValueError, OSError):
        return None
    if not cert:
        return None
    parts = []
    for rdn in reversed(cert.get("subject", ())):
        for key, value in rdn:
            short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
                     "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST"}.get(key, key)
            parts.append(f"{short}={value}")
    return ",".join(parts) or None


def client_certificate_missing(services: Services, environ: dict, start_response: Callable) -> list[bytes]:
    """403 for a request without a client certificate where one is required; audited."""
    security_alert(services.auditor, caller_from_environ(environ),
                   "TLS: request without a client certificate refused (mutual TLS required)", "authentication")
    body = b"a client certificate is required (mutual TLS)\n"
    start_response("403 Forbidden", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
