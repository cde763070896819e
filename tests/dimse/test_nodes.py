"""DICOM nodes: ``yunying node add|list|remove`` as an administrator uses it, and what a node's
flags allow on the running receiver (no query, no retrieve, not a move destination)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from pacs.identity.nodes import add_node
from pacs.identity.sites import IdentityError
from pacs.index.db import transaction
from tests.conftest import receiver_env, yunying
from tests.dimse.conftest import QR
from tests.pacs.helpers import small_ct
from tests.pacs.test_receiver import pynetdicom_send


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = {**receiver_env(tmp_path / "var"), "COLUMNS": "200"}
    yunying("db", "upgrade", env=env)
    yunying("site", "add", "Fudong Health Centre", "--tier", "township", "--consortium", "Dongtai", env=env)
    return env


def test_node_commands(env: dict[str, str]) -> None:
    assert "--consortium" in yunying("node", "add", "--help", env=env).stdout
    assert "remove" in yunying("node", "--help", env=env).stdout
    yunying(
        "node",
        "add",
        "COUNTY_WS",
        "--host",
        "10.1.0.20",
        "--port",
        "11112",
        "--address",
        "10.1.0.0/24",
        "--consortium",
        "Dongtai",
        "--no-destination",
        env=env,
    )
    yunying(
        "node",
        "add",
        "FUDONG_PACS",
        "--host",
        "10.2.0.15",
        "--port",
        "104",
        "--address",
        "10.2.0.15",
        "--site",
        "Fudong Health Centre",
        env=env,
    )
    listed = yunying("node", "list", env=env).stdout
    assert "COUNTY_WS" in listed and "consortium Dongtai" in listed and "10.1.0.20:11112" in listed
    assert "FUDONG_PACS" in listed and "site Fudong Health Centre" in listed
    again = yunying(
        "node", "add", "FUDONG_PACS", "--host", "h", "--port", "104", "--address", "10.2.0.15", "--site",
        "Fudong Health Centre", env=env, check=False,
    )  # fmt: skip
    assert again.returncode == 1 and "exists already" in again.stderr
    both = yunying(
        "node", "add", "X", "--host", "h", "--port", "104", "--address", "10.2.0.1", "--site",
        "Fudong Health Centre", "--consortium", "Dongtai", env=env, check=False,
    )  # fmt: skip
    assert both.returncode == 1 and "exactly one scope" in both.stderr
    bad = yunying(
        "node", "add", "Y", "--host", "h", "--port", "104", "--address", "10.2.0.300", "--consortium", "Dongtai",
        env=env, check=False,
    )  # fmt: skip
    assert bad.returncode == 1 and "not an IP address" in bad.stderr
    yunying("node", "remove", "COUNTY_WS", env=env)
    assert "COUNTY_WS" not in yunying("node", "list", env=env).stdout
    gone = yunying("node", "remove", "COUNTY_WS", env=env, check=False)
    assert gone.returncode == 1 and "no node" in gone.stderr


def _associate(qr: QR, calling: str) -> object:
    ae = AE(ae_title=calling)
    for sop_class in (
        StudyRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelMove,
        StudyRootQueryRetrieveInformationModelGet,
    ):
        ae.add_requested_context(sop_class)
    assoc = ae.associate("127.0.0.1", qr.port, ae_title="YUNYING")
    assert assoc.is_established
    return assoc


def test_node_flags_are_enforced(qr: QR, storescp: Callable[..., Path]) -> None:
    # pynetdicom reports a C-MOVE refusal only once associated with the destination: it runs.
    storescp()
    with transaction(qr.fixture.services.sessions) as session:
        add_node(
            session,
            ae_title="VIEW_ONLY",
            host="127.0.0.1",
            port=qr.destination_port,
            allowed_address="127.0.0.1",
            consortium="Dongtai",
            may_retrieve=False,
            is_move_destination=False,
        )
        add_node(
            session,
            ae_title="MOVE_ONLY",
            host="127.0.0.1",
            port=qr.destination_port,
            allowed_address="127.0.0.1",
            consortium="Dongtai",
            may_query=False,
        )
        with pytest.raises(IdentityError, match="exactly one scope"):
            add_node(session, ae_title="NONE", host="h", port=1, allowed_address="10.0.0.1")
    study = Dataset()
    study.QueryRetrieveLevel = "STUDY"
    study.StudyInstanceUID = qr.studies["fudong_chinese"][0].StudyInstanceUID
    viewer = _associate(qr, "VIEW_ONLY")
    try:
        answers = list(viewer.send_c_find(study, StudyRootQueryRetrieveInformationModelFind))  # type: ignore[attr-defined]
        assert [int(s.Status) for s, _ in answers] == [0xFF00, 0x0000]
        move = list(viewer.send_c_move(study, "COUNTY_PACS", StudyRootQueryRetrieveInformationModelMove))  # type: ignore[attr-defined]
        assert int(move[-1][0].Status) == 0x0124  # Refused: Not Authorized
        get = list(viewer.send_c_get(study, StudyRootQueryRetrieveInformationModelGet))  # type: ignore[attr-defined]
        assert int(get[-1][0].Status) == 0x0124
    finally:
        viewer.release()  # type: ignore[attr-defined]
    mover = _associate(qr, "MOVE_ONLY")
    try:
        answers = list(mover.send_c_find(study, StudyRootQueryRetrieveInformationModelFind))  # type: ignore[attr-defined]
        assert [int(s.Status) for s, _ in answers] == [0x0124]
        # VIEW_ONLY is configured, but not as a move destination.
        move = list(mover.send_c_move(study, "VIEW_ONLY", StudyRootQueryRetrieveInformationModelMove))  # type: ignore[attr-defined]
        assert int(move[-1][0].Status) == 0xA801
        # A node queries and retrieves; it does not store.
        assert pynetdicom_send(qr.port, [small_ct(seed=77)], calling="MOVE_ONLY") == [0x0124]
    finally:
        mover.release()  # type: ignore[attr-defined]
