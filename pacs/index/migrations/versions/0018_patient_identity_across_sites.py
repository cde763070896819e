"""``patient.national_id`` and ``patient.demographics_key``: what pacs/patients.py matches the same
person on across a consortium's sites (each clinic issues its own Patient IDs), indexed so that
the priors of a study are two index lookups, not a scan of headers.

Backfill: the demographics key from the patient row's own name, birth date and sex; the national
ID from the kept header (``instance.header_raw``) of one current instance of each of the
patient's studies — the first that carries one under the issuer ``CN-RIC``.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 16:50:00.000000
"""

import io
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pydicom.charset import convert_encodings
from pydicom.filereader import read_dataset

from pacs.patients import demographics_key, national_id_of

revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_IMPLICIT_LE = "1.2.840.10008.1.2"
_BIG_ENDIAN = "1.2.840.10008.1.2.2"


def _national_id(raw: bytes, transfer_syntax: str, charset: str | None) -> str | None:
    implicit, little = transfer_syntax == _IMPLICIT_LE, transfer_syntax != _BIG_ENDIAN
    try:
        ds = read_dataset(io.BytesIO(raw), implicit, little)
        if "SpecificCharacterSet" not in ds and charset:
            ds.set_original_encoding(implicit, little, convert_encodings(charset))
    except Exception:  # noqa: BLE001 — a header pydicom cannot read leaves the patient unmatched by ID, no more
        return None
    return national_id_of(ds)


def upgrade() -> None:
    op.add_column('patient', sa.Column('national_id', sa.String(length=18), nullable=True))
    op.add_column('patient', sa.Column('demographics_key', sa.String(length=64), nullable=True))
    op.create_index(op.f('ix_patient_national_id'), 'patient', ['national_id'], unique=False)
    op.create_index(op.f('ix_patient_demographics_key'), 'patient', ['demographics_key'], unique=False)

    connection = op.get_bind()
    patients = connection.execute(sa.text('SELECT id, patient_name, birth_date, sex FROM patient')).all()
    for pk, name, birth_date, sex in patients:
        national_id = None
        studies = connection.execute(sa.text('SELECT id FROM study WHERE patient_pk = :pk'), {'pk': pk}).scalars()
        for study_pk in list(studies):
            first = connection.execute(
                sa.text(
                    'SELECT i.header_raw, i.transfer_syntax_uid, i.header_charset FROM instance i '
                    'JOIN series s ON s.id = i.series_pk WHERE s.study_pk = :study AND i.is_current '
                    'AND i.header_raw IS NOT NULL ORDER BY i.id LIMIT 1'
                ),
                {'study': study_pk},
            ).first()
            if first is not None:
                national_id = _national_id(bytes(first[0]), first[1], first[2])
            if national_id:
                break
        key = demographics_key(name, birth_date, sex)
        if national_id or key:
            connection.execute(
                sa.text('UPDATE patient SET national_id = :nid, demographics_key = :key WHERE id = :pk'),
                {'nid': national_id, 'key': key, 'pk': pk},
            )


def downgrade() -> None:
    op.drop_index(op.f('ix_patient_demographics_key'), table_name='patient')
    op.drop_index(op.f('ix_patient_national_id'), table_name='patient')
    with op.batch_alter_table('patient') as batch:
        batch.drop_column('demographics_key')
        batch.drop_column('national_id')
