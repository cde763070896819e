"""WADO-RS over real HTTP on studies that arrived by C-STORE: instances byte for byte, metadata
from the index, frames as stored and decoded (checked against independent reference decodes:
dcmtk's decoders, or the uncompressed original of a lossless file), rendered images, bulk
data, scope, bad input and the once-per-study access audit."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import imagecodecs
import numpy as np
import openjpeg
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.encaps import get_frame
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from sqlalchemy import select

from pacs.audit_chain import accesses
from pacs.index.db import transaction
from pacs.index.models import AccessRecord, Instance
from pacs.render import Window, apply_window
from tests.dicomweb.conftest import Web, served
from tests.pacs.helpers import small_ct
from tests.pacs.test_receiver import pynetdicom_send
from viewer.app import create_app

EXPLICIT = "1.2.840.10008.1.2.1"
OCTET = "application/octet-stream"
OCTET_PARTS = {"Accept": f"multipart/related; type={OCTET}"}
OCTET_AS_STORED = {"Accept": f'multipart/related; type="{OCTET}"; transfer-syntax=*'}


def parts(response: httpx.Response) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart/related answer (a deliberately plain parser, for checking)."""
    assert response.status_code == 200, response.text[:500]
    content_type = response.headers["content-type"]
    assert content_type.startswith("multipart/related"), content_type
    boundary = content_type.split("boundary=")[1].split(";")[0].strip('"').encode()
    body = response.content
    assert body.endswith(b"--" + boundary + b"--\r\n")
    found = []
    for chunk in body.split(b"--" + boundary)[1:-1]:
        head, _, data = chunk[2:].partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        assert data.endswith(b"\r\n")
        found.append(({k.lower(): v for k, v in headers.items()}, data[:-2]))
    return found


def send_as_is(port: int, datasets: list[pydicom.Dataset], calling: str = "FUDONG_CT") -> list[int]:
    """C-STORE each data set in its own transfer syntax (compressed ones stay compressed)."""
    ae = AE(ae_title=calling)
    for ds in datasets:
        ae.add_requested_context(ds.SOPClassUID, [ds.file_meta.TransferSyntaxUID])
    assoc = ae.associate("127.0.0.1", port, ae_title="YUNYING")
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()


def corpus_file(name: str, study_uid: str) -> pydicom.Dataset:
    """A file of pydicom's corpus under fresh UIDs (several share one SOP Instance UID)."""
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID = "CORPUS"
    return ds


def path_of(ds: pydicom.Dataset) -> str:
    return f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def stored_bytes(web: Web, sop_uid: str) -> bytes:
    with transaction(web.fixture.services.sessions) as session:
        key = session.scalar(
            select(Instance.object_key).where(Instance.sop_instance_uid == sop_uid, Instance.is_current.is_(True))
        )
    assert key is not None
    return web.fixture.services.store.get(key)


def dcmtk_reference(tool: str, source: pydicom.Dataset, tmp_path: Path) -> np.ndarray:
    """Pixels as decoded by dcmtk (``dcmdjpeg``, ``dcmdjpls``, ``dcmdrle``): a second decoder."""
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is needed: apt-get install dcmtk")
    original, decoded = tmp_path / f"{tool}-in.dcm", tmp_path / f"{tool}-out.dcm"
    source.save_as(original, enforce_file_format=True)
    subprocess.run([tool, str(original), str(decoded)], check=True, capture_output=True)
    return pydicom.dcmread(decoded).pixel_array


def native(frame: bytes, like: np.ndarray) -> np.ndarray:
    return np.frombuffer(frame, dtype=like.dtype.newbyteorder("<")).reshape(like.shape)


# --------------------------------------------------------------------------- instances


