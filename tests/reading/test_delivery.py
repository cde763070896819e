"""Delivery of signed reports to the site's return destination by C-STORE: a dcmtk
``storescp`` plays the township's PACS; a destination that is down, and one that answers a
failure status, leave the delivery pending with every attempt and its error recorded."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE, AllStoragePresentationContexts, evt
from sqlalchemy import select

from pacs.index.db import transaction
from pacs.index.models import Site
from reading.delivery import DeliveryWorker
from reading.models import Delivery, DeliveryAttempt
from reading.settings import ReadingSettings
from tests.conftest import free_port, require, wait_for
from tests.reading.world import World, sign_study

SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR
PDF_CLASS = "1.2.840.10008.5.1.4.1.1.104.1"  # Encapsulated PDF
IMAGE_CLASS = "1.2.840.10008.5.1.4.1.1.7.2"  # Multi-frame Grayscale Byte Secondary Capture


def sr_texts(dataset: pydicom.Dataset) -> list[str]:
    """Every TEXT value of an SR content tree, depth first."""
    found = []
    for item in dataset.get("ContentSequence", []):
        if "TextValue" in item:
            found.append(str(item.TextValue))
        found += sr_texts(item)
    return found


def point_site_at(world: World, port: int, ae_title: str = "FUDONG_PACS", *, image: bool = False) -> None:
    with transaction(world.services.sessions) as session:
        site = session.get_one(Site, world.township_id)
        site.return_ae_title, site.return_host, site.return_port = ae_title, "127.0.0.1", port
        site.return_report_image = image


def storescp(port: int, folder: Path) -> subprocess.Popen[bytes]:
    require("storescp")
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        ["storescp", "-aet", "FUDONG_PACS", "-od", str(folder), "+xa", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import socket

    def listening() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, timeout=10)
    return process


@pytest.fixture
def worker_for() -> Iterator[Callable[[World], DeliveryWorker]]:
    def build(world: World) -> DeliveryWorker:
        settings = ReadingSettings(delivery_retry_s=30, delivery_timeout_s=3)
        return DeliveryWorker(world.services.sessions, settings, name="test-worker")

    yield build


def attempts(world: World) -> list[DeliveryAttempt]:
    with transaction(world.services.sessions) as session:
        return list(session.scalars(select(DeliveryAttempt).order_by(DeliveryAttempt.id)))


def delivery(world: World) -> Delivery:
    with transaction(world.services.sessions) as session:
        return session.scalars(select(Delivery)).one()


def test_a_site_that_is_down_gets_its_report_when_it_comes_back(
    make_world: Callable[..., World], worker_for: Callable[[World], DeliveryWorker], tmp_path: Path
) -> None:
    world = make_world()
    port = free_port()
    point_site_at(world, port, image=True)  # a small township PACS: the report as an image too
    sign_study(world, world.ready_study(), critical=True)
    worker = worker_for(world)
    assert worker.deliver_one()
    down = delivery(world)
    assert (down.state, down.attempts) == ("pending", 1)
    assert "FUDONG_PACS@127.0.0.1" in (down.last_error or "")
    assert down.next_attempt_at > attempts(world)[0].at + timedelta(seconds=29)
    assert not worker.deliver_one()  # not due yet: the backoff holds
    received = tmp_path / "township-pacs"
    process = storescp(port, received)
    try:
        assert worker.deliver_one(now=down.next_attempt_at + timedelta(seconds=1))
    finally:
        process.terminate()
        process.wait(timeout=10)
    done = delivery(world)
    assert (done.state, done.attempts, done.last_error) == ("delivered", 2, None)
    assert [a.outcome for a in attempts(world)] == ["failed", "delivered"]
    objects = [pydicom.dcmread(path) for path in sorted(received.iterdir())]
    assert sorted(str(ds.SOPClassUID) for ds in objects) == sorted([SR_CLASS, PDF_CLASS, IMAGE_CLASS])
    sr = next(ds for ds in objects if ds.SOPClassUID == SR_CLASS)
    assert sr.SpecificCharacterSet == "ISO_IR 192"
    assert "左侧基底节区脑出血（急性期）。" in sr_texts(sr)


def test_a_failure_status_is_not_delivered(
    make_world: Callable[..., World], worker_for: Callable[[World], DeliveryWorker]
) -> None:
    world = make_world()
    ae = AE(ae_title="FUDONG_PACS")
    ae.supported_contexts = AllStoragePresentationContexts
    ae.add_supported_context(PDF_CLASS)
    stored: list[str] = []

    def out_of_resources(event: evt.Event) -> int:
        stored.append(str(event.request.AffectedSOPInstanceUID))
        return 0xA700 if len(stored) == 2 else 0x0000  # the SR is stored, the PDF is refused

    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, out_of_resources)])
    try:
        point_site_at(world, port)
        sign_study(world, world.ready_study())
        assert worker_for(world).deliver_one()
    finally:
        server.shutdown()
    failed = delivery(world)
    assert failed.state == "pending" and "0xA700" in (failed.last_error or "")
    assert len(stored) == 2
    assert sorted(attempts(world)[0].statuses.values()) == [0, 0xA700]
    assert attempts(world)[0].error == failed.last_error  # the attempt keeps its reason too


def test_a_site_without_a_return_destination_pulls_and_acknowledges(make_world: Callable[..., World]) -> None:
    world = make_world()
    with transaction(world.services.sessions) as session:
        site = session.get_one(Site, world.township_id)
        site.return_ae_title = site.return_host = None
        site.return_port = None
    sign_study(world, world.ready_study())
    assert delivery(world).state == "awaiting_pull"
    from reading.delivery import acknowledge_pull
    from reading.errors import NotFound

    with pytest.raises(NotFound), transaction(world.services.sessions) as session:
        acknowledge_pull(session, delivery(world).id, site_id=world.county_site_id, by="other", now=world.now())
    with transaction(world.services.sessions) as session:
        acknowledge_pull(session, delivery(world).id, site_id=world.township_id, by="fudong", now=world.now())
    assert delivery(world).state == "delivered"
