"""QA: peer_review (RADPEER peer review: one row per sampled signed report, its reviewer,
score, and the QA review queue of 3b scores)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 06:52:07.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pacs.index.types

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    when = pacs.index.types.UTCDateTime(timezone=True)
    big_id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
    op.create_table('peer_review',
    sa.Column('id', big_id, nullable=False),
    sa.Column('report_id', big_id, nullable=False),
    sa.Column('task_id', big_id, nullable=False),
    sa.Column('study_uid', sa.String(length=64), nullable=False),
    sa.Column('consortium_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('reader_id', sa.Integer(), nullable=False),
    sa.Column('modality', sa.String(length=16), nullable=True),
    sa.Column('body_part', sa.String(length=64), nullable=True),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('report_signed_at', when, nullable=False),
    sa.Column('sampled_at', when, nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('unassigned_reason', sa.Text(), nullable=True),
    sa.Column('reviewer_id', sa.Integer(), nullable=True),
    sa.Column('assigned_at', when, nullable=True),
    sa.Column('score', sa.String(length=2), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('scored_at', when, nullable=True),
    sa.Column('qa_state', sa.String(length=16), nullable=True),
    sa.Column('qa_outcome', sa.String(length=32), nullable=True),
    sa.Column('qa_comment', sa.Text(), nullable=True),
    sa.Column('qa_closed_by', sa.String(length=64), nullable=True),
    sa.Column('qa_closed_at', when, nullable=True),
    sa.ForeignKeyConstraint(['consortium_id'], ['consortium.id'], ),
    sa.ForeignKeyConstraint(['reader_id'], ['reader.id'], ),
    sa.ForeignKeyConstraint(['report_id'], ['report.id'], ),
    sa.ForeignKeyConstraint(['reviewer_id'], ['reader.id'], ),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], ),
    sa.ForeignKeyConstraint(['task_id'], ['reading_task.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('report_id')
    )
    op.create_index('ix_peer_review_period', 'peer_review', ['consortium_id', 'period', 'reader_id'], unique=False)
    op.create_index('ix_peer_review_qa', 'peer_review', ['qa_state'], unique=False)
    op.create_index('ix_peer_review_reviewer', 'peer_review', ['reviewer_id', 'state'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_peer_review_reviewer', table_name='peer_review')
    op.drop_index('ix_peer_review_qa', table_name='peer_review')
    op.drop_index('ix_peer_review_period', table_name='peer_review')
    op.drop_table('peer_review')