def test_study_series_and_instance_retrieval_is_byte_for_byte(web: Web) -> None:
    chinese = web.studies["fudong_chinese"]
    study = f"/studies/{chinese.StudyInstanceUID}"
    as_stored = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}
    got = parts(web.get(study, headers=as_stored))
    assert len(got) == 3
    for headers, data in got:
        sop = headers["content-location"].rsplit("/", 1)[1]
        assert data == stored_bytes(web, sop)
        assert headers["content-type"] == f"application/dicom; transfer-syntax={EXPLICIT}"
    series = parts(web.get(f"{study}/series/{chinese.SeriesInstanceUID}", headers=as_stored))
    assert [h["content-location"] for h, _ in series] == [h["content-location"] for h, _ in got]
    one = parts(web.get(path_of(chinese), headers=as_stored))
    assert len(one) == 1 and one[0][1] == stored_bytes(web, chinese.SOPInstanceUID)
    # The third-party client, with its default Accept, reads the same data sets.
    datasets = web.client("admin").retrieve_study(chinese.StudyInstanceUID)
    locations = [headers["content-location"] for headers, _ in got]
    assert sorted(ds.SOPInstanceUID for ds in datasets) == sorted(url.rsplit("/", 1)[1] for url in locations)
    assert {str(ds.PatientName) for ds in datasets} == {"王^小明"}


