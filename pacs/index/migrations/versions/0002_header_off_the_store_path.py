"""instance header kept as received bytes; its DICOM JSON built off the C-STORE path

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 15:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.add_column(sa.Column("header_raw", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("header_charset", sa.String(length=64), nullable=True))
        batch_op.alter_column("header", existing_type=JSON_DOCUMENT, nullable=True)


def downgrade() -> None:
    # Rows whose JSON was not built yet cannot go back to a NOT NULL header: build it first
    # (`yunying db headers`), or this fails loudly rather than lose them.
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.alter_column("header", existing_type=JSON_DOCUMENT, nullable=False)
        batch_op.drop_column("header_charset")
        batch_op.drop_column("header_raw")
