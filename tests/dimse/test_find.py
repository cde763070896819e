"""C-FIND on the running receiver with dcmtk's findscu (and pynetdicom for C-CANCEL): both
information models, every level, Chinese and Latin names, scope by calling AE, admission,
bad identifiers and the access audit — on SQLite + folder and PostgreSQL + S3."""

from __future__ import annotations

import threading
import time
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind  # type: ignore[attr-defined]
from sqlalchemy import select

from pacs.audit_chain import accesses
from pacs.dimse import qr_scp
from pacs.index.db import transaction
from pacs.index.models import AccessRecord
from tests.dimse.conftest import QR


def _uids(answers: list[pydicom.Dataset], keyword: str = "StudyInstanceUID") -> set[str]:
    return {str(a.get(keyword)) for a in answers}


def test_study_root_matches_like_qido_and_answers_the_keys_asked_for(qr: QR) -> None:
    chinese, latin = qr.studies["fudong_chinese"][0], qr.studies["fudong_latin"][0]
    keys = {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "", "NumberOfStudyRelatedInstances": ""}
    result, answers = qr.find("-S", {**keys, "PatientName": "王^小明", "Manufacturer": ""})
    assert result.ok, result.output[-2000:]
    assert len(answers) == 1
    found = answers[0]
    assert str(found.PatientName) == "王^小明"  # intact UTF-8, not '^' or mojibake
    assert found.SpecificCharacterSet == "ISO_IR 192"
    assert found.StudyInstanceUID == chinese.StudyInstanceUID and found.NumberOfStudyRelatedInstances == 3
    # Exactly the keys asked for (PS3.4 C.4.1.1.3.2); one the index does not hold comes back empty.
    assert {e.keyword for e in found} == {
        "SpecificCharacterSet",
        "QueryRetrieveLevel",
        "PatientName",
        "StudyInstanceUID",
        "NumberOfStudyRelatedInstances",
        "Manufacturer",
    }
    assert found.Manufacturer == ""
    # Latin names case-insensitively, any component group; wildcards; date ranges; UID lists.
    assert _uids(qr.find("-S", {**keys, "PatientName": "zhang*"})[1]) == {latin.StudyInstanceUID}
    assert _uids(qr.find("-S", {**keys, "PatientName": "张^三"})[1]) == {latin.StudyInstanceUID}
    assert _uids(qr.find("-S", {**keys, "PatientName": "王*"})[1]) == {chinese.StudyInstanceUID}  # not Anfeng's
    assert _uids(qr.find("-S", {**keys, "StudyDate": "20250101-"})[1]) == {chinese.StudyInstanceUID}
    assert _uids(qr.find("-S", {**keys, "StudyDate": "-20241231"})[1]) == {latin.StudyInstanceUID}
    both = f"{chinese.StudyInstanceUID}\\{latin.StudyInstanceUID}"
    assert _uids(qr.find("-S", {**keys, "StudyInstanceUID": both})[1]) == {
        chinese.StudyInstanceUID,
        latin.StudyInstanceUID,
    }
    assert qr.find("-S", {**keys, "PatientID": "no-such-id"})[1] == []


def test_series_and_image_levels(qr: QR) -> None:
    chinese = qr.studies["fudong_chinese"]
    study = chinese[0].StudyInstanceUID
    result, series = qr.find(
        "-S",
        {
            "QueryRetrieveLevel": "SERIES",
            "StudyInstanceUID": study,
            "SeriesInstanceUID": "",
            "Modality": "",
            "NumberOfSeriesRelatedInstances": "",
        },
    )
    assert result.ok and len(series) == 1
    assert series[0].SeriesInstanceUID == chinese[0].SeriesInstanceUID
    assert series[0].Modality == "CT" and series[0].NumberOfSeriesRelatedInstances == 3
    result, images = qr.find(
        "-S",
        {
            "QueryRetrieveLevel": "IMAGE",
            "StudyInstanceUID": study,
            "SeriesInstanceUID": chinese[0].SeriesInstanceUID,
            "SOPInstanceUID": "",
            "InstanceNumber": "",
        },
    )
    assert result.ok
    assert _uids(images, "SOPInstanceUID") == {ds.SOPInstanceUID for ds in chinese}
    assert sorted(int(i.InstanceNumber) for i in images) == [1, 2, 3]


def test_patient_root_levels(qr: QR) -> None:
    chinese = qr.studies["fudong_chinese"][0]
    result, patients = qr.find(
        "-P",
        {"QueryRetrieveLevel": "PATIENT", "PatientName": "*", "PatientID": "", "NumberOfPatientRelatedStudies": ""},
    )
    assert result.ok, result.output[-2000:]
    assert {str(p.PatientName) for p in patients} == {"王^小明", "ZHANG^SAN=张^三"}
    assert all(p.NumberOfPatientRelatedStudies == 1 for p in patients)
    result, studies = qr.find(
        "-P", {"QueryRetrieveLevel": "STUDY", "PatientID": chinese.PatientID, "StudyInstanceUID": "", "StudyDate": ""}
    )
    assert result.ok and _uids(studies) == {chinese.StudyInstanceUID}
    assert studies[0].StudyDate == "20250405"
    result, images = qr.find(
        "-P", {"QueryRetrieveLevel": "IMAGE", "PatientID": chinese.PatientID, "SOPInstanceUID": ""}
    )
    assert result.ok and len(images) == 3
    # PATIENT is not a level of the Study Root model.
    refused, answers = qr.find("-S", {"QueryRetrieveLevel": "PATIENT", "PatientName": ""})
    assert "DoesNotMatchSOPClass" in refused.final and answers == []  # dcmtk's words for 0xA900


