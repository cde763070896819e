"""Lossless compression in transit: the edge sends JPEG-LS Lossless copies that decode to what
the modality sent, falls back to the stored bytes whenever it cannot (or the centre will not),
and the centre takes a lossless copy for the same instance — not for a conflicting one."""

from __future__ import annotations

import hashlib
import io
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLSLossless
from pynetdicom import AE, evt
from sqlalchemy import select

from pacs.edge.compression import Compressed, Kept, compress_for_transit
from pacs.index.db import transaction
from pacs.index.models import Quarantine
from pacs.part10 import file_meta_end
from tests.conftest import free_port, storescu, wait_for
from tests.pacs.edge.conftest import EDGE_AE, MODALITY_AE, Centre, EdgeProcess
from tests.pacs.edge.test_forward import stable, study_of
from tests.pacs.helpers import file_dataset_sha256, write_ct

AS_STORED = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}


def variant(source: Path, folder: Path, name: str, *, syntax: str = ExplicitVRLittleEndian, **changes: int) -> Path:
    """A new instance of ``source``'s series (new SOP Instance UID), written in ``syntax``; with
    ``BitsStored`` etc. changed and, when ``pixel`` is given, one pixel set to that value."""
    ds = pydicom.dcmread(source)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.InstanceNumber = 90 + len(list(folder.glob("*.dcm")))
    pixel = changes.pop("pixel", None)
    if pixel is not None:
        array = ds.pixel_array.copy()
        array[3, 3] = pixel
        ds.PixelData = array.tobytes()
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    ds.file_meta.TransferSyntaxUID = syntax
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.dcm"
    ds.save_as(path, implicit_vr=syntax == ImplicitVRLittleEndian, little_endian=True, enforce_file_format=True)
    return path


