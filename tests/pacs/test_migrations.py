"""The Alembic migrations build exactly the schema the models describe, on SQLite and on
PostgreSQL, and an index from an older revision keeps its rows when upgraded."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from sqlalchemy import bindparam, create_engine, inspect, select, text
from sqlalchemy.exc import IntegrityError

from pacs.headers import build_headers, instance_header
from pacs.index.db import make_engine, make_sessionmaker, transaction
from pacs.index.migrate import alembic_config, current, upgrade
from pacs.index.models import Base, Instance
from pacs.index.types import JSONDocument
from pacs.patients import NATIONAL_ID_ISSUER, check_character, demographics_key


def test_migrations_match_the_models(empty_database: str) -> None:
    upgrade(empty_database)
    engine = create_engine(empty_database)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert differences == [], "models and migrations differ: add an Alembic revision under pacs/index/migrations"


def test_rows_from_0001_survive_the_upgrade(empty_database: str) -> None:
    """Before 0002 the receiver stored the DICOM JSON header; such rows keep it and need no bytes."""
    upgrade(empty_database, "0001")
    header = {"00100010": {"vr": "PN", "Value": [{"Alphabetic": "王^小明"}]}}
    engine = create_engine(empty_database)
    with engine.begin() as connection:  # the 0001 schema, written as that code wrote it
        connection.execute(
            text(
                "INSERT INTO consortium (id, name, timezone, created_at) "
                "VALUES (1, 'C', 'Asia/Shanghai', CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO site (id, consortium_id, name, tier, created_at) "
                "VALUES (1, 1, 'Fudong', 'township', CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(text("INSERT INTO patient (id, site_id, patient_id) VALUES (1, 1, 'P1')"))
        connection.execute(
            text(
                "INSERT INTO study (id, study_uid, site_id, patient_pk, patient_id, modalities, num_series, "
                "num_instances, bytes, state, first_received_at, last_received_at) VALUES "
                "(1, '1.2.3', 1, 1, 'P1', 'CT', 1, 1, 10, 'stable', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text("INSERT INTO series (id, study_pk, series_uid, num_instances) VALUES (1, 1, '1.2.3.4', 1)")
        )
        connection.execute(
            text(
                "INSERT INTO instance (id, series_pk, sop_instance_uid, sop_class_uid, version, is_current, "
                "transfer_syntax_uid, object_key, size, dataset_offset, sha256, header_sha256, pixel_sha256, "
                "header, received_at) VALUES (1, 1, '1.2.3.4.5', '1.2.840.10008.5.1.4.1.1.2', 1, :true, "
                "'1.2.840.10008.1.2.1', 'instances/aa/bb/x.dcm', 10, 132, 'a', 'b', 'c', :header, CURRENT_TIMESTAMP)"
            ).bindparams(bindparam("header", header, type_=JSONDocument), true=True),
        )
    engine.dispose()  # before upgrading: PostgreSQL's ALTER TABLE waits for open connections

    upgrade(empty_database)
    assert current(empty_database) is not None
    engine = make_engine(empty_database)
    sessions = make_sessionmaker(engine)
    try:
        assert build_headers(sessions) == 0  # nothing to build: the old row has its JSON
        with transaction(sessions) as session:
            instance = session.scalars(select(Instance)).one()
        assert instance.header_raw is None
        assert instance_header(instance) == header
    finally:
        engine.dispose()


def test_0018_backfills_the_patient_identity_from_rows_and_kept_headers(empty_database: str) -> None:
    """Patients indexed before 0018 get their demographics key from their own row and their ID
    card number from the kept header of one of their instances (pacs/patients.py)."""
    card = "32098119550304262" + check_character("32098119550304262")
    header = Dataset()
    header.PatientID = "P1"
    item = Dataset()
    item.PatientID = card
    item.IssuerOfPatientID = NATIONAL_ID_ISSUER
    header.OtherPatientIDsSequence = [item]
    raw = DicomBytesIO()
    raw.is_little_endian, raw.is_implicit_VR = True, False
    write_dataset(raw, header)
    upgrade(empty_database, "0017")
    engine = create_engine(empty_database)
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO consortium (id, name, timezone, created_at) VALUES (1, 'C', 'UTC', CURRENT_TIMESTAMP)")
        )
        connection.execute(
            text(
                "INSERT INTO site (id, consortium_id, name, tier, created_at, return_report_image, held_for_manifest) "
                "VALUES (1, 1, 'Fudong', 'township', CURRENT_TIMESTAMP, :false, :false)"
            ).bindparams(false=False)
        )
        connection.execute(
            text(
                "INSERT INTO patient (id, site_id, patient_id, patient_name, birth_date, sex) VALUES "
                "(1, 1, 'P1', '王^桂英', '19550304', 'F'), (2, 1, 'P2', '李^四', NULL, 'M')"
            )
        )
        for pk in (1, 2):
            connection.execute(
                text(
                    "INSERT INTO study (id, study_uid, site_id, patient_pk, patient_id, modalities, num_series, "
                    "num_instances, bytes, state, first_received_at, last_received_at) VALUES "
                    f"({pk}, '1.2.{pk}', 1, {pk}, 'P{pk}', 'CT', 1, 1, 10, 'stable', CURRENT_TIMESTAMP, "
                    "CURRENT_TIMESTAMP)"
                )
            )
            connection.execute(
                text(
                    f"INSERT INTO series (id, study_pk, series_uid, num_instances) VALUES ({pk}, {pk}, '1.2.{pk}.1', 1)"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO instance (id, series_pk, sop_instance_uid, sop_class_uid, version, is_current, "
                    "transfer_syntax_uid, object_key, size, dataset_offset, sha256, header_sha256, pixel_sha256, "
                    f"header_raw, received_at) VALUES ({pk}, {pk}, '1.2.{pk}.1.1', '1.2.840.10008.5.1.4.1.1.2', 1, "
                    ":true, '1.2.840.10008.1.2.1', 'k', 10, 132, 'a', 'b', 'c', :raw, CURRENT_TIMESTAMP)"
                ).bindparams(true=True, raw=raw.getvalue() if pk == 1 else b""),
            )
    engine.dispose()

    upgrade(empty_database)
    engine = create_engine(empty_database)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id, national_id, demographics_key FROM patient ORDER BY id")).all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in rows] == [(1, card, demographics_key("王^桂英", "19550304", "F")), (2, None, None)]


def test_0019_adds_patient_links_with_their_rules_and_drops_them_on_downgrade(empty_database: str) -> None:
    """A reader's decision on a probable pair of patient rows (pacs/patient_links.py): one row per
    pair, the lower patient id first, confirmed or rejected; the database refuses anything else."""
    upgrade(empty_database, "0018")
    engine = create_engine(empty_database)
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO consortium (id, name, timezone, created_at) VALUES (1, 'C', 'UTC', CURRENT_TIMESTAMP)")
        )
        connection.execute(
            text(
                "INSERT INTO site (id, consortium_id, name, tier, created_at, return_report_image, held_for_manifest) "
                "VALUES (1, 1, 'Fudong', 'township', CURRENT_TIMESTAMP, :false, :false)"
            ).bindparams(false=False)
        )
        connection.execute(text("INSERT INTO patient (id, site_id, patient_id) VALUES (1, 1, 'P1'), (2, 1, 'P2')"))
    engine.dispose()

    upgrade(empty_database)
    insert = (
        "INSERT INTO patient_link (consortium_id, patient_low, patient_high, decision, decided_by, decided_at, reason) "
        "VALUES (1, :low, :high, :decision, 'sun', CURRENT_TIMESTAMP, NULL)"
    )
    engine = create_engine(empty_database)
    try:
        with engine.begin() as connection:
            connection.execute(text(insert), {"low": 1, "high": 2, "decision": "confirmed"})
        for low, high, decision in ((2, 1, "rejected"), (1, 2, "rejected"), (1, 1, "confirmed")):
            with pytest.raises(IntegrityError), engine.begin() as connection:
                connection.execute(text(insert), {"low": low, "high": high, "decision": decision})
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(text("UPDATE patient_link SET decision = 'maybe'"))
        with engine.connect() as connection:
            assert connection.execute(text("SELECT patient_low, patient_high, decision FROM patient_link")).all() == [
                (1, 2, "confirmed")
            ]
    finally:
        engine.dispose()

    command.downgrade(alembic_config(empty_database), "0018")
    assert current(empty_database) == "0018"
    engine = create_engine(empty_database)
    try:
        assert "patient_link" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
