"""A known reading history for QA: a month of a consortium (or a province's year, the same
pattern repeated), as the change log records it — every time fixed, so that each turnaround
figure, SLA compliance and breach cause can be worked out by hand
(``tests/reading/test_qa_month.py``) and the same code scaled up times the dashboard
(``bench/qa.py``). This module only plans: ``datasets/qa_load.py`` writes a plan into an index.

**Who.** A consortium in Asia/Shanghai (UTC+8) is made of *catchments*: three sites — a township
health centre (CT), a village clinic (DX) and a private hospital at the county tier (DX) — read by
two county readers on a day roster (李: CT and DX, 王: DX; ``daily 08:00-17:00``) who read for
all three, and one provincial reader per consortium (陈: CT and DX, ``daily 08:00-20:00``) who
reads for the township and the private hospital of every catchment, not for the village (so a
night study of the village stays with the county tier, as routing would leave it).

**What, every day** (local times; ``d`` is the day of the month; ``+o``: each catchment is
shifted by ``o`` = its number modulo 60 minutes, 0 for the first; SLA from readiness: stat 30 min,
urgent 60, routine 24 h — ``reading/worklist/sla.py``):

- **A** township CT ABDOMEN, routine, 09:00: stable 09:02, AI (image-qc) and ready 09:03, queued
  09:04, claimed by 李 ``d`` minutes later, signed 20 min after the claim, delivered 1 min later.
- **B** township CT HEAD, stat, 10:00: stable 10:01, AI (head-ct-ich) and ready 10:02, queued
  10:03, claimed 10:08 by 李, preliminary 10:18, signed 10:23, delivered 10:24 (deadline 10:32).
- **C** village DX CHEST, urgent, 14:00: stable 14:01, no AI result (reading's sweeper hands it
  over after 120 s) ready 14:03, queued 14:04 (deadline 15:03), claimed 14:14 — or, on days
  divisible by 5, **15:14 (a backlog: both county readers on duty)**, breached at 15:03 —
  by 李 on odd days and 王 on even days, signed 10 min after the claim, delivered 2 min later.
- **D** Saturdays only, village DX CHEST, urgent, **22:00 (a night study)**: stable 22:01, ready
  22:03, queued 22:04 (deadline 23:03), breached at 23:03, claimed the next morning at 08:15 by
  王 (the roster starts at 08:00), signed 08:25, delivered 08:27.
- **E** Mondays only, township CT HEAD, routine, 11:00: stable 11:02, AI and ready 11:03, queued
  11:04, claimed 11:14 by 李, **escalated** 11:34; the provincial task is queued 11:34 (deadline
  from then), claimed 11:54 by 陈, signed 12:14, delivered 12:15.
- **F** private hospital DX CHEST, routine, 15:00: a county-tier site's study goes to the
  provincial tier (a second opinion): stable 15:01, AI (chest-dx-triage) and ready 15:02,
  queued 15:03, claimed 15:33 by 陈, signed 15:53, delivered 15:55 — on Sundays the first
  delivery fails (the site's PACS is off) and the second arrives at 16:25.

The history ends at ``until`` (default: 08:00 local the day after the last day): nothing at or
after it is written, so a Saturday night study on the last day is still open, past its deadline.
Events are the kinds and payloads the real code writes (``pacs.ingest``, ``pacs.stability``, the
AI worker, ``reading.worklist``, ``reading.reports.service``, ``reading.delivery``, the sweeper);
``instance.stored`` events pad each study to ``events_per_study`` when asked (a real CT writes
hundreds; QA ignores them but reads past them).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from ai_models import events as ai_events
from pacs import events as pacs_events
from reading import events as reading_events

SLA_MINUTES: Final = {"stat": 30, "urgent": 60, "routine": 24 * 60}  # reading/worklist/sla.py defaults
PRIORITY_RANK: Final = {"stat": 0, "urgent": 1, "routine": 2}
UID_ROOT: Final = "1.2.826.0.1.3680043.10.7"
CALLING_AE: Final = "MODALITY"
DAY_ROSTER: Final = ("daily 08:00-17:00",)
PROVINCIAL_ROSTER: Final = ("daily 08:00-20:00",)


@dataclass(frozen=True)
class HistorySpec:
    """How much history: ``consortiums`` × ``catchments`` (three sites, two county readers) over
    ``days`` days from ``first_day``. The defaults are October 2026 of one catchment."""

    consortiums: int = 1
    catchments: int = 1
    first_day: date = date(2026, 10, 1)
    days: int = 31
    timezone: str = "Asia/Shanghai"
    events_per_study: float = 0.0  # pad with instance.stored up to this average (0: no padding)
    until: datetime | None = None  # default: 08:00 local after the last day

    @property
    def end(self) -> datetime:
        if self.until is not None:
            return self.until
        after = self.first_day + timedelta(days=self.days)
        return datetime.combine(after, time(8, 0), tzinfo=ZoneInfo(self.timezone)).astimezone(UTC)


@dataclass(frozen=True)
class SitePlan:
    consortium: str
    name: str
    tier: str
    role: str  # township | village | private


@dataclass(frozen=True)
class ReaderPlan:
    consortium: str
    username: str
    display_name: str
    tier: str
    modalities: tuple[str, ...]
    sites: tuple[str, ...]  # names of the sites he reads for (in his consortium)
    roster: tuple[str, ...]


@dataclass(frozen=True)
class Identity:
    consortiums: tuple[str, ...]
    sites: tuple[SitePlan, ...]
    readers: tuple[ReaderPlan, ...]


def _suffix(spec: HistorySpec, consortium: int, catchment: int | None = None) -> str:
    if spec.consortiums == 1 and spec.catchments == 1:
        return ""
    return f" {consortium + 1}" + ("" if catchment is None else f"-{catchment + 1}")


def consortium_name(spec: HistorySpec, c: int) -> str:
    return f"Yunxi County Medical Consortium{_suffix(spec, c)}"


def site_name(spec: HistorySpec, role: str, c: int, k: int) -> str:
    base = {"township": "Fudong Health Centre", "village": "Xinjie Village Clinic", "private": "Renji Hospital"}[role]
    return base + _suffix(spec, c, k)


def username(spec: HistorySpec, who: str, c: int, k: int | None = None) -> str:
    return who + _suffix(spec, c, k).replace(" ", "-")


def identity(spec: HistorySpec) -> Identity:
    """The consortiums, sites and readers of the history."""
    consortiums, sites, readers = [], [], []
    for c in range(spec.consortiums):
        owner = consortium_name(spec, c)
        consortiums.append(owner)
        provincial_sites: list[str] = []
        for k in range(spec.catchments):
            names = {role: site_name(spec, role, c, k) for role in ("township", "village", "private")}
            sites += [
                SitePlan(owner, names["township"], "township", "township"),
                SitePlan(owner, names["village"], "village", "village"),
                SitePlan(owner, names["private"], "county", "private"),
            ]
            catchment = tuple(names.values())
            readers += [
                ReaderPlan(owner, username(spec, "li", c, k), "李医生", "county", ("CT", "DX"), catchment, DAY_ROSTER),
                ReaderPlan(owner, username(spec, "wang", c, k), "王医生", "county", ("DX",), catchment, DAY_ROSTER),
            ]
            provincial_sites += [names["township"], names["private"]]
        readers.append(
            ReaderPlan(
                owner,
                username(spec, "chen", c),
                "陈教授",
                "provincial",
                ("CT", "DX"),
                tuple(provincial_sites),
                PROVINCIAL_ROSTER,
            )
        )
    return Identity(tuple(consortiums), tuple(sites), tuple(readers))


@dataclass(frozen=True)
class Ids:
    """Database ids the plan refers to, and where its own rows' ids start."""

    consortiums: dict[str, int]
    sites: dict[tuple[str, str], int]  # (consortium, site name) → id
    readers: dict[str, int]  # username → reader id
    first_patient: int = 1
    first_study: int = 1
    first_task: int = 1
    first_report: int = 1


