"""Registry tables (SQLAlchemy Core).

Every stored query parameter of ITI TF-2 3.18.4.1.2.3.7 maps to an indexed column here or in a
child table keyed by entry, so that a query for one patient reads that patient's rows only,
whatever the size of the registry (DESIGN.md section 4). ``registry_objects`` keeps the ebRIM
of every object exactly as registered, for LeafClass answers.

Changes go through an Alembic migration in ``registry/migrations``.
"""
from __future__ import annotations

from sqlalchemy import (
    DDL,
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
)

metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
})

ID = String(64)        # urn:uuid:... and OIDs
PID = String(256)      # CX patient identifiers
CODE = String(512)     # code^^scheme
TIME = String(14)      # DTM, normalised to 14 digits

patients = Table(
    "patients", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("patient_id", PID, nullable=False, unique=True),
    Column("state", String(16), nullable=False, server_default="open"),
    Column("created_at", String(32), nullable=False),
    # The patient's identity as the Patient Identity Feed (ITI-8, ITI-104) gives it (migration 0006):
    # corroborating demographics, and for a record merged into another (state 'merged') the key of
    # the surviving record, which links the versions of a patient's INS.
    Column("family_name", String(256)),
    Column("given_name", String(256)),
    Column("birth_date", String(10)),
    Column("sex", String(16)),
    Column("replaced_by", PID),
    Column("updated_at", String(32)),
)

registry_objects = Table(
    "registry_objects", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("uuid", ID, nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("patient_id", PID),
    Column("status", String(64), nullable=False),
    Column("xml", LargeBinary, nullable=False),
)
# PostgreSQL: lz4 rather than pglz for the stored ebRIM, several times cheaper to compress at
# registration and to decompress in every LeafClass answer (migration 0002).
event.listen(registry_objects, "after_create", DDL(
    "DO $$ BEGIN IF (SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression') "
    "THEN ALTER TABLE registry_objects ALTER COLUMN xml SET COMPRESSION lz4; END IF; END $$"
).execute_if(dialect="postgresql"))

FACTS_SEPARATOR = "\x1f"
"""Between the values of ``document_entries.confidentiality_codes`` and ``author_persons`` (the
ASCII unit separator, which no code or XCN carries)."""

document_entries = Table(
    "document_entries", metadata,
    Column("uuid", ID, primary_key=True),
    Column("unique_id", String(128), nullable=False),
    Column("patient_id", PID, nullable=False),
    Column("status", String(64), nullable=False),
    Column("object_type", String(64), nullable=False),
    Column("lid", ID, nullable=False),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("class_code", CODE),
    Column("type_code", CODE),
    Column("format_code", CODE),
    Column("healthcare_facility_type_code", CODE),
    Column("practice_setting_code", CODE),
    Column("creation_time", TIME),
    Column("service_start_time", TIME),
    Column("service_stop_time", TIME),
    Column("hash", String(40)),
    Column("size", BigInteger),
    Column("repository_unique_id", String(64)),
    Column("mime_type", String(128)),
    Column("title", Text),
    # The confidentialityCodes' keys and the authorPerson values, joined by FACTS_SEPARATOR: what
    # an access policy reads of each entry of an answer, in the row the query already reads
    # (entry_codes and entry_authors index the same values for the query parameters).
    Column("confidentiality_codes", Text),
    Column("author_persons", Text),
    Column("is_latest", Integer, nullable=False, server_default="1"),
    Index(None, "patient_id", "status"),
    Index(None, "unique_id"),
    Index(None, "lid"),
)

document_unique_ids = Table(
    "document_unique_ids", metadata,
    Column("unique_id", String(128), primary_key=True),
    Column("hash", String(40)),
    Column("size", BigInteger),
)
"""First registration of each document uniqueId: its primary key makes concurrent submissions of
one uniqueId with different hashes serialise, so exactly one wins (TF-3 4.1.?, XDSNonIdenticalHash)."""

entry_codes = Table(
    "entry_codes", metadata,
    Column("entry_uuid", ID, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("code", CODE, nullable=False),
    UniqueConstraint("entry_uuid", "kind", "code"),
)
"""Multi-valued codes: confidentialityCode, eventCodeList (documents), codeList (folders)."""

entry_authors = Table(
    "entry_authors", metadata,
    Column("entry_uuid", ID, nullable=False),
    Column("person", String(512), nullable=False),
    Index(None, "entry_uuid"),
)

entry_reference_ids = Table(
    "entry_reference_ids", metadata,
    Column("entry_uuid", ID, nullable=False),
    Column("value", String(512), nullable=False),
    Index(None, "entry_uuid"),
    Index(None, "value"),
)

submission_sets = Table(
    "submission_sets", metadata,
    Column("uuid", ID, primary_key=True),
    Column("unique_id", String(128), nullable=False, unique=True),
    Column("patient_id", PID, nullable=False),
    Column("source_id", String(128)),
    Column("submission_time", TIME),
    Column("content_type_code", CODE),
    Column("status", String(64), nullable=False),
    Index(None, "patient_id", "status"),
)

folders = Table(
    "folders", metadata,
    Column("uuid", ID, primary_key=True),
    Column("unique_id", String(128), nullable=False),
    Column("patient_id", PID, nullable=False),
    Column("last_update_time", TIME),
    Column("status", String(64), nullable=False),
    # XDS Metadata Update (migration 0005): the versions of one logical Folder share lid and uniqueId
    Column("lid", ID),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("is_latest", Integer, nullable=False, server_default="1"),
    Index(None, "patient_id", "status"),
    Index(None, "unique_id"),
    Index(None, "lid"),
)

associations = Table(
    "associations", metadata,
    Column("uuid", ID, primary_key=True),
    Column("association_type", String(64), nullable=False),
    Column("source", ID, nullable=False),
    Column("target", ID, nullable=False),
    Column("status", String(64), nullable=False),
    Column("submission_set_status", String(16)),
    Index(None, "source", "association_type"),
    Index(None, "target", "association_type"),
)