def retrieved(centre: Centre, path: Path) -> pydicom.Dataset:
    """The instance as WADO-RS gives it back as stored, read as a Part-10 file."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    response = httpx.get(
        f"{centre.url}/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}",
        headers={**AS_STORED, "Authorization": f"Bearer {centre.tokens['li']}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text[:300]
    boundary = response.headers["content-type"].split("boundary=")[1].split(";")[0].strip('"').encode()
    part = response.content.split(b"--" + boundary)[1]
    return pydicom.dcmread(io.BytesIO(part.partition(b"\r\n\r\n")[2][:-2]))


def test_with_compression_on_a_ct_goes_as_jpeg_ls_decodes_identical_and_the_manifest_holds(
    centre: Centre, make_edge: Callable[..., EdgeProcess], data_cache: Path, tmp_path: Path
) -> None:
    edge = make_edge(centre, transit_compression="jpeg-ls")
    files = write_ct(data_cache / "edge-compress-4", slices=4, seed=52, size=128)
    # In the same study: one the edge may not compress (Implicit VR: its header would have to be
    # re-encoded), one the encoder refuses (a value beyond Bits Stored: JPEG-LS would cut it).
    implicit = variant(files[0], tmp_path / "odd", "implicit", syntax=ImplicitVRLittleEndian)
    beyond = variant(files[1], tmp_path / "odd", "beyond", BitsStored=12, HighBit=11, pixel=3000)
    sent = [*files, implicit, beyond]
    assert storescu(edge.port, sent, calling=MODALITY_AE, called=EDGE_AE)[:2] == (6, 0)
    study_uid = study_of(files)

    wait_for(lambda: stable(centre, study_uid), timeout=40, interval=0.2)
    held = {i.sop_instance_uid: i for i in centre.instances(study_uid)}
    assert len(held) == 6 and all(i.version == 1 for i in held.values())
    for path in sent:
        instance = held[str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)]
        original = pydicom.dcmread(path)
        back = retrieved(centre, path)
        assert np.array_equal(back.pixel_array, original.pixel_array)
        assert instance.content_digest == file_dataset_sha256(path)  # what the manifest lists
        if path in files:
            assert instance.transfer_syntax_uid == JPEGLSLossless == back.file_meta.TransferSyntaxUID
            assert instance.size < 0.6 * path.stat().st_size
        else:  # sent as stored, byte for byte
            assert instance.transfer_syntax_uid == original.file_meta.TransferSyntaxUID
            assert instance.sha256 == file_dataset_sha256(path) and instance.content_sha256 is None
    kinds = [c.kind for c in centre.changes(study_uid)]
    assert kinds.index("study.manifest_satisfied") < kinds.index("study.stable")
    assert kinds.count("instance.stored") == 6 and "instance.quarantined" not in kinds

    status = wait_for(lambda: (s := edge.study(study_uid)) and s["state"] == "acknowledged" and s, timeout=20)
    assert (status["acknowledged"], status["manifest"]) == (6, "confirmed")
    log = edge.log.read_text()
    assert "stored as Implicit VR Little Endian" in log
    assert "does not decode to the stored bytes" in log
    # Fewer bytes crossed the line than the data sets hold.
    assert edge.proxies[0].bytes_up < 0.7 * sum(p.stat().st_size for p in sent)


def test_over_stow_the_compressed_copy_goes_as_a_jpeg_ls_part10_file(
    centre: Centre, make_edge: Callable[..., EdgeProcess], data_cache: Path
) -> None:
    edge = make_edge(centre, transport="stow", transit_compression="jpeg-ls")
    files = write_ct(data_cache / "edge-compress-4", slices=4, seed=52, size=128)
    study_uid = study_of(files)
    assert storescu(edge.port, files, calling=MODALITY_AE, called=EDGE_AE)[0] == 4
    wait_for(lambda: stable(centre, study_uid), timeout=40, interval=0.2)
    held = centre.instances(study_uid)
    assert {i.transfer_syntax_uid for i in held} == {JPEGLSLossless}
    assert sorted(i.content_digest for i in held) == sorted(file_dataset_sha256(f) for f in files)
    assert edge.proxies[0].connections_made == 0
    for path in files:
        assert np.array_equal(retrieved(centre, path).pixel_array, pydicom.dcmread(path).pixel_array)


@pytest.fixture
def plain_receiver() -> Iterator[tuple[int, list[tuple[str, bytes]]]]:
    """A third-party Storage SCP that takes CT only in Explicit VR Little Endian (an older
    centre): answers (port, [(transfer syntax, data set bytes) received])."""
    received: list[tuple[str, bytes]] = []
    lock = threading.Lock()

    def on_store(event: evt.Event) -> int:
        # The centre in this process turned on pynetdicom's chunked receive: the data set is a
        # Part-10 temp file.
        path = Path(event.dataset_path)
        data = path.read_bytes()[file_meta_end(path) or 0 :]
        with lock:
            received.append((str(event.context.transfer_syntax), data))
        return 0x0000

    ae = AE(ae_title="YUNYING")
    ae.add_supported_context(CTImageStorage, [ExplicitVRLittleEndian])
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        yield port, received
    finally:
        server.shutdown()


def test_a_centre_that_refuses_jpeg_ls_gets_the_stored_bytes(
    centre: Centre,
    make_edge: Callable[..., EdgeProcess],
    data_cache: Path,
    plain_receiver: tuple[int, list[tuple[str, bytes]]],
) -> None:
    port, received = plain_receiver
    edge = make_edge(centre, transit_compression="jpeg-ls", centre_port=port)
    files = write_ct(data_cache / "edge-compress-4", slices=4, seed=52, size=128)
    assert storescu(edge.port, files, calling=MODALITY_AE, called=EDGE_AE)[0] == 4
    wait_for(lambda: len(received) == 4, timeout=30, interval=0.2)
    assert {syntax for syntax, _ in received} == {ExplicitVRLittleEndian}
    assert sorted(hashlib.sha256(data).hexdigest() for _, data in received) == sorted(
        file_dataset_sha256(f) for f in files
    )
    assert "accepted no JPEG-LS Lossless context" in edge.log.read_text()


# ---------------------------------------------------------------- the centre's side


def compressed(path: Path, folder: Path) -> Path:
    copy = compress_for_transit(path.read_bytes())
    assert isinstance(copy, Compressed), copy
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{path.stem}-jls.dcm"
    target.write_bytes(copy.part10)
    return target


def stow(centre: Centre, path: Path) -> int:
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + path.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = httpx.post(
        f"{centre.url}/dicomweb/studies/{pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID}",
        content=body,
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Authorization": f"Bearer {centre.tokens['fudong-edge']}",
        },
        timeout=30,
    )
    return response.status_code


def c_store_file(centre: Centre, path: Path) -> int:
    """pynetdicom C-STORE of the file's data set bytes as they are, in the file's syntax."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    ae = AE(ae_title=EDGE_AE)
    ae.add_requested_context(ds.SOPClassUID, [ds.file_meta.TransferSyntaxUID])
    assoc = ae.associate("127.0.0.1", centre.dicom_port, ae_title=centre.services.settings.ae_title)
    assert assoc.is_established
    try:
        return int(assoc.send_c_store(path).Status)
    finally:
        assoc.release()


