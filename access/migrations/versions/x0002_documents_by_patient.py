"""Index ``access_documents`` by patient: the record statement reads a patient's document decisions.

Every ITI-18 in mode ``dmp`` reads the patient's masks and disclosures with the rest of the
record (one statement), so the filter needs no second read for a LeafClass answer.

Revision ID: x0002
Revises: x0001
"""
from alembic import op

revision = "x0002"
down_revision = "x0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_access_documents_patient_id", "access_documents", ["patient_id"])


def downgrade() -> None:
    op.drop_index("ix_access_documents_patient_id", table_name="access_documents")
