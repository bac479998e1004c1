"""The patient record as the Patient Identity Feed gives it: demographics and the merge link.

ITI-8 (HL7 v2 ADT, ITI TF-2 3.8) and ITI-104 (FHIR Patient, PIXm ITI TF-2 3.104) create and revise
the DMP record with corroborating demographics: family and given names, birth date and sex (PID-5,
PID-7, PID-8; Patient.name, birthDate, gender). A merge (ADT^A40, Patient.link ``replaced-by``)
moves a record's content to the surviving one; the merged row stays, state ``merged``, with
``replaced_by`` naming the survivor's key, so that an old INS (an NIA, say, before the NIR) still
says where the patient's record went. ``updated_at``: the last change the feed made. Rows already
stored have none of these (NULL).

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('family_name', sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column('given_name', sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column('birth_date', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('sex', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('replaced_by', sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column('updated_at', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('patients', schema=None) as batch_op:
        for column in ('updated_at', 'replaced_by', 'sex', 'birth_date', 'given_name', 'family_name'):
            batch_op.drop_column(column)
