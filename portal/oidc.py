"""Pluggable login: the :class:`IdentityProvider` interface and an OpenID Connect implementation.

The portal calls only the interface: ``authorization_url`` (redirect the browser) and ``complete``
(back on ``/portal/oidc/callback`` with ``code``; returns verified ID token claims). The claim named
by ``portal_oidc_login_claim`` must equal the login of a portal account (created with ``xds portal
user add``): the provider authenticates, the portal's account gives the role and the identity the
access policy reads.

:class:`OidcProvider`: OpenID Connect Core 1.0 authorization-code flow with PKCE (RFC 7636, S256),
``state`` and ``nonce``; discovery (``/.well-known/openid-configuration``); client authentication
``client_secret_basic``; ID token signatures RS256 (keys from ``jwks_uri``) or HS256 (client
secret); ``iss``, ``aud``, ``exp``, ``iat`` and ``nonce`` checked. Issuers must be HTTPS, except on
loopback (tests).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Protocol
from urllib.parse import urlencode, urlsplit

import requests

from config import Settings


class LoginFailed(Exception):
    pass


class IdentityProvider(Protocol):
    name: str

    def authorization_url(self, redirect_uri: str, state: str, nonce: str, code_verifier: str) -> str: ...

    def complete(self, redirect_uri: str, code: str, nonce: str, code_verifier: str) -> dict: ...

    def login_of(self, claims: dict) -> str | None: ...


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def pkce_challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise LoginFailed(f"OpenID Connect URLs must be HTTPS (got {url})")


class OidcProvider:
    def __init__(self, issuer: str, client_id: str, client_secret: str = "", *, name: str = "OpenID Connect",
                 scopes: str = "openid profile", login_claim: str = "sub", timeout: float = 10.0,
                 leeway: int = 60) -> None:
        _check_url(issuer)
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.name = name
        self.scopes = scopes
        self.login_claim = login_claim
        self.timeout = timeout
        self.leeway = leeway
        self._config: dict | None = None
        self._jwks: dict | None = None

    def config(self) -> dict:
        if self._config is None:
            resp = requests.get(self.issuer + "/.well-known/openid-configuration", timeout=self.timeout)
            resp.raise_for_status()
            config = resp.json()
            if config.get("issuer", "").rstrip("/") != self.issuer:
                raise LoginFailed("the discovery document names another issuer")
            for key in ("authorization_endpoint", "token_endpoint"):
                _check_url(config[key])
            self._config = config
        return self._config

    def authorization_url(self, redirect_uri: str, state: str, nonce: str, code_verifier: str) -> str:
        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri,
                  "scope": self.scopes, "state": state, "nonce": nonce,
                  "code_challenge": pkce_challenge(code_verifier), "code_challenge_method": "S256"}
        endpoint = self.config()["authorization_endpoint"]
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)

    def complete(self, redirect_uri: str, code: str, nonce: str, code_verifier: str) -> dict:
        config = self.config()
        try:
            resp = requests.post(config["token_endpoint"], timeout=self.timeout,
                                 data={"grant_type": "authorization_code", "code": code,
                                       "redirect_uri": redirect_uri, "code_verifier": code_verifier},
                                 auth=(self.client_id, self.client_secret))
        except requests.RequestException as exc:
            raise LoginFailed(f"token endpoint unreachable: {exc}") from None
        if resp.status_code != 200:
            raise LoginFailed(f"token endpoint answered {resp.status_code}")
        id_token = (resp.json() or {}).get("id_token")
        if not id_token:
            raise LoginFailed("no id_token in the token response")
        return self.verify(id_token, nonce)

    def verify(self, token: str, nonce: str) -> dict:
        try:
            head_b64, body_b64, sig_b64 = token.split(".")
            header = json.loads(b64url_decode(head_b64))
            claims = json.loads(b64url_decode(body_b64))
            signature = b64url_decode(sig_b64)
        except (ValueError, TypeError):
            raise LoginFailed("malformed ID token") from None
        signed = f"{head_b64}.{body_b64}".encode()
        alg = header.get("alg")
        if alg == "HS256" and self.client_secret:
            expected = hmac.new(self.client_secret.encode(), signed, hashlib.sha256).digest()
            if not hmac.compare_digest(expected, signature):
                raise LoginFailed("bad ID token signature")
        elif alg == "RS256":
            self._verify_rs256(header.get("kid"), signed, signature)
        else:
            raise LoginFailed(f"ID token algorithm {alg!r} is not accepted")
        now = time.time()
        if claims.get("iss", "").rstrip("/") != self.issuer:
            raise LoginFailed("ID token from another issuer")
        aud = claims.get("aud")
        if self.client_id not in (aud if isinstance(aud, list) else [aud]):
            raise LoginFailed("ID token for another client")
        if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] < now - self.leeway:
            raise LoginFailed("ID token expired")
        if isinstance(claims.get("iat"), (int, float)) and claims["iat"] > now + self.leeway:
            raise LoginFailed("ID token issued in the future")
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise LoginFailed("ID token nonce does not match")
        return claims

    def _verify_rs256(self, kid, signed: bytes, signature: bytes) -> None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
        for attempt in range(2):
            if self._jwks is None or attempt:
                uri = self.config().get("jwks_uri")
                if not uri:
                    raise LoginFailed("the provider publishes no jwks_uri")
                _check_url(uri)
                self._jwks = requests.get(uri, timeout=self.timeout).json()
            keys = [k for k in self._jwks.get("keys", [])
                    if k.get("kty") == "RSA" and (kid is None or k.get("kid") == kid)]
            for k in keys:
                public = rsa.RSAPublicNumbers(int.from_bytes(b64url_decode(k["e"]), "big"),
                                              int.from_bytes(b64url_decode(k["n"]), "big")).public_key()
                try:
                    public.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
                    return
                except InvalidSignature:
                    continue
        raise LoginFailed("bad ID token signature")

    def login_of(self, claims: dict) -> str | None:
        value = claims.get(self.login_claim)
        return str(value) if value else None


def build_provider(settings: Settings) -> IdentityProvider | None:
    issuer = settings.portal_oidc_issuer
    if not issuer:
        return None
    return OidcProvider(issuer, settings.portal_oidc_client_id, settings.portal_oidc_client_secret,
                        name=settings.portal_oidc_name or "OpenID Connect",
                        login_claim=settings.portal_oidc_login_claim)
