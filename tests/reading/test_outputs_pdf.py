"""The printed report: poppler reads the Chinese back, the CJK font is embedded, long text
wraps onto more pages with page numbers, and the Encapsulated PDF carries the exact bytes
(dcmtk's dcm2pdf extracts them unchanged)."""

from __future__ import annotations

import dataclasses
import io
import re
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread, dcmwrite
from pydicom.uid import EncapsulatedPDFStorage, ExplicitVRLittleEndian

from reading.reports.document import ReportDocument, ReportStatus
from reading.reports.outputs import pdf as pdf_output
from reading.reports.outputs.errors import ReportOutputError
from reading.reports.outputs.pdf import build_encapsulated_pdf, build_pdf
from reading.reports.outputs.uids import output_uid, series_uid
from tests.reading.conftest import IMPRESSION, STUDY_UID, ReportFactory, amended


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    done = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, timeout=30, check=True)
    # pdftotext may break a long line anywhere; compare text without line breaks.
    return done.stdout.decode("utf-8")


def flat(text: str) -> str:
    return "".join(text.split())


def test_text_reads_back_in_chinese(report: ReportDocument, tmp_path: Path) -> None:
    text = flat(pdf_text(build_pdf(report), tmp_path))

    assert "东县医学影像诊断中心影像诊断报告" in text
    assert flat(IMPRESSION) in text
    assert "姓名：王小明" in text
    assert "年龄：66岁" in text  # born 1958-03-12, studied 2024-05-06
    assert "送检单位：东乡镇卫生院" in text
    assert "中线移位：3mm" in text
    assert "危急值" in text
    assert flat("2024-05-06 10:45 经电话通知东乡镇卫生院 陈护士") in text
    assert "签发时间：2024-05-0610:41" in text  # 02:41 UTC printed in Asia/Shanghai
    assert "正式报告" in text
    assert "第1页/共1页" in text


def test_status_and_sections_follow_the_document(make_report: ReportFactory, tmp_path: Path) -> None:
    preliminary = make_report(status=ReportStatus.PRELIMINARY, signer=None, signed_at=None, critical=False)
    text = flat(pdf_text(build_pdf(preliminary), tmp_path))
    assert "初步报告" in text
    assert "未签发" in text
    assert "危急值" not in text

    text = flat(pdf_text(build_pdf(amended(make_report())), tmp_path))
    assert "更正报告" in text
    assert "会诊专家：张主任" in text
    assert flat("张主任：复核：出血量估算约13ml，余同前。") in text


def test_font_is_embedded_and_the_only_one(report: ReportDocument, tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(build_pdf(report))
    done = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, timeout=30, check=True)
    rows = done.stdout.splitlines()[2:]

    assert rows, done.stdout
    for row in rows:
        name, embedded = row.split()[0], row.split()[-5]
        assert "WenQuanYiZenHei" in name, row  # a Helvetica here would be an unembedded font
        assert embedded == "yes", row


def test_long_findings_wrap_onto_numbered_pages(make_report: ReportFactory, tmp_path: Path) -> None:
    long_findings = "双侧大脑半球对称，灰白质分界清楚，未见异常密度影。" * 120
    text = pdf_text(build_pdf(make_report(findings=long_findings)), tmp_path)

    footers = re.findall(r"第(\d+)页/共(\d+)页", flat(text))
    total = len(footers)
    assert total >= 2
    assert footers == [(str(n), str(total)) for n in range(1, total + 1)]
    assert flat(IMPRESSION) in flat(text)  # the impression follows the findings onto a later page
    lines = [line for line in text.splitlines() if "灰白质" in line]
    assert len(lines) > 20  # wrapped between Han characters, not one overflowing line


def test_rebuilt_pdf_is_identical(report: ReportDocument) -> None:
    assert build_pdf(report) == build_pdf(dataclasses.replace(report))


def test_missing_font_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(ReportOutputError, match="apt-get install fonts-wqy-zenhei"):
        pdf_output.register_font(tmp_path / "absent.ttc")


def test_encapsulated_pdf_round_trips(report: ReportDocument) -> None:
    pdf = build_pdf(report)
    buffer = io.BytesIO()
    dcmwrite(buffer, build_encapsulated_pdf(report, pdf), enforce_file_format=True)
    back = dcmread(io.BytesIO(buffer.getvalue()))

    assert back.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert back.SOPClassUID == EncapsulatedPDFStorage
    assert back.SOPInstanceUID == output_uid(report, "pdf")
    assert back.SeriesInstanceUID == series_uid(report, "pdf")
    assert back.SpecificCharacterSet == "ISO_IR 192"
    assert str(back.PatientName) == "王^小明"
    assert back.StudyInstanceUID == STUDY_UID
    assert back.AccessionNumber == "A20240506017"
    assert (back.Modality, back.ConversionType, back.BurnedInAnnotation) == ("DOC", "WSD", "YES")
    assert back.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert back.DocumentTitle == "东县医学影像诊断中心影像诊断报告（头颅CT平扫）"
    assert back.ConceptNameCodeSequence[0].CodeValue == "18748-4"
    assert back.InstanceNumber == 1
    assert len(back.EncapsulatedDocument) % 2 == 0
    assert back.EncapsulatedDocumentLength == len(pdf)
    assert back.EncapsulatedDocument[: back.EncapsulatedDocumentLength] == pdf


@pytest.mark.parametrize("pad", [False, True])
def test_dcmtk_dcm2pdf_extracts_identical_bytes(report: ReportDocument, tmp_path: Path, pad: bool) -> None:
    pdf = build_pdf(report)
    if pad != (len(pdf) % 2 == 1):
        pdf += b"\n"  # after %%EOF, harmless: exercise both an odd and an even PDF
    dicom_path, out_path = tmp_path / "report.dcm", tmp_path / "out.pdf"
    build_encapsulated_pdf(report, pdf).save_as(dicom_path, enforce_file_format=True)

    subprocess.run(["dcm2pdf", str(dicom_path), str(out_path)], capture_output=True, timeout=30, check=True)
    assert out_path.read_bytes() == pdf


def test_encapsulating_something_else_is_refused(report: ReportDocument) -> None:
    with pytest.raises(ReportOutputError, match="not a PDF"):
        build_encapsulated_pdf(report, b"<html>report</html>")
