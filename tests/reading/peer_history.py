"""A known month of signed reports for peer review, so every rate and interval can be worked
out by hand (the arithmetic is in test_peer.py).

*Peer Consortium* (Asia/Shanghai, UTC+8): the township *Peer Fudong* and the village *Peer
Xinjie*; county readers 李 (``peer-li``: CT, DX), 王 (``peer-wang``: CT) and 赵 (``peer-zhao``:
DX); provincial 陈 (``peer-chen``: CT, DX) and — unless ``with_zhang=False`` — 张
(``peer-zhang``: CT, DX). *Other Consortium*: the township *Elsewhere* and two county readers,
``other-li`` and ``other-wu``. Every reader reads for his own consortium only.

Reports signed in October 2026 (local), with the score each will be given in the rate tests:

| numbers | reader | site | study | scores |
|---|---|---|---|---|
| 1–6 | 李 | Peer Fudong | CT HEAD | 1, 1, 1, 1, 2a, 3b |
| 7–10 | 李 | Peer Xinjie | DX CHEST | 1, 1, 1, 2b |
| 11–15 | 王 | Peer Fudong | CT HEAD | 1, 1, 1, 1, 1 |
| 16–19 | 陈 (provincial) | Peer Xinjie | CT HEAD | 1, 1, 1, 3a |
| 30 | other-li | Elsewhere | CT HEAD | 3b |

Report 1 is signed 2026-09-30 17:00 UTC — 10-01 01:00 in Shanghai, so October there; the
others on day *n* of October at 02:00 UTC (n = 1…19; 30 on the 30th). Not sampled for October:
report 21 (李, signed 10-31 16:30 UTC = 11-01 00:30 local: November), report 22 (李, only
preliminary: its task is open), and the addendum (version 2) of report 2. Task 40 (Peer
Fudong CT, county) is still queued: both open tasks are on the county worklists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from pacs.identity.sites import add_site
from pacs.index.models import Patient, Study
from reading.admin import add_reader
from reading.models import ReadingTask, Report, ReportStatus

CONSORTIUM = "Peer Consortium"
OTHER = "Other Consortium"
NOW = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
SCORES = {
    **dict(zip(range(1, 7), ("1", "1", "1", "1", "2a", "3b"), strict=True)),
    **dict(zip(range(7, 11), ("1", "1", "1", "2b"), strict=True)),
    **dict.fromkeys(range(11, 16), "1"),
    **dict(zip(range(16, 20), ("1", "1", "1", "3a"), strict=True)),
    30: "3b",
}


@dataclass
class PeerHistory:
    consortium_id: int
    other_consortium_id: int
    sites: dict[str, int]
    readers: dict[str, int]  # username → reader id
    reports: dict[int, int] = field(default_factory=dict)  # number → report id
    tasks: dict[int, int] = field(default_factory=dict)  # number → task id

    def number_of(self, report_id: int) -> int:
        return {v: k for k, v in self.reports.items()}[report_id]


def signed_on(number: int) -> datetime:
    if number == 1:
        return datetime(2026, 9, 30, 17, 0, tzinfo=UTC)
    if number == 21:
        return datetime(2026, 10, 31, 16, 30, tzinfo=UTC)
    return datetime(2026, 10, number, 2, 0, tzinfo=UTC)


def build_peer_history(session: Session, *, with_zhang: bool = True) -> PeerHistory:
    fudong = add_site(session, consortium=CONSORTIUM, name="Peer Fudong", tier="township")
    xinjie = add_site(session, consortium=CONSORTIUM, name="Peer Xinjie", tier="village")
    elsewhere = add_site(session, consortium=OTHER, name="Elsewhere", tier="township")
    readers = {}
    for username, consortium, tier, modalities, name in (
        ("peer-li", CONSORTIUM, "county", ["CT", "DX"], "李"),
        ("peer-wang", CONSORTIUM, "county", ["CT"], "王"),
        ("peer-zhao", CONSORTIUM, "county", ["DX"], "赵"),
        ("peer-chen", CONSORTIUM, "provincial", ["CT", "DX"], "陈"),
        ("peer-zhang", CONSORTIUM, "provincial", ["CT", "DX"], "张"),
        ("other-li", OTHER, "county", ["CT"], "Other Li"),
        ("other-wu", OTHER, "county", ["CT"], "Other Wu"),
    ):
        if username == "peer-zhang" and not with_zhang:
            continue
        reader = add_reader(
            session, username=username, consortium=consortium, tier=tier, modalities=modalities, display_name=name
        )
        readers[username] = reader.id
    history = PeerHistory(
        fudong.consortium_id,
        elsewhere.consortium_id,
        {"Peer Fudong": fudong.id, "Peer Xinjie": xinjie.id, "Elsewhere": elsewhere.id},
        readers,
    )
    plan = (
        [(n, "peer-li", "Peer Fudong", "CT") for n in range(1, 7)]
        + [(n, "peer-li", "Peer Xinjie", "DX") for n in range(7, 11)]
        + [(n, "peer-wang", "Peer Fudong", "CT") for n in range(11, 16)]
        + [(n, "peer-chen", "Peer Xinjie", "CT") for n in range(16, 20)]
        + [(21, "peer-li", "Peer Fudong", "CT"), (22, "peer-li", "Peer Fudong", "CT")]
        + [(30, "other-li", "Elsewhere", "CT")]
    )
    for number, reader, site, modality in plan:
        consortium_id = history.other_consortium_id if site == "Elsewhere" else history.consortium_id
        _report(session, history, number, readers[reader], consortium_id, history.sites[site], modality)
    _addendum(session, history, 2, readers["peer-li"])
    _queued_task(session, history, 40)
    return history


def _study(session: Session, number: int, site_id: int, modality: str) -> Study:
    patient = Patient(site_id=site_id, patient_id=f"PR{number:04d}", patient_name=f"PEER^{number}")
    session.add(patient)
    session.flush()
    study = Study(
        study_uid=f"1.2.826.0.1.3680043.10.7777.{number}",
        site_id=site_id,
        patient_pk=patient.id,
        patient_id=patient.patient_id,
        patient_name=patient.patient_name,
        accession_number=f"ACC{number:04d}",
        study_date="20261001",
        modalities=modality,
        body_part="HEAD" if modality == "CT" else "CHEST",
        state="stable",
    )
    session.add(study)
    session.flush()
    return study


def _task(session: Session, study: Study, consortium_id: int, *, state: str, tier: str, at: datetime) -> ReadingTask:
    task = ReadingTask(
        study_pk=study.id,
        study_uid=study.study_uid,
        consortium_id=consortium_id,
        site_id=study.site_id,
        tier=tier,
        state=state,
        priority="routine",
        priority_rank=2,
        deadline_at=at + timedelta(hours=4),
        modality=study.modalities,
        body_part=study.body_part,
        route_reason="peer history",
        images_seen_at=at,
        created_at=at,
        updated_at=at,
    )
    session.add(task)
    session.flush()
    return task


def _report(
    session: Session, history: PeerHistory, number: int, reader_id: int, consortium_id: int, site_id: int, modality: str
) -> None:
    study = _study(session, number, site_id, modality)
    signed = signed_on(number)
    tier = "provincial" if 16 <= number <= 19 else "county"
    final = number != 22
    task = _task(
        session,
        study,
        consortium_id,
        state="signed" if final else "preliminary",
        tier=tier,
        at=signed - timedelta(hours=1),
    )
    report = Report(
        task_id=task.id,
        study_uid=study.study_uid,
        version=1,
        status=ReportStatus.FINAL if final else ReportStatus.PRELIMINARY,
        template_id="ct_head" if modality == "CT" else "chest_xray",
        fields={},
        findings=f"所见 {number}",
        impression=f"诊断意见 {number}",
        author_id=reader_id,
        signer_id=reader_id if final else None,
        signed_at=signed if final else None,
        created_at=signed - timedelta(minutes=30),
        updated_at=signed,
    )
    session.add(report)
    session.flush()
    history.reports[number], history.tasks[number] = report.id, task.id


def _addendum(session: Session, history: PeerHistory, number: int, reader_id: int) -> None:
    """Version 2 of a report: an addendum is not another report to sample."""
    first = session.get_one(Report, history.reports[number])
    session.add(
        Report(
            task_id=first.task_id,
            study_uid=first.study_uid,
            version=2,
            status=ReportStatus.AMENDED,
            template_id=first.template_id,
            fields={},
            findings=first.findings,
            impression=first.impression,
            addendum="补充：余同前。",
            author_id=reader_id,
            signer_id=reader_id,
            signed_at=signed_on(number) + timedelta(hours=2),
            amends_id=first.id,
        )
    )
    session.flush()


def _queued_task(session: Session, history: PeerHistory, number: int) -> None:
    study = _study(session, number, history.sites["Peer Fudong"], "CT")
    task = _task(session, study, history.consortium_id, state="queued", tier="county", at=NOW - timedelta(hours=1))
    history.tasks[number] = task.id
