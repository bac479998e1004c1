"""XUA (ITI-40): SAML 2.0 assertions in ``wsse:Security``, verified with signxml, and test issuing.

Verification (:class:`XuaVerifier`), every step refusing with a WS-Security SOAP fault:

1. exactly one ``saml2:Assertion`` in the SOAP header (a second one is signature wrapping);
2. it carries its own enveloped ``ds:Signature`` with exclusive C14N and RSA-SHA256;
3. the signing certificate is one of the trusted issuer certificates (pinned; a KeyInfo
   certificate that is not trusted is refused before any cryptography), and the signature is
   checked with signxml against that trust anchor with ``expect_config``;
4. every value is read from the element signxml verified (``signed_xml``), never from the
   request tree, and that element must be the assertion itself (same ID);
5. ``NotBefore`` / ``NotOnOrAfter`` with the configured clock skew; the audience when configured
   (the French VIHF token has none);
6. an assertion carrying ``saml2:OneTimeUse`` is used once (replay; SAML 2.0 Core 2.5.1.5), its
   ID remembered until it expires, in the database so that every worker shares it; the others
   may come again until they expire (``xua_assertion_reuse``, on by default), or are used once
   too when it is off.

With ``xua_assertion_reuse`` a worker keeps what it verified, by the SHA-256 of the assertion's
bytes: the same assertion again skips step 3 and the reading of step 4, never the conditions of
step 5 nor the placement checks of step 1.

Faults: ``wsse:InvalidSecurityToken`` for a missing, unsigned, malformed or wrapped assertion;
``wsse:FailedAuthentication`` for a wrong or untrusted signature, a validity window or audience
that does not match, or a replay.

Issuing (:class:`Issuer`): ``xds xua issue`` and the tests sign assertions with a key generated
under ``<data dir>/xua/`` (trusted by default in the embedded mode, see ``xua_trust_local_issuer``).
"""
from __future__ import annotations

import base64
import datetime as dt
import fcntl
import functools
import hashlib
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast, overload

from lxml import etree

from config import Settings
from xds.context import Caller, CodedValue
from xds.soap.faults import SoapFault
from xds.soap.messages import SoapRequest
from xds.soap.namespaces import NS_WSSE

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from signxml import SignatureConfiguration, XMLVerifier

log = logging.getLogger(__name__)

NS_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
NS_DS = "http://www.w3.org/2000/09/xmldsig#"
NS_HL7 = "urn:hl7-org:v3"
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"

ATTR_SUBJECT_ID = "urn:oasis:names:tc:xspa:1.0:subject:subject-id"
ATTR_ORGANIZATION = "urn:oasis:names:tc:xspa:1.0:subject:organization"
ATTR_ORGANIZATION_ID = "urn:oasis:names:tc:xspa:1.0:subject:organization-id"
ATTR_ROLE = "urn:oasis:names:tc:xacml:2.0:subject:role"
ATTR_PURPOSE = "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse"
ATTR_RESOURCE = "urn:oasis:names:tc:xacml:2.0:resource:resource-id"
ACCESS_MODE_SYSTEM = "1.2.250.1.213.1.1.4.248"
"""TRE_R248-ModeAcces: normal, bris_de_glace, centre_15 (carried as purposeofuse, as the VIHF does)."""
PROFESSION_SYSTEM = "1.2.250.1.71.1.2.7"
"""TRE_G15-ProfessionSante."""
PATIENT_ROLES = {"PATIENT": "patient", "REPRESENTANT_LEGAL": "legal_representative"}
"""Role codes (any system) that make the caller the patient or a legal representative."""

INVALID_TOKEN = "{%s}InvalidSecurityToken" % NS_WSSE
FAILED_AUTHENTICATION = "{%s}FailedAuthentication" % NS_WSSE


def _q(ns: str, local: str) -> str:
    return "{%s}%s" % (ns, local)


class XuaError(Exception):
    def __init__(self, subcode: str, reason: str) -> None:
        super().__init__(reason)
        self.subcode = subcode
        self.reason = reason

    def fault(self) -> SoapFault:
        return SoapFault("Sender", f"XUA: {self.reason}", subcode=self.subcode)


def _parse_time(text: str | None, what: str) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise XuaError(INVALID_TOKEN, f"{what} {text!r} is not an xs:dateTime") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _format_time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_certificates(paths: Iterable[str | os.PathLike[str]]) -> list[x509.Certificate]:
    from cryptography import x509
    out: list[x509.Certificate] = []
    for path in paths:
        data = Path(path).read_bytes()
        out += x509.load_pem_x509_certificates(data)
    return out


