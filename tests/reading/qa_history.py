"""A known history for the QA figures: a consortium (Asia/Shanghai) with a township and a village
site, a county and a provincial reader, and seven reading tasks whose every event has a fixed
time — so each figure can be worked out by hand (the expectations are in test_qa.py, with the
arithmetic beside them).

Times are UTC on 2026-10-07 unless said (Asia/Shanghai is UTC+8):

1. Fudong CT routine: received 08:00, stable 08:02, re-opened 08:03, stable 08:05, AI 08:06,
   queued 08:07, claimed 08:27, signed 08:57 by 李, delivered 08:59. Deadline 12:07: met.
2. Fudong CT stat: received 09:00, stable 09:01, AI 09:02, queued 09:03, claimed 09:10,
   preliminary 09:20, signed 09:25 by 李, delivered 09:26. Deadline 09:33: met.
3. Xinjie DX urgent: received 10:00, stable 10:01, no AI, queued 10:03, claimed 11:13, signed
   11:43 by 李, delivered 11:45. Deadline 11:03: breached by 40 min, 70 min in the queue.
4. Xinjie DX routine, county: received 13:00, stable 13:01, AI 13:02, queued 13:03, claimed
   13:13, escalated 13:33 by 李 (no SLA judgement: the provincial task carries it).
5. Same study, provincial: queued 13:34, claimed 13:44, signed 14:04 by 陈, delivered 14:05.
   Deadline 17:34: met.
6. Fudong CT routine, 2026-10-31: received 08:00, stable 08:01, AI 08:02, queued 08:03, never
   claimed. Deadline 12:03; at NOW (10-31 18:00) open and breached by 357 min.
7. Fudong CT routine, 2026-10-31: received 17:00 (2026-11-01 01:00 in Shanghai: November there),
   stable 17:01, AI 17:02, queued 17:03, open. Deadline 21:03: not judged yet at NOW.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from pacs.identity.sites import add_site
from pacs.index.models import Change, Patient, Study
from reading.admin import add_reader
from reading.models import ReadingTask

NOW = datetime(2026, 10, 31, 18, 0, tzinfo=UTC)
CONSORTIUM = "QA Consortium"


def at(day: int, hhmm: str, month: int = 10) -> datetime:
    hour, minute = (int(part) for part in hhmm.split(":"))
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@dataclass
class History:
    consortium_id: int
    sites: dict[str, int]
    readers: dict[str, int]
    tasks: dict[int, int]  # number in the docstring → task id
    studies: dict[int, str]  # number → study UID


class _Writer:
    def __init__(self, session: Session, history: History) -> None:
        self.session = session
        self.history = history
        self.patients = 0

    def study(self, number: int, site: str, modality: str) -> Study:
        self.patients += 1
        site_id = self.history.sites[site]
        patient = Patient(site_id=site_id, patient_id=f"QA{self.patients:04d}", patient_name=f"QA^{number}")
        self.session.add(patient)
        self.session.flush()
        uid = f"1.2.826.0.1.3680043.10.9999.{number}"
        study = Study(
            study_uid=uid,
            site_id=site_id,
            patient_pk=patient.id,
            patient_id=patient.patient_id,
            modalities=modality,
            body_part="HEAD" if modality == "CT" else "CHEST",
            state="stable",
        )
        self.session.add(study)
        self.session.flush()
        self.history.studies[number] = uid
        return study

    def event(self, kind: str, when: datetime, study: Study, actor: str | None = None, **payload: Any) -> None:
        self.session.add(
            Change(kind=kind, at=when, study_uid=study.study_uid, site_id=study.site_id, actor=actor, payload=payload)
        )
        self.session.flush()

    def task(
        self, number: int, study: Study, *, tier: str, priority: str, queued: datetime, deadline: timedelta
    ) -> ReadingTask:
        task = ReadingTask(
            study_pk=study.id,
            study_uid=study.study_uid,
            consortium_id=self.history.consortium_id,
            site_id=study.site_id,
            tier=tier,
            state="queued",
            priority=priority,
            priority_rank={"stat": 0, "urgent": 1, "routine": 2}[priority],
            deadline_at=queued + deadline,
            modality=study.modalities,
            body_part=study.body_part,
            route_reason="test history",
            images_seen_at=queued,
            created_at=queued,
            updated_at=queued,
        )
        self.session.add(task)
        self.session.flush()
        self.history.tasks[number] = task.id
        self.event(
            "task.queued",
            queued,
            study,
            "router",
            task_id=task.id,
            tier=tier,
            priority=priority,
            deadline_at=task.deadline_at.isoformat(),
        )
        return task

    def move(self, kind: str, when: datetime, study: Study, task: ReadingTask, actor: str) -> None:
        self.event(kind, when, study, actor, task_id=task.id, tier=task.tier, priority=task.priority)

    def sign(self, when: datetime, study: Study, task: ReadingTask, reader: str, report_id: int) -> None:
        actor = f"reader:{self.history.readers[reader]}"
        self.move("task.signed", when, study, task, actor)
        self.event("report.signed", when, study, actor, task_id=task.id, report_id=report_id, version=1, critical=False)

    def deliver(self, when: datetime, study: Study, report_id: int) -> None:
        self.event(
            "delivery.delivered", when, study, "delivery", delivery_id=report_id, report_id=report_id, attempts=1
        )


def build_history(session: Session, *, stop_after: int | None = None) -> History:
    """Write the history (tasks 1…``stop_after``, all by default). Call ``extend_history`` to
    add the rest later — the incremental refresh is checked that way."""
    fudong = add_site(session, consortium=CONSORTIUM, name="QA Fudong", tier="township")
    xinjie = add_site(session, consortium=CONSORTIUM, name="QA Xinjie", tier="village")
    li = add_reader(
        session, username="qa-li", consortium=CONSORTIUM, tier="county", modalities=["CT", "DX"], display_name="李"
    )
    chen = add_reader(
        session,
        username="qa-chen",
        consortium=CONSORTIUM,
        tier="provincial",
        modalities=["CT", "DX"],
        display_name="陈",
    )
    history = History(
        fudong.consortium_id, {"QA Fudong": fudong.id, "QA Xinjie": xinjie.id}, {"li": li.id, "chen": chen.id}, {}, {}
    )
    extend_history(session, history, start=1, stop=stop_after or 7)
    return history


def extend_history(session: Session, history: History, *, start: int, stop: int) -> None:
    w = _Writer(session, history)
    w.patients = 100 * start
    steps = {1: _one, 2: _two, 3: _three, 4: _four_five, 6: _six, 7: _seven}
    for number in sorted(steps):
        if start <= number <= stop:
            steps[number](w)


def _one(w: _Writer) -> None:
    s = w.study(1, "QA Fudong", "CT")
    w.event("study.received", at(7, "08:00"), s)
    w.event("study.stable", at(7, "08:02"), s)
    w.event("study.reopened", at(7, "08:03"), s)
    w.event("study.stable", at(7, "08:05"), s)
    w.event("ai.done", at(7, "08:06"), s, "ai", model="image-qc", version="1.1")
    w.event("study.ready_for_reading", at(7, "08:06"), s, "ai")
    t = w.task(1, s, tier="county", priority="routine", queued=at(7, "08:07"), deadline=timedelta(hours=4))
    w.move("task.claimed", at(7, "08:27"), s, t, "qa-li")
    w.sign(at(7, "08:57"), s, t, "li", report_id=101)
    w.deliver(at(7, "08:59"), s, 101)


def _two(w: _Writer) -> None:
    s = w.study(2, "QA Fudong", "CT")
    w.event("study.received", at(7, "09:00"), s)
    w.event("study.stable", at(7, "09:01"), s)
    w.event("ai.done", at(7, "09:02"), s, "ai", model="head-ct-ich", version="0.1.0")
    t = w.task(2, s, tier="county", priority="stat", queued=at(7, "09:03"), deadline=timedelta(minutes=30))
    w.move("task.claimed", at(7, "09:10"), s, t, "qa-li")
    w.move("task.preliminary", at(7, "09:20"), s, t, "qa-li")
    w.sign(at(7, "09:25"), s, t, "li", report_id=102)
    w.deliver(at(7, "09:26"), s, 102)


def _three(w: _Writer) -> None:
    s = w.study(3, "QA Xinjie", "DX")
    w.event("study.received", at(7, "10:00"), s)
    w.event("study.stable", at(7, "10:01"), s)
    t = w.task(3, s, tier="county", priority="urgent", queued=at(7, "10:03"), deadline=timedelta(minutes=60))
    w.move("task.claimed", at(7, "11:13"), s, t, "qa-li")
    w.sign(at(7, "11:43"), s, t, "li", report_id=103)
    w.deliver(at(7, "11:45"), s, 103)


def _four_five(w: _Writer) -> None:
    s = w.study(4, "QA Xinjie", "DX")
    w.event("study.received", at(7, "13:00"), s)
    w.event("study.stable", at(7, "13:01"), s)
    w.event("ai.done", at(7, "13:02"), s, "ai", model="chest-dx-triage", version="0.1.0")
    county = w.task(4, s, tier="county", priority="routine", queued=at(7, "13:03"), deadline=timedelta(hours=4))
    w.move("task.claimed", at(7, "13:13"), s, county, "qa-li")
    w.move("task.escalated", at(7, "13:33"), s, county, f"reader:{w.history.readers['li']}")
    provincial = w.task(5, s, tier="provincial", priority="routine", queued=at(7, "13:34"), deadline=timedelta(hours=4))
    w.move("task.claimed", at(7, "13:44"), s, provincial, "qa-chen")
    w.sign(at(7, "14:04"), s, provincial, "chen", report_id=105)
    w.deliver(at(7, "14:05"), s, 105)


def _six(w: _Writer) -> None:
    s = w.study(6, "QA Fudong", "CT")
    w.event("study.received", at(31, "08:00"), s)
    w.event("study.stable", at(31, "08:01"), s)
    w.event("ai.done", at(31, "08:02"), s, "ai", model="head-ct-ich", version="0.1.0")
    w.task(6, s, tier="county", priority="routine", queued=at(31, "08:03"), deadline=timedelta(hours=4))


def _seven(w: _Writer) -> None:
    s = w.study(7, "QA Fudong", "CT")
    w.event("study.received", at(31, "17:00"), s)
    w.event("study.stable", at(31, "17:01"), s)
    w.event("ai.done", at(31, "17:02"), s, "ai", model="head-ct-ich", version="0.1.0")
    w.task(7, s, tier="county", priority="routine", queued=at(31, "17:03"), deadline=timedelta(hours=4))
