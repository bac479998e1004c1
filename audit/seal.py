"""Seals and checkpoints: the signatures that make the audit chain's tail and appends verifiable.

A hash chain alone shows an edited record only to someone who trusts the stored hashes: whoever
can write the table can rewrite a record and recompute every later hash, append a well-chained
forged record, or delete the last records, and the chain still links. So every transaction that
appends to the chain also writes a *seal*: an Ed25519 signature by the appending process over
``(from_seq, to_seq, head_hash)``, the range it appended and the hash of its last record.

* a rewritten (and recomputed) record no longer hashes to the head its range's seal signed;
* seals tile the chain: each seal's ``from_seq`` is the ``to_seq`` of the one before. A record
  appended by anyone without the key lies outside every seal, even when a later legitimate
  append chains onto it, because that append's seal starts *after* it;
* a seal whose ``to_seq`` is past the last record shows the deleted tail.

A *checkpoint* is a seal published outside the database (:mod:`audit.checkpoint`): appended to an
anchor file and sent to the external Audit Record Repositories, so that deleting the tail *and*
its seals is still seen by ``xds audit verify --anchor``. ITI TF-2 3.20 leaves the integrity of
the store to the ARR; DICOM PS3.15 A.5 and RFC 5425's threat model ask for exactly this
evidence of deletion and modification.

The key is a PKCS#8 PEM file under the data folder (mode 0600), created on first use; its
public key (``xds audit public-key``) lets an auditor verify without the private key.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

DOMAIN = b"dmp-xds audit seal v1"
"""Signed before the fields, so that a seal's signature can never be taken for another message's."""


@dataclass(frozen=True)
class Seal:
    """A signed range of the chain: records ``from_seq + 1`` to ``to_seq``, the last hashing to ``head``."""
    from_seq: int
    to_seq: int
    head: str
    at: float
    key_id: str
    signature: str
    """Hex of the Ed25519 signature over :func:`signed_bytes`."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> Seal:
        v = json.loads(text)
        return Seal(int(v["from_seq"]), int(v["to_seq"]), str(v["head"]), float(v["at"]), str(v["key_id"]),
                    str(v["signature"]))


def signed_bytes(from_seq: int, to_seq: int, head: str, at: float, key_id: str) -> bytes:
    return b"\n".join([DOMAIN, str(from_seq).encode(), str(to_seq).encode(), head.encode(), repr(at).encode(),
                       key_id.encode()])


def key_id_of(public: Ed25519PublicKey) -> str:
    """The first 16 hex digits of SHA-256 over the raw public key: names the signer in a seal."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class Sealer:
    """Signs the ranges this process appends (the audit process, or ``xds arr``)."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public = key.public_key()
        self.key_id = key_id_of(self.public)
        self.chain_sealed = False
        """Whether the chain is known to hold a seal already (then a seal never reaches back to 0)."""

    def seal(self, from_seq: int, to_seq: int, head: str, at: float) -> Seal:
        signature = self._key.sign(signed_bytes(from_seq, to_seq, head, at, self.key_id))
        return Seal(from_seq, to_seq, head, at, self.key_id, signature.hex())

    def public_pem(self) -> bytes:
        return public_pem(self.public)


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_or_create(path: str | Path) -> Sealer:
    """The sealer of the key at ``path``, creating the key (mode 0600) when the file does not exist."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process of this server created it first: use theirs
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
    return Sealer(load_private(path))


def load_private(path: str | Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def load_public(pem: bytes) -> Ed25519PublicKey:
    """A public key from PEM: a SubjectPublicKeyInfo, or the private key file itself."""
    if b"PRIVATE KEY" in pem:
        private = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError("not an Ed25519 private key")
        return private.public_key()
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


class SealVerifier:
    """Checks seals against the public keys an auditor trusts, named by their key id."""

    def __init__(self, keys: list[Ed25519PublicKey]) -> None:
        self.keys = {key_id_of(k): k for k in keys}

    def problem(self, seal: Seal) -> str | None:
        """None when ``seal`` is signed by a trusted key, else why not."""
        key = self.keys.get(seal.key_id)
        if key is None:
            return f"signed by key {seal.key_id}, which is not among the trusted public keys"
        try:
            key.verify(bytes.fromhex(seal.signature), signed_bytes(seal.from_seq, seal.to_seq, seal.head, seal.at,
                                                                   seal.key_id))
        except (InvalidSignature, ValueError):
            return "its signature does not verify"
        return None
