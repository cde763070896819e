"""More of October 2026 on top of qa_history.py's history (which stays as it is for
test_qa.py): AI findings and readers' feedback, two AI-prioritised tasks, a task raised by a
site's request, and a township with a Chinese name — so the workload, AI and monthly-report
figures can be worked out by hand (test_qa_report.py, with the arithmetic beside them).

Times UTC (Asia/Shanghai is UTC+8, every one of these is in local October):

8.  QA Fudong CT, raised to stat at routing by the AI alone ("priority stat from the AI
    pre-screen"): received 10-08 02:00, stable 02:01, AI 02:02 (head-ct-ich positive, suggests
    stat), queued 02:03, claimed 02:08 (waited 5), signed 02:28 by 李. Deadline 02:33: met.
9.  QA Fudong CT, queued routine 10-08 03:03 (received 03:00, stable 03:01, no AI yet); the AI
    comes at 03:05 (head-ct-ich positive, suggests urgent) and the router raises it to urgent
    (task.route_updated). Claimed 03:15 (waited 12), signed 03:35 by 李. Deadline 04:03: met.
10. QA 安丰 CT routine: received 10-09 01:00, stable 01:01, AI 01:02 (head-ct-ich negative),
    queued 01:03; the site asks for urgent at 01:10 (task.route_updated by the site user: not
    the AI). Claimed 01:48 (waited 45), signed 02:08 by 李. Deadline 02:03: 5 min late.
11. QA Fudong CT stat by the order *and* the AI ("from the order and the AI pre-screen": not
    raised by the AI): received 10-10 00:00, stable 00:01, AI 00:02 (head-ct-ich positive,
    suggests stat), queued 00:03, claimed 00:13 (waited 10), signed 00:30 by 李. Deadline 00:33.

Findings of the base history's studies: 1 image-qc 1.1 negative (10-07 08:06); 2 head-ct-ich
negative (10-07 09:02); 4 chest-dx-triage positive, suggests urgent (10-07 13:02; the model is
not validated: task 4 stayed routine); 6 head-ct-ich negative (10-31 08:02); 7 head-ct-ich
positive (10-31 17:02 UTC = 11-01 01:02 local: November, not counted in October).

Feedback: on 8's finding 李 and 陈 agree; on 9's 李 disagrees; on 2's (a negative) 李 agrees;
on 4's 李 disagrees and 陈 agrees. None on any other.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ai_models.records import AiFeedback, AiFinding
from pacs.identity.sites import add_site
from pacs.index.models import Study
from reading.models import Reader, ReadingTask
from tests.reading.qa_history import CONSORTIUM, History, _Writer, at

ANFENG = "QA 安丰"


class _MonthWriter(_Writer):
    def routed(
        self,
        number: int,
        study: Study,
        *,
        priority: str,
        queued: datetime,
        deadline: timedelta,
        reason: str,
        final_priority: str | None = None,
    ) -> ReadingTask:
        """A county task queued at ``priority`` with the router's reason; ``final_priority``:
        what the task row says after a later raise."""
        final = final_priority or priority
        task = ReadingTask(
            study_pk=study.id,
            study_uid=study.study_uid,
            consortium_id=self.history.consortium_id,
            site_id=study.site_id,
            tier="county",
            state="signed",
            priority=final,
            priority_rank={"stat": 0, "urgent": 1, "routine": 2}[final],
            deadline_at=queued + deadline,
            modality=study.modalities,
            body_part=study.body_part,
            route_reason=reason,
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
            tier="county",
            priority=priority,
            deadline_at=task.deadline_at.isoformat(),
            reason=reason,
            escalated_from=None,
        )
        return task

    def finding(
        self,
        number: int,
        model: str,
        version: str,
        *,
        positive: bool,
        when: datetime,
        triage: str | None = None,
        label: str = "finding",
    ) -> int:
        uid = self.history.studies[number]
        site_id = self.session.scalar(select(Study.site_id).where(Study.study_uid == uid))
        row = AiFinding(
            study_uid=uid,
            site_id=site_id,
            model=model,
            version=version,
            label=label,
            probability=0.9 if positive else 0.1,
            positive=positive,
            location=[],
            suggested_triage=triage,
            validated=False,
            explanation="test history",
            created_at=when,
        )
        self.session.add(row)
        self.session.flush()
        return row.id

    def opinion(self, finding_id: int, reader: str, agree: bool, when: datetime) -> None:
        user_id = self.session.scalar(select(Reader.user_id).where(Reader.id == self.history.readers[reader]))
        assert user_id is not None
        self.session.add(AiFeedback(finding_id=finding_id, user_id=user_id, agree=agree, at=when))
        self.session.flush()


def add_october(session: Session, history: History) -> dict[int, int]:
    """Write tasks 8–11, the findings and the feedback; returns study number → its finding id."""
    anfeng = add_site(session, consortium=CONSORTIUM, name=ANFENG, tier="township")
    history.sites[ANFENG] = anfeng.id
    w = _MonthWriter(session, history)
    w.patients = 800
    findings = {
        1: w.finding(1, "image-qc", "1.1", positive=False, when=at(7, "08:06"), label="image quality"),
        2: w.finding(2, "head-ct-ich", "0.1.0", positive=False, when=at(7, "09:02")),
        4: w.finding(4, "chest-dx-triage", "0.1.0", positive=True, when=at(7, "13:02"), triage="urgent"),
        6: w.finding(6, "head-ct-ich", "0.1.0", positive=False, when=at(31, "08:02")),
        7: w.finding(7, "head-ct-ich", "0.1.0", positive=True, when=at(31, "17:02"), triage="stat"),
    }

    s = w.study(8, "QA Fudong", "CT")
    w.event("study.received", at(8, "02:00"), s)
    w.event("study.stable", at(8, "02:01"), s)
    w.event("ai.done", at(8, "02:02"), s, "ai", model="head-ct-ich", version="0.1.0")
    findings[8] = w.finding(8, "head-ct-ich", "0.1.0", positive=True, when=at(8, "02:02"), triage="stat")
    t = w.routed(
        8,
        s,
        priority="stat",
        queued=at(8, "02:03"),
        deadline=timedelta(minutes=30),
        reason="routed to county: township site QA Fudong; priority stat from the AI pre-screen; SLA 30 min",
    )
    w.move("task.claimed", at(8, "02:08"), s, t, "qa-li")
    w.sign(at(8, "02:28"), s, t, "li", report_id=108)
    w.deliver(at(8, "02:30"), s, 108)

    s = w.study(9, "QA Fudong", "CT")
    w.event("study.received", at(8, "03:00"), s)
    w.event("study.stable", at(8, "03:01"), s)
    t = w.routed(
        9,
        s,
        priority="routine",
        final_priority="urgent",
        queued=at(8, "03:03"),
        deadline=timedelta(minutes=60),  # min(queued + 240, queued + 60) after the raise
        reason="routed to county: township site QA Fudong; priority routine (default); SLA 240 min",
    )
    w.event("ai.done", at(8, "03:05"), s, "ai", model="head-ct-ich", version="0.1.0")
    findings[9] = w.finding(9, "head-ct-ich", "0.1.0", positive=True, when=at(8, "03:05"), triage="urgent")
    w.event("task.route_updated", at(8, "03:05"), s, "router", task_id=t.id, ai_flags=1, priority="urgent")
    w.move("task.claimed", at(8, "03:15"), s, t, "qa-li")
    w.sign(at(8, "03:35"), s, t, "li", report_id=109)

    s = w.study(10, ANFENG, "CT")
    w.event("study.received", at(9, "01:00"), s)
    w.event("study.stable", at(9, "01:01"), s)
    w.event("ai.done", at(9, "01:02"), s, "ai", model="head-ct-ich", version="0.1.0")
    findings[10] = w.finding(10, "head-ct-ich", "0.1.0", positive=False, when=at(9, "01:02"))
    t = w.routed(
        10,
        s,
        priority="routine",
        final_priority="urgent",
        queued=at(9, "01:03"),
        deadline=timedelta(minutes=60),
        reason=f"routed to county: township site {ANFENG}; priority routine (default); SLA 240 min",
    )
    w.event("task.route_updated", at(9, "01:10"), s, "anfeng-ris", task_id=t.id, priority="urgent")
    w.move("task.claimed", at(9, "01:48"), s, t, "qa-li")
    w.sign(at(9, "02:08"), s, t, "li", report_id=110)

    s = w.study(11, "QA Fudong", "CT")
    w.event("study.received", at(10, "00:00"), s)
    w.event("study.stable", at(10, "00:01"), s)
    w.event("ai.done", at(10, "00:02"), s, "ai", model="head-ct-ich", version="0.1.0")
    findings[11] = w.finding(11, "head-ct-ich", "0.1.0", positive=True, when=at(10, "00:02"), triage="stat")
    t = w.routed(
        11,
        s,
        priority="stat",
        queued=at(10, "00:03"),
        deadline=timedelta(minutes=30),
        reason="routed to county: township site QA Fudong; priority stat from the order and the AI pre-screen; "
        "SLA 30 min",
    )
    w.move("task.claimed", at(10, "00:13"), s, t, "qa-li")
    w.sign(at(10, "00:30"), s, t, "li", report_id=111)

    w.opinion(findings[8], "li", True, at(8, "02:30"))
    w.opinion(findings[8], "chen", True, at(8, "04:00"))
    w.opinion(findings[9], "li", False, at(8, "03:40"))
    w.opinion(findings[2], "li", True, at(7, "09:30"))
    w.opinion(findings[4], "li", False, at(7, "13:30"))
    w.opinion(findings[4], "chen", True, at(7, "14:10"))
    return findings
