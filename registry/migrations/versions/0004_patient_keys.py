"""Rows stored before the patient key (commit 6a3f4de) are re-keyed, and stored ebRIM put in schema order.

ITI TF-3 4.2.3.1.7: a patient is CX.1 within its assigning authority CX.4; CX.5 (``^NH``) does not
split a patient. The registry now stores and compares :func:`xds.patient.patient_key`, so every
``patient_id`` column written before (``patients``, ``registry_objects``, ``document_entries``,
``submission_sets``, ``folders``) is rewritten to its key; otherwise a record created as
``...&ISO^NH`` would never be found again. The metadata XML keeps the id as sent.

Two ``patients`` rows whose ids now have one key are one DMP record, merged into one row: it keeps
the earliest ``created_at`` (the record exists since its first creation) and the lowest ``id``;
its state is ``closed`` if either row was closed. A DMP is closed on its holder's request (or
death), and a migration must not re-open it: a closed record refuses submissions, which the
submitter sees, while a wrongly re-opened one would receive documents its holder refused.
Re-opening stays an explicit act (``Registry.set_patient_state``). Each merge is logged.

The stored ebRIM of every object (``registry_objects.xml``) is re-ordered with
:func:`xds.rim.normalise_element` (ebRIM 3.0 schema order, ``xsi:type`` substitution resolved): a
LeafClass answer (ITI TF-2 3.18.4.1.3.7) returns it as stored and must be schema-valid. The XML
is plain bytes in the row; PostgreSQL compresses it in TOAST (lz4 since 0002) and recompresses a
rewritten value by itself. Only values that change are written, in batches, so a large registry
is read once with bounded memory.

Revision ID: 0004
Revises: 0003
"""
import logging
from collections.abc import Iterator

import sqlalchemy as sa
from alembic import op
from lxml import etree

from xds import rim
from xds.patient import patient_key
from xds.xmlsafe import parse_bytes

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

BATCH = 500
PATIENT_COLUMNS = ("registry_objects", "document_entries", "submission_sets", "folders")

log = logging.getLogger("alembic.runtime.migration")


def _changed_ids(conn: sa.Connection, table: str) -> Iterator[list[tuple[str, str]]]:
    """Batches of (stored id, key) of ``table``'s patient ids that are not their key."""
    rows = conn.execute(sa.text(f"SELECT DISTINCT patient_id FROM {table} WHERE patient_id IS NOT NULL")).all()
    changed = [(r[0], patient_key(r[0])) for r in rows if patient_key(r[0]) != r[0]]
    for start in range(0, len(changed), BATCH):
        yield changed[start:start + BATCH]


def _merge_patients(conn: sa.Connection) -> None:
    last = 0
    while True:
        rows = conn.execute(sa.text("SELECT id, patient_id, state, created_at FROM patients WHERE id > :last "
                                    "ORDER BY id LIMIT :n"), {"last": last, "n": BATCH}).all()
        if not rows:
            return
        last = rows[-1][0]
        for row_id, stored, state, created_at in rows:
            key = patient_key(stored)
            if key == stored:
                continue
            other = conn.execute(sa.text("SELECT id, state, created_at FROM patients WHERE patient_id = :key"),
                                 {"key": key}).first()
            if other is None:
                conn.execute(sa.text("UPDATE patients SET patient_id = :key WHERE id = :id"),
                             {"key": key, "id": row_id})
                continue
            merged_state = "closed" if "closed" in (state, other[1]) else other[1]
            keep, drop = (row_id, other[0]) if row_id < other[0] else (other[0], row_id)
            log.warning("patients: %s and %s are one patient (%s): merged into row %s, state %s",
                        stored, key, key, keep, merged_state)
            conn.execute(sa.text("DELETE FROM patients WHERE id = :id"), {"id": drop})
            conn.execute(sa.text("UPDATE patients SET patient_id = :key, state = :state, created_at = :created "
                                 "WHERE id = :id"),
                         {"key": key, "state": merged_state, "created": min(created_at, other[2]), "id": keep})


def _normalise_xml(conn: sa.Connection) -> None:
    last = 0
    update = sa.text("UPDATE registry_objects SET xml = :xml WHERE seq = :seq")
    while True:
        rows = conn.execute(sa.text("SELECT seq, xml FROM registry_objects WHERE seq > :last ORDER BY seq LIMIT :n"),
                            {"last": last, "n": BATCH}).all()
        if not rows:
            return
        last = rows[-1][0]
        changes = []
        for seq, xml in rows:
            stored = bytes(xml)
            el = parse_bytes(stored)
            rim.normalise_element(el)
            written = etree.tostring(el)
            if written != stored:
                changes.append({"seq": seq, "xml": written})
        if changes:
            conn.execute(update, changes)


def upgrade() -> None:
    conn = op.get_bind()
    _merge_patients(conn)
    for table in PATIENT_COLUMNS:
        for batch in _changed_ids(conn, table):
            conn.execute(sa.text(f"UPDATE {table} SET patient_id = :key WHERE patient_id = :old"),
                         [{"key": key, "old": old} for old, key in batch])
    _normalise_xml(conn)


def downgrade() -> None:
    """Nothing to undo: keys and schema order are valid data for the code before 0004 too (the
    spelling sent stays in the XML); merged records stay merged."""
