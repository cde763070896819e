"""Seeded, reproducible synthetic DICOM studies (CT series, chest radiographs).

Everything here is deterministic in ``seed``: the same call gives the same
UIDs, headers and pixel bytes, so tests, the demo and benchmarks can rebuild a
study instead of shipping files. The anatomy is a numpy phantom, not a scan:
it is meant to exercise the pipeline (windowing, HU ranges, geometry,
compression, character sets), not to be read by a radiologist.

Module references are to the DICOM standard, PS3.3 (IODs/modules), PS3.5
(encoding) and PS3.10 (file format).
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, Protocol, cast, get_args

import numpy as np
import numpy.typing as npt
import pydicom
import SimpleITK as sitk
from pydicom.charset import convert_encodings
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels.encoders.base import get_encoder
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    UID,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

__all__ = [
    "IMPLEMENTATION_CLASS_UID",
    "STRUCTURES",
    "STRUCTURE_HU",
    "CTKind",
    "CTLesion",
    "Charset",
    "ChestLesion",
    "Exam",
    "PatientSpec",
    "PhantomSlice",
    "RadiographModality",
    "StudySpec",
    "Syntax",
    "compress",
    "ct_phantom_slice",
    "ct_series",
    "dcmread_assuming_charset",
    "default_patient",
    "default_slice_thickness",
    "default_study",
    "iter_ct_series",
    "radiograph",
    "random_patient",
    "random_study",
    "slice_fraction",
    "structure_label",
    "write_series",
    "write_study",
]

CTKind = Literal["abdomen", "head"]
RadiographModality = Literal["DX", "CR"]
Charset = Literal["ISO_IR 192", "GB18030", "GBK-undeclared"]
Syntax = Literal["jpeg-ls-lossless", "jpeg2000-lossless", "rle"]
Photometric = Literal["MONOCHROME2", "MONOCHROME1"]
Exam = Literal["ct-abdomen", "ct-head", "dx-chest", "cr-chest"]

# Fixed namespace mixed into every generate_uid() entropy list, so our UIDs
# cannot collide with another generator that hashes the same seed.
_UID_NAMESPACE: Final = "yunying.datasets.synthetic/v1"

#: Identifies this generator in the file meta (PS3.10 §7.1); a UID derived from
#: a constant, so it is stable across runs and machines.
IMPLEMENTATION_CLASS_UID: Final = generate_uid(entropy_srcs=[_UID_NAMESPACE, "implementation"])
IMPLEMENTATION_VERSION_NAME: Final = "YUNYING_SYN_1"  # SH, at most 16 chars

# Independent random streams per purpose: changing how many numbers one
# consumer draws (e.g. adding a bowel loop) must not shift the others.
_STREAM_PATIENT: Final = 1
_STREAM_STUDY: Final = 2
_STREAM_LAYOUT: Final = 3
_STREAM_NOISE: Final = 4
_STREAM_EQUIPMENT: Final = 5

_SYNTAX_UID: Final[dict[str, UID]] = {
    "jpeg-ls-lossless": JPEGLSLossless,
    "jpeg2000-lossless": JPEG2000Lossless,
    "rle": RLELossless,
}
# Preferred encoder plugin per syntax: pylibjpeg-rle is a compiled encoder and
# much faster than pydicom's numpy RLE, which is only the fallback.
_SYNTAX_PLUGINS: Final[dict[str, tuple[str, ...]]] = {
    "jpeg-ls-lossless": ("pyjpegls",),
    "jpeg2000-lossless": ("pylibjpeg",),
    "rle": ("pylibjpeg", "pydicom"),
}

# ---------------------------------------------------------------------------
# Patients and studies
# ---------------------------------------------------------------------------

# Name pools are restricted to GB2312 characters on purpose: in GB2312 both
# bytes are >= 0xA1, so no byte can be read as "\\" (0x5C, the DICOM value
# delimiter) or "^" (0x5E, the PN component delimiter). GBK-extension
# characters can have such trail bytes, which breaks naive byte splitting.
_FAMILY_NAMES: Final = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
    "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛段雷侯"
)
_GIVEN_MALE: Final = "伟强磊军洋勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆旭宁龙林建国志文博东海峰成亮"
_GIVEN_FEMALE: Final = "芳娜敏静丽艳娟霞秀英兰玲桂萍红燕梅琳丹雪婷慧莉倩颖琴云洁月晶欣怡佳悦雨"

_INSTITUTIONS: Final = (
    "青山县人民医院",
    "南溪县中医医院",
    "云岭镇卫生院",
    "白石乡卫生院",
    "临江市第二人民医院",
    "石门县妇幼保健院",
    "清水河县人民医院",
    "红岩镇中心卫生院",
)
_DEPARTMENT: Final = "放射科"

_EXAM_DESCRIPTIONS: Final[dict[str, str]] = {
    "ct-abdomen": "腹部CT平扫",
    "ct-head": "头颅CT平扫",
    "dx-chest": "胸部正位片",
    "cr-chest": "胸部正位片",
}

# (Manufacturer, ManufacturerModelName, kernel abdomen, kernel head, software)
_CT_VENDORS: Final = (
    ("UIH", "uCT 530", "B_SOFT_B", "H_SOFT_C", "R001"),
    ("GE MEDICAL SYSTEMS", "Revolution ACT", "STANDARD", "SOFT", "ACT_23.1"),
    ("SIEMENS", "SOMATOM go.Now", "Br40", "Hr38", "syngo CT VA30A"),
    ("Neusoft Medical Systems", "NeuViz 16 Classic", "F20", "H20", "NeuViz 2.1"),
    ("Philips", "Ingenuity CT", "B", "UB", "4.1.6"),
)
# (Manufacturer, ManufacturerModelName, software), per radiograph modality
_XR_VENDORS: Final[dict[str, tuple[tuple[str, str, str], ...]]] = {
    "DX": (
        ("UIH", "uDR 590i", "R002"),
        ("Carestream Health", "DRX-Evolution", "5.7"),
        ("Philips", "DigitalDiagnost C90", "1.2"),
    ),
    "CR": (
        ("FUJIFILM Corporation", "FCR PROFECT CS", "A06"),
        ("Carestream Health", "CR 975", "5.3"),
        ("Agfa", "CR 30-X", "NX 3000"),
    ),
}


@dataclass(frozen=True)
class PatientSpec:
    """Who the study is of; ``name`` is a DICOM PN string such as ``王^小明``."""

    patient_id: str
    name: str
    birth_date: str  # YYYYMMDD
    sex: Literal["M", "F", "O"]
    # (ID, issuer) pairs written to Other Patient IDs Sequence (0010,1002), e.g. the resident
    # identity card number under the issuer pacs/patients.py matches on.
    other_ids: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class StudySpec:
    """Study-level header values and how text is encoded on the wire.

    ``charset`` is ``"ISO_IR 192"`` (UTF-8), ``"GB18030"``, or
    ``"GBK-undeclared"``: text written as GBK bytes with *no* (0008,0005),
    as many Chinese modalities do; only a per-site assumption can decode it.
    A ``study_date``/``study_time`` left as None is drawn from the seed.
    """

    institution_name: str
    station_name: str
    accession_number: str
    referring_physician: str
    study_description: str
    study_date: str | None = None  # YYYYMMDD
    study_time: str | None = None  # HHMMSS
    charset: Charset = "ISO_IR 192"


def _rng(seed: int, stream: int, *more: int) -> np.random.Generator:
    """Return the generator of one independent stream; raises ValueError if ``seed`` < 0."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng([seed, stream, *more])