@dataclass(frozen=True)
class AttributeValue:
    """One saml2:AttributeValue as read: its text and the HL7 coded values inside it."""
    text: str
    codes: tuple[CodedValue, ...] = ()


@dataclass(frozen=True)
class AssertionFacts:
    """What a verified assertion says, as plain values: a worker may keep it for the next request
    that carries the same assertion (``xua_assertion_reuse``), so it holds no element of the tree
    and is never changed."""
    id: str
    issuer: str | None
    name_id: str | None
    not_on_or_after: dt.datetime
    not_before: dt.datetime | None = None
    audiences: tuple[str, ...] = ()
    one_time_use: bool = False
    """``saml2:Conditions/saml2:OneTimeUse``: the issuer asks that the assertion be used once."""
    attributes: dict[str, list[AttributeValue]] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        return next((value.text for value in self.attributes.get(name, ()) if value.text), None)

    def codes(self, name: str) -> list[CodedValue]:
        return [code for value in self.attributes.get(name, ()) for code in value.codes]


class ReplayStore(Protocol):
    """Where assertion ids are remembered until they expire (:class:`access.store.AccessStore`)."""

    def first_use(self, assertion_id: str, expires_at: float) -> bool:
        """False when ``assertion_id`` was seen before (a replay)."""


class RefusalSink(Protocol):
    """Told of a refused assertion (the policy's :class:`access.policy.AlertSink`)."""

    def __call__(self, caller: Caller, description: str, kind: str = ...) -> None: ...


