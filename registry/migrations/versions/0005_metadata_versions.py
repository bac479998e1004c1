"""Versions of Folders and the latest-version mark (XDS Metadata Update, ITI TF-2 3.57).

A Folder gets a logicalID (``lid``) and a version like a DocumentEntry (ITI TF-3 4.2.3.4.x), and
its versions share one uniqueId, so ``folders.unique_id`` is no longer unique (an index stays for
GetFolders by uniqueId). ``is_latest`` marks the latest version of each logical DocumentEntry and
Folder: Find queries return only that one (ITI TF-2 3.18.4.1.2.3.5), read from the row the query
already reads. Rows already stored are first versions: ``lid`` = ``uuid``, version 1, latest.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('folders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lid', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('version', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('is_latest', sa.Integer(), server_default='1', nullable=False))
        batch_op.drop_constraint('uq_folders_unique_id', type_='unique')
        batch_op.create_index(batch_op.f('ix_folders_unique_id'), ['unique_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_folders_lid'), ['lid'], unique=False)
    op.execute("UPDATE folders SET lid = uuid")
    with op.batch_alter_table('document_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_latest', sa.Integer(), server_default='1', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('document_entries', schema=None) as batch_op:
        batch_op.drop_column('is_latest')
    with op.batch_alter_table('folders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_folders_lid'))
        batch_op.drop_index(batch_op.f('ix_folders_unique_id'))
        batch_op.create_unique_constraint('uq_folders_unique_id', ['unique_id'])
        batch_op.drop_column('is_latest')
        batch_op.drop_column('version')
        batch_op.drop_column('lid')