def _choice(rng: np.random.Generator, pool: Sequence[str]) -> str:
    """Pick one element uniformly; raises IndexError on an empty pool."""
    return pool[int(rng.integers(len(pool)))]


def _chinese_name(rng: np.random.Generator, sex: str) -> str:
    """Return a ``family^given`` PN value with a 1- or 2-character given name."""
    pool = _GIVEN_MALE if sex == "M" else _GIVEN_FEMALE
    given = "".join(_choice(rng, pool) for _ in range(1 + int(rng.random() < 0.7)))
    return f"{_choice(rng, _FAMILY_NAMES)}^{given}"


def random_patient(rng: np.random.Generator) -> PatientSpec:
    """Draw a plausible adult Chinese patient (born 1935–2005) from ``rng``."""
    sex: Literal["M", "F"] = "M" if rng.random() < 0.5 else "F"
    birth = dt.date(1935, 1, 1) + dt.timedelta(days=int(rng.integers(0, 70 * 365)))
    # Ten digits, like the hospital information system IDs the clinics send.
    patient_id = str(int(rng.integers(10**9, 10**10)))
    return PatientSpec(patient_id, _chinese_name(rng, sex), birth.strftime("%Y%m%d"), sex)


def random_study(
    rng: np.random.Generator,
    *,
    study_description: str = "CT检查",
    charset: Charset = "ISO_IR 192",
) -> StudySpec:
    """Draw plausible study headers (a 2024–2025 date, Chinese clinic names).

    Raises ValueError for an unknown ``charset``.
    """
    if charset not in get_args(Charset):
        raise ValueError(f"unknown charset {charset!r}; expected one of {get_args(Charset)}")
    date = dt.date(2024, 1, 1) + dt.timedelta(days=int(rng.integers(0, 545)))
    seconds = int(rng.integers(8 * 3600, 18 * 3600))
    inst = int(rng.integers(len(_INSTITUTIONS)))
    return StudySpec(
        institution_name=_INSTITUTIONS[inst],
        station_name=f"YY{inst:02d}-CT{int(rng.integers(1, 4)):02d}",
        # SH (at most 16 chars): date + sequence, the usual RIS scheme.
        accession_number=f"A{date:%Y%m%d}{int(rng.integers(0, 10**5)):05d}",
        referring_physician=_chinese_name(rng, "M" if rng.random() < 0.5 else "F"),
        study_description=study_description,
        study_date=date.strftime("%Y%m%d"),
        study_time=f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}",
        charset=charset,
    )


def _age(birth_date: str, on: str) -> str:
    """Return an AS value such as ``054Y``; raises ValueError on a malformed date."""
    born = dt.datetime.strptime(birth_date, "%Y%m%d").date()
    day = dt.datetime.strptime(on, "%Y%m%d").date()
    years = day.year - born.year - ((day.month, day.day) < (born.month, born.day))
    return f"{max(years, 0):03d}Y"


def _text(value: str, charset: Charset) -> str | bytes:
    """Encode ``value`` as raw GBK for the undeclared case, else leave it to pydicom.

    Raises UnicodeEncodeError if the text has characters outside GBK.
    """
    # Without (0008,0005) the default repertoire is ISO-IR 6 (PS3.5 §6.1), so
    # pydicom would refuse or mangle Chinese str values; assigning bytes makes
    # pydicom write them verbatim, which is what the offending modalities do.
    if charset == "GBK-undeclared" and not value.isascii():
        return value.encode("gbk")
    return value


def _uid(*parts: object) -> UID:
    """Return a deterministic UID (PS3.5 §9: at most 64 chars) from ``parts``."""
    return generate_uid(entropy_srcs=[_UID_NAMESPACE, *(str(p) for p in parts)])


def _ds_number(value: float) -> float:
    """Round so ``str(value)`` fits a DS (at most 16 characters, PS3.5 §6.2)."""
    return round(float(value), 6)


def _file_meta(sop_class: UID, sop_instance: UID) -> FileMetaDataset:
    """Build the Part-10 file meta group (PS3.10 §7.1) for native little endian."""
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return meta


def _set_patient_study(ds: Dataset, patient: PatientSpec, resolved: _Study, study_uid: str, modality: str) -> None:
    """Fill the Patient, General Study and SOP Common text (PS3.3 C.7.1.1, C.7.2.1)."""
    study = resolved.spec
    cs = study.charset
    # (0008,0005), PS3.3 C.12.1.1.2: pydicom encodes every str value (PN
    # components included) with it when writing. GBK-undeclared leaves it out
    # on purpose: that is the defect being simulated.
    if cs != "GBK-undeclared":
        ds.SpecificCharacterSet = cs
    ds.PatientName = _text(patient.name, cs)
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    if patient.other_ids:
        items = []
        for other_id, issuer in patient.other_ids:
            item = Dataset()
            item.PatientID = other_id
            item.IssuerOfPatientID = issuer
            item.TypeOfPatientID = "TEXT"  # PS3.3 C.7.1.1: TEXT, RFID or BARCODE
            items.append(item)
        ds.OtherPatientIDsSequence = items
    ds.PatientAge = _age(patient.birth_date, resolved.date)
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = resolved.date
    ds.StudyTime = resolved.time
    ds.StudyID = study.accession_number[-4:]
    ds.AccessionNumber = study.accession_number
    ds.ReferringPhysicianName = _text(study.referring_physician, cs)
    ds.StudyDescription = _text(study.study_description, cs)
    ds.Modality = modality
    ds.InstitutionName = _text(study.institution_name, cs)
    ds.InstitutionalDepartmentName = _text(_DEPARTMENT, cs)
    ds.StationName = study.station_name


def default_patient(seed: int) -> PatientSpec:
    """Return the patient a generator uses for ``seed`` when none is given."""
    return random_patient(_rng(seed, _STREAM_PATIENT))


def default_study(seed: int, exam: Exam, charset: Charset = "ISO_IR 192") -> StudySpec:
    """Return the study headers used for ``seed`` when none is given, in ``charset``.

    Raises ValueError for an unknown exam or charset.
    """
    if exam not in get_args(Exam):
        raise ValueError(f"unknown exam {exam!r}; expected one of {get_args(Exam)}")
    desc = _EXAM_DESCRIPTIONS[exam]
    return random_study(_rng(seed, _STREAM_STUDY), study_description=desc, charset=charset)


@dataclass(frozen=True)
class _Study:
    """A StudySpec with its date and time resolved."""

    spec: StudySpec
    date: str
    time: str


def _defaults(
    seed: int, patient: PatientSpec | None, study: StudySpec | None, exam: Exam
) -> tuple[PatientSpec, _Study]:
    """Fill a missing patient/study (or study date/time) from the seed's own streams."""
    seeded = default_study(seed, exam)
    study = study or seeded
    date = study.study_date or seeded.study_date
    time = study.study_time or seeded.study_time
    assert date is not None and time is not None  # random_study always sets both
    return patient or default_patient(seed), _Study(study, date, time)


# ---------------------------------------------------------------------------
# CT phantom
# ---------------------------------------------------------------------------

