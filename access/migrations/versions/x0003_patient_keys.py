"""The access policy's rows stored before the patient key (commit 6a3f4de) are re-keyed.

ITI TF-3 4.2.3.1.7: a patient is CX.1 within its assigning authority CX.4; CX.5 (``^NH``) does not
split a patient. The access store now reads and writes :func:`xds.patient.patient_key`, so a
decision stored under ``...&ISO^NH`` would be invisible to every request. Each ``patient_id`` of
``access_records``, ``access_professionals``, ``access_documents`` and ``access_emergency`` is
rewritten to its key. When two spellings of one patient both hold decisions they are merged
towards the more protective one, since each was the patient's (or a professional's) decision:

* a record: break-glass and centre 15 access stay allowed only if both rows allowed them (the
  patient's opposition is kept); the treating physician is the one of the latest-updated row
  naming one;
* a professional listed under both: ``blocked`` if either row blocked them (a blocked
  professional stays blocked), else ``authorised`` (an authorisation is kept);
* document masks and disclosures are keyed by uniqueId and emergency accesses are a log: every
  row is kept, re-keyed.

Revision ID: x0003
Revises: x0002
"""
import sqlalchemy as sa
from alembic import op

from xds.patient import patient_key

revision = "x0003"
down_revision = "x0002"
branch_labels = None
depends_on = None

BATCH = 500


def _changed(conn: sa.Connection, table: str) -> list[tuple[str, str]]:
    rows = conn.execute(sa.text(f"SELECT DISTINCT patient_id FROM {table}")).all()
    return [(r[0], patient_key(r[0])) for r in rows if patient_key(r[0]) != r[0]]


def _merge_records(conn: sa.Connection) -> None:
    for old, key in _changed(conn, "access_records"):
        rows = conn.execute(sa.text("SELECT patient_id, treating_physician, break_glass_allowed, centre_15_allowed, "
                                    "updated_at FROM access_records WHERE patient_id IN (:old, :key) "
                                    "ORDER BY updated_at"), {"old": old, "key": key}).all()
        physician = None
        for r in rows:
            physician = r[1] if r[1] is not None else physician
        merged = {"key": key, "old": old, "physician": physician,
                  "break_glass": all(bool(r[2]) for r in rows), "centre_15": all(bool(r[3]) for r in rows),
                  "at": max(r[4] for r in rows)}
        conn.execute(sa.text("DELETE FROM access_records WHERE patient_id IN (:old, :key)"), merged)
        conn.execute(sa.text("INSERT INTO access_records (patient_id, treating_physician, break_glass_allowed, "
                             "centre_15_allowed, updated_at) VALUES (:key, :physician, :break_glass, :centre_15, :at)"),
                     merged)


def _merge_professionals(conn: sa.Connection) -> None:
    for old, key in _changed(conn, "access_professionals"):
        rows = conn.execute(sa.text("SELECT professional_id, status, updated_at FROM access_professionals "
                                    "WHERE patient_id IN (:old, :key)"), {"old": old, "key": key}).all()
        merged: dict[str, tuple[str, float]] = {}
        for professional, status, at in rows:
            before = merged.get(professional)
            if before is None:
                merged[professional] = (status, at)
            else:
                merged[professional] = ("blocked" if "blocked" in (status, before[0]) else status, max(at, before[1]))
        conn.execute(sa.text("DELETE FROM access_professionals WHERE patient_id IN (:old, :key)"),
                     {"old": old, "key": key})
        values = [{"key": key, "professional": p, "status": s, "at": at} for p, (s, at) in sorted(merged.items())]
        for start in range(0, len(values), BATCH):
            conn.execute(sa.text("INSERT INTO access_professionals (patient_id, professional_id, status, updated_at) "
                                 "VALUES (:key, :professional, :status, :at)"), values[start:start + BATCH])


def upgrade() -> None:
    conn = op.get_bind()
    _merge_records(conn)
    _merge_professionals(conn)
    for table in ("access_documents", "access_emergency"):
        changed = _changed(conn, table)
        for start in range(0, len(changed), BATCH):
            conn.execute(sa.text(f"UPDATE {table} SET patient_id = :key WHERE patient_id = :old"),
                         [{"key": key, "old": old} for old, key in changed[start:start + BATCH]])


def downgrade() -> None:
    """Nothing to undo: keyed rows are valid for the code before x0003; merged rows stay merged."""