def test_compressed_objects_default_to_explicit_little_endian(web: Web) -> None:
    study = generate_uid()
    jpeg_ls = corpus_file("MR_small_jpeg_ls_lossless.dcm", study)
    assert send_as_is(web.fixture.port, [jpeg_ls]) == [0]
    reference = pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array
    default = {"Accept": 'multipart/related; type="application/dicom"'}
    ((headers, data),) = parts(web.get(path_of(jpeg_ls), headers=default))
    assert headers["content-type"] == f"application/dicom; transfer-syntax={EXPLICIT}"
    decoded = pydicom.dcmread(io.BytesIO(data))
    assert decoded.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert np.array_equal(decoded.pixel_array, reference)
    # Asked for as stored, it stays JPEG-LS, byte for byte.
    ((headers, data),) = parts(
        web.get(path_of(jpeg_ls), headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
    )
    assert headers["content-type"].endswith("transfer-syntax=1.2.840.10008.1.2.4.80")
    assert data == stored_bytes(web, jpeg_ls.SOPInstanceUID)
    # A syntax we cannot produce is refused, naming what we can.
    refused = web.get(
        path_of(jpeg_ls),
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'},
    )
    assert refused.status_code == 406 and "transfer-syntax=*" in refused.json()["detail"]


# --------------------------------------------------------------------------- metadata


def test_metadata_comes_from_the_index_with_bulk_data_urls(web: Web) -> None:
    chinese = web.studies["fudong_chinese"]
    client = web.client("fudong")
    series = client.retrieve_series_metadata(chinese.StudyInstanceUID, chinese.SeriesInstanceUID)
    assert len(series) == 3
    study = client.retrieve_study_metadata(chinese.StudyInstanceUID)
    assert sorted(json.dumps(m, sort_keys=True) for m in study) == sorted(json.dumps(m, sort_keys=True) for m in series)
    instance = client.retrieve_instance_metadata(
        chinese.StudyInstanceUID, chinese.SeriesInstanceUID, chinese.SOPInstanceUID
    )
    assert instance["00100010"]["Value"][0]["Alphabetic"] == "王^小明"
    assert instance["00083002"]["Value"] == [EXPLICIT]
    # Every other attribute is pydicom's own reading of the stored object.
    sent = pydicom.dcmread(io.BytesIO(stored_bytes(web, chinese.SOPInstanceUID)), stop_before_pixels=True)
    expected = sent.to_json_dict(bulk_data_threshold=4096, bulk_data_element_handler=lambda e: "x")
    for tag, element in expected.items():
        assert tag in instance, tag
        if "BulkDataURI" not in element:
            assert instance[tag] == element, tag
    pixel_url = instance["7FE00010"]["BulkDataURI"]
    assert pixel_url.endswith(f"{path_of(chinese)}/bulkdata/7FE00010")
    ((_, data),) = parts(web.get(pixel_url.split("/dicomweb", 1)[1], headers=OCTET_PARTS))
    assert data == chinese.PixelData


def test_bulk_data_references_resolve(web: Web) -> None:
    study = generate_uid()
    with_lut = small_ct(seed=301)
    with_lut.StudyInstanceUID = study
    with_lut.SeriesInstanceUID = generate_uid()
    with_lut.SOPInstanceUID = generate_uid()
    with_lut.EncapsulatedDocument = bytes(range(256)) * 40  # 10 kB: a bulk data element
    assert pynetdicom_send(web.fixture.port, [with_lut]) == [0]
    meta = web.client("admin").retrieve_instance_metadata(study, with_lut.SeriesInstanceUID, with_lut.SOPInstanceUID)
    url = meta["00420011"]["BulkDataURI"]
    assert url.endswith("/bulkdata/00420011")
    ((_, data),) = parts(web.get(url.split("/dicomweb", 1)[1], headers=OCTET_PARTS))
    assert data == bytes(range(256)) * 40
    missing = web.get(f"{path_of(with_lut)}/bulkdata/00420012")
    assert missing.status_code == 404 and "00420012" in missing.json()["detail"]
    assert web.get(f"{path_of(with_lut)}/bulkdata/xyz").status_code == 400


# --------------------------------------------------------------------------- frames


def test_native_frames_are_ranged_reads_of_the_stored_pixels(web: Web) -> None:
    study = generate_uid()
    multiframe = corpus_file("emri_small.dcm", study)  # 10 frames, Explicit VR Little Endian
    assert send_as_is(web.fixture.port, [multiframe]) == [0]
    reference = multiframe.pixel_array
    frames = web.client("admin").retrieve_instance_frames(
        study,
        multiframe.SeriesInstanceUID,
        multiframe.SOPInstanceUID,
        [2, 5, 10],
        media_types=(("application/octet-stream", "*"),),
    )
    for got, number in zip(frames, [2, 5, 10], strict=True):
        assert np.array_equal(native(got, reference[number - 1]), reference[number - 1])
    too_far = web.get(f"{path_of(multiframe)}/frames/11")
    assert too_far.status_code == 404 and "10 frame(s)" in too_far.json()["detail"]
    for bad in ("0", "a", "1,,2", "-1"):
        response = web.get(f"{path_of(multiframe)}/frames/{bad}")
        assert response.status_code == 400 and "frame numbers" in response.json()["detail"], bad


@pytest.mark.parametrize(
    ("name", "syntax", "reference"),
    [
        ("MR_small_RLE.dcm", "1.2.840.10008.1.2.5", "original"),
        ("MR_small_jpeg_ls_lossless.dcm", "1.2.840.10008.1.2.4.80", "original"),
        ("MR_small_jp2klossless.dcm", "1.2.840.10008.1.2.4.90", "original"),
        ("JPGLosslessP14SV1_1s_1f_8b.dcm", "1.2.840.10008.1.2.4.70", "dcmdjpeg"),
        ("SC_rgb_jpeg_dcmtk.dcm", "1.2.840.10008.1.2.4.50", "dcmdjpeg"),
        ("SC_rgb_rle.dcm", "1.2.840.10008.1.2.5", "dcmdrle"),
    ],
)
def test_compressed_frames_as_stored_and_decoded(
    web: Web, tmp_path: Path, name: str, syntax: str, reference: str
) -> None:
    study = generate_uid()
    source = corpus_file(name, study)
    assert source.file_meta.TransferSyntaxUID == syntax
    assert send_as_is(web.fixture.port, [source]) == [0]
    frame_path = f"{path_of(source)}/frames/1"
    # As stored: the compressed bitstream of frame 1, with its media type.
    ((headers, data),) = parts(web.get(frame_path, headers=OCTET_AS_STORED))
    assert headers["content-type"].endswith(f"transfer-syntax={syntax}")
    assert data == get_frame(source.PixelData, 0, number_of_frames=1)
    # Decoded on request, checked against a reference decode that is not ours.
    if reference == "original":
        expected = pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array
    else:
        expected = dcmtk_reference(reference, source, tmp_path)
    (decoded_frame,) = web.client("admin").retrieve_instance_frames(
        study, source.SeriesInstanceUID, source.SOPInstanceUID, [1], media_types=((OCTET, EXPLICIT),)
    )
    got = native(decoded_frame, expected)
    if syntax == "1.2.840.10008.1.2.4.50":  # lossy: two IDCT implementations may differ by a step
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= 2
    else:
        assert np.array_equal(got, expected)


def test_frame_media_types_are_negotiated(web: Web) -> None:
    study = generate_uid()
    source = corpus_file("SC_rgb_jpeg_dcmtk.dcm", study)
    assert send_as_is(web.fixture.port, [source]) == [0]
    frame_path = f"{path_of(source)}/frames/1"
    ((headers, data),) = parts(web.get(frame_path, headers={"Accept": 'multipart/related; type="image/jpeg"'}))
    assert headers["content-type"].startswith("image/jpeg") and data[:2] == b"\xff\xd8"
    refused = web.get(frame_path, headers={"Accept": 'multipart/related; type="image/jp2"'})
    assert refused.status_code == 406 and "image/jpeg" in refused.json()["detail"]
    chinese = web.studies["fudong_chinese"]  # native: no compressed form to offer
    refused = web.get(f"{path_of(chinese)}/frames/1", headers={"Accept": 'multipart/related; type="image/jpeg"'})
    assert refused.status_code == 406 and "application/octet-stream" in refused.json()["detail"]


HTJ2K = {"Accept": 'multipart/related; type="image/jphc"'}


def _phantom_ct(size: int = 512) -> pydicom.Dataset:
    """A signed 16-bit CT slice with air, water, bone and noise: what a HTJ2K rendition must keep."""
    ds = small_ct(seed=403)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    y, x = np.mgrid[:size, :size] - size / 2
    hu = np.where(x**2 + y**2 < (size * 0.4) ** 2, 0, -1000) + np.where(x**2 + (y / 2) ** 2 < (size * 0.1) ** 2, 900, 0)
    hu = hu + np.random.default_rng(403).normal(0, 12, (size, size))
    ds.Rows = ds.Columns = size
    ds.PixelRepresentation, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 16, 16, 15
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    ds.PixelData = hu.astype(np.int16).tobytes()
    return ds


def test_frames_as_lossless_htj2k_renditions_a_coarse_image_from_their_first_bytes(web: Web) -> None:
    """``type="image/jphc"``: any grayscale frame — native or stored compressed — comes as a
    lossless HTJ2K codestream in RPCL order (checked with OpenJPEG, not the encoder's library),
    whose first eighth already decodes to a recognisable 64² image: what a viewer on a thin link
    draws first. Colour is refused with what to ask for instead."""
    ct = _phantom_ct()
    study = ct.StudyInstanceUID
    mr = corpus_file("MR_small_jpeg_ls_lossless.dcm", study)  # stored JPEG-LS: decoded, then encoded
    multiframe = corpus_file("emri_small.dcm", study)  # native, 10 frames, unsigned
    colour = corpus_file("SC_rgb_jpeg_dcmtk.dcm", study)
    assert send_as_is(web.fixture.port, [ct]) == [0]
    assert send_as_is(web.fixture.port, [mr, multiframe, colour]) == [0, 0, 0]
    cases = [
        (ct, [1], ct.pixel_array[np.newaxis]),
        (mr, [1], pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array[np.newaxis]),
        (multiframe, [3, 10], multiframe.pixel_array[[2, 9]]),
    ]
    for source, numbers, expected in cases:
        answer = parts(web.get(f"{path_of(source)}/frames/{','.join(map(str, numbers))}", headers=HTJ2K))
        assert len(answer) == len(numbers)
        for (headers, data), want in zip(answer, expected, strict=True):
            assert headers["content-type"] == "image/jphc; transfer-syntax=1.2.840.10008.1.2.4.202"
            assert data[:4] == b"\xff\x4f\xff\x51"  # SOC, SIZ: a bare codestream
            cod = data.index(b"\xff\x52")
            assert data[cod + 5] == 2  # progression order RPCL
            decoded = openjpeg.decode(data)
            assert decoded.dtype == want.dtype and np.array_equal(decoded, want)
    ((_, data),) = parts(web.get(f"{path_of(ct)}/frames/1", headers=HTJ2K))
    assert len(data) < len(ct.PixelData)
    # Resolution first: the first eighth of the bytes holds the whole 64² level of the wavelet.
    coarse = imagecodecs.htj2k_decode(data[: len(data) // 8], resilient=True, skipres=3)
    assert np.array_equal(coarse, imagecodecs.htj2k_decode(data, skipres=3)) and coarse.shape == (64, 64)
    blocks = ct.pixel_array.reshape(64, 8, 64, 8).mean(axis=(1, 3))
    assert np.corrcoef(coarse.ravel(), blocks.ravel())[0, 1] > 0.95
    named = web.get(
        f"{path_of(ct)}/frames/1",
        headers={"Accept": 'multipart/related; type="image/jphc"; transfer-syntax=1.2.840.10008.1.2.4.201'},
    )
    assert parts(named)[0][0]["content-type"] == "image/jphc; transfer-syntax=1.2.840.10008.1.2.4.201"
    lossy = web.get(
        f"{path_of(ct)}/frames/1",
        headers={"Accept": 'multipart/related; type="image/jphc"; transfer-syntax=1.2.840.10008.1.2.4.203'},
    )
    assert lossy.status_code == 406 and "1.2.840.10008.1.2.4.202" in lossy.json()["detail"]
    # Named by the accept query parameter (Cornerstone's loader sends one fixed Accept header).
    by_query = web.get(f"{path_of(ct)}/frames/1?accept=multipart%2Frelated%3B%20type%3D%22image%2Fjphc%22")
    assert parts(by_query)[0] == parts(web.get(f"{path_of(ct)}/frames/1", headers=HTJ2K))[0]
    refused = web.get(f"{path_of(colour)}/frames/1", headers=HTJ2K)
    assert refused.status_code == 406
    assert "single-sample" in refused.json()["detail"] and "transfer-syntax=*" in refused.json()["detail"]


def test_json_goes_gzip_compressed_and_pixels_as_they_are(web: Web) -> None:
    """For a thin line: DICOM JSON (a series' metadata) is gzip-compressed for a caller that
    accepts it; frames and instances are not (their transfer syntax is their compression)."""
    ct = _phantom_ct()
    assert send_as_is(web.fixture.port, [ct]) == [0]
    series = f"/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}"
    metadata = web.get(f"{series}/metadata", headers={"Accept-Encoding": "gzip"})
    assert metadata.status_code == 200 and metadata.headers["content-encoding"] == "gzip"
    assert metadata.json()[0]["00080018"]["Value"] == [ct.SOPInstanceUID]  # decoded by the client
    plain = web.get(f"{series}/metadata", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.json() == metadata.json()
    for path, accept in ((f"{path_of(ct)}/frames/1", OCTET_PARTS["Accept"]), (path_of(ct), "multipart/related")):
        answer = web.get(path, headers={"Accept": accept, "Accept-Encoding": "gzip"})
        assert answer.status_code == 200 and "content-encoding" not in answer.headers, path


# --------------------------------------------------------------------------- rendered


def _ct_with_known_pixels(seed: int, photometric: str = "MONOCHROME2") -> pydicom.Dataset:
    ds = small_ct(seed=seed)
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ramp = (np.arange(64 * 64, dtype=np.int32).reshape(64, 64) % 2000).astype(np.int16)
    ds.PixelRepresentation = 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelData = ramp.tobytes()
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.PhotometricInterpretation = photometric
    return ds


def test_rendered_applies_rescale_window_and_monochrome1(web: Web) -> None:
    grey = _ct_with_known_pixels(401)
    inverted = _ct_with_known_pixels(402, "MONOCHROME1")
    assert pynetdicom_send(web.fixture.port, [grey, inverted]) == [0, 0]
    hounsfield = np.frombuffer(grey.PixelData, dtype="<i2").reshape(64, 64).astype(np.float32) - 1024

    def png(path: str, **params: str) -> np.ndarray:
        response = web.get(path, headers={"Accept": "image/png"}, params=params)
        assert response.status_code == 200 and response.headers["content-type"] == "image/png", response.text
        return np.asarray(Image.open(io.BytesIO(response.content)))

    from_header = png(f"{path_of(grey)}/rendered")
    assert np.array_equal(from_header, np.rint(apply_window(hounsfield, Window(40, 400))).astype(np.uint8))
    requested = png(f"{path_of(grey)}/frames/1/rendered", window="-600,1500")
    assert np.array_equal(requested, np.rint(apply_window(hounsfield, Window(-600, 1500))).astype(np.uint8))
    flipped = png(f"{path_of(inverted)}/rendered")
    assert np.array_equal(flipped, 255 - from_header)
    fitted = png(f"{path_of(grey)}/rendered", viewport="32,16")
    assert fitted.shape == (16, 16)
    # JPEG by default, through the third-party client too.
    client = web.client("admin")
    jpeg = client.retrieve_instance_rendered(grey.StudyInstanceUID, grey.SeriesInstanceUID, grey.SOPInstanceUID)
    assert Image.open(io.BytesIO(jpeg)).format == "JPEG"


def test_thumbnails_at_every_level(web: Web) -> None:
    chinese = web.studies["fudong_chinese"]
    study = f"/studies/{chinese.StudyInstanceUID}"
    for path in (
        f"{study}/thumbnail",
        f"{study}/series/{chinese.SeriesInstanceUID}/thumbnail",
        f"{path_of(chinese)}/thumbnail",
        f"{path_of(chinese)}/frames/1/thumbnail",
    ):
        response = web.get(path)
        assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg", path
        assert response.headers["server-timing"].startswith("app;dur="), path
        image = Image.open(io.BytesIO(response.content))
        assert max(image.size) == 128, (path, image.size)
    small = web.get(f"{study}/thumbnail", params={"viewport": "40,40"}, headers={"Accept": "image/png"})
    assert Image.open(io.BytesIO(small.content)).size == (40, 40)


@pytest.mark.parametrize(
    ("params", "accept", "status", "message"),
    [
        ({"window": "40"}, "image/jpeg", 400, "center,width"),
        ({"window": "40,0"}, "image/jpeg", 400, "positive"),
        ({"window": "40,400,cubic"}, "image/jpeg", 400, "function"),
        ({"viewport": "0,10"}, "image/jpeg", 400, "viewport"),
        ({"quality": "101"}, "image/jpeg", 400, "quality"),
        ({"contrast": "1"}, "image/jpeg", 400, "unknown parameter"),
        ({}, "image/gif", 406, "image/png"),
    ],
)
def test_bad_render_requests(web: Web, params: dict[str, str], accept: str, status: int, message: str) -> None:
    response = web.get(f"{path_of(web.studies['fudong_chinese'])}/rendered", params=params, headers={"Accept": accept})
    assert response.status_code == status and message in response.json()["detail"]


def test_ignored_render_parameters_are_warned(web: Web) -> None:
    response = web.get(f"{path_of(web.studies['fudong_chinese'])}/rendered", params={"annotation": "patient"})
    assert response.status_code == 200 and "annotation is not supported" in response.headers["warning"]


# --------------------------------------------------------------------------- scope, bad input, audit


def _every_route(ds: pydicom.Dataset) -> list[str]:
    study = f"/studies/{ds.StudyInstanceUID}"
    series = f"{study}/series/{ds.SeriesInstanceUID}"
    instance = path_of(ds)
    return [
        study,
        series,
        instance,
        f"{study}/metadata",
        f"{series}/metadata",
        f"{instance}/metadata",
        f"{instance}/frames/1",
        f"{instance}/rendered",
        f"{instance}/frames/1/rendered",
        f"{study}/thumbnail",
        f"{series}/thumbnail",
        f"{instance}/thumbnail",
        f"{instance}/frames/1/thumbnail",
        f"{instance}/bulkdata/7FE00010",
    ]


def test_a_site_token_cannot_reach_another_sites_study_by_any_route(web: Web) -> None:
    anfeng = web.studies["anfeng"]
    for path in _every_route(anfeng):
        assert web.get(path, who="anfeng").status_code == 200, path
        other = web.get(path, who="fudong")
        assert other.status_code == 404, path
        assert anfeng.StudyInstanceUID in other.json()["detail"] or "no " in other.json()["detail"]
        unknown = web.get(path.replace(anfeng.StudyInstanceUID, "1.2.3.4"), who="admin")
        assert unknown.status_code == 404, path
        # The same answer for "not yours" and "not there": nothing leaks.
        assert other.json()["detail"].replace(anfeng.StudyInstanceUID, "X") == unknown.json()["detail"].replace(
            "1.2.3.4", "X"
        ), path


def test_unknown_series_and_instances_are_404(web: Web) -> None:
    chinese = web.studies["fudong_chinese"]
    study = f"/studies/{chinese.StudyInstanceUID}"
    detail = web.get(f"{study}/series/1.2.3/metadata").json()["detail"]
    assert detail == f"no series 1.2.3 in study {chinese.StudyInstanceUID} here"
    assert web.get(f"{study}/series/{chinese.SeriesInstanceUID}/instances/1.2.3").status_code == 404
    assert web.get(f"{study}/metadata", headers={"Accept": "application/dicom+xml"}).status_code == 406


def test_opening_a_study_writes_one_record_per_action(web: Web) -> None:
    chinese = web.studies["fudong_chinese"]
    client = web.client("fudong")
    study, series = chinese.StudyInstanceUID, chinese.SeriesInstanceUID
    client.retrieve_series_metadata(study, series)
    for sop in [ds["00080018"]["Value"][0] for ds in client.retrieve_series_metadata(study, series)]:
        client.retrieve_instance_frames(study, series, sop, [1], media_types=((OCTET, "*"),))
    web.get(f"{path_of(chinese)}/frames/1", who="admin")
    web.fixture.services.audit.flush()
    with transaction(web.fixture.services.sessions) as session:
        records = session.scalars(select(AccessRecord).where(accesses()).order_by(AccessRecord.id)).all()
    assert [(r.username, r.action, r.study_uid) for r in records] == [
        ("fudong", "metadata", chinese.StudyInstanceUID),
        ("fudong", "frames", chinese.StudyInstanceUID),
        ("admin", "frames", chinese.StudyInstanceUID),
    ]
    assert records[0].patient_id == chinese.PatientID and records[0].site_id == web.fixture.site_id


def test_cors_is_off_by_default_and_configurable(web: Web, make_services: Any) -> None:
    preflight = {"Origin": "https://ohif.example.cn", "Access-Control-Request-Method": "GET"}
    study = f"/studies/{web.studies['fudong_chinese'].StudyInstanceUID}/metadata"
    plain = httpx.options(f"{web.url}/dicomweb{study}", headers=preflight)
    assert "access-control-allow-origin" not in plain.headers
    services = make_services(cors_origins=["https://ohif.example.cn"])
    with served(create_app(services)) as url:
        allowed = httpx.options(f"{url}/dicomweb{study}", headers=preflight)
        assert allowed.headers["access-control-allow-origin"] == "https://ohif.example.cn"
        other = httpx.options(f"{url}/dicomweb{study}", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
