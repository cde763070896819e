"""A realistic report document, built by a factory so each test changes only what it tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from reading.reports.document import (
    Addendum,
    CriticalCommunication,
    EvidenceRef,
    Person,
    ReportDocument,
    ReportPatient,
    ReportStatus,
    ReportStudy,
)
from reading.reports.templates import field_values

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
STUDY_UID = "1.2.826.0.1.3680043.8.498.11223344556677889900"
SERIES_UID = f"{STUDY_UID}.1"
FINDINGS = (
    "左侧基底节区见片状高密度影，约2.1×1.5cm，CT值约65HU，周围见低密度水肿带，"
    "左侧侧脑室受压变窄，中线结构右移约3mm。余脑实质密度未见明显异常，脑沟脑裂未见增宽。"
    "颅骨骨质连续，未见骨折征象。"
)
IMPRESSION = "左侧基底节区脑出血（急性期），建议神经外科会诊。"
COUNTY_READER = Person(username="li.yisheng", display_name="李医生", tier="county")
PROVINCIAL_EXPERT = Person(username="zhang.zhuren", display_name="张主任", tier="provincial")
SIGNED_AT = datetime(2024, 5, 6, 2, 41, 30, tzinfo=UTC)  # 10:41 in Asia/Shanghai

ReportFactory = Callable[..., ReportDocument]


@pytest.fixture
def make_report() -> ReportFactory:
    """``make_report(**changes)``: a signed critical CT head report, with any field replaced."""

    def factory(**changes: Any) -> ReportDocument:
        doc = ReportDocument(
            report_id=4711,
            version=1,
            status=ReportStatus.FINAL,
            centre_name="东县医学影像诊断中心",
            site_name="东乡镇卫生院",
            patient=ReportPatient(patient_id="DX20240506001", name="王^小明", birth_date="19580312", sex="M"),
            study=ReportStudy(
                study_uid=STUDY_UID,
                accession_number="A20240506017",
                study_date="20240506",
                study_time="095512",
                study_description="头颅CT平扫",
                modality="CT",
                body_part="HEAD",
                referring_physician="赵^医生",
                study_id="17",
            ),
            template_id="ct_head",
            template_title="头颅CT平扫",
            fields=field_values(
                "ct_head",
                {
                    "haemorrhage": True,
                    "haemorrhage_type": "intraparenchymal",
                    "haemorrhage_location": "左侧基底节区",
                    "haemorrhage_volume_ml": 12.5,
                    "perihaematomal_oedema": True,
                    "midline_shift_mm": 3,
                    "midline_shift_direction": "right",
                    "ventricles": "compressed",
                    "skull_fracture": False,
                },
            ),
            findings=FINDINGS,
            impression=IMPRESSION,
            critical=True,
            author=COUNTY_READER,
            signer=COUNTY_READER,
            signed_at=SIGNED_AT,
            created_at=datetime(2024, 5, 6, 2, 30, tzinfo=UTC),
            referral="建议转诊至县医院神经外科进一步治疗。",
            critical_communications=(
                CriticalCommunication(
                    told="东乡镇卫生院 陈护士",
                    method="phone",
                    at=datetime(2024, 5, 6, 2, 45, tzinfo=UTC),
                    recorded_by="李医生",
                ),
            ),
            evidence=tuple(
                EvidenceRef(series_uid=SERIES_UID, sop_class_uid=CT_IMAGE_STORAGE, sop_instance_uid=f"{SERIES_UID}.{n}")
                for n in (1, 2, 3)
            ),
        )
        return dataclasses.replace(doc, **changes)

    return factory


@pytest.fixture
def report(make_report: ReportFactory) -> ReportDocument:
    return make_report()


def amended(doc: ReportDocument) -> ReportDocument:
    """Version 2 of ``doc``: an addendum by the provincial expert after signing."""
    return dataclasses.replace(
        doc,
        version=2,
        status=ReportStatus.AMENDED,
        cosigner=PROVINCIAL_EXPERT,
        addenda=(
            Addendum(
                at=datetime(2024, 5, 6, 6, 0, tzinfo=UTC),
                author=PROVINCIAL_EXPERT,
                text="复核：出血量估算约13ml，余同前。",
            ),
        ),
    )


# The reading world on a real index (tests/reading/world.py).
from tests.reading.world import make_world, world_backend  # noqa: E402, F401