class XuaVerifier:
    """Checks the assertion of a request against trusted issuer certificates (thread-safe)."""

    def __init__(self, trusted_certs: list[x509.Certificate], audience: str = "", clock_skew: int = 60,
                 store: ReplayStore | None = None, replay_check: bool = True, reuse: bool = True) -> None:
        from cryptography.hazmat.primitives.serialization import Encoding
        self.trusted = {c.public_bytes(Encoding.DER): c for c in trusted_certs}
        """Pinned issuer certificates by their DER encoding."""
        self._local = threading.local()
        self.audience = audience or ""
        self.clock_skew = dt.timedelta(seconds=int(clock_skew))
        self.store = store
        self.replay_check = replay_check and store is not None
        self.reuse = reuse
        """``xua_assertion_reuse``: an assertion without OneTimeUse may come again until it expires;
        False: every assertion is used once."""
        self._verified: dict[bytes, AssertionFacts] = {}
        """SHA-256 of an assertion's bytes -> its facts, in insertion order (``reuse`` only)."""
        self._verified_lock = threading.Lock()

    # -- the SOAP side ---------------------------------------------------------------------------
    def apply(self, request: SoapRequest, caller: Caller, required: bool, on_refusal: RefusalSink | None = None,
              defer_replay: bool = False) -> None:
        """Fill ``caller`` from the request's assertion; raise a SoapFault (and alert) when refused.

        ``defer_replay``: leave the replay check to the access policy (``caller.pending_assertion``),
        which does it in the statement that reads the patient's record.
        """
        try:
            assertions = list(request.header.iter(_q(NS_SAML, "Assertion"))) if request.header is not None else []
            if not assertions:
                if required:
                    raise XuaError(INVALID_TOKEN, "this service requires an XUA SAML 2.0 assertion in the "
                                                  "wsse:Security header")
                return
            facts = self.verify(assertions, request.header, defer_replay=defer_replay)
        except XuaError as exc:
            if on_refusal is not None:
                on_refusal(caller, f"XUA assertion refused: {exc.reason}", "authentication")
            raise exc.fault() from None
        fill_caller(caller, facts)
        if defer_replay and self.once(facts):
            caller.pending_assertion = (facts.id, facts.not_on_or_after.timestamp())

    def once(self, facts: AssertionFacts) -> bool:
        """Whether the replay check applies: to every assertion, or with ``reuse`` to those that
        carry OneTimeUse (SAML 2.0 Core 2.5.1.5; ITI TF-2 3.40.4.1.2 lets the others be reused)."""
        return self.replay_check and (facts.one_time_use or not self.reuse)

    # -- the checks --------------------------------------------------------------------------------
    def verify(self, assertions: list[etree._Element], header: etree._Element | None = None,
               now: dt.datetime | None = None, defer_replay: bool = False) -> AssertionFacts:
        if len(assertions) != 1:
            raise XuaError(INVALID_TOKEN, f"{len(assertions)} SAML assertions in the header; exactly one is "
                                          "accepted (a second, unsigned assertion is a signature-wrapping attack)")
        assertion = assertions[0]
        if header is not None:
            parent = assertion.getparent()
            if parent is None or parent.tag != _q(NS_WSSE, "Security") or parent.getparent() is not header:
                raise XuaError(INVALID_TOKEN, "the SAML assertion must be a child of wsse:Security")
        data = etree.tostring(assertion, with_tail=False)
        digest = hashlib.sha256(data).digest() if self.reuse else b""
        facts = self._verified.get(digest) if self.reuse else None
        if facts is None:
            facts = self._verify_signed(assertion, data)
            if self.reuse and not facts.one_time_use:
                self._remember(digest, facts)
        self._check_conditions(facts, now or dt.datetime.now(dt.UTC))
        if not defer_replay and self.once(facts) and self.store is not None \
                and not self.store.first_use(facts.id, facts.not_on_or_after.timestamp()):
            raise replayed(facts.id)
        return facts

    def _verify_signed(self, assertion: etree._Element, data: bytes) -> AssertionFacts:
        """Steps 2 to 4: the signature's form, the signature itself, the facts of what it signs."""
        signatures = assertion.findall(_q(NS_DS, "Signature"))
        if not signatures:
            raise XuaError(INVALID_TOKEN, "the assertion is not signed")
        if len(signatures) > 1 or len(list(assertion.iter(_q(NS_DS, "Signature")))) != 1:
            raise XuaError(INVALID_TOKEN, "the assertion carries more than one signature")
        signature = signatures[0]
        c14n = signature.find(f"{_q(NS_DS, 'SignedInfo')}/{_q(NS_DS, 'CanonicalizationMethod')}")
        if c14n is None or c14n.get("Algorithm") != EXC_C14N:
            raise XuaError(INVALID_TOKEN, "the assertion signature must use exclusive C14N")
        assertion_id = assertion.get("ID")
        if not assertion_id:
            raise XuaError(INVALID_TOKEN, "the assertion has no ID")
        refs = signature.findall(f"{_q(NS_DS, 'SignedInfo')}/{_q(NS_DS, 'Reference')}")
        if len(refs) != 1 or refs[0].get("URI") != "#" + assertion_id:
            raise XuaError(INVALID_TOKEN, "the signature must reference the assertion itself (#ID)")
        signed = self._check_signature(data, signature)
        if signed.tag != _q(NS_SAML, "Assertion") or signed.get("ID") != assertion_id:
            raise XuaError(INVALID_TOKEN, "the signed element is not the assertion")
        return read_assertion(signed)

    def _remember(self, digest: bytes, facts: AssertionFacts) -> None:
        """Keep a verified assertion's facts for its next use; the oldest go beyond
        ``VERIFIED_CACHE_SIZE`` (a bound on memory whatever the number of sessions)."""
        with self._verified_lock:
            while len(self._verified) >= VERIFIED_CACHE_SIZE:
                del self._verified[next(iter(self._verified))]
            self._verified[digest] = facts

    def _check_signature(self, data: bytes, signature: etree._Element) -> etree._Element:
        from cryptography import x509
        from signxml import VerifyResult, XMLVerifier
        from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput, InvalidSignature

        if not self.trusted:
            raise XuaError(FAILED_AUTHENTICATION, "no trusted XUA issuer is configured (xua_trusted_certs)")
        embedded = signature.findtext(f".//{_q(NS_DS, 'X509Certificate')}")
        if embedded:
            try:
                der = base64.b64decode("".join(embedded.split()), validate=True)
            except ValueError:
                raise XuaError(INVALID_TOKEN, "the signature's X509Certificate cannot be read") from None
            anchor = self.trusted.get(der)  # pinned: the very certificate, byte for byte
            if anchor is None:
                try:
                    cert = x509.load_der_x509_certificate(der)
                except Exception:  # noqa: BLE001 - anything unreadable is not a certificate
                    raise XuaError(INVALID_TOKEN, "the signature's X509Certificate cannot be read") from None
                raise XuaError(FAILED_AUTHENTICATION, "the assertion is signed by a certificate that is not "
                                                      f"trusted ({cert.subject.rfc4514_string()})")
            candidates = [anchor]
        else:
            candidates = list(self.trusted.values())
        last: Exception | None = None
        for cert in candidates:
            try:
                result = self._verifier(XMLVerifier).verify(data, x509_cert=cert, expect_config=_expected_signature(),
                                                            id_attribute="ID")
                # expect_references=1: one result, its signed element
                assert isinstance(result, VerifyResult) and result.signed_xml is not None
                return result.signed_xml
            except InvalidCertificate as exc:
                last = exc
            except (InvalidSignature, InvalidDigest) as exc:
                last = exc
            except InvalidInput as exc:
                raise XuaError(INVALID_TOKEN, f"malformed assertion signature: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - e.g. an algorithm outside expect_config
                last = exc
        raise XuaError(FAILED_AUTHENTICATION, f"the assertion signature does not verify: {last}")

    def _verifier(self, factory: Callable[[], XMLVerifier]) -> XMLVerifier:
        """One signxml verifier per thread: it keeps an lxml parser, which threads must not share."""
        verifier: XMLVerifier | None = getattr(self._local, "verifier", None)
        if verifier is None:
            verifier = self._local.verifier = factory()
        return verifier

    def _check_conditions(self, facts: AssertionFacts, now: dt.datetime) -> None:
        if facts.not_before is not None and now + self.clock_skew < facts.not_before:
            raise XuaError(FAILED_AUTHENTICATION, f"the assertion is not valid before {_format_time(facts.not_before)}")
        if now - self.clock_skew >= facts.not_on_or_after:
            raise XuaError(FAILED_AUTHENTICATION, f"the assertion expired at {_format_time(facts.not_on_or_after)}")
        if self.audience and self.audience not in facts.audiences:
            raise XuaError(FAILED_AUTHENTICATION, f"the assertion is not for this service (audience "
                                                  f"{', '.join(facts.audiences) or 'none'}, expected {self.audience})")


VERIFIED_CACHE_SIZE = 4096
"""Verified assertions a worker keeps with ``xua_assertion_reuse`` (a few MB)."""


@functools.lru_cache(maxsize=1)
def _expected_signature() -> SignatureConfiguration:
    """signxml's ``expect_config``: one reference, RSA-SHA256 over SHA-256 digests, an X.509 key."""
    from signxml import DigestAlgorithm, SignatureConfiguration, SignatureMethod
    return SignatureConfiguration(require_x509=True, location="./", expect_references=1,
                                  signature_methods=frozenset({SignatureMethod.RSA_SHA256}),
                                  digest_algorithms=frozenset({DigestAlgorithm.SHA256}))


def replayed(assertion_id: str) -> XuaError:
    return XuaError(FAILED_AUTHENTICATION, f"assertion {assertion_id} was already used (replay)")


def read_assertion(signed: etree._Element) -> AssertionFacts:
    conditions = signed.find(_q(NS_SAML, "Conditions"))
    expires = _parse_time(conditions.get("NotOnOrAfter"), "NotOnOrAfter") if conditions is not None else None
    if conditions is None or expires is None:
        raise XuaError(INVALID_TOKEN, "the assertion has no Conditions/@NotOnOrAfter")
    name_id = signed.findtext(f"{_q(NS_SAML, 'Subject')}/{_q(NS_SAML, 'NameID')}")
    attributes: dict[str, list[AttributeValue]] = {}
    for attr in signed.iterfind(f"{_q(NS_SAML, 'AttributeStatement')}/{_q(NS_SAML, 'Attribute')}"):
        attributes.setdefault(attr.get("Name", ""), []).extend(
            _attribute_value(value) for value in attr.findall(_q(NS_SAML, "AttributeValue")))
    return AssertionFacts(signed.get("ID", ""), (signed.findtext(_q(NS_SAML, "Issuer")) or "").strip() or None,
                          name_id.strip() if name_id else None, expires,
                          not_before=_parse_time(conditions.get("NotBefore"), "NotBefore"),
                          audiences=tuple((a.text or "").strip() for a in conditions.iter(_q(NS_SAML, "Audience"))),
                          one_time_use=conditions.find(_q(NS_SAML, "OneTimeUse")) is not None,
                          attributes=attributes)


def _attribute_value(value: etree._Element) -> AttributeValue:
    codes = tuple(CodedValue(code, el.get("codeSystem", ""), el.get("displayName", ""))
                  for el in value.iter() if isinstance(el.tag, str) and (code := el.get("code")))
    text = cast(Iterator[str], value.itertext())  # lxml-stubs say str | bytes: lxml gives str
    return AttributeValue("".join(text).strip(), codes)


def fill_caller(caller: Caller, facts: AssertionFacts) -> None:
    caller.user_id = facts.name_id
    caller.user_name = facts.text(ATTR_SUBJECT_ID)
    caller.organization = facts.text(ATTR_ORGANIZATION)
    caller.organization_id = facts.text(ATTR_ORGANIZATION_ID)
    caller.roles = facts.codes(ATTR_ROLE)
    purposes = facts.codes(ATTR_PURPOSE)
    caller.purpose_of_use = purposes
    caller.patient_id = facts.text(ATTR_RESOURCE)
    modes = [p.code for p in purposes if p.scheme == ACCESS_MODE_SYSTEM or p.code in ("normal", "bris_de_glace",
                                                                                      "centre_15")]
    caller.access_mode = modes[0] if modes else "normal"
    kind = next((PATIENT_ROLES[r.code] for r in caller.roles if r.code in PATIENT_ROLES), "professional")
    caller.kind = kind
    caller.authenticated = True


# ----------------------------------------------------------------------------- issuing (tests, demo)

class Issuer:
    """A signing key and its self-signed certificate (PEM) that issue test assertions."""

    def __init__(self, key_pem: bytes, cert_pem: bytes, name: str = "DMP-XDS test issuer") -> None:
        self.key_pem = key_pem
        self.cert_pem = cert_pem
        self.name = name

    @classmethod
    def generate(cls, common_name: str = "DMP-XDS XUA test issuer", days: int = 3650) -> Issuer:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "DMP-XDS")])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return cls(key_pem, cert.public_bytes(serialization.Encoding.PEM), common_name)

    @functools.cached_property
    def private_key(self) -> RSAPrivateKey:
        """The key, loaded once: loading a PEM RSA key checks it (tens of milliseconds) and the key
        signs an assertion per request in tests and benchmarks."""
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
        key = load_pem_private_key(self.key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError("the XUA issuer's key must be an RSA key (it signs RSA-SHA256)")
        return key

    @property
    def certificate(self) -> x509.Certificate:
        from cryptography import x509
        return x509.load_pem_x509_certificate(self.cert_pem)

    def assertion(self, professional_id: str, *, name: str | None = None, role: tuple[str, str, str] | None = None,
                  organization: str | None = None, organization_id: str | None = None,
                  patient_id: str | None = None, mode: str = "normal", audience: str | None = None,
                  validity: int = 300, not_before: dt.datetime | None = None, issuer: str | None = None,
                  assertion_id: str | None = None, one_time_use: bool = False) -> etree._Element:
        """A signed saml2:Assertion (unattached) for a professional, the patient or a representative."""
        from signxml import DigestAlgorithm, SignatureMethod, XMLSigner
        from signxml.algorithms import SignatureConstructionMethod

        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        start = not_before or now
        aid = assertion_id or "_" + uuid.uuid4().hex
        a = etree.Element(_q(NS_SAML, "Assertion"), nsmap={"saml2": NS_SAML}, ID=aid, Version="2.0",
                          IssueInstant=_format_time(now))
        etree.SubElement(a, _q(NS_SAML, "Issuer")).text = issuer or self.name
        etree.SubElement(a, _q(NS_DS, "Signature"), nsmap={"ds": NS_DS}, Id="placeholder")
        subject = etree.SubElement(a, _q(NS_SAML, "Subject"))
        nid = etree.SubElement(subject, _q(NS_SAML, "NameID"),
                               Format="urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified")
        nid.text = professional_id
        etree.SubElement(subject, _q(NS_SAML, "SubjectConfirmation"), Method="urn:oasis:names:tc:SAML:2.0:cm:bearer")
        cond = etree.SubElement(a, _q(NS_SAML, "Conditions"), NotBefore=_format_time(start),
                                NotOnOrAfter=_format_time(start + dt.timedelta(seconds=validity)))
        if audience:
            ar = etree.SubElement(cond, _q(NS_SAML, "AudienceRestriction"))
            etree.SubElement(ar, _q(NS_SAML, "Audience")).text = audience
        if one_time_use:
            etree.SubElement(cond, _q(NS_SAML, "OneTimeUse"))
        authn = etree.SubElement(a, _q(NS_SAML, "AuthnStatement"), AuthnInstant=_format_time(now))
        ctx = etree.SubElement(authn, _q(NS_SAML, "AuthnContext"))
        etree.SubElement(ctx, _q(NS_SAML, "AuthnContextClassRef")).text = \
            "urn:oasis:names:tc:SAML:2.0:ac:classes:TLSClient"
        stmt = etree.SubElement(a, _q(NS_SAML, "AttributeStatement"))

        def attribute(attr_name: str, text: str | None = None,
                      coded: tuple[str, str, str, str] | None = None) -> None:
            at = etree.SubElement(stmt, _q(NS_SAML, "Attribute"), Name=attr_name)
            value = etree.SubElement(at, _q(NS_SAML, "AttributeValue"))
            if coded:
                tag, code, system, display = coded
                el = etree.SubElement(value, _q(NS_HL7, tag),
                                      # lxml-stubs refuse the None key, lxml's default namespace
                                      nsmap={None: NS_HL7, "xsi": NS_XSI},  # type: ignore[dict-item]
                                      code=code, codeSystem=system)
                el.set(_q(NS_XSI, "type"), "CE")
                if display:
                    el.set("displayName", display)
            else:
                value.text = text

        attribute(ATTR_SUBJECT_ID, name or professional_id)
        if organization:
            attribute(ATTR_ORGANIZATION, organization)
        if organization_id:
            attribute(ATTR_ORGANIZATION_ID, organization_id)
        code, system, display = role or ("10", PROFESSION_SYSTEM, "Medecin")
        attribute(ATTR_ROLE, coded=("Role", code, system, display))
        attribute(ATTR_PURPOSE, coded=("PurposeOfUse", mode, ACCESS_MODE_SYSTEM, mode))
        if patient_id:
            attribute(ATTR_RESOURCE, patient_id)
        signer = XMLSigner(method=SignatureConstructionMethod.enveloped, signature_algorithm=SignatureMethod.RSA_SHA256,
                           digest_algorithm=DigestAlgorithm.SHA256, c14n_algorithm=EXC_C14N)
        return signer.sign(a, key=self.private_key, cert=self.cert_pem.decode(), reference_uri="#" + aid,
                           id_attribute="ID")

    def security_header(self, professional_id: str, **kw: Any) -> etree._Element:
        """``wsse:Security`` holding a fresh signed assertion (for the client's extra headers)."""
        return wrap_security(self.assertion(professional_id, **kw))


def wrap_security(*assertions: etree._Element) -> etree._Element:
    sec = etree.Element(_q(NS_WSSE, "Security"), nsmap={"wsse": NS_WSSE})
    for a in assertions:
        sec.append(a)
    return sec


@overload
def local_issuer(data_dir: str | os.PathLike[str], create: Literal[True] = True) -> Issuer: ...
@overload
def local_issuer(data_dir: str | os.PathLike[str], create: bool) -> Issuer | None: ...


def local_issuer(data_dir: str | os.PathLike[str], create: bool = True) -> Issuer | None:
    """The issuer kept under ``<data dir>/xua/`` (key 0600), generated once (file-locked)."""
    folder = Path(data_dir) / "xua"
    key_path, cert_path = folder / "issuer-key.pem", folder / "issuer-cert.pem"
    if key_path.exists() and cert_path.exists():
        return Issuer(key_path.read_bytes(), cert_path.read_bytes())
    if not create:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if not (key_path.exists() and cert_path.exists()):
            issuer = Issuer.generate()
            tmp = key_path.with_suffix(".tmp")
            kfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(kfd, "wb") as fh:
                fh.write(issuer.key_pem)
            os.replace(tmp, key_path)
            cert_path.write_bytes(issuer.cert_pem)
    finally:
        os.close(fd)
    return Issuer(key_path.read_bytes(), cert_path.read_bytes())


def trust_local_issuer(settings: Settings) -> bool:
    value = str(settings.xua_trust_local_issuer).strip().lower()
    if value in ("", "auto"):
        return settings.effective_database_url().startswith("sqlite")
    return value in ("1", "true", "yes", "on")


def build_verifier(settings: Settings, store: ReplayStore | None = None) -> XuaVerifier:
    certs = load_certificates(settings.xua_trusted_certs)
    if trust_local_issuer(settings):  # generated for the dmp policy; in an open domain only if it exists
        issuer = local_issuer(settings.data_dir, create=settings.access_policy == "dmp")
        if issuer is not None:
            certs.append(issuer.certificate)
    return XuaVerifier(certs, audience=settings.xua_audience,
                       clock_skew=settings.xua_clock_skew, store=store,
                       replay_check=settings.xua_replay_check,
                       reuse=settings.xua_assertion_reuse)


