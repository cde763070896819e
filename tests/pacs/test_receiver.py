"""The receiver end to end: real associations on loopback, dcmtk storescu and pynetdicom as
senders, per-instance statuses checked, on SQLite + folder and on PostgreSQL + S3 (moto)."""

from __future__ import annotations

import copy
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from sqlalchemy import func, select

from pacs import events
from pacs.headers import instance_header
from pacs.index.db import transaction
from pacs.index.models import Alert, Instance, Quarantine, Study
from tests.conftest import Fixture, require, storescu
from tests.pacs.helpers import (
    all_instances,
    current_instances,
    file_dataset_sha256,
    small_ct,
    stored_dataset_sha256,
    write_ct,
    write_dx,
)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def pynetdicom_send(port: int, datasets: list[pydicom.Dataset], calling: str = "FUDONG_CT") -> list[int]:
    ae = AE(ae_title=calling)
    for ds in datasets:
        ae.add_requested_context(ds.SOPClassUID, [ExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", port, ae_title="YUNYING")
    assert assoc.is_established, "association not established"
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()


def test_ct_and_dx_arrive_identical(start_receiver, backend: str, data_cache: Path) -> None:
    require("storescu")
    fixture: Fixture = start_receiver(backend)
    ct = write_ct(data_cache / "ct100", slices=100, seed=100)
    dx = write_dx(data_cache / "dx", seed=7)

    ok, failed, output = storescu(fixture.port, ct, calling="FUDONG_CT")
    assert (ok, failed) == (100, 0), output[-2000:]
    ok, failed, output = storescu(fixture.port, dx, calling="FUDONG_DR")
    assert (ok, failed) == (1, 0), output[-2000:]

    stored = {instance.sop_instance_uid: instance for instance in current_instances(fixture.services)}
    assert len(stored) == 101
    for path in [*ct, dx]:
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        assert stored_dataset_sha256(fixture.services, stored[uid]) == file_dataset_sha256(path), path
    # The DICOM JSON header, built from the kept header bytes, is pydicom's own reading of the file.
    for path in [ct[0], ct[57], dx]:
        sent = pydicom.dcmread(path, stop_before_pixels=True)
        expected = sent.to_json_dict(bulk_data_threshold=4096, bulk_data_element_handler=lambda e: f"bulk:{e.tag:08X}")
        assert instance_header(stored[str(sent.SOPInstanceUID)]) == expected, path
    with transaction(fixture.services.sessions) as session:
        studies = {s.modalities: s for s in session.scalars(select(Study))}
    assert studies["CT"].num_instances == 100 and studies["CT"].num_series == 1
    assert studies["DX"].num_instances == 1
    assert len(fixture.changes(events.STUDY_RECEIVED)) == 2
    assert len(fixture.changes(events.INSTANCE_STORED)) == 101


def test_resend_is_stored_once(start_receiver, backend: str) -> None:
    fixture: Fixture = start_receiver(backend)
    ds = small_ct(seed=11)
    assert pynetdicom_send(fixture.port, [ds]) == [0]
    assert pynetdicom_send(fixture.port, [ds, ds]) == [0, 0]
    instances = all_instances(fixture.services, ds.SOPInstanceUID)
    assert len(instances) == 1
    assert len(list(fixture.services.store.list("instances"))) == 1
    assert len(fixture.changes(events.INSTANCE_STORED)) == 1
    assert len(fixture.changes(events.INSTANCE_DUPLICATE)) == 2
    with transaction(fixture.services.sessions) as session:
        assert session.scalar(select(Study.num_instances)) == 1


def test_header_corrected_resend_becomes_new_version(start_receiver, backend: str) -> None:
    fixture: Fixture = start_receiver(backend)
    first = small_ct(seed=12)
    corrected = copy.deepcopy(first)
    corrected.PatientName = "张^三丰"
    corrected.SpecificCharacterSet = "ISO_IR 192"
    assert pynetdicom_send(fixture.port, [first]) == [0]
    assert pynetdicom_send(fixture.port, [corrected]) == [0]

    versions = all_instances(fixture.services, first.SOPInstanceUID)
    assert [(v.version, v.is_current) for v in versions] == [(1, False), (2, True)]
    assert versions[0].pixel_sha256 == versions[1].pixel_sha256
    assert versions[0].header_sha256 != versions[1].header_sha256
    for version in versions:  # the old one is kept, not overwritten
        assert fixture.services.store.exists(version.object_key)
    assert instance_header(versions[1])["00100010"]["Value"][0]["Alphabetic"] == "张^三丰"
    with transaction(fixture.services.sessions) as session:
        alerts = list(session.scalars(select(Alert)))
        assert session.scalar(select(Study.num_instances)) == 1
    assert [a.kind for a in alerts] == [events.INSTANCE_NEW_VERSION]
    assert alerts[0].site_id == fixture.site_id
    assert len(fixture.changes(events.INSTANCE_NEW_VERSION)) == 1


def test_pixel_conflicting_resend_is_quarantined(start_receiver, backend: str) -> None:
    fixture: Fixture = start_receiver(backend)
    first = small_ct(seed=13)
    other = copy.deepcopy(first)
    pixels = bytearray(other.PixelData)
    pixels[100] ^= 0xFF
    other.PixelData = bytes(pixels)
    assert pynetdicom_send(fixture.port, [first]) == [0]
    assert pynetdicom_send(fixture.port, [other]) == [0]  # Success, so the modality stops retrying

    instances = all_instances(fixture.services, first.SOPInstanceUID)
    assert len(instances) == 1 and instances[0].is_current
    kept = pydicom.dcmread(pydicom.filebase.DicomBytesIO(fixture.services.store.get(instances[0].object_key)))
    assert kept.PixelData == first.PixelData
    with transaction(fixture.services.sessions) as session:
        quarantined = list(session.scalars(select(Quarantine)))
        alerts = list(session.scalars(select(Alert)))
    assert [q.reason_code for q in quarantined] == ["pixel-conflict"]
    assert quarantined[0].sop_instance_uid == first.SOPInstanceUID
    second = pydicom.dcmread(pydicom.filebase.DicomBytesIO(fixture.services.store.get(quarantined[0].object_key)))
    assert second.PixelData == other.PixelData
    assert [a.kind for a in alerts] == [events.INSTANCE_QUARANTINED]
    assert alerts[0].site_id == fixture.site_id


def _gbk_undeclared(seed: int) -> pydicom.Dataset:
    ds = small_ct(seed=seed)
    if "SpecificCharacterSet" in ds:
        del ds.SpecificCharacterSet
    ds.PatientName = "王^小明".encode("gbk")
    ds.InstitutionName = "富东卫生院".encode("gbk")
    return ds


def test_gbk_name_without_charset_uses_site_ae_charset(start_receiver) -> None:
    fixture: Fixture = start_receiver()
    # FUDONG_CT is configured to assume GB18030 (a superset of GBK); FUDONG_DR assumes nothing.
    assert pynetdicom_send(fixture.port, [_gbk_undeclared(21)], calling="FUDONG_CT") == [0]
    assert pynetdicom_send(fixture.port, [_gbk_undeclared(22)], calling="FUDONG_DR") == [0]
    with transaction(fixture.services.sessions) as session:
        names = {s.study_uid: s.patient_name for s in session.scalars(select(Study))}
    decoded = [name for name in names.values() if name == "王^小明"]
    assert len(decoded) == 1, names
    # Without an assumed charset the bytes are read as the default repertoire: not the name.
    assert sum(1 for name in names.values() if name != "王^小明") == 1
    # The stored bytes are those received: no (0008,0005) was added to the object.
    instance = next(
        i
        for i in current_instances(fixture.services)
        if instance_header(i)["00100010"]["Value"][0]["Alphabetic"] == "王^小明"
    )
    stored = pydicom.dcmread(pydicom.filebase.DicomBytesIO(fixture.services.store.get(instance.object_key)))
    assert "SpecificCharacterSet" not in stored
    assert stored["PatientName"].value.original_string == "王^小明".encode("gbk") or bytes(
        stored["PatientName"].value.original_string
    ) == "王^小明".encode("gbk")


def test_unknown_calling_ae_is_rejected_with_reason(start_receiver, data_cache: Path) -> None:
    require("storescu")
    fixture: Fixture = start_receiver()
    ct = write_ct(data_cache / "ct3", slices=3, seed=3, size=64)
    ok, _failed, output = storescu(fixture.port, ct, calling="STRANGER")
    assert ok == 0
    assert "Association Rejected" in output
    assert "Calling AE Title Not Recognized" in output
    assert current_instances(fixture.services) == []
    rejected = fixture.changes(events.ASSOCIATION_REJECTED)
    assert rejected and rejected[-1].payload["calling_ae"] == "STRANGER"


def _part10(
    path: Path, dataset_bytes: bytes, sop_instance_uid: str, transfer_syntax: str = ExplicitVRLittleEndian
) -> Path:
    """A file with valid file meta and the given raw data set bytes (sent as they are)."""
    meta = pydicom.dataset.FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = transfer_syntax
    buffer = pydicom.filebase.DicomBytesIO()
    buffer.write(b"\x00" * 128 + b"DICM")
    pydicom.filewriter.write_file_meta_info(buffer, meta)
    path.write_bytes(buffer.getvalue() + dataset_bytes)
    return path


def _encoded(ds: pydicom.Dataset) -> bytes:
    buffer = pydicom.filebase.DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    pydicom.filewriter.write_dataset(buffer, ds)
    return buffer.getvalue()


def malformed_files(folder: Path) -> dict[str, tuple[Path, int]]:
    """Each malformed case, with the status the conformance statement promises."""
    folder.mkdir(parents=True, exist_ok=True)
    cases: dict[str, tuple[Path, int]] = {}
    base = small_ct(seed=31)

    uid = "1.2.826.0.1.3680043.8.498.1"
    cases["unparsable"] = (_part10(folder / "unparsable.dcm", b"\x08\x00\x16\x00UI\xff\x00" + b"\x01\x02", uid), 0xC000)

    ds = copy.deepcopy(base)
    del ds.StudyInstanceUID
    cases["missing-study-uid"] = (_part10(folder / "missing.dcm", _encoded(ds), ds.SOPInstanceUID), 0xC001)

    ds = copy.deepcopy(base)
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.2"
    ds.SeriesInstanceUID = "1.2.abc.4"
    cases["invalid-uid"] = (_part10(folder / "invalid.dcm", _encoded(ds), ds.SOPInstanceUID), 0xC002)

    ds = copy.deepcopy(base)
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.3"
    ds.StudyInstanceUID = "1.2." + "1234567890" * 7  # 74 characters
    cases["too-long-uid"] = (_part10(folder / "long.dcm", _encoded(ds), ds.SOPInstanceUID), 0xC002)

    ds = copy.deepcopy(base)
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.4"
    ds.PixelData = bytes(ds.PixelData)[:1000]
    cases["pixel-data-short"] = (_part10(folder / "short.dcm", _encoded(ds), ds.SOPInstanceUID), 0xC004)

    ds = copy.deepcopy(base)
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.6"
    ds.StudyDescription = "头颅CT平扫"
    study_description = b"\x08\x00\x30\x10LO"  # (0008,1030) LO, explicit VR little endian
    encoded = _encoded(ds)
    assert encoded.count(study_description) == 1
    # Found by the fuzz test (tests/reliability/test_fuzz.py): pydicom reads such an element and
    # raises only when its value is asked for, which ingest did for the index.
    no_vr = encoded.replace(study_description, b"\x08\x00\x30\x10L\xb0")
    cases["unknown-vr"] = (_part10(folder / "unknown-vr.dcm", no_vr, ds.SOPInstanceUID), 0xC000)

    ds = copy.deepcopy(base)
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.5"
    cases["truncated"] = (_part10(folder / "truncated.dcm", _encoded(ds)[:-500], ds.SOPInstanceUID), 0xC003)
    return cases


def test_malformed_instances_fail_at_once_and_are_quarantined(start_receiver, chunked_send, tmp_path: Path) -> None:
    fixture: Fixture = start_receiver()
    cases = malformed_files(tmp_path / "bad")
    good_before, good_after = small_ct(seed=41), small_ct(seed=42)
    good_files = [
        _part10(tmp_path / "good1.dcm", _encoded(good_before), good_before.SOPInstanceUID),
        _part10(tmp_path / "good2.dcm", _encoded(good_after), good_after.SOPInstanceUID),
    ]
    ae = AE(ae_title="FUDONG_CT")
    ae.add_requested_context(CT_IMAGE_STORAGE, [ExplicitVRLittleEndian])
    ae.dimse_timeout = 5  # a receiver that never answers would fail the test here
    assoc = ae.associate("127.0.0.1", fixture.port, ae_title="YUNYING")
    assert assoc.is_established
    statuses = {"good-before": int(assoc.send_c_store(good_files[0]).Status)}
    for name, (path, _) in cases.items():
        response = assoc.send_c_store(path)
        assert "Status" in response, f"{name}: no response"
        statuses[name] = int(response.Status)
        assert assoc.is_established, f"{name}: association lost"
    statuses["good-after"] = int(assoc.send_c_store(good_files[1]).Status)
    assoc.release()

    expected = {name: status for name, (_, status) in cases.items()} | {"good-before": 0, "good-after": 0}
    assert {k: hex(v) for k, v in statuses.items()} == {k: hex(v) for k, v in expected.items()}
    stored = {i.sop_instance_uid for i in current_instances(fixture.services)}
    assert stored == {good_before.SOPInstanceUID, good_after.SOPInstanceUID}
    with transaction(fixture.services.sessions) as session:
        quarantined = list(session.scalars(select(Quarantine).order_by(Quarantine.id)))
    assert len(quarantined) == len(cases)
    for row, (path, _) in zip(quarantined, cases.values(), strict=True):
        assert row.calling_ae == "FUDONG_CT" and row.source_address == "127.0.0.1"
        # The exact received bytes are kept for inspection (file meta rebuilt by the receiver).
        offset = pydicom_meta_end(fixture.services.store.get(row.object_key))
        assert (
            fixture.services.store.get(row.object_key)[offset:]
            == path.read_bytes()[pydicom_meta_end(path.read_bytes()) :]
        )
    assert len(fixture.changes(events.INSTANCE_QUARANTINED)) == len(cases)


def pydicom_meta_end(data: bytes) -> int:
    import tempfile

    from pacs.part10 import file_meta_end

    with tempfile.NamedTemporaryFile() as handle:
        handle.write(data)
        handle.flush()
        offset = file_meta_end(Path(handle.name))
    assert offset is not None
    return offset


def test_index_counts_match_rows(start_receiver) -> None:
    """Study and series counters agree with the instance rows after mixed traffic."""
    fixture: Fixture = start_receiver()
    series = [small_ct(seed=s) for s in (51, 52)]
    same_study = copy.deepcopy(series[1])
    same_study.StudyInstanceUID = series[0].StudyInstanceUID
    same_study.SOPInstanceUID = pydicom.uid.generate_uid()
    assert pynetdicom_send(fixture.port, [series[0], same_study, series[0]]) == [0, 0, 0]
    with transaction(fixture.services.sessions) as session:
        study = session.scalar(select(Study).where(Study.study_uid == series[0].StudyInstanceUID))
        assert study is not None
        rows = session.scalar(select(func.count()).select_from(Instance).where(Instance.is_current.is_(True)))
    assert (study.num_instances, study.num_series, rows) == (2, 2, 2)


@pytest.mark.parametrize("calling", ["FUDONG_CT"])
def test_c_echo(start_receiver, calling: str) -> None:
    fixture: Fixture = start_receiver()
    ae = AE(ae_title=calling)
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", fixture.port, ae_title="YUNYING")
    assert assoc.is_established
    assert int(assoc.send_c_echo().Status) == 0
    assoc.release()


@pytest.mark.parametrize(
    ("syntax", "flag"), [("jpeg-ls-lossless", "-xt"), ("jpeg2000-lossless", "-xv"), ("rle", "-xr")]
)
def test_compressed_series_stored_as_received(start_receiver, tmp_path: Path, syntax: str, flag: str) -> None:
    """No transcoding: the stored data set is the compressed one the modality sent."""
    require("storescu")
    from datasets import synthetic

    fixture: Fixture = start_receiver()
    series = [synthetic.compress(ds, syntax) for ds in synthetic.ct_series("head", 3, seed=90, rows=128, cols=128)]
    files = synthetic.write_series(series, tmp_path / syntax)
    # As a modality configured for lossless compression: propose that syntax (dcmtk would
    # otherwise decompress on the way).
    ok, failed, output = storescu(fixture.port, files, extra=[flag, "-R"])
    assert (ok, failed) == (3, 0), output[-2000:]
    stored = {i.sop_instance_uid: i for i in current_instances(fixture.services)}
    for path, ds in zip(files, series, strict=True):
        instance = stored[str(ds.SOPInstanceUID)]
        assert instance.transfer_syntax_uid == str(ds.file_meta.TransferSyntaxUID)
        assert stored_dataset_sha256(fixture.services, instance) == file_dataset_sha256(path)


def test_hierarchy_contradictions_are_quarantined_not_retried(start_receiver) -> None:
    """A series or instance UID already indexed under another parent is a permanent error:
    a failure status (not 0xA700, which would make the modality retry for ever), quarantined."""
    fixture: Fixture = start_receiver()
    first = small_ct(seed=95)
    other_study = copy.deepcopy(first)
    other_study.StudyInstanceUID = pydicom.uid.generate_uid()
    other_study.SOPInstanceUID = pydicom.uid.generate_uid()  # same series UID, another study
    moved = copy.deepcopy(first)
    moved.SeriesInstanceUID = pydicom.uid.generate_uid()  # same SOP instance, another series
    assert pynetdicom_send(fixture.port, [first, other_study, moved]) == [0, 0xC006, 0xC007]
    with transaction(fixture.services.sessions) as session:
        codes = [q.reason_code for q in session.scalars(select(Quarantine).order_by(Quarantine.id))]
    assert codes == ["series-conflict", "instance-moved"]
    assert [i.sop_instance_uid for i in current_instances(fixture.services)] == [first.SOPInstanceUID]