#: Nominal HU of each phantom structure (before blur and noise). Index in
#: STRUCTURES is the label value used in PhantomSlice.labels.
STRUCTURE_HU: Final[dict[str, float]] = {
    "air": -1000.0,
    "table": -300.0,
    "lung": -850.0,
    "fat": -100.0,
    "muscle": 50.0,
    "soft_tissue": 40.0,
    "liver": 60.0,
    "spleen": 45.0,
    "kidney": 30.0,
    "blood": 40.0,
    "stomach": 25.0,
    "bowel": 30.0,
    "bowel_fluid": 10.0,
    "bowel_gas": -1000.0,
    "urine": 8.0,
    "bone": 700.0,
    "bone_marrow": 250.0,
    "spinal_canal": 20.0,
    "scalp": 30.0,
    "skull": 1000.0,
    "csf": 5.0,
    "gray_matter": 40.0,
    "white_matter": 30.0,
    "ventricle": 5.0,
    "calcification": 150.0,
    "vitreous": 10.0,
    "sinus_air": -1000.0,
}
STRUCTURES: Final[tuple[str, ...]] = tuple(STRUCTURE_HU)
_LABEL: Final[dict[str, int]] = {name: i for i, name in enumerate(STRUCTURES)}

_FOV_MM: Final[dict[str, float]] = {"abdomen": 380.0, "head": 250.0}
_COVERAGE_MM: Final[dict[str, float]] = {"abdomen": 400.0, "head": 150.0}
_STANDARD_THICKNESS: Final = (0.625, 1.0, 1.25, 2.0, 2.5, 3.0, 5.0, 7.5, 10.0)
_NOISE_HU: Final[dict[str, float]] = {"abdomen": 10.0, "head": 4.0}
# Std of white noise after the [1,2,1]/4 x [1,2,1]/4 blur: sqrt(6/16)^2 = 0.375.
_BLUR_NOISE_GAIN: Final = 0.375


@dataclass(frozen=True)
class PhantomSlice:
    """Noise-free, unblurred phantom slice: HU map and structure label map."""

    hu: npt.NDArray[np.float32]
    labels: npt.NDArray[np.uint8]


class CTLesion(Protocol):
    """Something a CT slice shows that the healthy phantom does not (``datasets/lesions.py``).

    ``paint`` changes the noise-free HU map of the slice at series fraction ``t`` in place
    (``labels`` names the healthy structure of each pixel, ``x``/``y`` are the pixel centres in
    patient mm, isocentre at 0) and returns how many pixels it changed: the ground truth."""

    def paint(
        self,
        hu: npt.NDArray[np.float32],
        labels: npt.NDArray[np.uint8],
        x: npt.NDArray[np.float64],
        y: npt.NDArray[np.float64],
        t: float,
    ) -> int: ...


class ChestLesion(Protocol):
    """Something a chest film shows that the healthy phantom does not (``datasets/lesions.py``).

    ``apply`` changes the film's line integrals in place before the lungs are cut out of the
    body: ``body`` (soft tissue and bone), ``lungs`` (the air each lung removes) and
    ``vessels`` (markings, shown where there is lung) on image-fraction axes ``u`` (−1…1, left
    to right of the image) and ``v`` (0…1, top to bottom)."""

    def apply(
        self,
        body: npt.NDArray[np.float32],
        lungs: npt.NDArray[np.float32],
        vessels: npt.NDArray[np.float32],
        u: npt.NDArray[np.float32],
        v: npt.NDArray[np.float32],
    ) -> None: ...


def structure_label(name: str) -> int:
    """The value ``name`` (one of STRUCTURES) has in a phantom slice's label map."""
    return _LABEL[name]


@dataclass(frozen=True)
class _Ellipse:
    """One painted ellipse in patient mm (x → patient left, y → posterior)."""

    name: str
    cx: float
    cy: float
    ax: float
    ay: float
    angle_deg: float = 0.0
    within: tuple[str, ...] = ()  # paint only over these labels; () = anywhere


@dataclass(frozen=True)
class _Loop:
    """A bowel loop: position/size drift along the series and its content."""

    cx: float
    cy: float
    r: float
    t0: float
    t1: float
    dx: float
    dy: float
    gas: bool


@dataclass(frozen=True)
class _Layout:
    """Per-seed body habitus so different seeds give different patients."""

    a: float  # body semi-axis, left-right (mm)
    b: float  # body semi-axis, antero-posterior (mm)
    fat: float  # subcutaneous fat thickness (mm)
    loops: tuple[_Loop, ...]
    z0: float  # table position of the first (most superior) slice


def _layout(kind: CTKind, seed: int) -> _Layout:
    """Draw the seed's habitus; the head uses only size and z0."""
    rng = _rng(seed, _STREAM_LAYOUT, 0 if kind == "abdomen" else 1)
    if kind == "head":
        s = float(rng.uniform(0.93, 1.05))
        return _Layout(a=72.0 * s, b=92.0 * s, fat=0.0, loops=(), z0=float(rng.uniform(80, 120)))
    a = float(rng.uniform(145, 175))
    b = float(rng.uniform(100, 125))
    loops = []
    for _ in range(12):
        t0 = float(rng.uniform(0.25, 0.85))
        loops.append(
            _Loop(
                cx=float(rng.uniform(-0.5, 0.5)) * a,
                cy=float(rng.uniform(-0.6, 0.15)) * b,
                r=float(rng.uniform(9, 16)),
                t0=t0,
                t1=t0 + float(rng.uniform(0.12, 0.35)),
                dx=float(rng.uniform(-30, 30)),
                dy=float(rng.uniform(-20, 20)),
                gas=bool(rng.random() < 0.4),
            )
        )
    return _Layout(a, b, float(rng.uniform(12, 28)), tuple(loops), float(rng.uniform(-160, -60)))


def _bump(t: float, t0: float, t1: float) -> float:
    """Return a 0..1 size envelope that is 0 outside [t0, t1] and 1 at its centre."""
    if not t0 < t < t1:
        return 0.0
    return math.sqrt(math.sin(math.pi * (t - t0) / (t1 - t0)))


