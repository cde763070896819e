"""Passwords (argon2id hashes) on users, and browser sessions (only the SHA-256 of each session
id is stored) for the web application's login.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 09:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pacs.index.types

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    when = pacs.index.types.UTCDateTime(timezone=True)
    with op.batch_alter_table('app_user') as batch:
        batch.add_column(sa.Column('password_hash', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('password_changed_at', when, nullable=True))
    op.create_table(
        'web_session',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('secret_sha256', sa.String(length=64), nullable=False),
        sa.Column('created_at', when, nullable=False),
        sa.Column('last_seen_at', when, nullable=False),
        sa.Column('expires_at', when, nullable=False),
        sa.Column('revoked_at', when, nullable=True),
        sa.Column('source', sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['app_user.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('secret_sha256'),
    )
    op.create_index('ix_web_session_user_id', 'web_session', ['user_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_web_session_user_id', table_name='web_session')
    op.drop_table('web_session')
    with op.batch_alter_table('app_user') as batch:
        batch.drop_column('password_changed_at')
        batch.drop_column('password_hash')
