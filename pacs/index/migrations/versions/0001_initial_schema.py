"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 12:50:05.307113
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import pacs.index.types

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    
    op.create_table('changes',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('at', pacs.index.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('study_uid', sa.String(length=128), nullable=True),
    sa.Column('site_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=128), nullable=True),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_changes_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_changes_site_id'), ['site_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_changes_study_uid'), ['study_uid'], unique=False)

    op.create_table('consortium',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('created_at', pacs.index.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('job',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('lease_owner', sa.String(length=128), nullable=True),
    sa.Column('lease_expires_at', pacs.index.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('next_run_at', pacs.index.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', pacs.index.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', pacs.index.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.create_index('ix_job_take', ['kind', 'state', 'next_run_at'], unique=False)

    op.create_table('site',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('consortium_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('tier', sa.String(length=16), nullable=False),
    sa.Column('contact', sa.String(length=200), nullable=True),
    sa.Column('return_ae_title', sa.String(length=16), nullable=True),
    sa.Column('return_host', sa.String(length=255), nullable=True),
    sa.Column('return_port', sa.Integer(), nullable=True),
    sa.Column('created_at', pacs.index.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['consortium_id'], ['consortium.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('consortium_id', 'name')
    )
    op.create_table('alert',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=True),
    sa.Column('study_uid', sa.String(length=128), nullable=True),
    sa.Column('sop_instance_uid', sa.String(length=128), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('created_at', pacs.index.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('acknowledged_at', pacs.index.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_alert_site_id'), ['site_id'], unique=False)

    op.create_table('patient',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('patient_name', sa.String(length=320), nullable=True),
    sa.Column('birth_date', sa.String(length=8), nullable=True),
    sa.Column('sex', sa.String(length=16), nullable=True),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('site_id', 'patient_id')
    )
    op.create_table('quarantine',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reason_code', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=True),
    sa.Column('calling_ae', sa.String(length=16), nullable=True),
    sa.Column('source_address', sa.String(length=64), nullable=True),
    sa.Column('sop_instance_uid', sa.String(length=128), nullable=True),
    sa.Column('study_uid', sa.String(length=128), nullable=True),
    sa.Column('object_key', sa.String(length=200), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('received_at', pacs.index.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quarantine_object_key'), ['object_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_quarantine_reason_code'), ['reason_code'], unique=False)

    op.create_table('site_ae',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('ae_title', sa.String(length=16), nullable=False),
    sa.Column('allowed_address', sa.String(length=64), nullable=False),
    sa.Column('assumed_charset', sa.String(length=64), nullable=True),
    sa.Column('description', sa.String(length=200), nullable=True),
    sa.Column('created_at', pacs.index.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ae_title', 'allowed_address')
    )
    with op.batch_alter_table('site_ae', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_site_ae_ae_title'), ['ae_title'], unique=False)

    op.create_table('study',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_uid', sa.String(length=64), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('patient_pk', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=True),
    sa.Column('patient_name', sa.String(length=320), nullable=True),
    sa.Column('study_date', sa.String(length=8), nullable=True),
    sa.Column('study_time', sa.String(length=32), nullable=True),
    sa.Column('accession_number', sa.String(length=64), nullable=True),
    sa.Column('study_id', sa.String(length=16), nullable=True),
    sa.Column('study_description', sa.String(length=200), nullable=True),
    sa.Column('referring_physician', sa.String(length=320), nullable=True),
    sa.Column('modalities', sa.String(length=64), nullable=False),
    sa.Column('body_part', sa.String(length=64), nullable=True),
    sa.Column('num_series', sa.Integer(), nullable=False),
    sa.Column('num_instances', sa.Integer(), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('first_received_at', pacs.index.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_received_at', pacs.index.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('stable_at', pacs.index.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['patient_pk'], ['patient.id'], ),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('study_uid')
    )
    with op.batch_alter_table('study', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_study_accession_number'), ['accession_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_study_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_study_patient_name'), ['patient_name'], unique=False)
        batch_op.create_index(batch_op.f('ix_study_patient_pk'), ['patient_pk'], unique=False)
        batch_op.create_index(batch_op.f('ix_study_site_id'), ['site_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_study_state'), ['state'], unique=False)
        batch_op.create_index('ix_study_state_last', ['state', 'last_received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_study_study_date'), ['study_date'], unique=False)

    op.create_table('series',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_pk', sa.Integer(), nullable=False),
    sa.Column('series_uid', sa.String(length=64), nullable=False),
    sa.Column('modality', sa.String(length=16), nullable=True),
    sa.Column('series_number', sa.Integer(), nullable=True),
    sa.Column('series_description', sa.String(length=200), nullable=True),
    sa.Column('body_part', sa.String(length=64), nullable=True),
    sa.Column('num_instances', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['study_pk'], ['study.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('series_uid')
    )
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_series_modality'), ['modality'], unique=False)
        batch_op.create_index(batch_op.f('ix_series_study_pk'), ['study_pk'], unique=False)

    op.create_table('instance',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('series_pk', sa.Integer(), nullable=False),
    sa.Column('sop_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('sop_class_uid', sa.String(length=64), nullable=False),
    sa.Column('instance_number', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('is_current', sa.Boolean(), nullable=False),
    sa.Column('transfer_syntax_uid', sa.String(length=64), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=True),
    sa.Column('columns', sa.Integer(), nullable=True),
    sa.Column('number_of_frames', sa.Integer(), nullable=True),
    sa.Column('object_key', sa.String(length=200), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('dataset_offset', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('header_sha256', sa.String(length=64), nullable=False),
    sa.Column('pixel_sha256', sa.String(length=64), nullable=False),
    sa.Column('header', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('calling_ae', sa.String(length=16), nullable=True),
    sa.Column('source_address', sa.String(length=64), nullable=True),
    sa.Column('received_at', pacs.index.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['series_pk'], ['series.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sop_instance_uid', 'version')
    )
    with op.batch_alter_table('instance', schema=None) as batch_op:
        batch_op.create_index('ix_instance_current', ['sop_instance_uid', 'is_current'], unique=False)
        batch_op.create_index(batch_op.f('ix_instance_object_key'), ['object_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_instance_series_pk'), ['series_pk'], unique=False)

    


def downgrade() -> None:
    
    with op.batch_alter_table('instance', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_instance_series_pk'))
        batch_op.drop_index(batch_op.f('ix_instance_object_key'))
        batch_op.drop_index('ix_instance_current')

    op.drop_table('instance')
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_series_study_pk'))
        batch_op.drop_index(batch_op.f('ix_series_modality'))

    op.drop_table('series')
    with op.batch_alter_table('study', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_study_study_date'))
        batch_op.drop_index('ix_study_state_last')
        batch_op.drop_index(batch_op.f('ix_study_state'))
        batch_op.drop_index(batch_op.f('ix_study_site_id'))
        batch_op.drop_index(batch_op.f('ix_study_patient_pk'))
        batch_op.drop_index(batch_op.f('ix_study_patient_name'))
        batch_op.drop_index(batch_op.f('ix_study_patient_id'))
        batch_op.drop_index(batch_op.f('ix_study_accession_number'))

    op.drop_table('study')
    with op.batch_alter_table('site_ae', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_site_ae_ae_title'))

    op.drop_table('site_ae')
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quarantine_reason_code'))
        batch_op.drop_index(batch_op.f('ix_quarantine_object_key'))

    op.drop_table('quarantine')
    op.drop_table('patient')
    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_site_id'))
        batch_op.drop_index(batch_op.f('ix_alert_kind'))

    op.drop_table('alert')
    op.drop_table('site')
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index('ix_job_take')

    op.drop_table('job')
    op.drop_table('consortium')
    with op.batch_alter_table('changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_changes_study_uid'))
        batch_op.drop_index(batch_op.f('ix_changes_site_id'))
        batch_op.drop_index(batch_op.f('ix_changes_kind'))

    op.drop_table('changes')
    
