"""A reader's named worklist views (``saved_view``): his filters under a name, kept server-side
so that they follow him to another workstation.

Self-contained: it touches no table another revision of this release changes, so it may be
re-chained after any of them.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 13:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import pacs.index.types

revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'saved_view',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=60), nullable=False),
        sa.Column('filters', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
        sa.Column('created_at', pacs.index.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', pacs.index.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['app_user.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('user_id', 'name'),
    )
    op.create_index(op.f('ix_saved_view_user_id'), 'saved_view', ['user_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_saved_view_user_id'), table_name='saved_view')
    op.drop_table('saved_view')