@dataclass
class StudyRecord:
    """One study's rows (patient, study, reading tasks) and its events in the order written."""

    received_at: datetime
    patient: dict[str, Any]
    study: dict[str, Any]
    tasks: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)


class _Counter:
    def __init__(self, ids: Ids) -> None:
        self.patient, self.study, self.task, self.report = (
            ids.first_patient,
            ids.first_study,
            ids.first_task,
            ids.first_report,
        )
        self.padded = 0  # studies the padding has seen
        self.written = 0  # their events, padding included

    def take(self, name: str) -> int:
        value: int = getattr(self, name)
        setattr(self, name, value + 1)
        return value


def history(spec: HistorySpec, ids: Ids) -> Iterator[list[StudyRecord]]:
    """The studies of each day, day after day (deterministic: the same spec and ids give the
    same rows and events)."""
    zone = ZoneInfo(spec.timezone)
    counter = _Counter(ids)
    for n in range(spec.days):
        day = spec.first_day + timedelta(days=n)
        records: list[StudyRecord] = []
        for c in range(spec.consortiums):
            for k in range(spec.catchments):
                records += _Day(spec, ids, counter, zone, day, c, k).build()
        if spec.events_per_study > 0:
            for record in records:
                counter.padded += 1
                counter.written += len(record.changes)
                wanted = round(spec.events_per_study * counter.padded) - counter.written
                if wanted > 0:
                    pad(record, wanted)
                    counter.written += wanted
        yield records


