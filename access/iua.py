"""IUA (ITI-71/72): the bearer JWT access token of a FHIR request, verified and read into the same
:class:`xds.context.Caller` the XUA path fills (:func:`access.xua.fill_caller`).

Verification (:class:`IuaVerifier`), each step refusing with :class:`IuaRefused` (HTTP 401,
``WWW-Authenticate: Bearer error="invalid_token"``, RFC 6750 3.1):

1. a compact JWS of three base64url parts, header ``alg`` RS256 or ES256 only (RFC 7518 3.3,
   3.4): ``none`` and the HMAC algorithms are refused before any key is looked at (an HS256 token
   "signed" with a public key is the classic confusion attack);
2. the key: by ``kid`` among the trusted keys (JWKS files, certificates, the local test issuer),
   of the type the algorithm needs; the signature checked with ``cryptography``;
3. the claims (IUA ITI TF-2 3.72.4.1.2.1, RFC 9068): ``exp`` required and not past, ``nbf`` and
   ``iat`` not in the future (with the clock skew), ``iss`` one of ``iua_issuers`` when set,
   ``aud`` naming this server's FHIR base (``iua_audience``).

The claims read, as the XUA attributes are: the IUA ``extensions.ihe_iua`` object
(``subject_name``, ``subject_organization``, ``subject_organization_id``, ``subject_role``,
``purpose_of_use``, ``person_id``, ``national_provider_identifier``) and the French Pro Santé
Connect claims (``SubjectNameID``, ``SubjectRole``, ``SubjectOrganization``,
``SubjectOrganizationID``, ``given_name``/``family_name``); the access mode (TRE_R248) is a
purpose of use, as in the VIHF. Test tokens: :class:`TokenIssuer` (``xds iua issue``).
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from access.xua import ACCESS_MODE_SYSTEM, PATIENT_ROLES, trust_local_issuer
from config import Settings
from xds.context import Caller, CodedValue

ALGORITHMS = ("RS256", "ES256")
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
ACCESS_MODES = ("normal", "bris_de_glace", "centre_15")
LOCAL_ISSUER = "urn:dmp-xds:iua-test-issuer"


class IuaRefused(Exception):
    """A request refused for its token: 401 with the RFC 6750 challenge."""

    def __init__(self, reason: str, error: str | None = "invalid_token", status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error
        self.status = status

    @property
    def challenge(self) -> str:
        if self.error is None:
            return 'Bearer realm="fhir"'
        description = self.reason.replace('"', "'").replace("\\", "/")
        return f'Bearer realm="fhir", error="{self.error}", error_description="{description}"'


def _b64decode(part: str) -> bytes:
    if not part or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" for c in part):
        raise IuaRefused("the token is not a compact JWS (base64url parts)")
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")


@dataclass(frozen=True)
class TrustedKey:
    kid: str | None
    key: PublicKey

    @property
    def algorithm(self) -> str:
        return "RS256" if isinstance(self.key, rsa.RSAPublicKey) else "ES256"


def jwk_key(jwk: dict[str, Any]) -> TrustedKey:
    """A public JWK (RSA, or EC on P-256) as a TrustedKey; ValueError for anything else."""
    kty = jwk.get("kty")
    if kty == "RSA":
        n = int.from_bytes(_b64decode(jwk["n"]), "big")
        e = int.from_bytes(_b64decode(jwk["e"]), "big")
        return TrustedKey(jwk.get("kid"), rsa.RSAPublicNumbers(e, n).public_key())
    if kty == "EC" and jwk.get("crv") == "P-256":
        x = int.from_bytes(_b64decode(jwk["x"]), "big")
        y = int.from_bytes(_b64decode(jwk["y"]), "big")
        return TrustedKey(jwk.get("kid"), ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key())
    raise ValueError(f"unsupported JWK (kty {kty!r}, crv {jwk.get('crv')!r}): RSA or EC P-256 only")


def public_jwk(key: TrustedKey) -> dict[str, str]:
    if isinstance(key.key, rsa.RSAPublicKey):
        numbers = key.key.public_numbers()
        out = {"kty": "RSA", "n": _b64encode(_int(numbers.n)), "e": _b64encode(_int(numbers.e)), "alg": "RS256"}
    else:
        point = key.key.public_numbers()
        out = {"kty": "EC", "crv": "P-256", "x": _b64encode(point.x.to_bytes(32, "big")),
               "y": _b64encode(point.y.to_bytes(32, "big")), "alg": "ES256"}
    if key.kid:
        out["kid"] = key.kid
    return out


def load_keys(jwks_files: Iterable[str], cert_files: Iterable[str]) -> list[TrustedKey]:
    """The keys of JWKS files (``{"keys": [...]}``) and PEM certificates (RSA or EC P-256); the
    server does not start on an unreadable or unsupported one."""
    keys: list[TrustedKey] = []
    for path in jwks_files:
        data = json.loads(Path(path).read_text())
        keys += [jwk_key(k) for k in data.get("keys", [])]
    for path in cert_files:
        cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
        public = cert.public_key()
        if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey) or (
                isinstance(public, ec.EllipticCurvePublicKey) and not isinstance(public.curve, ec.SECP256R1)):
            raise ValueError(f"{path}: the IUA issuer certificate must hold an RSA or an EC P-256 key")
        keys.append(TrustedKey(None, public))
    return keys


class IuaVerifier:
    """Checks bearer access tokens against trusted keys (thread-safe: no mutable state)."""

    def __init__(self, keys: list[TrustedKey], audience: str = "", issuers: Iterable[str] = (),
                 clock_skew: int = 60) -> None:
        self.keys = keys
        self.audience = audience
        self.issuers = frozenset(i for i in issuers if i)
        self.clock_skew = clock_skew

    def verify(self, token: str, audience: str | None = None, now: float | None = None) -> dict[str, Any]:
        """The token's claims, or IuaRefused naming what is wrong."""
        parts = token.split(".")
        if len(parts) != 3:
            raise IuaRefused("the token is not a compact JWS (header.payload.signature)")
        try:
            header = json.loads(_b64decode(parts[0]))
        except (ValueError, UnicodeDecodeError):
            raise IuaRefused("the token header is not JSON") from None
        alg = header.get("alg") if isinstance(header, dict) else None
        if alg not in ALGORITHMS:
            raise IuaRefused(f"token algorithm {alg!r} is refused: RS256 or ES256 only")
        if header.get("crit"):
            raise IuaRefused("the token names critical header parameters this server does not process")
        signature = _b64decode(parts[2])
        signed = f"{parts[0]}.{parts[1]}".encode("ascii")
        kid = header.get("kid")
        candidates = [k for k in self.keys if k.algorithm == alg and (kid is None or k.kid is None or k.kid == kid)]
        if not candidates or not any(_verifies(k, alg, signature, signed) for k in candidates):
            raise IuaRefused("the token signature does not verify with a trusted issuer key")
        try:
            claims = json.loads(_b64decode(parts[1]))
        except (ValueError, UnicodeDecodeError):
            raise IuaRefused("the token claims are not JSON") from None
        if not isinstance(claims, dict):
            raise IuaRefused("the token claims are not a JSON object")
        self._check_claims(claims, self.audience or audience or "", time.time() if now is None else now)
        return claims

    def _check_claims(self, claims: dict[str, Any], audience: str, now: float) -> None:
        exp = claims.get("exp")
        if not isinstance(exp, int | float):
            raise IuaRefused("the token has no expiry (exp)")
        if now > exp + self.clock_skew:
            raise IuaRefused("the token has expired")
        for name in ("nbf", "iat"):
            value = claims.get(name)
            if value is not None and (not isinstance(value, int | float) or value > now + self.clock_skew):
                raise IuaRefused(f"the token is not valid yet ({name})")
        if self.issuers and claims.get("iss") not in self.issuers:
            raise IuaRefused("the token issuer (iss) is not a trusted issuer")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if not audience or audience.rstrip("/") not in [str(a).rstrip("/") for a in audiences if a]:
            raise IuaRefused(f"the token audience (aud) is not this server ({audience})")


