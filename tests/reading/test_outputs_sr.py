"""The TID 2000 Comprehensive SR: Chinese text survives a write and read, dcmtk accepts it,
verification follows the status, and a rebuilt report carries the same UIDs."""

from __future__ import annotations

import dataclasses
import io
import subprocess
from datetime import datetime
from pathlib import Path

import highdicom as hd
import pytest
from pydicom import dcmread, dcmwrite

from reading.reports.document import ReportDocument, ReportStatus
from reading.reports.outputs.errors import ReportOutputError
from reading.reports.outputs.sr import build_sr
from reading.reports.outputs.uids import output_uid, series_uid
from tests.reading.conftest import FINDINGS, IMPRESSION, SERIES_UID, STUDY_UID, ReportFactory, amended


def written(ds: object) -> bytes:
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)  # type: ignore[arg-type]
    return buffer.getvalue()


def texts(sr: hd.sr.ComprehensiveSR) -> dict[str, list[str]]:
    """Every TEXT item of the tree by its concept name's meaning."""
    found: dict[str, list[str]] = {}
    for item in hd.sr.utils.find_content_items(sr, value_type=hd.sr.ValueTypeValues.TEXT, recursive=True):
        found.setdefault(item.ConceptNameCodeSequence[0].CodeMeaning, []).append(item.TextValue)
    return found


def test_round_trip_keeps_chinese_text_and_structure(report: ReportDocument) -> None:
    raw = written(build_sr(report))
    back = hd.sr.srread(io.BytesIO(raw))

    assert isinstance(back, hd.sr.ComprehensiveSR)
    assert back.SpecificCharacterSet == "ISO_IR 192"
    assert str(back.PatientName) == "王^小明"
    assert back.StudyInstanceUID == STUDY_UID
    assert back.SeriesDescription == "云影诊断报告"
    assert back.ContentTemplateSequence[0].TemplateIdentifier == "2000"
    assert back.ConceptNameCodeSequence[0].CodeValue == "18748-4"
    found = texts(back)
    assert found["Impression"] == [IMPRESSION]
    assert found["Finding"] == [FINDINGS]
    assert found["中线移位"] == ["3mm"]
    assert found["出血类型"] == ["脑实质内出血"]
    assert found["Recommendation"] == ["建议转诊至县医院神经外科进一步治疗。"]
    assert found["危急值通报"] == ["2024-05-06 10:45 经电话通知东乡镇卫生院 陈护士（记录人：李医生）"]
    critical = hd.sr.utils.find_content_items(
        back, name=hd.sr.CodedConcept("CRITICAL", "99YUNYING", "危急值"), recursive=True
    )
    assert critical[0].ConceptCodeSequence[0].CodeValue == "373066001"  # SCT Yes
    language = back.ContentSequence[0]
    assert language.ConceptNameCodeSequence[0].CodeValue == "121049"
    assert language.ConceptCodeSequence[0].CodeValue == "zh-CN"
    observers = [i.PersonName for i in hd.sr.utils.find_content_items(back, value_type=hd.sr.ValueTypeValues.PNAME)]
    assert observers == ["李医生^"]
    evidence = back.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.SeriesInstanceUID == SERIES_UID
    assert len(evidence.ReferencedSOPSequence) == 3


def test_signed_report_is_verified_by_the_signer_at_the_signed_time(report: ReportDocument) -> None:
    sr = dcmread(io.BytesIO(written(build_sr(report))))

    assert (sr.CompletionFlag, sr.VerificationFlag, sr.PreliminaryFlag) == ("COMPLETE", "VERIFIED", "FINAL")
    observer = sr.VerifyingObserverSequence[0]
    assert str(observer.VerifyingObserverName) == "李医生^"
    assert observer.VerifyingOrganization == "东县医学影像诊断中心"
    assert observer.VerificationDateTime == "20240506104130+0800"
    assert (sr.ContentDate, sr.ContentTime, sr.InstanceNumber) == ("20240506", "104130", 1)


def test_preliminary_is_unverified(make_report: ReportFactory) -> None:
    sr = build_sr(make_report(status=ReportStatus.PRELIMINARY, signer=None, signed_at=None))

    assert (sr.CompletionFlag, sr.VerificationFlag, sr.PreliminaryFlag) == ("PARTIAL", "UNVERIFIED", "PRELIMINARY")
    assert "VerifyingObserverSequence" not in sr


def test_final_without_a_signer_is_refused(make_report: ReportFactory) -> None:
    with pytest.raises(ReportOutputError, match="no signer"):
        build_sr(make_report(signer=None))


def test_a_time_without_zone_is_refused(make_report: ReportFactory) -> None:
    # Stored times are aware UTC; a naive one cannot be printed in the consortium's zone.
    with pytest.raises(ReportOutputError, match="has no time zone"):
        build_sr(make_report(signed_at=datetime(2024, 5, 6, 10, 41)))


def test_amendment_lands_in_the_same_series_and_names_its_predecessor(report: ReportDocument) -> None:
    first, second = build_sr(report), build_sr(amended(report))

    assert second.SeriesInstanceUID == first.SeriesInstanceUID == series_uid(report, "sr")
    assert second.SOPInstanceUID != first.SOPInstanceUID
    assert second.InstanceNumber == 2
    predecessor = second.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert predecessor.ReferencedSOPInstanceUID == first.SOPInstanceUID
    addendum = texts(hd.sr.srread(io.BytesIO(written(second))))["补充报告"]
    assert addendum == ["2024-05-06 14:00 张主任：复核：出血量估算约13ml，余同前。"]


def test_rebuilding_gives_identical_bytes(report: ReportDocument) -> None:
    # A retried delivery must send the same instance (PS3.4 B.4.1), not a near-duplicate.
    assert written(build_sr(report)) == written(build_sr(dataclasses.replace(report)))
    assert build_sr(report).SOPInstanceUID == output_uid(report, "sr")


def test_no_evidence_still_builds_without_inventing_references(make_report: ReportFactory) -> None:
    sr = build_sr(make_report(evidence=()))

    assert "CurrentRequestedProcedureEvidenceSequence" not in sr
    assert str(sr.PatientName) == "王^小明"
    assert sr.StudyInstanceUID == STUDY_UID


def test_dcmtk_dsrdump_reads_the_document(report: ReportDocument, tmp_path: Path) -> None:
    path = tmp_path / "report.dcm"
    path.write_bytes(written(build_sr(report)))

    done = subprocess.run(["dsrdump", "+U8", "+Pl", str(path)], capture_output=True, timeout=30)
    out = done.stdout.decode("utf-8")
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    assert "Diagnostic imaging report" in out
    assert IMPRESSION in out
    assert "王^小明" in out
    # dcmtk 3.6.7 warns "The VR checker does not support ... ISO_IR 192" and then reads it right.
    assert b"E:" not in done.stderr
