"""Helpers of the audit tests: schemas, throwaway PKI, reading records back."""
from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from lxml import etree

from audit import messages, syslog
from audit.auditor import Auditor
from xds.context import Caller

NODE = Caller(remote_addr="10.0.0.7", endpoint="http://h/registry")


def schemas():
    from tests.conftest import shared_path
    return [etree.XMLSchema(etree.parse(str(shared_path("schemas", "dicom-audit", name))))
            for name in ("dicom2024d.xsd", "dicom2017c.xsd")]


def assert_valid(xml: bytes | etree._Element) -> etree._Element:
    root = xml if isinstance(xml, etree._Element) else etree.fromstring(xml)
    for schema in schemas():
        assert schema.validate(root), schema.error_log
    return root


def record_stored_queries(db, n: int, start: int = 0) -> None:
    """``n`` ITI-18 records in the outbox, query ids ``urn:uuid:q<start>``..., one patient each."""
    a = Auditor(db, "src")
    for i in range(start, start + n):
        a.record(messages.stored_query(NODE, "src", 0, f"urn:uuid:q{i}", b"<q/>", f"{i}^^^&1.2.3&ISO"))
    a.flush()
    a.close()


def xml_of(raw: bytes) -> etree._Element:
    return etree.fromstring(syslog.parse(bytes(raw)).msg)


def make_pki(folder: Path) -> dict[str, str]:
    """A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def key():
        return ec.generate_private_key(ec.SECP256R1())

    ca_key = key()
    ca = (x509.CertificateBuilder().subject_name(name("test audit CA")).issuer_name(name("test audit CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    out = {}

    def leaf(cn, usage, san=None):
        k = key()
        b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject).public_key(k.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
             .not_valid_after(now + dt.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return k, b.sign(ca_key, hashes.SHA256())

    def write(label, k, cert):
        (folder / f"{label}.key").write_bytes(k.private_bytes(serialization.Encoding.PEM,
                                                              serialization.PrivateFormat.PKCS8,
                                                              serialization.NoEncryption()))
        (folder / f"{label}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out[f"{label}_key"] = str(folder / f"{label}.key")
        out[f"{label}_cert"] = str(folder / f"{label}.pem")

    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out["ca"] = str(folder / "ca.pem")
    write("server", *leaf("localhost", ExtendedKeyUsageOID.SERVER_AUTH,
                          [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]))
    write("client", *leaf("xds node", ExtendedKeyUsageOID.CLIENT_AUTH))
    return out
