"""QA: qa_turnaround (one row per reading task, milestone times derived from the change log)
and qa_cursor (the last change folded in)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 04:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pacs.index.types

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    when = pacs.index.types.UTCDateTime(timezone=True)
    op.create_table('qa_turnaround',
    sa.Column('task_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('study_uid', sa.String(length=64), nullable=False),
    sa.Column('consortium_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('site_tier', sa.String(length=16), nullable=False),
    sa.Column('tier', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.String(length=16), nullable=False),
    sa.Column('modality', sa.String(length=16), nullable=True),
    sa.Column('body_part', sa.String(length=64), nullable=True),
    sa.Column('reader_id', sa.Integer(), nullable=True),
    sa.Column('escalated', sa.Boolean(), nullable=False),
    sa.Column('received_at', when, nullable=True),
    sa.Column('stable_at', when, nullable=True),
    sa.Column('ai_at', when, nullable=True),
    sa.Column('queued_at', when, nullable=False),
    sa.Column('claimed_at', when, nullable=True),
    sa.Column('preliminary_at', when, nullable=True),
    sa.Column('signed_at', when, nullable=True),
    sa.Column('delivered_at', when, nullable=True),
    sa.Column('deadline_at', when, nullable=False),
    sa.ForeignKeyConstraint(['consortium_id'], ['consortium.id'], ),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], ),
    sa.PrimaryKeyConstraint('task_id')
    )
    op.create_index('ix_qa_turnaround_period', 'qa_turnaround', ['consortium_id', 'received_at'], unique=False)
    op.create_index('ix_qa_turnaround_study', 'qa_turnaround', ['study_uid'], unique=False)
    op.create_table('qa_cursor',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('last_seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('qa_cursor')
    op.drop_index('ix_qa_turnaround_study', table_name='qa_turnaround')
    op.drop_index('ix_qa_turnaround_period', table_name='qa_turnaround')
    op.drop_table('qa_turnaround')