def _abdomen_shapes(t: float, lay: _Layout) -> list[_Ellipse]:
    """Return the paint list of an abdominal slice, ``t`` = 0 at the diaphragm, 1 at the pelvis."""
    a, b = lay.a * (1.0 - 0.06 * t), lay.b * (1.0 - 0.05 * t)
    ca, cb = a - lay.fat - 10.0, b - lay.fat - 10.0  # peritoneal cavity
    # Vertebra placed from the back inwards so the spinous process always ends
    # just under the subcutaneous fat, whatever the habitus.
    spinous_y = b - lay.fat - 17.0
    arch_y = spinous_y - 20.0
    spine_y = arch_y - 26.0
    cav = ("soft_tissue",)
    sh: list[_Ellipse] = [
        # Carbon-fibre table under a supine (HFS) patient, posterior = +y.
        _Ellipse("table", 0.0, b + 18.0, 230.0, 9.0),
        _Ellipse("fat", 0.0, 0.0, a, b),
        _Ellipse("muscle", 0.0, 0.0, a - lay.fat, b - lay.fat),
        _Ellipse("soft_tissue", 0.0, -5.0, ca, cb),
    ]
    if (f := 1.0 - t / 0.14) > 0.05:  # lung bases behind the liver dome
        sh += [_Ellipse("lung", s * 0.5 * ca, 0.3 * cb, 0.38 * ca * f, 0.55 * cb * f, within=cav) for s in (-1, 1)]
    if (f := _bump(t, -0.15, 0.5)) > 0.05:  # liver: patient right = image left = -x
        sh.append(_Ellipse("liver", -0.4 * ca, -0.05 * cb, 0.55 * ca * f, 0.7 * cb * f, within=cav))
    if (f := _bump(t, 0.0, 0.36)) > 0.05:
        sh.append(_Ellipse("spleen", 0.62 * ca, 0.3 * cb, 0.22 * ca * f, 0.3 * cb * f, -35, cav))
    if (f := _bump(t, -0.05, 0.38)) > 0.05:
        sh.append(_Ellipse("stomach", 0.3 * ca, -0.35 * cb, 0.28 * ca * f, 0.3 * cb * f, 20, cav))
        gas = _Ellipse("bowel_gas", 0.3 * ca, -0.55 * cb, 0.2 * ca * f, 0.1 * cb * f, 20, ("stomach",))
        sh.append(gas)
    if (f := _bump(t, 0.28, 0.62)) > 0.05:
        for s in (-1, 1):  # kidneys in their perirenal fat
            x, y, ang = s * 62.0, spine_y + 5.0, s * 30.0
            sh.append(_Ellipse("fat", x, y, 24.0 * f + 7.0, 36.0 * f + 7.0, ang, cav))
            sh.append(_Ellipse("kidney", x, y, 24.0 * f, 36.0 * f, ang, ("fat",)))
    for lp in lay.loops:
        if (f := _bump(t, lp.t0, lp.t1)) > 0.2:
            u = (t - lp.t0) / (lp.t1 - lp.t0)
            x, y, r = lp.cx + lp.dx * u, lp.cy + lp.dy * u, lp.r * f
            # A thin rim of mesenteric fat makes loops stand out as on real scans.
            sh.append(_Ellipse("fat", x, y, r + 3.0, r * 0.85 + 3.0, within=cav))
            sh.append(_Ellipse("bowel", x, y, r, r * 0.85, within=("fat",)))
            lumen = "bowel_gas" if lp.gas else "bowel_fluid"
            sh.append(_Ellipse(lumen, x, y, r - 3.0, r * 0.85 - 3.0, within=("bowel",)))
    if (f := _bump(t, 0.3, 0.5)) > 0.05:  # transverse colon, usually gas-filled
        sh.append(_Ellipse("bowel", 0.0, -0.62 * cb, 0.55 * ca * f, 16.0, within=cav))
        sh.append(_Ellipse("bowel_gas", 0.0, -0.62 * cb, 0.55 * ca * f - 4, 12.0, within=("bowel",)))
    if (f := _bump(t, 0.82, 1.25)) > 0.05:
        sh.append(_Ellipse("urine", 0.0, -0.15 * cb, 0.35 * ca * f, 0.4 * cb * f, within=cav))
    # Great vessels in front of the spine: aorta slightly left, IVC right.
    if t < 0.75:
        sh.append(_Ellipse("blood", 12.0, spine_y - 32.0, 11.0, 11.0))
        sh.append(_Ellipse("blood", -22.0, spine_y - 30.0, 13.0, 9.0))
    # Paraspinal muscles, then the vertebra (body, arch, spinous process).
    sh += [_Ellipse("muscle", s * 30.0, arch_y + 6.0, 22.0, 20.0) for s in (-1, 1)]
    sh += [
        _Ellipse("bone", 0.0, spine_y, 20.0, 17.0),
        _Ellipse("bone", 0.0, arch_y, 15.0, 13.0),
        _Ellipse("bone", 0.0, spinous_y, 4.5, 13.0),
        _Ellipse("spinal_canal", 0.0, arch_y - 2.0, 8.5, 7.5),
    ]
    if t < 0.38:  # lower ribs, cut obliquely, inside the muscle layer of the wall
        rx, ry = a - lay.fat - 5.0, b - lay.fat - 5.0
        for deg in (-55.0, -28.0, 0.0, 28.0, 55.0):  # negative = anterior
            th = math.radians(deg)
            for s in (-1, 1):
                x, y = s * rx * math.cos(th), ry * math.sin(th)
                sh.append(_Ellipse("bone", x, y, 4.5, 7.0, -s * deg))
    if (f := _bump(t, 0.62, 1.35)) > 0.05:  # iliac wings with marrow
        for s in (-1, 1):
            x, y = s * 0.62 * ca, 0.3 * cb
            sh.append(_Ellipse("bone", x, y, 16.0 * f, 48.0 * f, -s * 30.0))
            sh.append(_Ellipse("bone_marrow", x, y, 10.0 * f, 40.0 * f, -s * 30.0, ("bone",)))
    return sh


def _head_shapes(t: float, lay: _Layout) -> list[_Ellipse]:
    """Return the paint list of a head slice, ``t`` = 0 at the vertex, 1 at the skull base."""
    # Cross-section of an ellipsoid whose widest level is at t = 0.7.
    s = math.sqrt(max(0.0, 1.0 - ((t - 0.7) / 0.76) ** 2))
    a, b, cy = lay.a * s, lay.b * s, -5.0
    if a < 8.0:
        return []
    sh = [
        _Ellipse("scalp", 0.0, cy, a, b),
        _Ellipse("skull", 0.0, cy, a - 5.0, b - 5.0),
    ]
    ia, ib = a - 11.0, b - 11.0  # inner table of the skull
    if ia < 4.0:
        return sh
    sh += [
        _Ellipse("csf", 0.0, cy, ia, ib),
        _Ellipse("gray_matter", 0.0, cy, ia - 2.0, ib - 2.0),
        _Ellipse("white_matter", 0.0, cy, ia - 6.0, ib - 6.0),
    ]
    wm = ("white_matter", "gray_matter")
    if (f := _bump(t, 0.3, 0.66)) > 0.05:  # lateral ventricles, frontal horns splayed
        sh += [_Ellipse("ventricle", s_ * 10.0, cy - 4.0, 6.5 * f, 24.0 * f, -s_ * 12.0, wm) for s_ in (-1, 1)]
    if (f := _bump(t, 0.55, 0.72)) > 0.05:
        sh.append(_Ellipse("ventricle", 0.0, cy + 6.0, 2.5, 9.0 * f, within=wm))
    if 0.6 < t < 0.66:
        sh.append(_Ellipse("calcification", 0.0, cy + 22.0, 3.0, 3.0, within=wm))  # pineal
    if (f := _bump(t, 0.8, 0.95)) > 0.05:  # fourth ventricle in the posterior fossa
        sh.append(_Ellipse("ventricle", 0.0, cy + 40.0, 7.0 * f, 5.0 * f, within=wm))
    if t > 0.78:  # orbits, sinuses and petrous bones at the skull base
        f = min(1.0, (t - 0.78) / 0.1)
        for s_ in (-1, 1):
            sh.append(_Ellipse("fat", s_ * 30.0, cy - b + 18.0, 15.0 * f, 15.0 * f))
            sh.append(_Ellipse("vitreous", s_ * 30.0, cy - b + 16.0, 11.0 * f, 11.0 * f))
            sh.append(_Ellipse("skull", s_ * 36.0, cy + 12.0, 26.0 * f, 7.0, s_ * 40.0))
        sh.append(_Ellipse("skull", 0.0, cy - b + 42.0, 18.0 * f, 14.0 * f))
        sh.append(_Ellipse("sinus_air", 0.0, cy - b + 42.0, 13.0 * f, 9.0 * f))
    return sh