def _verifies(key: TrustedKey, alg: str, signature: bytes, signed: bytes) -> bool:
    try:
        if alg == "RS256" and isinstance(key.key, rsa.RSAPublicKey):
            key.key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
            return True
        if alg == "ES256" and isinstance(key.key, ec.EllipticCurvePublicKey):
            if len(signature) != 64:
                return False
            der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
            key.key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
            return True
    except InvalidSignature:
        return False
    return False


# ----------------------------------------------------------------------------- claims -> Caller

def _coded(value: Any) -> CodedValue | None:
    """A FHIR Coding ({system, code, display}), a PSC ``code^system`` string or a bare code."""
    if isinstance(value, dict) and value.get("code"):
        system = str(value.get("system") or "")
        return CodedValue(str(value["code"]), system.removeprefix("urn:oid:"), str(value.get("display") or ""))
    if isinstance(value, str) and value:
        code, _, system = value.partition("^")
        return CodedValue(code, system.removeprefix("urn:oid:"))
    return None


def _codes(value: Any) -> list[CodedValue]:
    items = value if isinstance(value, list) else [value] if value is not None else []
    return [c for c in map(_coded, items) if c is not None]


def _text(*values: Any) -> str | None:
    return next((str(v) for v in values if isinstance(v, str | int) and str(v)), None)


