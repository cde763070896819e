"""Failed authentications in the index (auth_failure), so the throttle counts an address's
failures across every web process behind the reverse proxy, not per process.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 10:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pacs.index.types

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'auth_failure',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('key', sa.String(length=160), nullable=False),
        sa.Column('at', pacs.index.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_auth_failure_key_at', 'auth_failure', ['key', 'at'], unique=False)
    op.create_index('ix_auth_failure_at', 'auth_failure', ['at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_auth_failure_at', table_name='auth_failure')
    op.drop_index('ix_auth_failure_key_at', table_name='auth_failure')
    op.drop_table('auth_failure')
