"""C-MOVE (dcmtk movescu to a dcmtk storescp) and C-GET (dcmtk getscu) on the running
receiver: the data set bytes that arrive are the bytes stored, every level, both models,
destinations and scope, transfer syntax fallback, partial failure counts, bad identifiers and
one access record per study — on SQLite + folder and PostgreSQL + S3."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelMove,
)
from sqlalchemy import select

from pacs.audit_chain import accesses
from pacs.index.db import transaction
from pacs.index.models import AccessRecord, Instance
from tests.dimse.conftest import QR, data_set_bytes


def _stored(qr: QR) -> dict[str, bytes]:
    """SOP instance UID → the data set bytes as stored."""
    services = qr.fixture.services
    with transaction(services.sessions) as session:
        instances = session.scalars(select(Instance).where(Instance.is_current.is_(True))).all()
    return {i.sop_instance_uid: services.store.get(i.object_key)[i.dataset_offset :] for i in instances}


def _received(folder: Path) -> dict[str, Path]:
    return {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in folder.iterdir()}


def _move(
    qr: QR, identifier: Dataset, destination: str, *, calling: str = "FUDONG_CT", model: str = "study"
) -> list[Dataset]:
    """Every response status of a C-MOVE sent with pynetdicom (for the exact status and counts)."""
    sop_class = StudyRootQueryRetrieveInformationModelMove if model == "study" else None
    sop_class = sop_class or PatientRootQueryRetrieveInformationModelMove
    ae = AE(ae_title=calling)
    ae.add_requested_context(sop_class)
    assoc = ae.associate("127.0.0.1", qr.port, ae_title="YUNYING")
    assert assoc.is_established
    try:
        return [status for status, _ in assoc.send_c_move(identifier, destination, sop_class)]
    finally:
        assoc.release()


def _study(uid: str) -> Dataset:
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = uid
    return identifier


def test_move_sends_the_stored_bytes(qr: QR, storescp: Callable[..., Path]) -> None:
    folder = storescp()
    chinese = qr.studies["fudong_chinese"]
    result = qr.run(
        "movescu",
        "-S",
        "-aem",
        "COUNTY_PACS",
        keys={"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": chinese[0].StudyInstanceUID},
    )
    assert result.ok, result.output[-2000:]
    assert result.output.count("Received Move Response") == 3  # one pending response per sub-operation
    received, stored = _received(folder), _stored(qr)
    assert set(received) == {ds.SOPInstanceUID for ds in chinese}
    for uid, path in received.items():
        assert data_set_bytes(path) == stored[uid], uid
    with transaction(qr.fixture.services.sessions) as session:
        records = session.scalars(select(AccessRecord).where(accesses())).all()
    assert [(r.username, r.action, r.study_uid, r.outcome) for r in records] == [
        ("ae:FUDONG_CT", "retrieve", chinese[0].StudyInstanceUID, "success")
    ]
    assert records[0].detail == {
        "service": "C-MOVE",
        "destination": "COUNTY_PACS",
        "completed": 3,
        "warning": 0,
        "failed": 0,
    }


def test_move_at_every_level_of_both_models(qr: QR, storescp: Callable[..., Path]) -> None:
    folder = storescp()
    chinese, latin = qr.studies["fudong_chinese"], qr.studies["fudong_latin"][0]
    cases = [
        ("-P", {"QueryRetrieveLevel": "PATIENT", "PatientID": latin.PatientID}, {latin.SOPInstanceUID}),
        ("-S", {"QueryRetrieveLevel": "SERIES", "SeriesInstanceUID": latin.SeriesInstanceUID}, {latin.SOPInstanceUID}),
        (
            "-S",
            {
                "QueryRetrieveLevel": "IMAGE",
                "StudyInstanceUID": chinese[0].StudyInstanceUID,
                "SeriesInstanceUID": chinese[0].SeriesInstanceUID,
                "SOPInstanceUID": chinese[1].SOPInstanceUID,
            },
            {chinese[1].SOPInstanceUID},
        ),
    ]
    for model, keys, expected in cases:
        for path in folder.iterdir():
            path.unlink()
        result = qr.run("movescu", model, "-aem", "FUDONG_PACS", keys=keys)
        assert result.ok, (keys, result.output[-2000:])
        assert set(_received(folder)) == expected, keys


def test_unknown_destination_and_bad_identifiers(qr: QR, storescp: Callable[..., Path]) -> None:
    folder = storescp()
    uid = qr.studies["fudong_chinese"][0].StudyInstanceUID
    assert int(_move(qr, _study(uid), "NOWHERE")[-1].Status) == 0xA801
    no_level = Dataset()
    no_level.StudyInstanceUID = uid
    final = _move(qr, no_level, "COUNTY_PACS")[-1]
    assert final.Status == 0xA900 and "QueryRetrieveLevel" in final.ErrorComment
    no_key = Dataset()
    no_key.QueryRetrieveLevel = "SERIES"
    final = _move(qr, no_key, "COUNTY_PACS")[-1]
    assert final.Status == 0xA900 and "SeriesInstanceUID" in final.ErrorComment
    assert list(folder.iterdir()) == []


def test_move_stays_within_both_scopes(qr: QR, storescp: Callable[..., Path]) -> None:
    """A site AE cannot move another site's study; nor send its own to a destination that may
    not see it (Anfeng's study to Fudong's PACS)."""
    folder = storescp()
    anfeng = qr.studies["anfeng"][0].StudyInstanceUID
    for calling, destination in (("FUDONG_CT", "COUNTY_PACS"), ("ANFENG_CT", "FUDONG_PACS")):
        final = _move(qr, _study(anfeng), destination, calling=calling)[-1]
        assert final.Status == 0x0000 and final.NumberOfCompletedSuboperations == 0, (calling, destination)
    assert list(folder.iterdir()) == []
    final = _move(qr, _study(anfeng), "COUNTY_PACS", calling="ANFENG_CT")[-1]
    assert final.Status == 0x0000 and final.NumberOfCompletedSuboperations == 1
    assert set(_received(folder)) == {qr.studies["anfeng"][0].SOPInstanceUID}


def test_partial_failure_is_counted(qr: QR, storescp: Callable[..., Path]) -> None:
    """An object missing from the store fails its sub-operation; the others are sent and the
    final status is 0xB000 with the counts and the failed UID."""
    storescp()
    chinese = qr.studies["fudong_chinese"]
    services = qr.fixture.services
    with transaction(services.sessions) as session:
        lost = session.scalars(select(Instance).where(Instance.sop_instance_uid == chinese[0].SOPInstanceUID)).one()
    services.store.delete(lost.object_key)
    responses = _move(qr, _study(chinese[0].StudyInstanceUID), "COUNTY_PACS")
    final = responses[-1]
    assert [int(r.Status) for r in responses[:-1]] == [0xFF00] * 3
    assert final.Status == 0xB000
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (2, 1)
    with transaction(services.sessions) as session:
        record = session.scalars(select(AccessRecord).where(accesses())).one()
    assert record.outcome == "error" and (record.detail["completed"], record.detail["failed"]) == (2, 1)


def test_move_falls_back_to_an_uncompressed_syntax(qr: QR, storescp: Callable[..., Path]) -> None:
    """A destination that accepts Implicit VR Little Endian only gets the Explicit VR instance
    re-encoded (same elements), not a failure."""
    folder = storescp("+xi")
    latin = qr.studies["fudong_latin"][0]
    final = _move(qr, _study(latin.StudyInstanceUID), "COUNTY_PACS")[-1]
    assert final.Status == 0x0000 and final.NumberOfCompletedSuboperations == 1
    arrived = pydicom.dcmread(next(folder.iterdir()))
    assert arrived.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert arrived.PixelData == latin.PixelData and str(arrived.PatientName) == "ZHANG^SAN=张^三"


def test_get_returns_the_stored_bytes_within_scope(qr: QR) -> None:
    chinese = qr.studies["fudong_chinese"]
    keys = {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": chinese[0].StudyInstanceUID}
    result = qr.run("getscu", "-S", keys=keys, out="get-fudong")
    assert "Number of Completed Suboperations : 3" in result.output, result.output[-2000:]
    received, stored = _received(qr.tmp / "get-fudong"), _stored(qr)
    assert set(received) == {ds.SOPInstanceUID for ds in chinese}
    for uid, path in received.items():
        assert data_set_bytes(path) == stored[uid], uid
    # Patient Root, IMAGE level.
    image = {
        "QueryRetrieveLevel": "IMAGE",
        "PatientID": chinese[0].PatientID,
        "StudyInstanceUID": chinese[0].StudyInstanceUID,
        "SeriesInstanceUID": chinese[0].SeriesInstanceUID,
        "SOPInstanceUID": chinese[2].SOPInstanceUID,
    }
    result = qr.run("getscu", "-P", keys=image, out="get-image")
    assert set(_received(qr.tmp / "get-image")) == {chinese[2].SOPInstanceUID}, result.output[-2000:]
    # Another site's AE gets nothing, exactly as for a UID that does not exist.
    result = qr.run("getscu", "-S", keys=keys, calling="ANFENG_CT", out="get-anfeng")
    assert "Number of Completed Suboperations : 0" in result.output
    assert list((qr.tmp / "get-anfeng").iterdir()) == []
    with transaction(qr.fixture.services.sessions) as session:
        records = session.scalars(select(AccessRecord).where(accesses()).order_by(AccessRecord.id)).all()
    assert [(r.username, r.action, r.detail["service"], r.detail["completed"]) for r in records] == [
        ("ae:FUDONG_CT", "retrieve", "C-GET", 3),
        ("ae:FUDONG_CT", "retrieve", "C-GET", 1),
    ]