def fill_caller(caller: Caller, claims: dict[str, Any]) -> None:
    """The token's claims onto ``caller``, as :func:`access.xua.fill_caller` puts the assertion's."""
    extensions = claims.get("extensions")
    iua = extensions.get("ihe_iua") if isinstance(extensions, dict) else None
    iua = iua if isinstance(iua, dict) else {}
    caller.user_id = _text(iua.get("national_provider_identifier"), claims.get("SubjectNameID"),
                           claims.get("preferred_username"), claims.get("sub"))
    given, family = claims.get("given_name"), claims.get("family_name")
    caller.user_name = _text(iua.get("subject_name"), claims.get("name"),
                             " ".join(p for p in (given, family) if isinstance(p, str)) or None, caller.user_id)
    caller.organization = _text(iua.get("subject_organization"), claims.get("SubjectOrganization"))
    caller.organization_id = _text(iua.get("subject_organization_id"), claims.get("SubjectOrganizationID"))
    caller.roles = _codes(iua.get("subject_role", claims.get("SubjectRole")))
    purposes = _codes(iua.get("purpose_of_use", claims.get("PurposeOfUse")))
    caller.purpose_of_use = purposes
    caller.patient_id = _text(iua.get("person_id"), claims.get("resource_id"))
    modes = [p.code for p in purposes if p.scheme == ACCESS_MODE_SYSTEM or p.code in ACCESS_MODES]
    caller.access_mode = modes[0] if modes else "normal"
    caller.kind = next((PATIENT_ROLES[r.code] for r in caller.roles if r.code in PATIENT_ROLES), "professional")
    caller.authenticated = True


# ----------------------------------------------------------------------------- issuing (tests, demo)