def test_scope_follows_the_calling_ae(qr: QR) -> None:
    keys = {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "", "PatientName": ""}
    everyone = {ds[0].StudyInstanceUID for ds in qr.studies.values()}
    fudong = {qr.studies["fudong_chinese"][0].StudyInstanceUID, qr.studies["fudong_latin"][0].StudyInstanceUID}
    anfeng = qr.studies["anfeng"][0].StudyInstanceUID
    assert _uids(qr.find("-S", keys, calling="ANFENG_CT")[1]) == {anfeng}
    assert _uids(qr.find("-S", keys, calling="FUDONG_CT")[1]) == fudong
    assert _uids(qr.find("-S", keys, calling="COUNTY_PACS")[1]) == everyone  # a consortium node
    assert _uids(qr.find("-S", keys, calling="FUDONG_PACS")[1]) == fudong  # a site node
    # Another site's study by its UID is simply not found.
    assert qr.find("-S", {**keys, "StudyInstanceUID": anfeng}, calling="FUDONG_CT")[1] == []


@pytest.mark.parametrize("calling", ["STRANGER", "ELSEWHERE"])
def test_unknown_callers_are_rejected(qr: QR, calling: str) -> None:
    """An unknown AE title, and a node calling from outside its allowed address (10.9.9.9)."""
    result, answers = qr.find("-S", {"QueryRetrieveLevel": "STUDY", "PatientName": ""}, calling=calling)
    assert "Association Rejected" in result.output and answers == []


@pytest.mark.parametrize(
    ("keys", "why"),
    [
        ({"PatientName": ""}, "no QueryRetrieveLevel"),
        ({"QueryRetrieveLevel": "WARD", "PatientName": ""}, "not one of"),
        ({"QueryRetrieveLevel": "STUDY", "Modality": "CT"}, "series-level key"),
        ({"QueryRetrieveLevel": "STUDY", "StudyDate": "2025-04-05"}, "YYYYMMDD"),
    ],
)
def test_bad_identifiers_get_a_failure_status(qr: QR, keys: dict[str, str], why: str) -> None:
    result, answers = qr.find("-S", keys)
    assert "DoesNotMatchSOPClass" in result.final, result.output[-2000:]  # dcmtk's words for 0xA900
    assert answers == []
    # findscu does not print the Error Comment; pynetdicom shows what the peer is told.
    identifier = Dataset()
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    final = _pynetdicom_find(qr.port, identifier)[-1]
    assert final.Status == 0xA900 and why in final.ErrorComment
    assert qr.find("-S", {"QueryRetrieveLevel": "STUDY", "PatientName": ""})[0].ok  # still serving


def _pynetdicom_find(port: int, identifier: Dataset, calling: str = "FUDONG_CT") -> list[Dataset]:
    ae = AE(ae_title=calling)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="YUNYING")
    assert assoc.is_established
    try:
        return [status for status, _ in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind)]
    finally:
        assoc.release()


def test_every_find_is_audited(qr: QR) -> None:
    qr.find("-S", {"QueryRetrieveLevel": "STUDY", "PatientName": "王*", "StudyInstanceUID": ""})
    qr.find("-S", {"QueryRetrieveLevel": "SERIES", "SeriesInstanceUID": ""}, calling="COUNTY_PACS")
    with transaction(qr.fixture.services.sessions) as session:
        records = session.scalars(select(AccessRecord).where(accesses()).order_by(AccessRecord.id)).all()
    assert [(r.username, r.role, r.action, r.outcome, r.user_id) for r in records] == [
        ("ae:FUDONG_CT", "site", "search", "success", None),
        ("ae:COUNTY_PACS", "dicom-node", "search", "success", None),
    ]
    first, second = records[0].detail, records[1].detail
    assert first["answered"] == 1 and first["query"] == {"PatientName": "王*"} and first["level"] == "STUDY"
    assert first["studies"] == [qr.studies["fudong_chinese"][0].StudyInstanceUID]
    assert second["answered"] == 3 and records[0].source == "127.0.0.1"


def test_cancel_stops_the_answers(qr: QR, monkeypatch: pytest.MonkeyPatch) -> None:
    """dcmtk's findscu cannot cancel mid-answer: pynetdicom sends C-CANCEL after the first
    answer; the SCP is slowed (in this process) so that answers remain when the cancel lands."""
    slow_answer = qr_scp.answer

    def answer_slowly(*args: Any, **kwargs: Any) -> Dataset:
        time.sleep(0.3)
        return slow_answer(*args, **kwargs)

    monkeypatch.setattr(qr_scp, "answer", answer_slowly)
    ae = AE(ae_title="COUNTY_PACS")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", qr.port, ae_title="YUNYING")
    assert assoc.is_established
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "IMAGE"
    identifier.SOPInstanceUID = ""
    statuses = []
    try:
        for status, _ in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind, msg_id=7):
            statuses.append(int(status.Status))
            if len(statuses) == 1:
                context_id = assoc._get_valid_context(StudyRootQueryRetrieveInformationModelFind, "", "scu").context_id
                threading.Thread(target=assoc.send_c_cancel, args=(7, context_id)).start()
    finally:
        assoc.release()
    assert statuses[-1] == 0xFE00, statuses  # Matching terminated due to Cancel
    assert statuses.count(0xFF00) < 5  # five instances in scope: not all were answered
    with transaction(qr.fixture.services.sessions) as session:
        record = session.scalars(select(AccessRecord).where(accesses())).one()
    assert record.outcome == "cancelled" and record.detail["answered"] == statuses.count(0xFF00)