def _pixel_axes(rows: int, cols: int, spacing: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Return the pixel-centre x (per column) and y (per row) in mm, isocentre at 0."""
    x = (np.arange(cols, dtype=np.float64) - (cols - 1) / 2.0) * spacing
    y = (np.arange(rows, dtype=np.float64) - (rows - 1) / 2.0) * spacing
    return x.astype(np.float64), y.astype(np.float64)


def _paint(
    hu: npt.NDArray[np.float32],
    labels: npt.NDArray[np.uint8],
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    e: _Ellipse,
) -> None:
    """Paint one ellipse in place, evaluating only its bounding box for speed."""
    r = max(e.ax, e.ay)
    c0, c1 = np.searchsorted(x, [e.cx - r, e.cx + r])
    r0, r1 = np.searchsorted(y, [e.cy - r, e.cy + r])
    if c0 >= c1 or r0 >= r1 or e.ax <= 0 or e.ay <= 0:
        return
    dx = x[c0:c1][None, :] - e.cx
    dy = y[r0:r1][:, None] - e.cy
    if e.angle_deg:
        th = math.radians(e.angle_deg)
        dx, dy = dx * math.cos(th) + dy * math.sin(th), -dx * math.sin(th) + dy * math.cos(th)
    inside = (dx / e.ax) ** 2 + (dy / e.ay) ** 2 <= 1.0
    lab = labels[r0:r1, c0:c1]
    if e.within:
        allowed = np.isin(lab, [_LABEL[n] for n in e.within])
        inside &= allowed
    lab[inside] = _LABEL[e.name]
    hu[r0:r1, c0:c1][inside] = STRUCTURE_HU[e.name]


def slice_fraction(index: int, slices: int) -> float:
    """Return where slice ``index`` (0-based) sits in the phantom: 0 = top, 1 = bottom."""
    return index / (slices - 1) if slices > 1 else 0.5


def default_slice_thickness(kind: CTKind, slices: int) -> float:
    """Return the standard thickness whose series best spans a typical scan range."""
    wanted = _COVERAGE_MM[kind] / max(slices, 1)
    return min(_STANDARD_THICKNESS, key=lambda s: abs(math.log(s / wanted)))


def _check_ct_args(kind: str, slices: int, rows: int, cols: int) -> None:
    """Raise ValueError on arguments the CT generator cannot honour."""
    if kind not in get_args(CTKind):
        raise ValueError(f"unknown CT kind {kind!r}; expected one of {get_args(CTKind)}")
    if slices < 1:
        raise ValueError(f"slices must be >= 1, got {slices}")
    if rows < 16 or cols < 16:
        raise ValueError(f"rows and cols must be >= 16, got {rows}x{cols}")


def ct_phantom_slice(
    kind: CTKind,
    t: float,
    *,
    seed: int,
    rows: int = 512,
    cols: int = 512,
    lesions: Sequence[CTLesion] = (),
) -> PhantomSlice:
    """Render the noise-free phantom at series fraction ``t`` (see slice_fraction), with
    ``lesions`` painted over it (the labels stay those of the healthy structures).

    Tests use the labels to find structures in a generated series. Raises
    ValueError on an unknown kind, a negative seed or a size below 16.
    """
    _check_ct_args(kind, 1, rows, cols)
    lay = _layout(kind, seed)
    x, y = _pixel_axes(rows, cols, _FOV_MM[kind] / max(rows, cols))
    hu = np.full((rows, cols), STRUCTURE_HU["air"], dtype=np.float32)
    labels = np.zeros((rows, cols), dtype=np.uint8)
    shapes = _abdomen_shapes(t, lay) if kind == "abdomen" else _head_shapes(t, lay)
    for e in shapes:
        _paint(hu, labels, x, y, e)
    for lesion in lesions:
        lesion.paint(hu, labels, x, y, t)
    return PhantomSlice(hu, labels)


def _blur121(a: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Separable [1,2,1]/4 blur: partial-volume edges and a CT-like noise texture."""
    p = np.pad(a, 1, mode="edge")
    h = (p[:, :-2] + 2.0 * p[:, 1:-1] + p[:, 2:]) * 0.25
    return cast(npt.NDArray[np.float32], (h[:-2] + 2.0 * h[1:-1] + h[2:]) * np.float32(0.25))


@dataclass(frozen=True)
class _CTSeries:
    """Everything shared by the slices of one CT series, resolved once."""

    kind: CTKind
    slices: int
    seed: int
    rows: int
    cols: int
    patient: PatientSpec
    study: _Study
    study_uid: str
    series_uid: UID
    for_uid: UID
    series_number: int
    thickness: float
    z0: float
    vendor: tuple[str, str, str, str, str]
    serial: str
    tube_ma: int
    operator: str
    lesions: tuple[CTLesion, ...] = ()

    def slice(self, i: int) -> Dataset:
        """Build slice ``i`` (0-based, most superior first)."""
        kind, rows, cols = self.kind, self.rows, self.cols
        t = slice_fraction(i, self.slices)
        ph = ct_phantom_slice(kind, t, seed=self.seed, rows=rows, cols=cols, lesions=self.lesions)
        # Per-slice stream: slice i has the same noise whatever the series length.
        noise = _rng(self.seed, _STREAM_NOISE, i).standard_normal((rows, cols), dtype=np.float32)
        img = _blur121(ph.hu + noise * np.float32(_NOISE_HU[kind] / _BLUR_NOISE_GAIN))
        # Clip to -1024..3071 HU, the 12-bit range most scanners reconstruct;
        # with intercept -1024 (PS3.3 C.8.2.1) stored values are 0..4095,
        # written as signed 16-bit as many scanners do.
        stored = (np.clip(np.rint(img), -1024, 3071) + 1024).astype("<i2")
        spacing = _FOV_MM[kind] / max(rows, cols)
        x, y = _pixel_axes(rows, cols, spacing)
        date, time, charset = self.study.date, self.study.time, self.study.spec.charset

        sop_uid = _uid("sop", self.series_uid, i)
        ds = Dataset()
        ds.file_meta = _file_meta(CTImageStorage, sop_uid)
        _set_patient_study(ds, self.patient, self.study, self.study_uid, "CT")
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceCreationDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = date
        ds.InstanceCreationTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = time
        # General Series / Equipment (PS3.3 C.7.3.1, C.7.5.1)
        ds.SeriesInstanceUID = self.series_uid
        ds.SeriesNumber = self.series_number
        ds.SeriesDescription = f"{kind.capitalize()} {self.thickness:g}mm"
        ds.BodyPartExamined = kind.upper()
        ds.PatientPosition = "HFS"
        ds.OperatorsName = _text(self.operator, charset)
        ds.Manufacturer, ds.ManufacturerModelName = self.vendor[0], self.vendor[1]
        ds.DeviceSerialNumber = self.serial
        ds.SoftwareVersions = self.vendor[4]
        # Frame of Reference (PS3.3 C.7.4.1): one per acquisition, shared by slices.
        ds.FrameOfReferenceUID = self.for_uid
        ds.PositionReferenceIndicator = ""
        # CT Image (PS3.3 C.8.2.1)
        ds.ScanOptions = "HELICAL"
        ds.KVP = 120
        ds.XRayTubeCurrent = self.tube_ma
        ds.ExposureTime = 1000
        ds.Exposure = self.tube_ma
        ds.ConvolutionKernel = self.vendor[2] if kind == "abdomen" else self.vendor[3]
        ds.DataCollectionDiameter = 500
        ds.ReconstructionDiameter = _ds_number(_FOV_MM[kind])
        ds.GantryDetectorTilt = 0
        ds.TableHeight = 160
        ds.SliceThickness = _ds_number(self.thickness)
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = i + 1
        # Image Plane (PS3.3 C.7.6.2): axial, rows along +x (patient left),
        # columns along +y (posterior); HFS so the first slice is most superior
        # and z decreases by one thickness per slice (contiguous slices).
        z = _ds_number(self.z0 - i * self.thickness)
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [_ds_number(x[0]), _ds_number(y[0]), z]
        ds.SliceLocation = z
        ds.PixelSpacing = [_ds_number(spacing), _ds_number(spacing)]
        # Image Pixel (PS3.3 C.7.6.3)
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = rows, cols
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        # VOI LUT (PS3.3 C.11.2): the usual soft-tissue and brain windows.
        ds.WindowCenter, ds.WindowWidth = (40, 400) if kind == "abdomen" else (40, 80)
        ds.WindowCenterWidthExplanation = "ABDOMEN" if kind == "abdomen" else "BRAIN"
        ds.BurnedInAnnotation = "NO"
        ds.LossyImageCompression = "00"
        ds.PixelData = stored.tobytes()
        return ds


def iter_ct_series(
    kind: CTKind,
    slices: int,
    *,
    seed: int,
    patient: PatientSpec | None = None,
    study: StudySpec | None = None,
    rows: int = 512,
    cols: int = 512,
    study_uid: str | None = None,
    slice_thickness: float | None = None,
    series_number: int = 2,
    lesions: Sequence[CTLesion] = (),
) -> Iterator[Dataset]:
    """Yield the slices of ct_series one at a time (flat memory); same arguments.

    Arguments are checked at the call, not at the first ``next()``: raises
    ValueError on bad arguments. Iterating raises UnicodeEncodeError if
    GBK-undeclared text has characters outside GBK.
    """
    _check_ct_args(kind, slices, rows, cols)
    thickness = default_slice_thickness(kind, slices) if slice_thickness is None else slice_thickness
    if thickness <= 0:
        raise ValueError(f"slice_thickness must be > 0, got {thickness}")
    patient, resolved = _defaults(seed, patient, study, "ct-abdomen" if kind == "abdomen" else "ct-head")
    eq = _rng(seed, _STREAM_EQUIPMENT, 0)
    vendor = _CT_VENDORS[int(eq.integers(len(_CT_VENDORS)))]
    study_uid = study_uid or _uid("study", kind, seed)
    ctx = _CTSeries(
        kind=kind,
        slices=slices,
        seed=seed,
        rows=rows,
        cols=cols,
        patient=patient,
        study=resolved,
        study_uid=study_uid,
        series_uid=_uid("series", study_uid, kind, seed, series_number),
        for_uid=_uid("frame-of-reference", study_uid, kind, seed),
        series_number=series_number,
        thickness=thickness,
        z0=_layout(kind, seed).z0,
        vendor=vendor,
        serial=str(int(eq.integers(10**5, 10**6))),
        tube_ma=int(eq.integers(180, 320)) if kind == "abdomen" else int(eq.integers(250, 350)),
        operator=_chinese_name(_rng(seed, _STREAM_STUDY, 1), "F"),
        lesions=tuple(lesions),
    )
    return map(ctx.slice, range(slices))


def ct_series(
    kind: CTKind,
    slices: int,
    *,
    seed: int,
    patient: PatientSpec | None = None,
    study: StudySpec | None = None,
    rows: int = 512,
    cols: int = 512,
    study_uid: str | None = None,
    slice_thickness: float | None = None,
    series_number: int = 2,
    lesions: Sequence[CTLesion] = (),
) -> list[Dataset]:
    """Generate an axial CT Image Storage series, slice 1 most superior.

    The phantom spans the whole series whatever its length; the mm extent is
    slices x thickness (default: a standard thickness covering ~400 mm of
    abdomen or ~150 mm of head). A 300-slice 512x512 series holds ~150 MB of
    pixel data; use iter_ct_series to stream instead. Raises ValueError on a
    bad kind/size/seed, UnicodeEncodeError for non-GBK text in GBK-undeclared.
    """
    return list(
        iter_ct_series(
            kind,
            slices,
            seed=seed,
            patient=patient,
            study=study,
            rows=rows,
            cols=cols,
            study_uid=study_uid,
            slice_thickness=slice_thickness,
            series_number=series_number,
            lesions=lesions,
        )
    )


# ---------------------------------------------------------------------------
# Chest radiograph phantom
# ---------------------------------------------------------------------------


def _add_ellipsoid(
    acc: npt.NDArray[np.float32],
    u: npt.NDArray[np.float32],
    v: npt.NDArray[np.float32],
    cx: float,
    cy: float,
    ax: float,
    ay: float,
    amp: float,
) -> None:
    """Add the projected thickness ``amp*sqrt(1-r²)`` of an ellipsoid, bbox only."""
    c0, c1 = np.searchsorted(u, [cx - ax, cx + ax])
    r0, r1 = np.searchsorted(v, [cy - ay, cy + ay])
    if c0 >= c1 or r0 >= r1:
        return
    r2 = ((u[c0:c1][None, :] - cx) / ax) ** 2 + ((v[r0:r1][:, None] - cy) / ay) ** 2
    acc[r0:r1, c0:c1] += np.float32(amp) * np.sqrt(np.clip(1.0 - r2, 0.0, None))


def _add_band(
    acc: npt.NDArray[np.float32],
    u: npt.NDArray[np.float32],
    v: npt.NDArray[np.float32],
    side: int,
    x_range: tuple[float, float],
    centre: Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]],
    half: float,
    amp: float,
    tube: bool,
) -> None:
    """Add a curved bone band (rib, clavicle) whose centreline is ``v = centre(|u|)``.

    ``tube`` subtracts a hollow core so cortical edges show brighter, as on film.
    """
    lo, hi = x_range if side > 0 else (-x_range[1], -x_range[0])
    c0, c1 = np.searchsorted(u, [lo, hi])
    if c0 >= c1:
        return
    uc = u[c0:c1]
    vc = centre(np.abs(uc))
    r0, r1 = np.searchsorted(v, [float(vc.min()) - half, float(vc.max()) + half])
    if r0 >= r1:
        return
    d2 = ((v[r0:r1][:, None] - vc[None, :]) / half) ** 2
    prof = np.sqrt(np.clip(1.0 - d2, 0.0, None))
    if tube:
        prof -= 0.6 * np.sqrt(np.clip(1.0 - d2 / 0.49, 0.0, None))
    # Taper the lateral end so ribs fade into the chest wall instead of stopping.
    taper = np.clip((x_range[1] - np.abs(uc)) / 0.08, 0.0, 1.0)[None, :]
    acc[r0:r1, c0:c1] += np.float32(amp) * prof * taper


