"""``patient_link``: a reader's decision whether two patient rows of one consortium that match
only probably (name + birth date + sex, pacs/patients.py) are the same person — confirmed or
rejected, by whom, when and why (pacs/patient_links.py).

Self-contained: a new table, nothing backfilled.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 21:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pacs.index.types

revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'patient_link',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('consortium_id', sa.Integer(), nullable=False),
        sa.Column('patient_low', sa.Integer(), nullable=False),
        sa.Column('patient_high', sa.Integer(), nullable=False),
        sa.Column('decision', sa.String(length=16), nullable=False),
        sa.Column('decided_by_id', sa.Integer(), nullable=True),
        sa.Column('decided_by', sa.String(length=64), nullable=False),
        sa.Column('decided_at', pacs.index.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.CheckConstraint('patient_low < patient_high', name='ck_patient_link_order'),
        sa.CheckConstraint("decision IN ('confirmed', 'rejected')", name='ck_patient_link_decision'),
        sa.ForeignKeyConstraint(['consortium_id'], ['consortium.id']),
        sa.ForeignKeyConstraint(['decided_by_id'], ['app_user.id']),
        sa.ForeignKeyConstraint(['patient_high'], ['patient.id']),
        sa.ForeignKeyConstraint(['patient_low'], ['patient.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('patient_low', 'patient_high'),
    )
    op.create_index(op.f('ix_patient_link_consortium_id'), 'patient_link', ['consortium_id'], unique=False)
    op.create_index(op.f('ix_patient_link_patient_high'), 'patient_link', ['patient_high'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_patient_link_patient_high'), table_name='patient_link')
    op.drop_index(op.f('ix_patient_link_consortium_id'), table_name='patient_link')
    op.drop_table('patient_link')