def pad(record: StudyRecord, instances: int) -> None:
    """``instance.stored`` events between a study's first image and its stability, as ingest
    writes one per instance (QA reads past them)."""
    received, stable = record.changes[0]["at"], record.study["stable_at"] or record.changes[0]["at"] + _m(1)
    uid = record.study["study_uid"]
    stored = []
    for n in range(instances):
        at = received + (stable - received) * (n + 1) / (instances + 1)
        stored.append(
            {
                "kind": pacs_events.INSTANCE_STORED,
                "at": at,
                "study_uid": uid,
                "site_id": record.study["site_id"],
                "actor": None,
                "payload": {
                    "sop_instance_uid": f"{uid}.1.{n + 1}",
                    "calling_ae": CALLING_AE,
                    "series_uid": f"{uid}.1",
                    "size": 526_000,
                    "charset_assumed": False,
                },
            }
        )
    record.changes[1:1] = stored
    for change in record.changes:
        if change["kind"] == pacs_events.STUDY_STABLE:
            change["payload"]["num_instances"] = instances
    record.study["num_instances"] = instances
    record.study["last_received_at"] = stored[-1]["at"]
    for task in record.tasks:
        task["images_seen_at"] = stored[-1]["at"]


class _Day:
    """One catchment's day: the streams A–F of the module docstring."""

    def __init__(
        self, spec: HistorySpec, ids: Ids, counter: _Counter, zone: ZoneInfo, day: date, c: int, k: int
    ) -> None:
        self.spec, self.ids, self.counter, self.zone, self.day = spec, ids, counter, zone, day
        self.c, self.k = c, k
        self.consortium = consortium_name(spec, c)
        self.offset = timedelta(minutes=(c * spec.catchments + k) % 60)
        self.end = spec.end

    def build(self) -> list[StudyRecord]:
        d, weekday = self.day.day, self.day.weekday()
        found = [self._a(d), self._b(), self._c(d)]
        if weekday == 5:
            found.append(self._d())
        if weekday == 0:
            found.append(self._e())
        found.append(self._f(sunday=weekday == 6))
        return [r for r in found if r is not None]

    # ------------------------------------------------------------ the streams

    def _a(self, d: int) -> StudyRecord | None:
        s = self._study("A", "township", "CT", "ABDOMEN", "09:00")
        if s is None:
            return None
        t0 = s.received_at
        self._pacs(s, t0, stable=2)
        self._ai(s, t0 + _m(3), "image-qc", "1.1")
        self._ready(s, t0 + _m(3), "pre-screened: image-qc 1.1")
        task = self._task(s, "county", "routine", t0 + _m(4), t0 + _m(3), "routed to county: township site")
        claimed = t0 + _m(4 + d)
        self._claim(s, task, claimed, "li")
        self._sign(s, task, claimed + _m(20), "li", delivered=claimed + _m(21))
        return s

    def _b(self) -> StudyRecord | None:
        s = self._study("B", "township", "CT", "HEAD", "10:00")
        if s is None:
            return None
        t0 = s.received_at
        self._pacs(s, t0, stable=1)
        self._ai(s, t0 + _m(2), "head-ct-ich", "0.1.0")
        self._ready(s, t0 + _m(2), "pre-screened: head-ct-ich 0.1.0")
        task = self._task(s, "county", "stat", t0 + _m(3), t0 + _m(2), "routed to county: township site")
        self._claim(s, task, t0 + _m(8), "li")
        self._preliminary(s, task, t0 + _m(18), "li")
        self._sign(s, task, t0 + _m(23), "li", delivered=t0 + _m(24))
        return s

    def _c(self, d: int) -> StudyRecord | None:
        s = self._study("C", "village", "DX", "CHEST", "14:00")
        if s is None:
            return None
        t0 = s.received_at
        self._pacs(s, t0, stable=1)
        self._ready(s, t0 + _m(3), "no AI result within 120 s", actor="reading-sweeper")
        task = self._task(s, "county", "urgent", t0 + _m(4), t0 + _m(3), "routed to county: village site")
        who = "li" if d % 2 else "wang"
        claimed = t0 + _m(74 if d % 5 == 0 else 14)
        self._breach_check(s, task, claimed)
        self._claim(s, task, claimed, who)
        self._sign(s, task, claimed + _m(10), who, delivered=claimed + _m(12))
        return s

    def _d(self) -> StudyRecord | None:
        s = self._study("D", "village", "DX", "CHEST", "22:00")
        if s is None:
            return None
        t0 = s.received_at
        self._pacs(s, t0, stable=1)
        self._ready(s, t0 + _m(3), "no AI result within 120 s", actor="reading-sweeper")
        reason = "no county reader on duty for DX CHEST at 22:03 and no provincial reader serves the site: queued"
        task = self._task(s, "county", "urgent", t0 + _m(4), t0 + _m(3), reason)
        claimed = t0 + _m(10 * 60 + 15)  # 08:15 the next morning
        self._breach_check(s, task, claimed)
        self._claim(s, task, claimed, "wang")
        self._sign(s, task, claimed + _m(10), "wang", delivered=claimed + _m(12))
        return s

    def _e(self) -> StudyRecord | None:
        s = self._study("E", "township", "CT", "HEAD", "11:00")
        if s is None:
            return None
        t0 = s.received_at
        self._pacs(s, t0, stable=2)
        self._ai(s, t0 + _m(3), "head-ct-ich", "0.1.0")
        self._ready(s, t0 + _m(3), "pre-screened: head-ct-ich 0.1.0")
        county = self._task(s, "county", "routine", t0 + _m(4), t0 + _m(3), "routed to county: township site")
        self._claim(s, county, t0 + _m(14), "li")
        escalated = t0 + _m(34)
        reason = "suspected subtle infarct: please review"
        if not self._move(s, county, reading_events.TASK_ESCALATED, escalated, "li", "claimed", reason=reason):
            return s
        county.update(state="escalated", claimed_by=None, claimed_at=None)
        provincial = self._task(
            s,
            "provincial",
            "routine",
            escalated,
            escalated,
            f"escalated from county task {county['id']}: {reason}",
            actor=f"reader:{self._reader('li')}",
            escalated_from=county["id"],
        )
        provincial["escalation_reason"] = reason
        claimed = t0 + _m(54)
        self._claim(s, provincial, claimed, "chen")
        self._sign(s, provincial, claimed + _m(20), "chen", delivered=claimed + _m(21))
        return s

    def _f(self, *, sunday: bool) -> StudyRecord | None:
        s = self._study("F", "private", "DX", "CHEST", "15:00")
        if s is None:
            return None
        t0 = s.received_at
        self._pacs(s, t0, stable=1)
        self._ai(s, t0 + _m(2), "chest-dx-triage", "0.1.0")
        self._ready(s, t0 + _m(2), "pre-screened: chest-dx-triage 0.1.0")
        reason = "routed to provincial: a county site's study is a second opinion"
        task = self._task(s, "provincial", "routine", t0 + _m(3), t0 + _m(2), reason)
        claimed = t0 + _m(33)
        self._claim(s, task, claimed, "chen")
        signed = claimed + _m(20)
        self._sign(s, task, signed, "chen", delivered=signed + _m(32 if sunday else 2), failed=signed + _m(2))
        return s

    # ------------------------------------------------------------ rows and events

    def _reader(self, who: str) -> int:
        key = username(self.spec, who, self.c, None if who == "chen" else self.k)
        return self.ids.readers[key]

    def _site(self, role: str) -> int:
        return self.ids.sites[(self.consortium, site_name(self.spec, role, self.c, self.k))]

    def _study(self, stream: str, role: str, modality: str, body_part: str, hhmm: str) -> StudyRecord | None:
        hours, minutes = (int(p) for p in hhmm.split(":"))
        local = datetime.combine(self.day, time(hours, minutes), tzinfo=self.zone) + self.offset
        received = local.astimezone(UTC)
        if received >= self.end:
            return None
        site_id = self._site(role)
        number = f"{self.c + 1}.{self.k + 1}.{self.day.toordinal()}.{ord(stream) - 64}"
        uid = f"{UID_ROOT}.{number}"
        patient_pk, study_pk = self.counter.take("patient"), self.counter.take("study")
        patient_id = f"QA{number.replace('.', '')}"
        name = f"QA^{stream}{self.day:%m%d}"
        record = StudyRecord(
            received_at=received,
            patient={"id": patient_pk, "site_id": site_id, "patient_id": patient_id, "patient_name": name},
            study={
                "id": study_pk,
                "study_uid": uid,
                "site_id": site_id,
                "patient_pk": patient_pk,
                "patient_id": patient_id,
                "patient_name": name,
                "study_date": local.strftime("%Y%m%d"),
                "study_time": local.strftime("%H%M%S"),
                "accession_number": f"A{number.replace('.', '')}",
                "study_description": f"{modality} {body_part}",
                "modalities": modality,
                "body_part": body_part,
                "num_series": 1,
                "num_instances": 1,
                "bytes": 0,
                "state": "stable",
                "first_received_at": received,
                "last_received_at": received,
                "stable_at": None,
                "ready_at": None,
            },
        )
        return record

    def _change(self, s: StudyRecord, kind: str, at: datetime, actor: str | None = None, **payload: Any) -> bool:
        """Append an event; False (nothing written) when it falls after the history's end."""
        if at >= self.end:
            return False
        s.changes.append(
            {
                "kind": kind,
                "at": at,
                "study_uid": s.study["study_uid"],
                "site_id": s.study["site_id"],
                "actor": actor,
                "payload": payload,
            }
        )
        return True

    def _pacs(self, s: StudyRecord, t0: datetime, *, stable: int) -> None:
        """Received, then stable ``stable`` minutes later (``pad`` adds the instances between)."""
        uid = s.study["study_uid"]
        self._change(s, pacs_events.STUDY_RECEIVED, t0, sop_instance_uid=f"{uid}.1.1", calling_ae=CALLING_AE)
        stable_at = t0 + _m(stable)
        if self._change(s, pacs_events.STUDY_STABLE, stable_at, num_instances=1, num_series=1):
            s.study["stable_at"] = stable_at

    def _ai(self, s: StudyRecord, at: datetime, model: str, version: str) -> None:
        self._change(
            s, ai_events.AI_DONE, at, "ai-worker", model=model, version=version, findings=0, positives=0, seconds=2.1
        )

    def _ready(self, s: StudyRecord, at: datetime, reason: str, *, actor: str = "ai-worker") -> None:
        if self._change(s, pacs_events.STUDY_READY_FOR_READING, at, actor, reason=reason):
            s.study["ready_at"] = at

    def _task(
        self,
        s: StudyRecord,
        tier: str,
        priority: str,
        queued: datetime,
        ready: datetime,
        reason: str,
        *,
        actor: str = "router",
        escalated_from: int | None = None,
    ) -> dict[str, Any]:
        task_id = self.counter.take("task")
        deadline = ready + _m(SLA_MINUTES[priority])
        task: dict[str, Any] = {
            "id": task_id,
            "study_pk": s.study["id"],
            "study_uid": s.study["study_uid"],
            "consortium_id": self.ids.consortiums[self.consortium],
            "site_id": s.study["site_id"],
            "tier": tier,
            "group_id": None,
            "state": "queued",
            "priority": priority,
            "priority_rank": PRIORITY_RANK[priority],
            "deadline_at": deadline,
            "modality": s.study["modalities"],
            "body_part": s.study["body_part"],
            "route_reason": f"{reason}; priority {priority} from the order; SLA {SLA_MINUTES[priority]} min",
            "ai_flags": [],
            "claimed_by": None,
            "claimed_at": None,
            "lease_expires_at": None,
            "escalated_from_id": escalated_from,
            "escalation_reason": None,
            "new_images": False,
            "images_seen_at": s.study["last_received_at"],
            "breached_at": None,
            "created_at": queued,
            "updated_at": queued,
        }
        if queued >= self.end:
            return task  # not queued yet: no row either (the caller's later moves write nothing)
        s.tasks.append(task)
        self._change(
            s,
            reading_events.TASK_QUEUED,
            queued,
            actor,
            task_id=task_id,
            tier=tier,
            priority=priority,
            deadline_at=deadline.isoformat(),
            reason=task["route_reason"],
            escalated_from=escalated_from,
        )
        return task

    def _move(
        self, s: StudyRecord, task: dict[str, Any], kind: str, at: datetime, who: str, from_state: str, **detail: Any
    ) -> bool:
        """A transition's event (reading/worklist/transitions.py); False after the end."""
        written = self._change(
            s,
            kind,
            at,
            f"reader:{self._reader(who)}",
            task_id=task["id"],
            tier=task["tier"],
            priority=task["priority"],
            from_state=from_state,
            **detail,
        )
        if written:
            task["updated_at"] = at
        return written

    def _claim(self, s: StudyRecord, task: dict[str, Any], at: datetime, who: str) -> None:
        reader_id = self._reader(who)
        if self._move(s, task, reading_events.TASK_CLAIMED, at, who, "queued", reader_id=reader_id):
            task.update(state="claimed", claimed_by=reader_id, claimed_at=at, lease_expires_at=at + _m(10))

    def _preliminary(self, s: StudyRecord, task: dict[str, Any], at: datetime, who: str) -> None:
        report_id = self._report_of(task)
        self._change(
            s,
            reading_events.REPORT_PRELIMINARY,
            at,
            f"reader:{self._reader(who)}",
            task_id=task["id"],
            report_id=report_id,
        )
        if self._move(s, task, reading_events.TASK_PRELIMINARY, at, who, "claimed", report_id=report_id):
            task["state"] = "preliminary"

    def _report_of(self, task: dict[str, Any]) -> int:
        if "report_id" not in task:
            task["report_id"] = self.counter.take("report")
        report_id: int = task["report_id"]
        return report_id

    def _sign(
        self,
        s: StudyRecord,
        task: dict[str, Any],
        at: datetime,
        who: str,
        *,
        delivered: datetime,
        failed: datetime | None = None,
    ) -> None:
        """Signed (task.signed, report.signed, delivery.queued in one transaction), then
        delivered — after one failed attempt at ``failed`` when delivery comes later."""
        report_id = self._report_of(task)
        actor = f"reader:{self._reader(who)}"
        if not self._move(s, task, reading_events.TASK_SIGNED, at, who, task["state"], report_id=report_id):
            return
        task.update(state="signed", claimed_by=None, claimed_at=None, lease_expires_at=None)
        task.pop("report_id")
        self._change(
            s,
            reading_events.REPORT_SIGNED,
            at,
            actor,
            task_id=task["id"],
            report_id=report_id,
            version=1,
            critical=False,
        )
        delivery_id = report_id  # one delivery per signed report here
        destination = "PACS@10.2.0.15:104"
        self._change(
            s,
            reading_events.DELIVERY_QUEUED,
            at,
            "reading",
            delivery_id=delivery_id,
            report_id=report_id,
            version=1,
            destination=destination,
        )
        attempts = 1
        if failed is not None and failed < delivered:
            attempts = 2
            self._change(
                s,
                reading_events.DELIVERY_ATTEMPT_FAILED,
                failed,
                "delivery-worker",
                delivery_id=delivery_id,
                report_id=report_id,
                attempts=1,
                error="association rejected or aborted: connection refused",
                next_attempt_at=delivered.isoformat(),
            )
        self._change(
            s,
            reading_events.DELIVERY_DELIVERED,
            delivered,
            "delivery-worker",
            delivery_id=delivery_id,
            report_id=report_id,
            attempts=attempts,
        )

    def _breach_check(self, s: StudyRecord, task: dict[str, Any], claimed: datetime) -> None:
        """The sweeper's ``task.sla_breached`` when the deadline passes before the claim."""
        deadline = task["deadline_at"]
        if claimed <= deadline:
            return
        waited = int((deadline - task["created_at"]).total_seconds() // 60)
        if self._change(
            s,
            reading_events.TASK_SLA_BREACHED,
            deadline,
            "reading-sweeper",
            task_id=task["id"],
            tier=task["tier"],
            priority=task["priority"],
            state="queued",
            interval=f"queued {waited} min",
            deadline_at=deadline.isoformat(),
        ):
            task["breached_at"] = deadline


def _m(minutes: float) -> timedelta:
    return timedelta(minutes=minutes)
