"""The parts of issue E's second half worked by hand: duty spans of rosters, the staffing cause
of a long queue wait, the date range as SQL bounds per consortium time zone, and migration 0012
filling ``arrived_at`` for rows already derived."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from operator import attrgetter

import pytest
from sqlalchemy import create_engine, func, select, text

from datasets.qa_history import HistorySpec
from datasets.qa_load import create_identity, write_history
from pacs.identity.sites import add_site
from pacs.index.db import transaction
from pacs.index.migrate import upgrade
from pacs.index.models import Change, Consortium
from pacs.service import Services
from reading.qa.figures import MEASURED, sla_state
from reading.qa.measure import interval_columns, sla_column
from reading.qa.models import QaCursor, QaTurnaround
from reading.qa.service import rows_between
from reading.qa.staffing import RosteredReader, StaffingLookup
from reading.qa.store import refresh
from reading.qa.timeline import interval_minutes
from reading.worklist.roster import Window, duty_spans
from tests.conftest import BACKENDS
from tests.reading.qa_history import NOW as QA_NOW
from tests.reading.qa_history import build_history

on_both = pytest.mark.parametrize("backend", BACKENDS)
SHANGHAI = "Asia/Shanghai"  # UTC+8, no DST


def utc(day: int, hhmm: str, month: int = 10) -> datetime:
    hours, minutes = (int(p) for p in hhmm.split(":"))
    return datetime(2026, month, day, hours, minutes, tzinfo=UTC)


DAY = Window(time(8), time(17))
NIGHT = Window(time(20), time(8))  # past midnight


def test_duty_spans_of_a_day_and_a_night_window() -> None:
    # 10-07 20:00 → 10-08 20:00 local = 10-07 12:00 → 10-08 12:00 UTC. The day window is on
    # 08:00–17:00 local of the 8th = 00:00–09:00 UTC; the night window covers 20:00–08:00.
    start, end = utc(7, "12:00"), utc(8, "12:00")
    assert duty_spans([DAY], start, end, SHANGHAI) == [(utc(8, "00:00"), utc(8, "09:00"))]
    assert duty_spans([NIGHT], start, end, SHANGHAI) == [(utc(7, "12:00"), utc(8, "00:00"))]
    # Both: 20:00 → 17:00 local without a gap (08:00 is the hand-over) — merged into one span.
    assert duty_spans([DAY, NIGHT], start, end, SHANGHAI) == [(utc(7, "12:00"), utc(8, "09:00"))]
    # A window that started the day before the range and runs into it.
    assert duty_spans([NIGHT], utc(7, "22:00"), utc(7, "23:00"), SHANGHAI) == [(utc(7, "22:00"), utc(7, "23:00"))]
    assert duty_spans([DAY], end, start, SHANGHAI) == []


def test_duty_spans_of_weekday_and_dated_windows_and_a_dst_change() -> None:
    # 2026-10-07 is a Wednesday (weekday 2). A Monday-only window is not on; a Wednesday one is.
    wednesday, monday = Window(time(9), time(12), weekday=2), Window(time(9), time(12), weekday=0)
    start, end = utc(6, "16:00"), utc(7, "16:00")  # the 7th, local midnight to midnight
    assert duty_spans([monday], start, end, SHANGHAI) == []
    assert duty_spans([wednesday], start, end, SHANGHAI) == [(utc(7, "01:00"), utc(7, "04:00"))]
    dated = Window(time(9), time(12), on_date=date(2026, 10, 8))
    assert duty_spans([dated], start, end, SHANGHAI) == []
    # Berlin leaves summer time on 2026-10-25 at 03:00 (UTC+2 → +1): 08:00–17:00 local is
    # 06:00–15:00 UTC on the 24th and 07:00–16:00 UTC on the 25th.
    spans = duty_spans([DAY], utc(24, "00:00"), utc(26, "00:00"), "Europe/Berlin")
    assert spans == [(utc(24, "06:00"), utc(24, "15:00")), (utc(25, "07:00"), utc(25, "16:00"))]


@dataclass(frozen=True)
class _Row:
    tier: str = "county"
    site_id: int = 1
    modality: str | None = "DX"
    body_part: str | None = "CHEST"


def _reader(reader_id: int, windows: tuple[Window, ...], **changes: object) -> RosteredReader:
    values: dict[str, object] = {
        "reader_id": reader_id,
        "tier": "county",
        "modalities": frozenset({"CT", "DX"}),
        "body_parts": frozenset(),
        "site_ids": frozenset({1}),
        "windows": windows,
        "timezone": SHANGHAI,
    }
    values.update(changes)
    return RosteredReader(**values)  # type: ignore[arg-type]


def test_a_night_study_with_only_a_day_roster_had_nobody_on_duty() -> None:
    lookup = StaffingLookup([_reader(1, (DAY,)), _reader(2, (DAY,))])
    # Queued 23:10 local (15:10 UTC), claimed 07:40 next morning: 510 min, none on duty.
    staffing = lookup(_Row(), utc(7, "15:10"), utc(7, "23:40"))
    assert (staffing.credentialed, staffing.covered_minutes, staffing.most_on_duty) == (2, 0.0, 0)
    assert staffing.kind == "no_reader_on_duty" and staffing.describe() == "no county reader on duty"
    # Claimed 09:10 instead (01:10 UTC): 600 min, of which 08:00–09:10 = 70 on duty; 70 < 300.
    staffing = lookup(_Row(), utc(7, "15:10"), utc(8, "01:10"))
    assert (staffing.wait_minutes, staffing.covered_minutes) == (600.0, 70.0)
    assert staffing.describe() == "no county reader on duty for 530 of 600 min"


def test_a_day_time_wait_with_readers_on_duty_is_a_backlog() -> None:
    # Three day readers, one of them DX-only, one who reads for another site (not counted), one
    # provincial (another tier: not counted), one CT-only (not credentialed for DX).
    readers = [
        _reader(1, (DAY,)),
        _reader(2, (DAY,), modalities=frozenset({"DX"})),
        _reader(3, (Window(time(13), time(17)),)),
        _reader(4, (DAY,), site_ids=frozenset({2})),
        _reader(5, (DAY,), tier="provincial"),
        _reader(6, (DAY,), modalities=frozenset({"CT"})),
    ]
    lookup = StaffingLookup(readers)
    # 11:00–14:00 local (03:00–06:00 UTC): readers 1 and 2 all along, 3 from 13:00 → at most 3.
    staffing = lookup(_Row(), utc(7, "03:00"), utc(7, "06:00"))
    assert (staffing.credentialed, staffing.covered_minutes, staffing.most_on_duty) == (3, 180.0, 3)
    assert staffing.describe() == "3 county readers on duty: queue backlog"
    # 16:00–19:00 local: on duty the first hour only (60 of 180 < half): a roster gap.
    assert lookup(_Row(), utc(7, "08:00"), utc(7, "11:00")).describe() == "no county reader on duty for 120 of 180 min"
    # 15:00–18:30 local: 120 of 210 min covered (more than half) — a backlog, said with its share.
    late = lookup(_Row(), utc(7, "07:00"), utc(7, "10:30"))
    assert late.describe() == "3 county readers on duty for 120 of 210 min: queue backlog"
    # A reader restricted to HEAD may not read a CHEST film: nobody of the tier may.
    head_only = StaffingLookup([_reader(7, (DAY,), body_parts=frozenset({"HEAD"}))])
    gap = head_only(_Row(), utc(7, "03:00"), utc(7, "06:00"))
    assert gap.kind == "not_credentialed"
    assert gap.describe() == "no county reader credentialed for DX CHEST reads for this site"


# ---------------------------------------------------------------- the date range in SQL


def _turnaround(
    consortium_id: int, site_id: int, task_id: int, received: datetime | None, queued: datetime
) -> QaTurnaround:
    return QaTurnaround(
        task_id=task_id,
        study_uid=f"1.2.3.{task_id}",
        consortium_id=consortium_id,
        site_id=site_id,
        site_tier="township",
        tier="county",
        priority="routine",
        modality="CT",
        body_part="HEAD",
        escalated=False,
        received_at=received,
        queued_at=queued,
        deadline_at=queued + timedelta(hours=24),
        arrived_at=received or queued,
    )


@on_both
def test_local_dates_become_utc_bounds_per_consortium_zone(
    make_services: Callable[..., Services], backend: str
) -> None:
    services = make_services(backend)
    with transaction(services.sessions) as session:
        east = add_site(session, consortium="East", name="East Clinic", tier="township")
        west = add_site(session, consortium="West", name="West Clinic", tier="township")
        session.get_one(Consortium, west.consortium_id).timezone = "Europe/London"  # UTC+1 in October
        # East (UTC+8): 10-06 16:00 UTC is 10-07 00:00 local — the 7th; 15:59 is still the 6th.
        # West (UTC+1): 10-06 23:00 UTC is 10-07 00:00 local; 22:59 is the 6th.
        session.add_all(
            [
                _turnaround(east.consortium_id, east.id, 1, utc(6, "15:59"), utc(6, "16:10")),
                _turnaround(east.consortium_id, east.id, 2, utc(6, "16:00"), utc(6, "16:10")),
                # No study.received: the day is the queueing's (16:05 UTC = the 7th in Shanghai).
                _turnaround(east.consortium_id, east.id, 3, None, utc(6, "16:05")),
                _turnaround(west.consortium_id, west.id, 4, utc(6, "22:59"), utc(6, "23:10")),
                _turnaround(west.consortium_id, west.id, 5, utc(6, "23:00"), utc(6, "23:10")),
                # The 8th in both zones: after the range.
                _turnaround(west.consortium_id, west.id, 6, utc(7, "23:00"), utc(7, "23:10")),
                _turnaround(east.consortium_id, east.id, 7, utc(7, "16:00"), utc(7, "16:10")),
            ]
        )
        # Rows written straight into the cache: the cursor says the log is folded in already.
        session.add(QaCursor(id=1, last_seq=session.scalar(select(func.max(Change.seq))) or 0))
    seventh, eighth = date(2026, 10, 7), date(2026, 10, 8)
    with transaction(services.sessions) as session:
        every = [row.task_id for row in rows_between(session, None, seventh, eighth)]
        east_only = [row.task_id for row in rows_between(session, east.consortium_id, seventh, eighth)]
        west_from = [row.task_id for row in rows_between(session, west.consortium_id, seventh, None)]
        until = [row.task_id for row in rows_between(session, None, None, seventh)]
    assert every == [2, 3, 5] and east_only == [2, 3] and west_from == [5, 6] and until == [1, 4]


# ---------------------------------------------------------------- measured by the database


@on_both
@pytest.mark.parametrize("history", ["hand-worked", "month"])
def test_the_database_measures_every_task_as_the_python_timeline_does(
    make_services: Callable[..., Services], backend: str, history: str
) -> None:
    """measure.py's SQL against timeline.interval_minutes and figures.sla_state, task by task:
    the hand-worked history (a re-opened study, no AI, an escalation, open tasks) and October."""
    services = make_services(backend)
    with transaction(services.sessions) as session:
        if history == "month":
            spec = HistorySpec()
            write_history(session, spec, create_identity(session, spec))
            now = datetime(2026, 11, 1, tzinfo=UTC)
        else:
            build_history(session)
            now = QA_NOW
    with transaction(services.sessions) as session:
        refresh(session)
        expected = {
            row.task_id: (sla_state(row, now), tuple(interval_minutes(row).values()))
            for row in session.scalars(select(QaTurnaround))
        }
        measured = {
            row.task_id: (row.sla, attrgetter(*MEASURED)(row))
            for row in session.execute(select(QaTurnaround.task_id, sla_column(now), *interval_columns()))
        }
    assert measured.keys() == expected.keys() and len(expected) in (7, 137)
    for task_id, (sla, minutes) in expected.items():
        assert measured[task_id][0] == sla, task_id
        assert measured[task_id][1] == pytest.approx(minutes, abs=1e-6), task_id


# ---------------------------------------------------------------- migration 0012


def test_0012_fills_arrived_at_of_rows_derived_before_it(empty_database: str) -> None:
    upgrade(empty_database, "0009")
    engine = create_engine(empty_database)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO consortium (id, name, timezone, created_at) VALUES (1, 'C', 'Asia/Shanghai', '2026-10-01')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO site (id, consortium_id, name, tier, created_at) "
                "VALUES (1, 1, 'S', 'township', '2026-10-01')"
            )
        )
        for task_id, received in ((1, "'2026-10-07 08:00:00'"), (2, "NULL")):
            connection.execute(
                text(
                    "INSERT INTO qa_turnaround (task_id, study_uid, consortium_id, site_id, site_tier, tier, "
                    "priority, escalated, received_at, queued_at, deadline_at) VALUES "
                    f"({task_id}, '1.2.{task_id}', 1, 1, 'township', 'county', 'routine', false, {received}, "
                    "'2026-10-07 09:00:00', '2026-10-08 09:00:00')"
                )
            )
    upgrade(empty_database)
    with engine.connect() as connection:
        arrived = connection.execute(
            text(
                "SELECT task_id, arrived_at IS NOT NULL AND arrived_at = COALESCE(received_at, queued_at), "
                "arrived_at = received_at FROM qa_turnaround ORDER BY task_id"
            )
        ).all()
    engine.dispose()
    # Task 1 arrived with its first image, task 2 (no study.received) when it was queued.
    assert [tuple(row) for row in arrived] == [(1, True, True), (2, True, None)]
