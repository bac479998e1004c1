"""portal accounts, sessions and login attempts

Revision ID: p0001
Revises: 
Create Date: 2026-11-29 02:42:50.799997
"""
import sqlalchemy as sa
from alembic import op

revision = 'p0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('portal_login_failures',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('login', sa.String(length=128), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_login_failures'))
    )
    with op.batch_alter_table('portal_login_failures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_login_failures_address_at'), ['address', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_portal_login_failures_login_at'), ['login', 'at'], unique=False)

    op.create_table('portal_sessions',
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('login', sa.String(length=128), nullable=False),
    sa.Column('csrf', sa.String(length=64), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('seen_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id_hash', name=op.f('pk_portal_sessions'))
    )
    with op.batch_alter_table('portal_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_sessions_seen_at'), ['seen_at'], unique=False)

    op.create_table('portal_users',
    sa.Column('login', sa.String(length=128), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.String(length=256), nullable=True),
    sa.Column('display_name', sa.String(length=256), nullable=True),
    sa.Column('patient_id', sa.String(length=256), nullable=True),
    sa.Column('professional_id', sa.String(length=128), nullable=True),
    sa.Column('organization', sa.String(length=256), nullable=True),
    sa.Column('profession', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('login', name=op.f('pk_portal_users'))
    )
    with op.batch_alter_table('portal_users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_portal_users_professional_id'), ['professional_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('portal_users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_users_professional_id'))

    op.drop_table('portal_users')
    with op.batch_alter_table('portal_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_sessions_seen_at'))

    op.drop_table('portal_sessions')
    with op.batch_alter_table('portal_login_failures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_portal_login_failures_login_at'))
        batch_op.drop_index(batch_op.f('ix_portal_login_failures_address_at'))

    op.drop_table('portal_login_failures')
