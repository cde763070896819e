"""The clinic edge's manifests: ``site.held_for_manifest`` (the site sends through an edge, its
studies wait for the manifest before turning stable) and ``study_manifest`` (what the edge says
a study holds, and when the centre found it all).

Self-contained: it touches no table another revision of this release changes, so it may be
re-chained after any of them.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 09:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import pacs.index.types

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('site', sa.Column('held_for_manifest', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        'study_manifest',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('study_uid', sa.String(length=64), nullable=False),
        sa.Column('site_id', sa.Integer(), nullable=False),
        sa.Column('instances', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
        sa.Column('num_instances', sa.Integer(), nullable=False),
        sa.Column('received_at', pacs.index.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('satisfied_at', pacs.index.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['site_id'], ['site.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('study_uid'),
    )
    op.create_index(op.f('ix_study_manifest_site_id'), 'study_manifest', ['site_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_study_manifest_site_id'), table_name='study_manifest')
    op.drop_table('study_manifest')
    with op.batch_alter_table('site') as batch:
        batch.drop_column('held_for_manifest')
