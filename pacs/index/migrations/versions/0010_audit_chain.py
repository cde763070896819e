"""The access audit's hash chain: access_record.chain_seq and digest (set by the sealer), an
index to find a patient's records, and audit_seal (checkpoints of the chain)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 07:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pacs.index.types

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    big = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
    # Plain ADD COLUMN and CREATE INDEX: no batch copy of the table (FIELD-NOTES: a batch
    # rebuild of a table other tables reference fails on SQLite with foreign keys on).
    op.add_column('access_record', sa.Column('chain_seq', big, nullable=True))
    op.add_column('access_record', sa.Column('digest', sa.String(length=64), nullable=True))
    op.create_index(op.f('ix_access_record_chain_seq'), 'access_record', ['chain_seq'], unique=True)
    op.create_index(op.f('ix_access_record_patient_id'), 'access_record', ['patient_id'], unique=False)
    op.create_table('audit_seal',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('at', pacs.index.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('chain_seq', big, nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.Column('key_id', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('audit_seal')
    op.drop_index(op.f('ix_access_record_patient_id'), table_name='access_record')
    op.drop_index(op.f('ix_access_record_chain_seq'), table_name='access_record')
    with op.batch_alter_table('access_record', schema=None) as batch_op:
        batch_op.drop_column('digest')
        batch_op.drop_column('chain_seq')
