"""Configuration: defaults, then a TOML file, then ``XDS_*`` environment variables, then flags.

The only process-wide state of the project. Every ``xds`` command and the server read the same
``Settings`` so that a command and a running server share one store (``--data-dir``,
``--database-url``).
"""
from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_REPOSITORY_UNIQUE_ID = "1.3.6.1.4.1.21367.2017.2.3.52"
DEFAULT_HOME_COMMUNITY_ID = "urn:oid:1.3.6.1.4.1.21367.2017.2.6.52"


@dataclass
class Settings:
    data_dir: Path = Path("data")
    database_url: str = ""
    repository_unique_id: str = DEFAULT_REPOSITORY_UNIQUE_ID
    home_community_id: str = DEFAULT_HOME_COMMUNITY_ID
    max_request_bytes: int = 100 * 1024 * 1024
    """Bound on any SOAP request body, documents included (the ITI-41 attachments' limit)."""
    max_iti18_request_bytes: int = 1024 * 1024
    """Bound on an ITI-18 Registry Stored Query request (the whole envelope); the transactions'
    limits below are refused with HTTP 413 before the body is read when Content-Length passes
    them, as soon as they are passed when it streams in (issue 19: one 95 MB ITI-18 cost 1.3 GB)."""
    max_iti42_metadata_bytes: int = 16 * 1024 * 1024
    """Bound on an ITI-42 (and ITI-57) request: the submission's metadata envelope."""
    max_iti41_metadata_bytes: int = 16 * 1024 * 1024
    """Bound on the SOAP envelope of an ITI-41 (its root MIME part, or the whole body without MTOM);
    the documents in the other MIME parts are bounded by ``max_request_bytes``."""
    max_iti43_request_bytes: int = 1024 * 1024
    """Bound on an ITI-43 Retrieve Document Set request."""
    max_mime_parts: int = 1000
    """Most MIME parts of an ITI-41, root part included: one per document plus the envelope."""
    memory_trim_bytes: int = 1024 * 1024
    """After a SOAP request body at least this large, give the freed heap back to the system
    (glibc ``malloc_trim``) so that a worker does not keep its peak RSS; 0: never."""
    max_query_results: int = 10_000
    check_patient_ids: bool = True
    """The DMP's rule: a record exists only once created (``xds patients add``); off for a test domain."""
    remote_registry_url: str = ""
    """Empty: the repository registers in-process with this server's registry. Else the ITI-42
    endpoint of the remote registry this server's repository registers with. Not
    ``XDS_REGISTRY_URL``: that names the client's registry endpoint (``xds query``...), which a
    server exporting it for its users must not take for its own (issue 20: one user's documents
    were split across two stores)."""
    registry_trusted_repositories: list[str] = field(default_factory=lambda: ["auto"])
    """Mutual-TLS certificate subjects (RFC 4514, as ``xds serve`` logs them) of the Document
    Repositories whose ITI-42 the registry accepts; ``*``: any node (test domains only);
    ``auto``: any node in the ``open`` policy, none in ``dmp`` (the embedded repository
    registers in-process and needs no entry)."""
    public_url: str = ""
    """The server's URL as clients reach it (``https://xds.example.org``): the WSDL's
    soap12:address; empty: scheme, server name and port of the listening socket, never the
    request's Host header."""
    value_sets: dict[str, list[str]] = field(default_factory=dict)
    """Affinity-domain value sets: attribute name -> SVS XML files (TF-3 4.2.3.2, codes from the domain)."""
    audit_forward: list[str] = field(default_factory=list)
    """Audit Record Repositories to send to: ``udp://HOST:PORT`` or ``tls://HOST:PORT`` (ITI-20)."""
    audit_enabled: bool = True
    audit_sync_commit: bool = False
    """PostgreSQL: make each batch of the audit outbox wait for the database's WAL flush. Off, a
    crash of the database server itself can lose its last ~0.6 s of queued audit events; a crash
    of ours never loses a committed one. On costs ITI-18 about 6% of its throughput."""
    audit_nice: int = 19
    """Niceness of the audit process (sender and local ARR store): under full load it yields the
    CPU to transactions and catches up from the durable outbox afterwards; 0 keeps it level. At 10
    it still took 4.9% of the CPU during an ITI-18 burst, at 19 3.1% (benchmarks/audit.py)."""
    audit_max_lag: float = 120.0
    """Seconds a queued audit record may wait for the store before ``/health`` says degraded (503)."""
    metrics_token: str = ""
    """Bearer token a scraper sends to read ``/metrics`` (Prometheus ``authorization`` with
    ``credentials``). Empty: ``/metrics`` answers only direct requests from this host's loopback
    (the counts reveal traffic volumes); a request a proxy relayed is not a direct one."""
    audit_seal_key: str = ""
    """Ed25519 private key (PKCS#8 PEM) that seals every append to the audit chain (audit.seal);
    empty: ``<data_dir>/audit-seal-key.pem``, created on first start. Servers sharing a database
    share this file, or give each public key to ``xds audit verify --public-key``."""
    audit_checkpoint_records: int = 1000
    """Publish a checkpoint (the chain's latest seal) after this many new records..."""
    audit_checkpoint_seconds: float = 60.0
    """...or after this many seconds with new records, whichever comes first."""
    audit_anchor_file: str = ""
    """Append-only file each checkpoint is added to (one JSON line, fsynced); empty: none.
    Checkpoints also go to every ``audit_forward`` ARR."""
    arr_udp_port: int = 0
    """Built-in Audit Record Repository syslog/UDP port (RFC 5426); 0: not listening."""
    arr_tls_port: int = 0
    """Built-in Audit Record Repository syslog/TLS port (RFC 5425); 0: not listening."""
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    require_client_cert: bool = False
    access_policy: str = "open"
    """``open``: a plain XDS affinity domain; ``dmp``: the DMP's patient-controlled access."""
    xua_trusted_certs: list[str] = field(default_factory=list)
    """PEM files of the XUA assertion issuers trusted (ITI-40); signatures by other keys are refused."""
    xua_trust_local_issuer: str = "auto"
    """Also trust the test issuer of ``xds xua issue`` (key under the data dir); ``auto``: on SQLite only."""
    xua_audience: str = ""
    """Expected saml2:Audience; empty: not checked (the French VIHF token has none)."""
    xua_clock_skew: int = 60
    """Seconds of clock difference tolerated on NotBefore / NotOnOrAfter."""
    xua_required: str = "auto"
    """An assertion is required on ITI-18/41/43: ``auto`` (in the ``dmp`` policy), ``true``, ``false``."""
    xua_replay_check: bool = True
    """Refuse an assertion ID seen before: those that carry ``saml2:OneTimeUse``, or every
    assertion when ``xua_assertion_reuse`` is off."""
    xua_assertion_reuse: bool = True
    """Accept an assertion again until it expires, as SAML 2.0 Core 2.5.1.5 allows and as
    X-Service Users that keep one assertion for a session do (ITI TF-2 3.40.4.1.2 even lets a
    provider ignore OneTimeUse); one carrying ``saml2:OneTimeUse`` is still accepted once. Each
    worker checks a given assertion's signature once, not on every request. Off: every request
    must carry a fresh assertion, accepted once."""
    xua_replay_sync_commit: bool = False
    """PostgreSQL: make each replay check wait for the database's WAL flush. Off, a crash of the
    database server itself can forget the assertion ids of its last ~0.6 s; on costs a dmp
    FindDocuments that carries a fresh assertion (OneTimeUse, or ``xua_assertion_reuse`` off)
    about 17% of its throughput."""
    iua_jwks: str = ""
    """IUA (ITI-72) token issuers' keys: JWKS files (RSA or EC P-256 keys, by ``kid``), separated by
    ',' (or a TOML list)."""
    iua_trusted_certs: str = ""
    """IUA token issuers' PEM certificates (RSA or EC P-256), separated by ',' (or a TOML list)."""
    iua_issuers: str = ""
    """Accepted ``iss`` values of IUA tokens, separated by ','; empty: any issuer whose key is trusted."""
    iua_audience: str = ""
    """The ``aud`` an IUA token must name; empty: this server's FHIR base URL (``public_url`` + ``/fhir``,
    else the server's own name and port)."""
    iua_clock_skew: int = 60
    fhir_patient_oid: str = "1.2.250.1.213.1.4.8"
    """The assigning authority of a ``patient.identifier`` searched without a system (MHD ITI-66/67):
    INS-NIR by default."""
    care_team_may_submit: bool = True
    """DMP policy: a professional outside the patient's authorised list may submit documents."""
    access_api_token: str = ""
    """Bearer token of the principal ``dmp-api`` on the ``/dmp/api`` JSON API (kept for the
    configurations written before ``access_api_tokens``). The API has no anonymous access, not
    even from loopback: with neither setting it refuses every request (403)."""
    access_api_tokens: dict[str, str] = field(default_factory=dict)
    """Bearer tokens of the ``/dmp/api`` JSON API, by principal name: each caller is audited as the
    principal whose token it sent, so give each client (portal back end, operators' scripts...)
    its own. A TOML table (``[xds.access_api_tokens]`` then ``ops = "..."``) or, in
    ``XDS_ACCESS_API_TOKENS``, a JSON object. A token shared by two principals, or the name
    ``dmp-api`` with another token than ``access_api_token``, stops the server from starting."""
    audit_readers: list[str] = field(default_factory=list)
    """Mutual-TLS certificate subjects (RFC 4514, as ``xds serve`` logs them) of the auditors' nodes
    that may read the audit trail with ITI-81 (``GET /audit/AuditEvent``). In ``XDS_AUDIT_READERS``
    subjects are separated by ';' (they hold commas), or given as a JSON list."""
    audit_reader_tokens: dict[str, str] = field(default_factory=dict)
    """Bearer tokens of the auditors who may read the audit trail with ITI-81, by principal name
    (audited as the reader): a TOML table or, in ``XDS_AUDIT_READER_TOKENS``, a JSON object. With
    neither this nor ``audit_readers`` ITI-81 answers 403 to everyone."""
    patient_feed_sources: list[str] = field(default_factory=list)
    """Mutual-TLS certificate subjects (RFC 4514) of the Patient Identity Sources trusted to feed the
    DMP records: ITI-104 (``/fhir/Patient``) and ITI-8 over MLLP with ``mllp_tls``. In
    ``XDS_PATIENT_FEED_SOURCES`` subjects are separated by ';', or given as a JSON list."""
    patient_feed_tokens: dict[str, str] = field(default_factory=dict)
    """Bearer tokens of the Patient Identity Sources that may use ITI-104, by source name (audited
    as the source): a TOML table or, in ``XDS_PATIENT_FEED_TOKENS``, a JSON object."""
    mllp_port: int = 0
    """Port of the ITI-8 Patient Identity Feed (HL7 v2 over MLLP) that ``xds serve`` listens on, on
    ``host``; 0: none."""
    mllp_tls: bool = False
    """MLLP over TLS (``tls_cert``, ``tls_key``; client certificates chain to ``tls_ca``) and only
    from the ``patient_feed_sources`` subjects. Off: plain MLLP from ``patient_feed_addresses`` only."""
    patient_feed_addresses: list[str] = field(default_factory=lambda: ["127.0.0.1", "::1"])
    """IP addresses from which plain (non-TLS) MLLP is accepted: an interface engine on this host."""
    mllp_max_message_bytes: int = 1024 * 1024
    """Largest HL7 v2 message accepted over MLLP; a longer one is refused and the connection closed."""
    portal_enabled: bool = True
    """Serve the web portal under ``/portal``."""
    portal_secure_cookies: str = "auto"
    """Mark the portal's cookies Secure: ``auto`` (when served over HTTPS), ``true``, ``false``."""
    portal_oidc_issuer: str = ""
    """OpenID Connect issuer of the portal's login (empty: local accounts only)."""
    portal_oidc_client_id: str = ""
    portal_oidc_client_secret: str = ""
    portal_oidc_name: str = ""
    """Label of the provider's login button (e.g. "Pro Santé Connect", "FranceConnect")."""
    portal_oidc_login_claim: str = "sub"
    """ID token claim that equals the portal account's login."""
    portal_timezone: str = "Europe/Paris"
    """IANA time zone (``zoneinfo``) in which the portal shows every date and time: the audit trail and the
    registry keep UTC (ITI TF-3 4.2.3.1.4 DTM), a patient reads her local time."""
    repository_lease_seconds: int = 30
    """Lease of each server process on its in-flight ITI-41 submissions, renewed every third of it:
    a pending document is settled by another process only once its owner's lease has expired."""
    repository_reconcile_interval: int = 10
    """Seconds between two reconciliations of pending documents of processes that are gone
    (against the registry, by the process elected among those sharing the database); 0: no
    background reconciler (tests that run its rounds themselves)."""
    repository_faults: str = ""
    """Test only: injected failures of the crash tests, ``point=N`` pairs (repository/faults.py)."""
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2
    threads: int = 8

    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(Path(self.data_dir) / 'registry.db').resolve()}"

    @property
    def documents_dir(self) -> Path:
        return Path(self.data_dir) / "documents"

    @property
    def seal_key_path(self) -> Path:
        return Path(self.audit_seal_key) if self.audit_seal_key else Path(self.data_dir) / "audit-seal-key.pem"


