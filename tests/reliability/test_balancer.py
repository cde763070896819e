"""Two receivers behind HAProxy in TCP mode with ``send-proxy-v2`` (issue G): associations from a
modality's own address reach both receivers and are admitted on that address — not HAProxy's —
so the site allow-list and the per-address cap still work; a caller HAProxy forwards from a
wrong address is refused; a balancer address that skips the header is refused."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom import dcmread
from pynetdicom import AE
from sqlalchemy import select

from pacs.dimse.receiver import Receiver
from pacs.identity.sites import add_site, add_site_ae
from pacs.index.db import transaction
from pacs.index.models import Instance
from tests.conftest import Fixture, free_port, wait_for
from tests.pacs.helpers import write_ct

pytestmark = pytest.mark.slow
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MODALITY = "127.0.0.5"  # the modality's own address: loopback, but not HAProxy's


@dataclass
class Balanced:
    first: Fixture
    second: Receiver
    port: int


def _haproxy_config(port: int, backends: list[int], folder: Path) -> Path:
    servers = "\n".join(f"    server r{i} 127.0.0.1:{p} send-proxy-v2" for i, p in enumerate(backends))
    config = folder / "haproxy.cfg"
    config.write_text(
        f"""global
    maxconn 256
defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
frontend dicom
    bind 127.0.0.1:{port}
    default_backend receivers
backend receivers
    balance roundrobin
{servers}
"""
    )
    return config


@pytest.fixture
def balanced(start_receiver: Callable[..., Fixture], tmp_path: Path) -> Iterator[Balanced]:
    if shutil.which("haproxy") is None:
        pytest.fail("haproxy is needed: apt-get install haproxy")
    first = start_receiver("sqlite-folder", dicom_proxy_from=["127.0.0.1"], max_associations_per_address=2)
    with transaction(first.services.sessions) as session:
        site = add_site(session, consortium="Dongtai", name="Anfeng", tier="township")
        add_site_ae(session, site=site, ae_title="ANFENG_CT", allowed_address=MODALITY)
    second = Receiver(first.services.settings, first.services.ingest, first.services.sessions)
    second.start()
    port = free_port()
    config = _haproxy_config(port, [first.port, second.port], tmp_path)
    log = tmp_path / "haproxy.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(["haproxy", "-f", str(config), "-db"], stdout=handle, stderr=subprocess.STDOUT)

    def listening() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"haproxy exited: {log.read_text()}")
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, timeout=10)
    try:
        yield Balanced(first, second, port)
    finally:
        process.terminate()
        process.wait(10)
        second.stop()


def _associate(port: int, *, calling: str, source: str) -> tuple[str, object]:
    client = AE(ae_title=calling)
    client.add_requested_context(CT_IMAGE_STORAGE)
    client.acse_timeout = client.network_timeout = 5
    assoc = client.associate("127.0.0.1", port, ae_title="YUNYING", bind_address=(source, 0))
    if assoc.is_established:
        return "established", assoc
    if assoc.dul.socket is not None and assoc.dul.socket.socket is not None:
        assoc.dul.socket.socket.close()  # FIELD-NOTES: pynetdicom leaves a refused socket open
    return ("rejected" if assoc.is_rejected else "refused"), assoc


def test_the_modalitys_own_address_passes_through_haproxy(balanced: Balanced, tmp_path: Path) -> None:
    files = write_ct(tmp_path / "ct", slices=4, seed=51, size=32, kind="head")
    for path in files:  # one association each: round robin over both receivers
        state, assoc = _associate(balanced.port, calling="ANFENG_CT", source=MODALITY)
        assert state == "established"
        status = assoc.send_c_store(dcmread(path))  # type: ignore[attr-defined]
        assert status.Status == 0
        assoc.release()  # type: ignore[attr-defined]
    with transaction(balanced.first.services.sessions) as session:
        sources = session.scalars(select(Instance.source_address)).all()
    assert sources == [MODALITY] * 4  # HAProxy's 127.0.0.1 never reaches the index
    assert balanced.first.receiver.scp._per_address == {} and balanced.second.scp._per_address == {}


def test_the_allow_list_and_the_cap_see_the_real_address(balanced: Balanced) -> None:
    # From another address the same AE title is refused, though HAProxy's address is allowed.
    assert _associate(balanced.port, calling="ANFENG_CT", source="127.0.0.6")[0] == "rejected"
    # The per-address cap (2 per receiver process) counts the modality, not HAProxy: of six
    # concurrent associations, round robin gives each receiver three and each refuses its third.
    held = [_associate(balanced.port, calling="ANFENG_CT", source=MODALITY) for _ in range(6)]
    assert sorted(state for state, _ in held) == ["established"] * 4 + ["rejected"] * 2
    assert balanced.first.receiver.scp._per_address == {MODALITY: 2}
    assert balanced.second.scp._per_address == {MODALITY: 2}
    for state, assoc in held:
        if state == "established":
            assoc.release()  # type: ignore[attr-defined]


def test_a_balancer_address_without_the_header_is_refused(balanced: Balanced) -> None:
    # A direct connection from the balancer's address must start with PROXY v2: it is closed.
    assert _associate(balanced.first.port, calling="FUDONG_CT", source="127.0.0.1")[0] == "refused"