class TokenIssuer:
    """A signing key (EC P-256 for ES256, or RSA for RS256) that issues test access tokens."""

    def __init__(self, key_pem: bytes, kid: str = "dmp-xds-iua-test", issuer: str = LOCAL_ISSUER) -> None:
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise TypeError("an IUA test issuer key is RSA or EC P-256")
        self.key = key
        self.key_pem = key_pem
        self.kid = kid
        self.issuer = issuer

    @classmethod
    def generate(cls, algorithm: str = "ES256", kid: str | None = None, issuer: str = LOCAL_ISSUER) -> TokenIssuer:
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
            ec.generate_private_key(ec.SECP256R1()) if algorithm == "ES256"
            else rsa.generate_private_key(public_exponent=65537, key_size=2048))
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        return cls(pem, kid or f"iua-{uuid.uuid4().hex[:8]}", issuer)

    @property
    def algorithm(self) -> str:
        return "RS256" if isinstance(self.key, rsa.RSAPrivateKey) else "ES256"

    @property
    def trusted_key(self) -> TrustedKey:
        return TrustedKey(self.kid, self.key.public_key())

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [public_jwk(self.trusted_key)]}

    def sign(self, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        head = {"alg": self.algorithm, "typ": "at+jwt", "kid": self.kid, **(header or {})}
        signing_input = (_b64encode(json.dumps(head, separators=(",", ":")).encode()) + "." +
                         _b64encode(json.dumps(claims, separators=(",", ":")).encode()))
        data = signing_input.encode("ascii")
        if isinstance(self.key, rsa.RSAPrivateKey):
            signature = self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        else:
            r, s = decode_dss_signature(self.key.sign(data, ec.ECDSA(hashes.SHA256())))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return signing_input + "." + _b64encode(signature)

    def token(self, professional_id: str, audience: str, *, name: str | None = None,
              role: tuple[str, str, str] | None = None, organization: str | None = None,
              organization_id: str | None = None, patient_id: str | None = None, mode: str = "normal",
              validity: int = 300, not_before: float | None = None) -> str:
        """A signed IUA access token for a professional, the patient or a representative."""
        now = int(time.time())
        code, system, display = role or ("10", "1.2.250.1.71.1.2.7", "Medecin")
        iua: dict[str, Any] = {
            "subject_name": name or professional_id,
            "subject_role": [{"system": f"urn:oid:{system}", "code": code, "display": display}],
            "purpose_of_use": [{"system": f"urn:oid:{ACCESS_MODE_SYSTEM}", "code": mode, "display": mode}],
            "national_provider_identifier": professional_id,
        }
        if organization:
            iua["subject_organization"] = organization
        if organization_id:
            iua["subject_organization_id"] = organization_id
        if patient_id:
            iua["person_id"] = patient_id
        start = int(not_before) if not_before is not None else now
        claims = {"iss": self.issuer, "sub": professional_id, "aud": audience, "iat": now, "nbf": start,
                  "exp": start + validity, "jti": uuid.uuid4().hex, "client_id": "dmp-xds-test",
                  "extensions": {"ihe_iua": iua}}
        return self.sign(claims)


def local_token_issuer(data_dir: str | os.PathLike[str], create: bool = True) -> TokenIssuer | None:
    """The ES256 issuer kept under ``<data dir>/iua/`` (key 0600), generated once (file-locked)."""
    folder = Path(data_dir) / "iua"
    key_path = folder / "issuer-key.pem"
    if key_path.exists():
        return TokenIssuer(key_path.read_bytes())
    if not create:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if not key_path.exists():
            issuer = TokenIssuer.generate("ES256", kid="dmp-xds-iua-test")
            tmp = key_path.with_suffix(".tmp")
            kfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(kfd, "wb") as fh:
                fh.write(issuer.key_pem)
            os.replace(tmp, key_path)
    finally:
        os.close(fd)
    return TokenIssuer(key_path.read_bytes())


def setting_items(value: str | list[str]) -> list[str]:
    """A list setting given as text separated by ',' (environment) or as a TOML list."""
    items = value.split(",") if isinstance(value, str) else value
    return [str(v).strip() for v in items if str(v).strip()]


def build_iua_verifier(settings: Settings) -> IuaVerifier:
    """The trusted keys of ``iua_jwks`` and ``iua_trusted_certs``, and the local test issuer where
    XUA trusts its own (``xua_trust_local_issuer``: the embedded SQLite mode by default)."""
    keys = load_keys(setting_items(settings.iua_jwks), setting_items(settings.iua_trusted_certs))
    issuers = setting_items(settings.iua_issuers)
    if trust_local_issuer(settings):
        issuer = local_token_issuer(settings.data_dir, create=settings.access_policy == "dmp")
        if issuer is not None:
            keys.append(issuer.trusted_key)
            if issuers:
                issuers.append(issuer.issuer)
    return IuaVerifier(keys, audience=settings.iua_audience, issuers=issuers, clock_skew=settings.iua_clock_skew)
