"""The object store or the database unavailable: 0xA700 within seconds, nothing half-visible,
and Success again once it is back (PS3.4 B.2.3: A700 = Refused, Out of Resources)."""

from __future__ import annotations

import time

import pytest

from pacs.settings import StorageBackend
from tests.conftest import Fixture
from tests.pacs.helpers import all_instances, small_ct
from tests.pacs.test_receiver import pynetdicom_send
from tests.tcp_proxy import TcpProxy


@pytest.mark.postgres
@pytest.mark.timeout(60)
def test_store_frozen_answers_out_of_resources_then_recovers(start_receiver, moto_server) -> None:
    fixture: Fixture = start_receiver("postgres-s3")
    assert fixture.settings.storage_backend is StorageBackend.S3
    assert pynetdicom_send(fixture.port, [small_ct(seed=71)]) == [0]
    during = small_ct(seed=72)
    moto_server.freeze()
    try:
        started = time.monotonic()
        assert pynetdicom_send(fixture.port, [during]) == [0xA700]
        elapsed = time.monotonic() - started
    finally:
        moto_server.thaw()
    assert elapsed < 8, f"0xA700 took {elapsed:.1f} s"
    assert all_instances(fixture.services, during.SOPInstanceUID) == []  # nothing half-visible
    assert pynetdicom_send(fixture.port, [during]) == [0]
    assert len(all_instances(fixture.services, during.SOPInstanceUID)) == 1


@pytest.mark.postgres
@pytest.mark.timeout(60)
def test_database_cut_answers_out_of_resources_then_recovers(start_receiver, pg_database: str) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(pg_database)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432)).start()
    try:
        fixture: Fixture = start_receiver(
            "postgres-s3", database_url=str(url.set(port=proxy.port).render_as_string(hide_password=False))
        )
        assert pynetdicom_send(fixture.port, [small_ct(seed=73)]) == [0]
        during = small_ct(seed=74)
        proxy.cut()
        started = time.monotonic()
        assert pynetdicom_send(fixture.port, [during]) == [0xA700]
        assert time.monotonic() - started < 8
        # Nothing of it is in the store either: the ingest removed the object it had written.
        proxy.restore()
        assert all_instances(fixture.services, during.SOPInstanceUID) == []
        keys = {info.key for info in fixture.services.store.list("instances")}
        assert len(keys) == 1
        assert pynetdicom_send(fixture.port, [during]) == [0]
        assert len(all_instances(fixture.services, during.SOPInstanceUID)) == 1
    finally:
        proxy.close()
