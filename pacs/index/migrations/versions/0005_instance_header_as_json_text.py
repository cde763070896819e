"""instance.header as json (text) on PostgreSQL, not jsonb

The header is served verbatim by WADO-RS /metadata and never queried inside (QIDO and C-FIND
match on columns). jsonb costs a text conversion on every read — measured on a 300-instance
series: 14 ms of jsonb→text in PostgreSQL against 3.7 ms for json — for features unused here.
SQLite stores JSON as text already: nothing changes there.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 17:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE instance ALTER COLUMN header TYPE json USING header::json")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE instance ALTER COLUMN header TYPE jsonb USING header::jsonb")
