"""The report as a Secondary Capture image: valid multi-frame greyscale that pydicom and dcmtk
read back, really drawn (text where text should be), one frame per page."""

from __future__ import annotations

import dataclasses
import io
import subprocess
from pathlib import Path

import numpy as np
from pydicom import Dataset, dcmread, dcmwrite
from pydicom.uid import MultiFrameGrayscaleByteSecondaryCaptureImageStorage

from reading.reports.document import ReportDocument
from reading.reports.outputs import dicom_outputs
from reading.reports.outputs.image import (
    NO_LINE_START,
    PAGE_HEIGHT,
    PAGE_WIDTH,
    SIZES,
    build_report_image,
    font_at,
    render_pages,
    wrap,
)
from reading.reports.outputs.pdf import build_pdf
from reading.reports.outputs.uids import output_uid, series_uid
from tests.reading.conftest import STUDY_UID, ReportFactory

LONG_FINDINGS = "双侧大脑半球对称，灰白质分界清楚，未见异常密度影。" * 80


def round_trip(ds: Dataset) -> Dataset:
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return dcmread(io.BytesIO(buffer.getvalue()))


def ink(frame: np.ndarray) -> float:
    """The fraction of a page that is dark: text, rules, the critical box."""
    return float((frame < 128).mean())


def test_round_trip_is_a_drawn_single_page(report: ReportDocument) -> None:
    back = round_trip(build_report_image(report))

    assert back.SOPClassUID == MultiFrameGrayscaleByteSecondaryCaptureImageStorage
    assert back.SOPInstanceUID == output_uid(report, "image")
    assert back.SeriesInstanceUID == series_uid(report, "image")
    assert back.SeriesDescription == "报告图像"
    assert back.SpecificCharacterSet == "ISO_IR 192"
    assert str(back.PatientName) == "王^小明"
    assert back.StudyInstanceUID == STUDY_UID
    assert (back.PhotometricInterpretation, back.BurnedInAnnotation, back.ConversionType) == (
        "MONOCHROME2",
        "YES",
        "WSD",
    )
    assert (back.NumberOfFrames, back.PageNumberVector, back.InstanceNumber) == (1, 1, 1)
    pixels = back.pixel_array
    assert pixels.shape == (PAGE_HEIGHT, PAGE_WIDTH)
    assert pixels.dtype == np.uint8
    assert pixels[0, 0] == 255 and pixels[-1, -1] == 255  # white paper
    assert 0.01 < ink(pixels) < 0.25


def test_the_document_is_what_is_drawn(make_report: ReportFactory) -> None:
    plain = np.asarray(render_pages(make_report(critical=False))[0])
    critical = np.asarray(render_pages(make_report())[0])
    other_impression = np.asarray(render_pages(make_report(critical=False, impression="未见明显异常。"))[0])

    assert ink(critical) > ink(plain)  # the box and its lines
    changed_rows = np.flatnonzero((plain != other_impression).any(axis=1))
    assert changed_rows.size > 10
    # Only the impression (and what moved below it) changed; the header rows are identical.
    assert changed_rows.min() > PAGE_HEIGHT // 3


def test_long_report_becomes_frames_numbered_by_page(make_report: ReportFactory) -> None:
    back = round_trip(build_report_image(make_report(findings=LONG_FINDINGS)))

    frames = back.pixel_array
    assert back.NumberOfFrames == frames.shape[0] >= 2
    assert frames.shape[1:] == (PAGE_HEIGHT, PAGE_WIDTH)
    assert back.FrameIncrementPointer == 0x00182001
    assert list(back.PageNumberVector) == list(range(1, frames.shape[0] + 1))
    assert all(ink(frame) > 0.01 for frame in frames)


def test_wrap_keeps_lines_inside_and_punctuation_off_line_starts() -> None:
    width = 600
    lines = wrap(LONG_FINDINGS[:400] + "\n第二段。", SIZES["body"], width)

    assert "".join(lines) == LONG_FINDINGS[:400] + "第二段。"
    assert lines[-1] == "第二段。"
    assert all(line[0] not in NO_LINE_START for line in lines if line)
    font = font_at(SIZES["body"])
    # A line may overhang by the one punctuation mark it kept.
    assert all(font.getlength(line.rstrip("".join(NO_LINE_START))) <= width for line in lines)


def test_rebuilt_image_is_identical(report: ReportDocument) -> None:
    first = build_report_image(report)
    again = build_report_image(dataclasses.replace(report))
    assert first.PixelData == again.PixelData
    assert first.SOPInstanceUID == again.SOPInstanceUID


def test_dcmtk_renders_it(report: ReportDocument, tmp_path: Path) -> None:
    path, out = tmp_path / "image.dcm", tmp_path / "page.pgm"
    build_report_image(report).save_as(path, enforce_file_format=True)

    done = subprocess.run(["dcm2pnm", "--frame", "1", str(path), str(out)], capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().startswith(b"P5")  # dcmtk drew a greyscale page from it


def test_dicom_outputs_are_one_study_three_series(report: ReportDocument) -> None:
    without = dicom_outputs(report, build_pdf(report))
    sr, pdf, image = dicom_outputs(report, build_pdf(report), with_image=True)

    assert [ds.SOPInstanceUID for ds in without] == [sr.SOPInstanceUID, pdf.SOPInstanceUID]
    assert {ds.StudyInstanceUID for ds in (sr, pdf, image)} == {STUDY_UID}
    assert len({ds.SeriesInstanceUID for ds in (sr, pdf, image)}) == 3
    assert [ds.Modality for ds in (sr, pdf, image)] == ["SR", "DOC", "OT"]
