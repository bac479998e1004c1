"""Registry tables: objects, document entries and their indexed query attributes.

Revision ID: 0001
Revises: 
Create Date: 2026-11-29 01:29:10.991297
"""
import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('associations',
    sa.Column('uuid', sa.String(length=64), nullable=False),
    sa.Column('association_type', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=64), nullable=False),
    sa.Column('submission_set_status', sa.String(length=16), nullable=True),
    sa.PrimaryKeyConstraint('uuid', name=op.f('pk_associations'))
    )
    with op.batch_alter_table('associations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_associations_source_association_type'), ['source', 'association_type'], unique=False)
        batch_op.create_index(batch_op.f('ix_associations_target_association_type'), ['target', 'association_type'], unique=False)

    op.create_table('document_entries',
    sa.Column('uuid', sa.String(length=64), nullable=False),
    sa.Column('unique_id', sa.String(length=128), nullable=False),
    sa.Column('patient_id', sa.String(length=256), nullable=False),
    sa.Column('status', sa.String(length=64), nullable=False),
    sa.Column('object_type', sa.String(length=64), nullable=False),
    sa.Column('lid', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('class_code', sa.String(length=512), nullable=True),
    sa.Column('type_code', sa.String(length=512), nullable=True),
    sa.Column('format_code', sa.String(length=512), nullable=True),
    sa.Column('healthcare_facility_type_code', sa.String(length=512), nullable=True),
    sa.Column('practice_setting_code', sa.String(length=512), nullable=True),
    sa.Column('creation_time', sa.String(length=14), nullable=True),
    sa.Column('service_start_time', sa.String(length=14), nullable=True),
    sa.Column('service_stop_time', sa.String(length=14), nullable=True),
    sa.Column('hash', sa.String(length=40), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=True),
    sa.Column('repository_unique_id', sa.String(length=64), nullable=True),
    sa.Column('mime_type', sa.String(length=128), nullable=True),
    sa.Column('title', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('uuid', name=op.f('pk_document_entries'))
    )
    with op.batch_alter_table('document_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_document_entries_lid'), ['lid'], unique=False)
        batch_op.create_index(batch_op.f('ix_document_entries_patient_id_status'), ['patient_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_document_entries_unique_id'), ['unique_id'], unique=False)

    op.create_table('document_unique_ids',
    sa.Column('unique_id', sa.String(length=128), nullable=False),
    sa.Column('hash', sa.String(length=40), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('unique_id', name=op.f('pk_document_unique_ids'))
    )
    op.create_table('entry_authors',
    sa.Column('entry_uuid', sa.String(length=64), nullable=False),
    sa.Column('person', sa.String(length=512), nullable=False)
    )
    with op.batch_alter_table('entry_authors', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_entry_authors_entry_uuid'), ['entry_uuid'], unique=False)

    op.create_table('entry_codes',
    sa.Column('entry_uuid', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('code', sa.String(length=512), nullable=False),
    sa.UniqueConstraint('entry_uuid', 'kind', 'code', name=op.f('uq_entry_codes_entry_uuid_kind_code'))
    )
    op.create_table('entry_reference_ids',
    sa.Column('entry_uuid', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=512), nullable=False)
    )
    with op.batch_alter_table('entry_reference_ids', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_entry_reference_ids_entry_uuid'), ['entry_uuid'], unique=False)
        batch_op.create_index(batch_op.f('ix_entry_reference_ids_value'), ['value'], unique=False)

    op.create_table('folders',
    sa.Column('uuid', sa.String(length=64), nullable=False),
    sa.Column('unique_id', sa.String(length=128), nullable=False),
    sa.Column('patient_id', sa.String(length=256), nullable=False),
    sa.Column('last_update_time', sa.String(length=14), nullable=True),
    sa.Column('status', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('uuid', name=op.f('pk_folders')),
    sa.UniqueConstraint('unique_id', name=op.f('uq_folders_unique_id'))
    )
    with op.batch_alter_table('folders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_folders_patient_id_status'), ['patient_id', 'status'], unique=False)

    op.create_table('patients',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('patient_id', sa.String(length=256), nullable=False),
    sa.Column('state', sa.String(length=16), server_default='open', nullable=False),
    sa.Column('created_at', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patients')),
    sa.UniqueConstraint('patient_id', name=op.f('uq_patients_patient_id'))
    )
    op.create_table('registry_objects',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('patient_id', sa.String(length=256), nullable=True),
    sa.Column('status', sa.String(length=64), nullable=False),
    sa.Column('xml', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_registry_objects')),
    sa.UniqueConstraint('uuid', name=op.f('uq_registry_objects_uuid'))
    )
    op.create_table('submission_sets',
    sa.Column('uuid', sa.String(length=64), nullable=False),
    sa.Column('unique_id', sa.String(length=128), nullable=False),
    sa.Column('patient_id', sa.String(length=256), nullable=False),
    sa.Column('source_id', sa.String(length=128), nullable=True),
    sa.Column('submission_time', sa.String(length=14), nullable=True),
    sa.Column('content_type_code', sa.String(length=512), nullable=True),
    sa.Column('status', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('uuid', name=op.f('pk_submission_sets')),
    sa.UniqueConstraint('unique_id', name=op.f('uq_submission_sets_unique_id'))
    )
    with op.batch_alter_table('submission_sets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_submission_sets_patient_id_status'), ['patient_id', 'status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('submission_sets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_submission_sets_patient_id_status'))

    op.drop_table('submission_sets')
    op.drop_table('registry_objects')
    op.drop_table('patients')
    with op.batch_alter_table('folders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_folders_patient_id_status'))

    op.drop_table('folders')
    with op.batch_alter_table('entry_reference_ids', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_entry_reference_ids_value'))
        batch_op.drop_index(batch_op.f('ix_entry_reference_ids_entry_uuid'))

    op.drop_table('entry_reference_ids')
    op.drop_table('entry_codes')
    with op.batch_alter_table('entry_authors', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_entry_authors_entry_uuid'))

    op.drop_table('entry_authors')
    op.drop_table('document_unique_ids')
    with op.batch_alter_table('document_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_document_entries_unique_id'))
        batch_op.drop_index(batch_op.f('ix_document_entries_patient_id_status'))
        batch_op.drop_index(batch_op.f('ix_document_entries_lid'))

    op.drop_table('document_entries')
    with op.batch_alter_table('associations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_associations_target_association_type'))
        batch_op.drop_index(batch_op.f('ix_associations_source_association_type'))

    op.drop_table('associations')