def _chest_attenuation(size: int, seed: int, sex: str, lesions: Sequence[ChestLesion] = ()) -> npt.NDArray[np.float32]:
    """Return a PA chest line-integral map in arbitrary units (0 = direct beam)."""
    rng = _rng(seed, _STREAM_LAYOUT, 2)
    u = ((np.arange(size) - (size - 1) / 2.0) / ((size - 1) / 2.0)).astype(np.float32)
    v = (np.arange(size) / (size - 1)).astype(np.float32)
    wscale = float(rng.uniform(0.94, 1.04))
    # Body outline: neck on top, rounded shoulders, slight taper to the waist.
    shoulder = np.sqrt(np.clip((v - 0.05) / 0.15, 0.0, 1.0))
    width = np.maximum(0.84 * wscale * shoulder - 0.05 * np.clip(v - 0.2, 0, None), 0.16)
    depth = 0.55 + 0.45 * shoulder
    ratio = u[None, :] / width[:, None]
    acc = (depth[:, None] * np.sqrt(np.clip(1.0 - ratio**2, 0.0, None))).astype(np.float32)

    # Lungs: air removes attenuation; each lung is cut by its hemidiaphragm
    # (the right dome, image left, sits higher because of the liver).
    # Each lung spans mediastinum to chest wall, with a rounded apex, so the
    # bases are broad as on real films.
    dome_r = float(rng.uniform(0.68, 0.72))
    apex = np.sqrt(np.clip(1.0 - ((0.25 - np.minimum(v, 0.25)) / 0.16) ** 2, 0.0, 1.0))[:, None]
    bulge = 0.92 + 0.08 * np.sin(np.pi * np.clip((v - 0.1) / 0.8, 0.0, 1.0))
    lateral = ((width * 0.88 - 0.06) * bulge)[:, None]
    medial = 0.09
    half = (lateral - medial) / 2.0 * apex
    lungs = np.zeros_like(acc)
    for side, dome in ((-1, dome_r), (1, dome_r + 0.03)):
        mid = side * (lateral + medial) / 2.0
        r2 = ((u[None, :] - mid) / np.maximum(half, 1e-3)) ** 2
        one = 0.62 * np.sqrt(np.clip(1.0 - r2, 0.0, None)) * (half > 1e-3)
        below = v[:, None] > dome + 0.9 * (u[None, :] - side * 0.32 * wscale) ** 2
        one[below] = 0.0
        one[:, (u * side) <= 0] = 0.0
        lungs += one.astype(np.float32)
    # Vessel markings fanning out of each hilum, fading towards the periphery.
    vessels = np.zeros_like(acc)
    for side in (-1, 1):
        for _ in range(28):
            hx = side * 0.13 + float(rng.normal(0.0, 0.015))
            hy = 0.43 + float(rng.normal(0.0, 0.03))
            ang = rng.uniform(-math.pi * 0.6, math.pi * 0.6) + (0 if side > 0 else math.pi)
            length = float(rng.uniform(0.12, 0.3))
            steps = int(length / 0.005)
            for step in range(2, steps):
                f = step / steps  # tapering towards the periphery
                px = hx + f * length * math.cos(ang)
                py = hy + f * length * math.sin(ang)
                r = 0.008 * (1 - 0.7 * f)
                amp = 0.05 * min(1.0, f / 0.3) * (1 - 0.8 * f)  # no hilar pile-up
                _add_ellipsoid(vessels, u, v, px, py, r, r, amp)
    for lesion in lesions:
        lesion.apply(acc, lungs, vessels, u, v)
    acc -= lungs
    acc += vessels * (lungs > 0.05)

    # Mediastinum, heart (shifted to patient left = image right), aortic knob.
    _add_ellipsoid(acc, u, v, 0.0, 0.38, 0.15, 0.3, 0.22)
    _add_ellipsoid(acc, u, v, 0.07, 0.62, 0.25 * float(rng.uniform(0.9, 1.1)), 0.16, 0.3)
    _add_ellipsoid(acc, u, v, 0.09, 0.3, 0.045, 0.045, 0.15)
    # Trachea (air column) and gastric bubble under the left dome.
    _add_ellipsoid(acc, u, v, 0.0, 0.17, 0.026, 0.18, -0.12)
    _add_ellipsoid(acc, u, v, 0.38, dome_r + 0.12, 0.07, 0.04, -0.18)
    if sex == "F":
        for s in (-1, 1):
            _add_ellipsoid(acc, u, v, s * 0.36, 0.8, 0.22, 0.13, 0.15)

    # Spine with vertebral bodies separated by less dense disc spaces.
    spine = np.sqrt(np.clip(1.0 - (u / 0.05) ** 2, 0.0, None))[None, :]
    seg = 0.88 + 0.12 * np.cos(2 * np.pi * v / 0.055)[:, None]
    acc += (0.12 * spine * seg * (v[:, None] > 0.02)).astype(np.float32)

    # Posterior ribs: arcs from the spine running laterally and downwards.
    lat = 0.84 * wscale - 0.02
    for k in range(10):
        y0 = 0.115 + 0.061 * k + float(rng.normal(0.0, 0.003))
        half = 0.010 + 0.0008 * k

        def rib(au: npt.NDArray[np.float32], y0: float = y0) -> npt.NDArray[np.float32]:
            xp = au - 0.04
            return (y0 - 0.06 * xp + 0.42 * xp**2).astype(np.float32)

        for side in (-1, 1):
            _add_band(acc, u, v, side, (0.05, lat), rib, half, 0.18, tube=True)

    def clavicle(au: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return (0.17 - 0.11 * au + 0.06 * au**2).astype(np.float32)

    for side in (-1, 1):
        _add_band(acc, u, v, side, (0.03, 0.5), clavicle, 0.013, 0.25, tube=True)
        _add_ellipsoid(acc, u, v, side * 0.86 * wscale, 0.17, 0.07, 0.07, 0.3)  # humeral heads
    return cast(npt.NDArray[np.float32], np.clip(acc, 0.0, None))


def _gauss(img: npt.NDArray[np.float32], sigma_px: float) -> npt.NDArray[np.float32]:
    """Gaussian blur via SimpleITK's recursive filter (cost independent of sigma)."""
    smooth: Callable[[sitk.Image, float], sitk.Image] = sitk.SmoothingRecursiveGaussian
    out = smooth(sitk.GetImageFromArray(img), float(sigma_px))
    return cast(npt.NDArray[np.float32], sitk.GetArrayFromImage(out).astype(np.float32, copy=False))


def radiograph(
    modality: RadiographModality,
    *,
    seed: int,
    patient: PatientSpec | None = None,
    study: StudySpec | None = None,
    size: int = 2048,
    study_uid: str | None = None,
    photometric: Photometric = "MONOCHROME2",
    bits_stored: int | None = None,
    series_number: int = 1,
    lesions: Sequence[ChestLesion] = (),
) -> Dataset:
    """Generate a processed PA chest radiograph (DX For Presentation or CR).

    The phantom is drawn in image fractions, so small test sizes still show a
    whole chest; spacing is 430 mm / size clamped to 0.139–0.2 mm. Bits stored
    default to 14 (DX) / 12 (CR). Raises ValueError on a bad modality, size
    < 16, bits outside 10–16 or negative seed; UnicodeEncodeError for non-GBK
    text in GBK-undeclared.
    """
    if modality not in get_args(RadiographModality):
        raise ValueError(f"unknown modality {modality!r}; expected DX or CR")
    if photometric not in get_args(Photometric):
        raise ValueError(f"unknown photometric interpretation {photometric!r}")
    bits = bits_stored or (14 if modality == "DX" else 12)
    if not 10 <= bits <= 16 or size < 16:
        raise ValueError(f"need 10 <= bits_stored <= 16 and size >= 16, got {bits}, {size}")
    patient, resolved = _defaults(seed, patient, study, "dx-chest" if modality == "DX" else "cr-chest")
    study_uid = study_uid or _uid("study", modality, seed)
    series_uid = _uid("series", study_uid, modality, seed, series_number)
    sop_uid = _uid("sop", series_uid, 0)
    eq = _rng(seed, _STREAM_EQUIPMENT, 1 if modality == "DX" else 2)
    vendors = _XR_VENDORS[modality]
    vendor = vendors[int(eq.integers(len(vendors)))]

    att = _chest_attenuation(size, seed, patient.sex, lesions)
    maxv = float(2**bits - 1)
    # For Presentation data are roughly log-exposure: linear in attenuation.
    sig = np.float32(0.05 * maxv) + att * np.float32(0.85 * maxv / 2.2)
    # Quantum noise is worse where fewer photons arrive (behind dense tissue).
    noise = _rng(seed, _STREAM_NOISE, 10_000).standard_normal(att.shape, dtype=np.float32)
    sig += noise * np.float32(0.004 * maxv) * np.exp(np.float32(0.6) * att)
    sig = _gauss(sig, 0.6)  # detector MTF
    # Vendor-style unsharp masking: boosts ribs and vessel edges.
    sig = sig + np.float32(0.5) * (sig - _gauss(sig, 0.015 * size))
    pixels = np.clip(np.rint(sig), 0, maxv).astype(np.uint16)
    body = att > 0.3
    lo, hi = np.percentile(pixels[body] if body.any() else pixels, [1.0, 99.0])
    wc, ww = (lo + hi) / 2.0, max(hi - lo, 1.0)
    if photometric == "MONOCHROME1":
        # MONOCHROME1: minimum value displays white, so invert values and window.
        pixels = (np.uint16(maxv) - pixels).astype(np.uint16)
        wc = maxv - wc

    sop_class = DigitalXRayImageStorageForPresentation if modality == "DX" else ComputedRadiographyImageStorage
    spacing = _ds_number(min(0.2, max(0.139, 430.0 / size)))
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class, sop_uid)
    _set_patient_study(ds, patient, resolved, study_uid, modality)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.InstanceCreationDate = ds.SeriesDate = ds.ContentDate = resolved.date
    ds.InstanceCreationTime = ds.SeriesTime = ds.ContentTime = resolved.time
    ds.AcquisitionDate, ds.AcquisitionTime = resolved.date, resolved.time
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = "Chest PA"
    ds.InstanceNumber = 1
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    # Viewer faces the patient: columns run to patient left, rows to the feet.
    ds.PatientOrientation = ["L", "F"]
    ds.Manufacturer, ds.ManufacturerModelName, ds.SoftwareVersions = vendor
    ds.DeviceSerialNumber = str(int(eq.integers(10**5, 10**6)))
    ds.KVP = 120
    ds.ExposureTime = int(eq.integers(5, 20))
    ds.XRayTubeCurrent = int(eq.integers(200, 400))
    ds.Exposure = 3
    ds.DistanceSourceToDetector = 1800
    ds.ImagerPixelSpacing = [spacing, spacing]
    ds.PixelSpacing = [spacing, spacing]
    if modality == "DX":
        # DX Series, Anatomy Imaged, Image and Detector modules (PS3.3 C.8.11.1-4).
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.DetectorType = "SCINTILLATOR"
        ds.DetectorConfiguration = "AREA"
        ds.ImageLaterality = "U"
        ds.PixelIntensityRelationship = "LOG"
        # +1: lower values = less beam intensity (MONOCHROME1, bone low).
        ds.PixelIntensityRelationshipSign = -1 if photometric == "MONOCHROME2" else 1
        ds.RescaleIntercept = 0
        ds.RescaleSlope = 1
        ds.RescaleType = "US"
        ds.PresentationLUTShape = "IDENTITY" if photometric == "MONOCHROME2" else "INVERSE"
        ds.AnatomicRegionSequence = DicomSequence([_code("51185008", "SCT", "Chest")])
        ds.ViewCodeSequence = DicomSequence([_code("399348003", "SCT", "postero-anterior")])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows = ds.Columns = size
    ds.BitsAllocated = 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.WindowCenter = _ds_number(round(wc))
    ds.WindowWidth = _ds_number(round(ww))
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PixelData = pixels.astype("<u2").tobytes()
    return ds


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    """Return a Code Sequence item (PS3.3 Table 8.8-1)."""
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