def quarantined(centre: Centre, study_uid: str) -> list[str]:
    with transaction(centre.services.sessions, read_only=True) as session:
        return list(session.scalars(select(Quarantine.reason_code).where(Quarantine.study_uid == study_uid)))


def test_the_centre_takes_a_lossless_copy_for_the_same_instance_but_other_pixels_stay_a_conflict(
    centre: Centre, data_cache: Path, tmp_path: Path
) -> None:
    first, second = write_ct(data_cache / "edge-compress-4", slices=4, seed=52, size=128)[:2]
    study_uid = study_of([first])
    called = centre.services.settings.ae_title

    # Native first (storescu), then its JPEG-LS copy by storescu and by STOW: one instance, the first copy.
    assert storescu(centre.dicom_port, first, calling=EDGE_AE, called=called)[:2] == (1, 0)
    copy = compressed(first, tmp_path / "jls")
    done = storescu(centre.dicom_port, copy, calling=EDGE_AE, called=called, extra=["-xt"])
    assert done[:2] == (1, 0), done[2]
    assert stow(centre, copy) == 200
    # The JPEG-LS copy first (pynetdicom), then the native one by STOW: the copy stays.
    assert c_store_file(centre, compressed(second, tmp_path / "jls")) == 0x0000
    assert stow(centre, second) == 200

    held = {i.sop_instance_uid: i for i in centre.instances(study_uid)}
    assert len(held) == 2 and all(i.version == 1 for i in held.values())
    one = held[str(pydicom.dcmread(first, stop_before_pixels=True).SOPInstanceUID)]
    two = held[str(pydicom.dcmread(second, stop_before_pixels=True).SOPInstanceUID)]
    assert one.transfer_syntax_uid == ExplicitVRLittleEndian and one.sha256 == file_dataset_sha256(first)
    assert two.transfer_syntax_uid == JPEGLSLossless and two.content_digest == file_dataset_sha256(second)
    duplicates = centre.changes(study_uid, kind="instance.duplicate")
    assert [c.payload.get("lossless_copy_in") for c in duplicates] == [
        JPEGLSLossless,
        JPEGLSLossless,
        ExplicitVRLittleEndian,
    ]
    assert quarantined(centre, study_uid) == []

    # Same UID, other pixels, compressed: the conflicting duplicate it always was, by either protocol.
    changed = tmp_path / "changed"
    other = variant(first, changed, "other", pixel=1234)
    ds = pydicom.dcmread(other)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = one.sop_instance_uid
    ds.InstanceNumber = pydicom.dcmread(first, stop_before_pixels=True).InstanceNumber
    ds.save_as(other, enforce_file_format=True)
    other_copy = compressed(other, changed)
    assert storescu(centre.dicom_port, other_copy, calling=EDGE_AE, called=called, extra=["-xt"])[:2] == (1, 0)
    assert stow(centre, other_copy) == 409
    assert quarantined(centre, study_uid) == ["pixel-conflict", "pixel-conflict"]
    after = {i.sop_instance_uid: i for i in centre.instances(study_uid)}
    assert len(after) == 2 and after[one.sop_instance_uid].sha256 == one.sha256


def test_what_cannot_be_compressed_exactly_is_kept_with_the_reason(data_cache: Path, tmp_path: Path) -> None:
    (path,) = write_ct(data_cache / "edge-compress-4", slices=4, seed=52, size=128)[:1]
    copy = compress_for_transit(path.read_bytes())
    assert isinstance(copy, Compressed)
    assert copy.dataset != path.read_bytes()[file_meta_end(path) or 0 :]
    cases = {
        "stored as Implicit VR Little Endian": variant(path, tmp_path, "i", syntax=ImplicitVRLittleEndian),
        # pyjpegls encodes a value beyond Bits Stored without complaint, cutting its high bits:
        # only the decode check finds out.
        "does not decode to the stored bytes": variant(path, tmp_path, "b", BitsStored=12, HighBit=11, pixel=3000),
    }
    for reason, case in cases.items():
        kept = compress_for_transit(case.read_bytes())
        assert isinstance(kept, Kept) and reason in kept.reason, kept
    truncated = path.read_bytes()[:-1000]
    assert isinstance(compress_for_transit(truncated), Kept)
    assert isinstance(compress_for_transit(b"not dicom at all" * 20), Kept)
