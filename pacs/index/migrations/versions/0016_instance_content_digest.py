"""``instance.content_sha256``: the content digest of an instance received in JPEG-LS Lossless
(pacs/lossless.py) — the sha256 of its data set rebuilt to native Explicit VR Little Endian — so
that a copy an edge compressed in transit is the same instance as the one the modality sent, and
an edge's manifest holds for either copy. NULL (every row before this revision, and every native
instance) means the content digest is ``sha256``: manifests already stored keep their meaning.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 13:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('instance', sa.Column('content_sha256', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('instance') as batch:
        batch.drop_column('content_sha256')