_BOOL_TRUE = {"1", "true", "yes", "on"}

RENAMED = {"registry_url": ("remote_registry_url", "the remote registry this server's repository registers with; "
                                                  "the client's registry endpoint goes in the [client] table")}
"""Settings whose old name meant something else to the client: refused with their new name rather
than read (or ignored) under the wrong meaning."""


def _coerce(name: str, kind: Any, value: Any) -> Any:
    if kind in (bool, "bool"):
        return value if isinstance(value, bool) else str(value).strip().lower() in _BOOL_TRUE
    if kind in (int, "int"):
        return int(value)
    if kind in (float, "float"):
        return float(value)
    if kind in (Path, "Path"):
        return Path(value)
    if name in ("registry_trusted_repositories", "audit_readers", "patient_feed_sources") and isinstance(value, str):
        # certificate subjects hold commas (RFC 4514): a JSON list, or subjects separated by ';'
        items = json.loads(value) if value.lstrip().startswith("[") else value.split(";")
        return [str(v).strip() for v in items if str(v).strip()]
    if name in ("audit_forward", "xua_trusted_certs", "registry_trusted_repositories", "audit_readers",
                "patient_feed_sources", "patient_feed_addresses"):
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
    if name in ("access_api_tokens", "audit_reader_tokens", "patient_feed_tokens"):
        return _tokens(json.loads(value) if isinstance(value, str) else value, name)
    if name == "value_sets":
        if isinstance(value, str):
            value = json.loads(value)
        return {k: [v] if isinstance(v, str) else list(v) for k, v in dict(value).items()}
    return value