# ---------------------------------------------------------------------------
# Compression, reading and writing
# ---------------------------------------------------------------------------


def compress(ds: Dataset, syntax: Syntax) -> Dataset:
    """Return a losslessly compressed copy of ``ds``; ``ds`` itself is left native.

    Raises ValueError for an unknown syntax and RuntimeError if no encoder
    plugin for it is installed (pyjpegls, pylibjpeg-openjpeg, pylibjpeg-rle).
    """
    if syntax not in _SYNTAX_UID:
        raise ValueError(f"unknown syntax {syntax!r}; expected one of {sorted(_SYNTAX_UID)}")
    uid = _SYNTAX_UID[syntax]
    available = get_encoder(uid).available_plugins
    plugin = next((p for p in _SYNTAX_PLUGINS[syntax] if p in available), None)
    if plugin is None:
        raise RuntimeError(f"no encoder installed for {uid.name} (have: {available})")
    out = copy.deepcopy(ds)
    # Lossless re-encoding keeps the same pixel values, so it is the same SOP
    # instance: pydicom 3.0's default (generate_instance_uid=True) would break
    # references and our determinism.
    out.compress(uid, encoding_plugin=plugin, generate_instance_uid=False)
    return out


def dcmread_assuming_charset(path: Path | str, charset: str = "GB18030") -> Dataset:
    """Read a file, decoding text with ``charset`` when it declares no (0008,0005).

    This is how a site's assumed charset rescues GBK-undeclared files. It works
    only because pydicom decodes lazily, so the returned dataset is untouched.
    A charset pydicom does not know gives a UserWarning and ASCII/latin-1
    decoding, i.e. still mojibake.
    """
    ds = pydicom.dcmread(path)
    if "SpecificCharacterSet" not in ds:
        # pydicom 3 decodes raw elements with the *original* character set, so
        # that is what must change (setting SpecificCharacterSet would not).
        implicit, little = ds.original_encoding
        ds.set_original_encoding(implicit, little, convert_encodings([charset]))
    return ds


