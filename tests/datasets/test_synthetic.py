"""Tests of the synthetic DICOM generator (datasets.synthetic and its CLI)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)
from typer.testing import CliRunner

from datasets import synthetic
from datasets.cli import app
from datasets.synthetic import (
    STRUCTURE_HU,
    STRUCTURES,
    PatientSpec,
    StudySpec,
    compress,
    ct_phantom_slice,
    ct_series,
    dcmread_assuming_charset,
    radiograph,
    random_patient,
    slice_fraction,
    write_series,
    write_study,
)

SMALL = 64
SYNTAXES = {
    "jpeg-ls-lossless": JPEGLSLossless,
    "jpeg2000-lossless": JPEG2000Lossless,
    "rle": RLELossless,
}
PATIENT = PatientSpec("0012345678", "王^小明", "19700315", "M")


def _study(charset: synthetic.Charset) -> StudySpec:
    return StudySpec(
        institution_name="青山县人民医院",
        station_name="YY01-CT01",
        accession_number="A2024061500123",
        referring_physician="李^静",
        study_description="腹部CT平扫",
        study_date="20240615",
        study_time="093012",
        charset=charset,
    )


def _hu(ds: Dataset) -> npt.NDArray[np.float64]:
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def _erode(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """3x3 erosion: pixels whose whole blur neighbourhood has the same label."""
    p = np.pad(mask, 1)
    out = np.ones_like(mask)
    for dr in range(3):
        for dc in range(3):
            out &= p[dr : dr + mask.shape[0], dc : dc + mask.shape[1]]
    return out


def _roundtrip(ds: Dataset, path: Path) -> Dataset:
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return pydicom.dcmread(path)


@pytest.fixture(scope="module")
def abdomen() -> list[Dataset]:
    return ct_series("abdomen", 6, seed=11, rows=128, cols=128)


@pytest.fixture(scope="module")
def head() -> list[Dataset]:
    # 256 px (~1 mm) so the 4 mm cortical ribbon survives the erosion below.
    return ct_series("head", 6, seed=11, rows=256, cols=256)


# --- patients -------------------------------------------------------------


def test_random_patients_are_plausible_chinese_adults() -> None:
    rng = np.random.default_rng(0)
    patients = [random_patient(rng) for _ in range(200)]
    for p in patients:
        assert re.fullmatch(r"[\u4e00-\u9fff]\^[\u4e00-\u9fff]{1,2}", p.name), p.name
        assert re.fullmatch(r"\d{10}", p.patient_id)
        assert "19350101" <= p.birth_date <= "20051231"
        assert p.sex in {"M", "F"}
    assert len({p.name for p in patients}) > 150  # a real pool, not a handful
    assert {p.sex for p in patients} == {"M", "F"}


def test_name_pools_never_produce_ascii_delimiter_bytes() -> None:
    # A GBK trail byte of 0x5C ("\\") or 0x5E ("^") would split PN values.
    pools = synthetic._FAMILY_NAMES + synthetic._GIVEN_MALE + synthetic._GIVEN_FEMALE
    text = pools + "".join(synthetic._INSTITUTIONS) + "".join(synthetic._EXAM_DESCRIPTIONS.values())
    for ch in set(text) - set("CT"):
        for codec in ("gbk", "gb18030"):
            assert all(b >= 0x80 for b in ch.encode(codec)), (ch, codec)


# --- reproducibility -------------------------------------------------------


def test_same_seed_gives_same_uids_and_pixels() -> None:
    a = ct_series("abdomen", 3, seed=5, rows=SMALL, cols=SMALL)
    b = ct_series("abdomen", 3, seed=5, rows=SMALL, cols=SMALL)
    for x, y in zip(a, b, strict=True):
        assert x.SOPInstanceUID == y.SOPInstanceUID
        assert x.SeriesInstanceUID == y.SeriesInstanceUID
        assert x.StudyInstanceUID == y.StudyInstanceUID
        assert x.FrameOfReferenceUID == y.FrameOfReferenceUID
        assert x.PixelData == y.PixelData
        assert x.PatientName == y.PatientName
    dx1 = radiograph("DX", seed=5, size=SMALL)
    dx2 = radiograph("DX", seed=5, size=SMALL)
    assert dx1.SOPInstanceUID == dx2.SOPInstanceUID
    assert dx1.PixelData == dx2.PixelData


def test_different_seed_gives_different_uids_and_pixels() -> None:
    a = ct_series("abdomen", 2, seed=5, rows=SMALL, cols=SMALL)
    b = ct_series("abdomen", 2, seed=6, rows=SMALL, cols=SMALL)
    assert a[0].StudyInstanceUID != b[0].StudyInstanceUID
    assert a[0].SeriesInstanceUID != b[0].SeriesInstanceUID
    assert {d.SOPInstanceUID for d in a}.isdisjoint(d.SOPInstanceUID for d in b)
    assert a[0].PixelData != b[0].PixelData
    assert radiograph("CR", seed=5, size=SMALL).PixelData != radiograph("CR", seed=6, size=SMALL).PixelData


def test_uids_are_valid_and_consistent_within_a_series(abdomen: list[Dataset]) -> None:
    sops = [d.SOPInstanceUID for d in abdomen]
    assert len(set(sops)) == len(sops)
    for d in abdomen:
        for uid in (d.SOPInstanceUID, d.SeriesInstanceUID, d.StudyInstanceUID):
            assert uid.is_valid, uid
        assert d.file_meta.MediaStorageSOPInstanceUID == d.SOPInstanceUID
        assert d.file_meta.MediaStorageSOPClassUID == d.SOPClassUID == CTImageStorage
    assert len({d.SeriesInstanceUID for d in abdomen}) == 1
    assert len({d.FrameOfReferenceUID for d in abdomen}) == 1


def test_given_study_uid_is_shared_but_series_differ() -> None:
    uid = "1.2.826.0.1.3680043.8.498.1"
    ct = ct_series("head", 1, seed=3, rows=SMALL, cols=SMALL, study_uid=uid)[0]
    dx = radiograph("DX", seed=3, size=SMALL, study_uid=uid)
    assert ct.StudyInstanceUID == dx.StudyInstanceUID == uid
    assert ct.SeriesInstanceUID != dx.SeriesInstanceUID


# --- geometry and headers ---------------------------------------------------


@pytest.mark.parametrize("kind, fov", [("abdomen", 380.0), ("head", 250.0)])
def test_ct_geometry(kind: synthetic.CTKind, fov: float) -> None:
    series = ct_series(kind, 5, seed=2, rows=SMALL, cols=SMALL, slice_thickness=2.5)
    z = [float(d.ImagePositionPatient[2]) for d in series]
    assert np.allclose(np.diff(z), -2.5)  # HFS: superior first, contiguous
    assert [d.InstanceNumber for d in series] == [1, 2, 3, 4, 5]
    spacing = fov / SMALL
    for d, zi in zip(series, z, strict=True):
        assert [float(v) for v in d.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert np.allclose([float(v) for v in d.PixelSpacing], [spacing, spacing], atol=1e-6)
        assert float(d.SliceThickness) == 2.5
        assert float(d.SliceLocation) == zi
        # Isocentre sits in the middle of the image.
        x0, y0 = (float(v) for v in d.ImagePositionPatient[:2])
        assert np.isclose(x0 + (SMALL - 1) / 2 * spacing, 0.0, atol=1e-4)
        assert np.isclose(y0 + (SMALL - 1) / 2 * spacing, 0.0, atol=1e-4)
        assert d.Modality == "CT" and d.BodyPartExamined == kind.upper()


def test_default_thickness_spans_a_typical_range() -> None:
    assert synthetic.default_slice_thickness("abdomen", 300) == 1.25
    assert synthetic.default_slice_thickness("abdomen", 80) == 5.0
    assert synthetic.default_slice_thickness("head", 30) == 5.0
    series = ct_series("abdomen", 3, seed=1, rows=SMALL, cols=SMALL)
    assert float(series[0].SliceThickness) == synthetic.default_slice_thickness("abdomen", 3)


def test_ct_headers(abdomen: list[Dataset], head: list[Dataset]) -> None:
    d = abdomen[0]
    assert (d.WindowCenter, d.WindowWidth) == (40, 400)
    assert (head[0].WindowCenter, head[0].WindowWidth) == (40, 80)
    assert (d.RescaleIntercept, d.RescaleSlope, d.PixelRepresentation) == (-1024, 1, 1)
    assert (d.BitsAllocated, d.BitsStored, d.HighBit) == (16, 16, 15)
    assert d.KVP == 120 and d.PatientPosition == "HFS"
    assert d.SpecificCharacterSet == "ISO_IR 192"
    for keyword in (
        "InstitutionName",
        "StationName",
        "Manufacturer",
        "AccessionNumber",
        "ReferringPhysicianName",
        "StudyDescription",
        "SeriesDescription",
        "StudyDate",
        "StudyTime",
        "SeriesNumber",
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "PatientAge",
    ):
        assert str(d.get(keyword, "")).strip(), keyword
    assert re.fullmatch(r"\d{3}Y", d.PatientAge)


def test_study_spec_without_date_takes_the_seeds_date() -> None:
    spec = StudySpec("Fudong Health Centre", "FUDONG_CT", "FD001", "周^建国", "CT ABDOMEN", charset="GB18030")
    a = ct_series("abdomen", 1, seed=71, rows=SMALL, cols=SMALL, study=spec)[0]
    b = ct_series("abdomen", 1, seed=71, rows=SMALL, cols=SMALL)[0]
    assert re.fullmatch(r"20(24|25)\d{4}", a.StudyDate) and a.StudyDate == b.StudyDate
    assert a.StudyTime == b.StudyTime and a.InstitutionName == "Fudong Health Centre"


def test_patient_age_from_birth_and_study_date() -> None:
    d = ct_series("head", 1, seed=1, rows=SMALL, cols=SMALL, patient=PATIENT, study=_study("GB18030"))
    assert d[0].PatientAge == "054Y"  # 1970-03-15 .. 2024-06-15


# --- pixel content ------------------------------------------------------------


def _structure_means(series: list[Dataset], kind: synthetic.CTKind) -> dict[str, list[float]]:
    """Mean HU per structure over pixels untouched by the blur, per slice."""
    means: dict[str, list[float]] = {}
    for i, d in enumerate(series):
        ph = ct_phantom_slice(kind, slice_fraction(i, len(series)), seed=11, rows=d.Rows, cols=d.Columns)
        hu = _hu(d)
        for label, name in enumerate(STRUCTURES):
            core = _erode(ph.labels == label)
            if core.sum() >= 20:
                means.setdefault(name, []).append(float(hu[core].mean()))
    return means


def test_abdomen_hu_by_structure(abdomen: list[Dataset]) -> None:
    means = _structure_means(abdomen, "abdomen")
    for name in ("air", "fat", "muscle", "soft_tissue", "liver", "kidney", "bone", "bowel_gas"):
        assert name in means, f"{name} missing from the abdomen phantom"
    for name, values in means.items():
        assert np.allclose(values, STRUCTURE_HU[name], atol=15), (name, values)
    # The task's ranges, independent of the phantom's own table.
    assert all(20 <= v <= 60 for v in means["soft_tissue"])
    assert all(-130 <= v <= -70 for v in means["fat"])
    assert all(600 <= v <= 800 for v in means["bone"])
    assert all(v < -950 for v in means["bowel_gas"])


def test_head_hu_by_structure(head: list[Dataset]) -> None:
    means = _structure_means(head, "head")
    for name in ("skull", "gray_matter", "white_matter", "ventricle", "scalp"):
        assert name in means, f"{name} missing from the head phantom"
    for name, values in means.items():
        assert np.allclose(values, STRUCTURE_HU[name], atol=6), (name, values)
    assert all(900 <= v <= 1100 for v in means["skull"])
    assert all(25 <= v <= 45 for v in means["gray_matter"] + means["white_matter"])
    assert all(-5 <= v <= 15 for v in means["ventricle"])


def test_abdomen_anatomy_at_fixed_positions(abdomen: list[Dataset]) -> None:
    # Checks that do not rely on the phantom's label map.
    for d in abdomen:
        hu = _hu(d)
        assert hu[:5, :5].mean() < -950  # corner: air around the patient
        assert -20 < np.median(hu[60:68, 60:68]) < 100  # centre: soft tissue
        column = hu[64:, 62:66]  # posterior midline contains the vertebra
        assert column.max() > 600
    upper = _hu(abdomen[0])
    assert (upper < -700).sum() > 200  # lung bases at the top of the series


def test_ct_pixels_are_int16_in_valid_range_512(tmp_path: Path) -> None:
    d = ct_series("abdomen", 1, seed=3)[0]
    assert (d.Rows, d.Columns) == (512, 512)
    assert len(d.PixelData) == 512 * 512 * 2
    back = _roundtrip(d, tmp_path / "ct.dcm")
    arr = back.pixel_array
    assert arr.dtype == np.int16 and arr.shape == (512, 512)
    assert 0 <= arr.min() and arr.max() <= 4095  # HU -1024..3071
    assert np.array_equal(arr, d.pixel_array)
    assert float(back.PixelSpacing[0]) == pytest.approx(380 / 512)


# --- radiographs --------------------------------------------------------------


@pytest.mark.parametrize(
    "modality, sop_class, bits",
    [("DX", DigitalXRayImageStorageForPresentation, 14), ("CR", ComputedRadiographyImageStorage, 12)],
)
def test_radiograph_header_and_pixels(
    modality: synthetic.RadiographModality, sop_class: str, bits: int, tmp_path: Path
) -> None:
    d = radiograph(modality, seed=4, size=128)
    back = _roundtrip(d, tmp_path / "xr.dcm")
    arr = back.pixel_array
    assert back.SOPClassUID == sop_class == back.file_meta.MediaStorageSOPClassUID
    assert arr.shape == (128, 128) and arr.dtype == np.uint16
    assert (back.BitsAllocated, back.BitsStored, back.HighBit) == (16, bits, bits - 1)
    assert back.PixelRepresentation == 0 and arr.max() < 2**bits
    assert back.PhotometricInterpretation == "MONOCHROME2"
    assert (back.ViewPosition, back.BodyPartExamined, back.Modality) == ("PA", "CHEST", modality)
    for sp in (*back.ImagerPixelSpacing, *back.PixelSpacing):
        assert 0.139 <= float(sp) <= 0.2
    assert 0 < float(back.WindowCenter) < 2**bits and 0 < float(back.WindowWidth) <= 2**bits
    if modality == "DX":
        assert back.PresentationIntentType == "FOR PRESENTATION"
        assert back.PresentationLUTShape == "IDENTITY"


def test_radiograph_anatomy_and_monochrome1() -> None:
    size = 128
    m2 = radiograph("DX", seed=4, size=size).pixel_array.astype(np.int64)

    def at(img: npt.NDArray[np.int64], u: float, v: float) -> float:
        r, c = round(v * (size - 1)), round((u + 1) / 2 * (size - 1))
        return float(img[r - 2 : r + 3, c - 2 : c + 3].mean())

    outside, lung = at(m2, -0.95, 0.95), at(m2, -0.45, 0.45)
    mediastinum, abdomen = at(m2, 0.0, 0.5), at(m2, -0.3, 0.92)
    assert outside < lung < mediastinum  # direct beam < lungs < mediastinum/spine
    assert lung < abdomen  # below the diaphragm is soft tissue, not air
    m1 = radiograph("DX", seed=4, size=size, photometric="MONOCHROME1")
    assert m1.PhotometricInterpretation == "MONOCHROME1"
    assert m1.PresentationLUTShape == "INVERSE"
    assert np.array_equal(m1.pixel_array.astype(np.int64), 2**14 - 1 - m2)


def test_radiograph_default_size_is_2048_with_realistic_spacing() -> None:
    d = radiograph("CR", seed=1, size=2048)
    assert (d.Rows, d.Columns) == (2048, 2048)
    assert float(d.ImagerPixelSpacing[0]) == 0.2
    assert len(d.PixelData) == 2048 * 2048 * 2


# --- character sets ------------------------------------------------------------


@pytest.mark.parametrize("charset, codec", [("ISO_IR 192", "utf-8"), ("GB18030", "gb18030")])
def test_chinese_text_round_trips(charset: synthetic.Charset, codec: str, tmp_path: Path) -> None:
    d = ct_series("abdomen", 1, seed=1, rows=SMALL, cols=SMALL, patient=PATIENT, study=_study(charset))
    path = tmp_path / "ct.dcm"
    back = _roundtrip(d[0], path)
    raw = path.read_bytes()
    assert "王^小明".encode(codec) in raw
    assert "青山县人民医院".encode(codec) in raw
    assert back.SpecificCharacterSet == charset
    assert back.PatientName == "王^小明"
    assert back.PatientName.family_name == "王" and back.PatientName.given_name == "小明"
    assert back.InstitutionName == "青山县人民医院"
    assert back.ReferringPhysicianName == "李^静"
    assert back.StudyDescription == "腹部CT平扫"


def test_gbk_undeclared_needs_an_assumed_charset(tmp_path: Path) -> None:
    d = ct_series("abdomen", 1, seed=1, rows=SMALL, cols=SMALL, patient=PATIENT, study=_study("GBK-undeclared"))[0]
    path = tmp_path / "ct.dcm"
    pydicom.dcmwrite(path, d, enforce_file_format=True)
    raw = path.read_bytes()
    header = raw[: raw.index(b"\xe0\x7f\x10\x00")]  # everything before Pixel Data
    assert b"\x08\x00\x05\x00" not in header  # no (0008,0005) element at all
    assert "王^小明".encode("gbk") in raw and "青山县人民医院".encode("gbk") in raw

    plain = pydicom.dcmread(path)
    assert "SpecificCharacterSet" not in plain
    assert plain.get_item(Tag("PatientName")).value.rstrip(b" ").decode("gb18030") == "王^小明"
    assert str(plain.PatientName) != "王^小明"  # default repertoire: mojibake
    assert plain.InstitutionName != "青山县人民医院"

    forced = dcmread_assuming_charset(path, "GB18030")
    assert forced.PatientName == "王^小明"
    assert forced.InstitutionName == "青山县人民医院"
    assert forced.StudyDescription == "腹部CT平扫"
    assert forced.ReferringPhysicianName.family_name == "李"
    # Values stay even-length on the wire (PS3.5 §7.1) though "王^小明" is 7 bytes.
    assert len(pydicom.dcmread(path).get_item(Tag("PatientName")).value) == 8


# --- compression and files --------------------------------------------------------


@pytest.mark.parametrize("syntax", sorted(SYNTAXES))
def test_compression_is_lossless(syntax: synthetic.Syntax, tmp_path: Path) -> None:
    ct = ct_series("head", 1, seed=8, rows=96, cols=96)[0]
    dx = radiograph("DX", seed=8, size=96)
    for original in (ct, dx):
        packed = compress(original, syntax)
        assert packed.file_meta.TransferSyntaxUID == SYNTAXES[syntax]
        assert packed.SOPInstanceUID == original.SOPInstanceUID  # lossless: same instance
        assert original.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian  # input untouched
        back = _roundtrip(packed, tmp_path / f"{original.Modality}.dcm")
        assert back.file_meta.TransferSyntaxUID == SYNTAXES[syntax]
        assert np.array_equal(back.pixel_array, original.pixel_array)
        assert back.pixel_array.dtype == original.pixel_array.dtype


def test_jpeg_ls_actually_compresses() -> None:
    d = ct_series("abdomen", 1, seed=8, rows=256, cols=256)[0]
    assert len(compress(d, "jpeg-ls-lossless").PixelData) < 0.6 * len(d.PixelData)


def test_unknown_syntax_is_rejected() -> None:
    d = ct_series("head", 1, seed=8, rows=SMALL, cols=SMALL)[0]
    with pytest.raises(ValueError):
        compress(d, "jpeg-lossy")  # type: ignore[arg-type]


def test_write_series_names_files_by_instance(tmp_path: Path) -> None:
    series = ct_series("head", 3, seed=9, rows=SMALL, cols=SMALL)
    paths = write_series(series, tmp_path / "out")
    assert [p.name for p in paths] == ["CT000001.dcm", "CT000002.dcm", "CT000003.dcm"]
    for p, d in zip(paths, series, strict=True):
        back = pydicom.dcmread(p)
        assert back.SOPInstanceUID == d.SOPInstanceUID
        assert back.preamble == b"\x00" * 128  # Part-10 file, not a bare dataset
        assert back.file_meta.ImplementationClassUID == synthetic.IMPLEMENTATION_CLASS_UID
    with pytest.raises(ValueError):
        write_series(series + series[:1], tmp_path / "dup")


def test_write_study_streams_and_compresses(tmp_path: Path) -> None:
    seen: list[Path] = []
    paths = write_study(
        tmp_path,
        seed=2,
        exam="ct-head",
        slices=4,
        rows=SMALL,
        cols=SMALL,
        charset="GB18030",
        syntax="rle",
        on_written=seen.append,
    )
    assert paths == seen and len(paths) == 4
    back = pydicom.dcmread(paths[0])
    assert back.file_meta.TransferSyntaxUID == RLELossless
    assert back.SpecificCharacterSet == "GB18030"
    assert back.StudyDescription == "头颅CT平扫"
    (dx,) = write_study(tmp_path / "dx", seed=2, exam="dx-chest", size=SMALL)
    assert dx.name == "DX000001.dcm"


@pytest.mark.parametrize(
    "call",
    [
        lambda: ct_series("chest", 1, seed=1),  # type: ignore[arg-type]
        lambda: ct_series("head", 0, seed=1),
        lambda: synthetic.iter_ct_series("head", 2, seed=1, rows=8),  # raises at the call
        lambda: ct_series("head", 1, seed=1, rows=SMALL, cols=SMALL, slice_thickness=-1.0),
        lambda: ct_series("head", 1, seed=-1, rows=SMALL, cols=SMALL),
        lambda: radiograph("MR", seed=1, size=SMALL),  # type: ignore[arg-type]
        lambda: radiograph("DX", seed=1, size=SMALL, bits_stored=8),
    ],
)
def test_bad_arguments_raise(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]


# --- CLI --------------------------------------------------------------------------


def test_cli_help_and_ct_command(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "ct" in result.output and "radiograph" in result.output
    args = ["ct", "--out", str(tmp_path), "--slices", "3", "--rows", "32", "--cols", "32"]
    result = runner.invoke(app, [*args, "--seed", "4", "--compress", "jpeg2000-lossless"])
    assert result.exit_code == 0, result.output
    files = sorted(tmp_path.glob("CT*.dcm"))
    assert [f.name for f in files] == ["CT000001.dcm", "CT000002.dcm", "CT000003.dcm"]
    assert pydicom.dcmread(files[0]).file_meta.TransferSyntaxUID == JPEG2000Lossless
    result = runner.invoke(app, ["radiograph", "--out", str(tmp_path), "--size", "32", "--modality", "CR"])
    assert result.exit_code == 0, result.output
    assert pydicom.dcmread(tmp_path / "CR000001.dcm").SOPClassUID == ComputedRadiographyImageStorage