def _tokens(value: Any, name: str = "access_api_tokens") -> dict[str, str]:
    """``access_api_tokens`` or ``audit_reader_tokens`` as read: names and tokens must be strings, so
    that a number or a list typed by mistake fails at start-up rather than as a token nobody can send."""
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError(f"{name} must be a table of principal name -> token (strings)")
    return dict(value)


def load_settings(config_file: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """Build the settings; ``overrides`` (from command-line flags) whose value is None are ignored."""
    env = os.environ if environ is None else environ
    settings = Settings()
    types = {f.name: f.type for f in fields(Settings)}
    path = config_file or env.get("XDS_CONFIG")
    if path:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        for key, value in data.get("xds", data).items():
            key = key.replace("-", "_")
            if key in RENAMED:
                new, meaning = RENAMED[key]
                raise ValueError(f"setting '{key}' in {path} is now '{new}' ({meaning})")
            if key not in types:
                raise ValueError(f"unknown setting '{key}' in {path}")
            setattr(settings, key, _coerce(key, types[key], value))
    for name, kind in types.items():
        value = env.get("XDS_" + name.upper())
        if value not in (None, ""):
            setattr(settings, name, _coerce(name, kind, value))
    for name, value in overrides.items():
        if value is not None:
            if name not in types:
                raise ValueError(f"unknown setting '{name}'")
            setattr(settings, name, _coerce(name, types[name], value))
    return settings
