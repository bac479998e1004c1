"""Document entries carry their confidentiality codes and authorPerson values in their own row.

An access policy reads both for every entry a FindDocuments returns (benchmarks/query.py, issue
6). Aggregated from ``entry_codes`` and ``entry_authors`` by two correlated subqueries per row,
they cost PostgreSQL about 80 microseconds of CPU per ten-document answer; read as two columns
of the row the query already reads, nothing. The index tables stay: the query parameters
(``$XDSDocumentEntryConfidentialityCode``, ``$XDSDocumentEntryAuthorPerson``) search them. Rows
already stored are filled from them here.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('document_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('confidentiality_codes', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('author_persons', sa.Text(), nullable=True))
    agg = ("string_agg({}, chr(31))" if op.get_bind().dialect.name == "postgresql"
           else "group_concat({}, char(31))")
    op.execute("UPDATE document_entries SET "
               f"confidentiality_codes = (SELECT {agg.format('ec.code')} FROM entry_codes ec "
               "WHERE ec.entry_uuid = document_entries.uuid AND ec.kind = 'confidentiality'), "
               f"author_persons = (SELECT {agg.format('ea.person')} FROM entry_authors ea "
               "WHERE ea.entry_uuid = document_entries.uuid)")


def downgrade() -> None:
    with op.batch_alter_table('document_entries', schema=None) as batch_op:
        batch_op.drop_column('author_persons')
        batch_op.drop_column('confidentiality_codes')
