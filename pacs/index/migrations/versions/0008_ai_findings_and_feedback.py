"""AI pre-screen: ai_finding (what each model found per study) and ai_feedback (readers'
agree/disagree per finding)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 10:12:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import pacs.index.types

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('ai_finding',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('study_uid', sa.String(length=64), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=True),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('model', sa.String(length=64), nullable=False),
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('label', sa.String(length=64), nullable=False),
    sa.Column('probability', sa.Float(), nullable=True),
    sa.Column('positive', sa.Boolean(), nullable=False),
    sa.Column('location', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('suggested_triage', sa.String(length=16), nullable=True),
    sa.Column('validated', sa.Boolean(), nullable=False),
    sa.Column('explanation', sa.Text(), nullable=False),
    sa.Column('created_at', pacs.index.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ai_finding', schema=None) as batch_op:
        batch_op.create_index('ix_ai_finding_model', ['model', 'version'], unique=False)
        batch_op.create_index(batch_op.f('ix_ai_finding_study_uid'), ['study_uid'], unique=False)

    op.create_table('ai_feedback',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('finding_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('agree', sa.Boolean(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('at', pacs.index.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['finding_id'], ['ai_finding.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('finding_id', 'user_id')
    )
    with op.batch_alter_table('ai_feedback', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ai_feedback_finding_id'), ['finding_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ai_feedback', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ai_feedback_finding_id'))
    op.drop_table('ai_feedback')
    with op.batch_alter_table('ai_finding', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ai_finding_study_uid'))
        batch_op.drop_index('ix_ai_finding_model')
    op.drop_table('ai_finding')
