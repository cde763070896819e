"""QA at the scale of a province: qa_turnaround.arrived_at (received_at, or queued_at when the
study has no study.received), indexed with the consortium, so a date range is an index range
scan; it replaces the (consortium_id, received_at) index, which no query used.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 07:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pacs.index.types

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    when = pacs.index.types.UTCDateTime(timezone=True)
    op.add_column('qa_turnaround', sa.Column('arrived_at', when, nullable=True))
    op.execute('UPDATE qa_turnaround SET arrived_at = COALESCE(received_at, queued_at)')
    with op.batch_alter_table('qa_turnaround') as batch:
        batch.alter_column('arrived_at', existing_type=when, nullable=False)
    op.drop_index('ix_qa_turnaround_period', table_name='qa_turnaround')
    op.create_index('ix_qa_turnaround_arrived', 'qa_turnaround', ['consortium_id', 'arrived_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_qa_turnaround_arrived', table_name='qa_turnaround')
    op.create_index('ix_qa_turnaround_period', 'qa_turnaround', ['consortium_id', 'received_at'], unique=False)
    with op.batch_alter_table('qa_turnaround') as batch:
        batch.drop_column('arrived_at')