def write_series(
    datasets: Iterable[Dataset],
    out_dir: Path,
    *,
    on_written: Callable[[Path], None] | None = None,
) -> list[Path]:
    """Write Part-10 files named ``<Modality><InstanceNumber:06d>.dcm`` into ``out_dir``.

    Creates ``out_dir``; overwrites files from an earlier run. Raises
    ValueError if two datasets would get the same file name (e.g. two series
    in one folder), and pydicom's errors for an invalid file meta.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    seen: set[Path] = set()
    for ds in datasets:
        path = out_dir / f"{ds.Modality}{int(ds.InstanceNumber):06d}.dcm"
        if path in seen:
            raise ValueError(f"two datasets map to {path.name}; write series to separate folders")
        seen.add(path)
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
        if on_written is not None:
            on_written(path)
    return paths


def write_study(
    out_dir: Path,
    *,
    seed: int,
    exam: Exam = "ct-abdomen",
    slices: int = 40,
    rows: int = 512,
    cols: int = 512,
    size: int = 2048,
    charset: Charset = "ISO_IR 192",
    syntax: Syntax | None = None,
    patient: PatientSpec | None = None,
    study: StudySpec | None = None,
    on_written: Callable[[Path], None] | None = None,
) -> list[Path]:
    """Generate one single-series study and write it into ``out_dir``, streaming.

    ``charset`` applies when ``study`` is not given. Raises ValueError on an
    unknown exam or bad sizes (see ct_series / radiograph).
    """
    study = study or default_study(seed, exam, charset)
    modality, part = exam.split("-")
    items: Iterable[Dataset]
    if modality == "ct":
        kind: CTKind = "abdomen" if part == "abdomen" else "head"
        items = iter_ct_series(kind, slices, seed=seed, patient=patient, study=study, rows=rows, cols=cols)
    else:
        xr: RadiographModality = "DX" if modality == "dx" else "CR"
        items = [radiograph(xr, seed=seed, patient=patient, study=study, size=size)]
    if syntax is not None:
        items = (compress(ds, syntax) for ds in items)
    return write_series(items, out_dir, on_written=on_written)
