"""A month of a consortium (datasets/qa_history.py: October 2026, Asia/Shanghai) written as the
change log the real system writes, folded in by the real refresh, and every figure checked
against a hand-computed expectation — on SQLite and PostgreSQL, through the service layer.

The month, in short (local times; d = day of the month; the module docstring has every minute):
A township CT routine daily, claim wait d min; B township CT stat daily, wait 5; C village DX
urgent daily, wait 10 — 70 on days divisible by 5 (a backlog: breached, deadline 60 min);
D village DX urgent Saturdays at 22:00, claimed 08:15 next morning (a night breach), the one of
Saturday 10-31 still open at NOW; E township CT routine Mondays, escalated to 陈 (two tasks);
F private hospital DX routine daily to the provincial tier, wait 30, delivery failing on Sundays.

October 2026: Thursday the 1st. Mondays 5, 12, 19, 26; Saturdays 3, 10, 17, 24, 31; Sundays 4,
11, 18, 25. Tasks: A 31 + B 31 + C 31 + D 5 + E 4×2 + F 31 = 137 (133 studies).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import select

from datasets.qa_history import HistorySpec, Ids
from datasets.qa_load import create_identity, write_history
from pacs.index.db import transaction
from pacs.service import Services
from reading.qa.figures import Breach
from reading.qa.models import QaTurnaround
from reading.qa.service import breach_list, breaches_csv, figures, name_lookup, staffing_json
from reading.qa.store import recompute, refresh
from tests.conftest import BACKENDS

on_both = pytest.mark.parametrize("backend", BACKENDS)

# 08:00 on 1 November in Shanghai: the history ends here; Saturday 10-31's night study is open.
NOW = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
OCTOBER = HistorySpec()


def _month(services: Services, *, before: datetime | None = None) -> Ids:
    with transaction(services.sessions) as session:
        ids = create_identity(session, OCTOBER)
        loaded = write_history(session, OCTOBER, ids, before=before)
    if before is None:
        assert (loaded.studies, loaded.tasks) == (133, 137)
    return ids


def _by(
    services: Services,
    group_by: list[str],
    *,
    period: str = "month",
    start: date | None = None,
    end: date | None = None,
) -> dict[tuple[str, ...], dict[str, Any]]:
    with transaction(services.sessions) as session:
        groups = figures(session, None, group_by=group_by, period=period, start=start, end=end, now=NOW)
    return {tuple(g.key.values()): g.as_json() for g in groups}


def _breaches(services: Services) -> list[Breach]:
    with transaction(services.sessions) as session:
        return breach_list(session, None, start=date(2026, 10, 1), end=date(2026, 11, 1), now=NOW)


@on_both
def test_figures_per_site(make_services: Callable[..., Services], backend: str) -> None:
    services = make_services(backend)
    _month(services)
    sites = _by(services, ["site"])
    assert {k[0]: v["count"] for k, v in sites.items()} == {
        "Fudong Health Centre": 70,  # A 31 + B 31 + E 4 county + 4 provincial
        "Xinjie Village Clinic": 36,  # C 31 + D 5
        "Renji Hospital": 31,  # F
    }
    fudong, xinjie, renji = (sites[(n,)] for n in ("Fudong Health Centre", "Xinjie Village Clinic", "Renji Hospital"))
    # Fudong: every judged task met; E's county tasks are escalated, so not judged: 70 - 4 = 66.
    assert fudong["sla"] == {"met": 66, "breached": 0, "compliance": 1.0}
    # Its 70 claim waits, sorted: 1–4 (A, days 1–4; positions 0–3), 5 ×32 (B's 31 and A's day 5;
    # 4–35), 6–9 (36–39), 10 ×5 (A's day 10, E county ×4; 40–44), 11–19 (45–53), 20 ×5 (A's
    # day 20, E provincial ×4; 54–58), 21–31 (59–69). p50 at (70-1)×0.5 = 34.5 → 5;
    # p90 at 62.1 → 24 + 0.1 × (25 - 24) = 24.1; p95 at 65.55 → 27 + 0.55 × 1 = 27.55.
    assert fudong["minutes"]["claimed"] == {"n": 70, "p50": 5.0, "p90": 24.1, "p95": 27.55}
    # Xinjie: C met on 25 days, breached on the six days divisible by 5; D breached all 5
    # (four late, the last still open): 25 met, 11 breached, 25 / 36.
    assert xinjie["sla"] == {"met": 25, "breached": 11, "compliance": pytest.approx(25 / 36)}
    # Claim waits: 10 ×25, 70 ×6, 611 ×4 (22:04 → 08:15; the open one has none): n 35.
    # p50 at 17 → 10; p90 at 30.6 → 70 + 0.6 × (611 - 70) = 394.6; p95 at 32.3 → 611.
    assert xinjie["minutes"]["claimed"] == {"n": 35, "p50": 10.0, "p90": 394.6, "p95": 611.0}
    # No AI for the village: C and D are handed over by the sweeper, so no "ai" interval, and
    # "queued" runs from stability (14:01 → 14:04 = 3 min).
    assert xinjie["minutes"]["ai"]["n"] == 0 and xinjie["minutes"]["queued"]["p50"] == 3.0
    # Renji: delivered 2 min after signing, 32 on the 4 Sundays (the first attempt failed):
    # 2 ×27 then 32 ×4; p50 at 15 → 2; p90 at 27.0 → the 28th value, 32.
    assert renji["minutes"]["delivered"] == {"n": 31, "p50": 2.0, "p90": 32.0, "p95": 32.0}
    # First image → report at the site: 15:00 → 15:55 = 55 min (85 on Sundays).
    assert renji["minutes"]["site"]["p50"] == 55.0 and renji["sla"]["compliance"] == 1.0


@on_both
def test_figures_per_priority_and_tier(make_services: Callable[..., Services], backend: str) -> None:
    services = make_services(backend)
    _month(services)
    priorities = _by(services, ["priority"])
    # routine: A 31 + E 8 + F 31 = 70 (66 judged: the 4 escalated county tasks are not);
    # stat: B 31, all met (signed 10:23, deadline 10:32); urgent: C 31 + D 5 = 36.
    assert {k[0]: (v["count"], v["sla"]["met"], v["sla"]["breached"]) for k, v in priorities.items()} == {
        "routine": (70, 66, 0),
        "stat": (31, 31, 0),
        "urgent": (36, 25, 11),
    }
    # Stat: claimed 10:08, preliminary 10:18, signed 10:23 — 5, 10 and 5 minutes every day.
    stat = priorities[("stat",)]["minutes"]
    assert (stat["claimed"]["p95"], stat["preliminary"]["p50"], stat["signed"]["p50"]) == (5.0, 10.0, 5.0)
    tiers = _by(services, ["tier"])
    county, provincial = tiers[("county",)], tiers[("provincial",)]
    # county: A 31 + B 31 + C 31 + D 5 + E 4 = 102; judged 98 (E's escalated), breached 11.
    assert county["count"] == 102 and county["sla"] == {"met": 87, "breached": 11, "compliance": 87 / 98}
    # 101 claim waits (the open D has none): 1–4, 5 ×32, 6–9, 10 ×30 (A, 25 C, 4 E; positions
    # 40–69), 11–19, 20, 21–31 (80–90), 70 ×6 (91–96), 611 ×4 (97–100). p50 at 50 → 10;
    # p90 at 90 → 31; p95 at 95 → 70.
    assert county["minutes"]["claimed"] == {"n": 101, "p50": 10.0, "p90": 31.0, "p95": 70.0}
    # provincial: E 4 + F 31 = 35, all met; waits 20 ×4 and 30 ×31 → p50 30.
    assert provincial["count"] == 35 and provincial["sla"]["compliance"] == 1.0
    assert provincial["minutes"]["claimed"]["p50"] == 30.0
    # From AI to the queue, provincial: F 15:02 → 15:03 = 1 (×31); E's provincial task is queued
    # at the escalation, 11:03 → 11:34 = 31 (×4). Sorted 1 ×31 (0–30), 31 ×4 (31–34): p90 at
    # 30.6 → 1 + 0.6 × 30 = 19; p95 at 32.3 → 31.
    queued = provincial["minutes"]["queued"]
    assert (queued["p50"], queued["p90"], queued["p95"]) == (1.0, 19.0, 31.0)


@on_both
def test_figures_per_week_and_reader(make_services: Callable[..., Services], backend: str) -> None:
    services = make_services(backend)
    _month(services)
    weeks = _by(services, ["period"], period="week")
    # ISO weeks of the local arrival date: W40 = 1–4 (Thu–Sun), W41 = 5–11, W42 = 12–18,
    # W43 = 19–25, W44 = 26–31. Daily A, B, C, F: 4 a day; D on Saturdays; E (2 tasks) on Mondays.
    # W40: 4×4 + D3 = 17, breached D3.          W41: 7×4 + D10 + E5×2 = 31, breached C5 C10 D10.
    # W42: 28 + D17 + E12×2 = 31, C15 D17.      W43: 28 + D24 + E19×2 = 31, C20 C25 D24.
    # W44: 6×4 + D31 + E26×2 = 27, C30 D31.     met = count - breached - escalated county tasks.
    assert {k[0]: (v["count"], v["sla"]["met"], v["sla"]["breached"]) for k, v in weeks.items()} == {
        "2026-W40": (17, 16, 1),
        "2026-W41": (31, 27, 3),
        "2026-W42": (31, 28, 2),
        "2026-W43": (31, 27, 3),
        "2026-W44": (27, 24, 2),
    }
    readers = _by(services, ["reader"])
    # Who signed (or escalated): 李 A 31 + B 31 + C on odd days 16 + E county 4 = 82;
    # 王 C on even days 15 + D closed 4 = 19; 陈 E provincial 4 + F 31 = 35; the open D: nobody.
    assert {k[0]: v["count"] for k, v in readers.items()} == {"李医生": 82, "王医生": 19, "陈教授": 35, "—": 1}
    # A local week as a date range (SQL bounds at Shanghai midnight): W41 alone.
    assert (
        sum(g["count"] for g in _by(services, ["site"], start=date(2026, 10, 5), end=date(2026, 10, 12)).values()) == 31
    )
    # The last day: A, B, C, D and F of Saturday the 31st.
    last = _by(services, ["site"], start=date(2026, 10, 31), end=date(2026, 11, 1))
    assert sum(g["count"] for g in last.values()) == 5
    assert _by(services, ["site"], start=date(2026, 11, 1)) == {}


@on_both
def test_breaches_say_why_from_the_rosters(make_services: Callable[..., Services], backend: str) -> None:
    services = make_services(backend)
    ids = _month(services)
    found = _breaches(services)
    # Latest deadline first. C's deadline is 15:03 (ready 14:03 + 60), D's 23:03 (22:03 + 60).
    assert [(b.deadline_at.astimezone(UTC).strftime("%d %H:%M")) for b in found] == [
        "31 15:03",  # D 10-31 23:03 local (open)
        "30 07:03",  # C 10-30 15:03 local
        "25 07:03",  # C 25
        "24 15:03",  # D 24
        "20 07:03",  # C 20
        "17 15:03",  # D 17
        "15 07:03",  # C 15
        "10 15:03",  # D 10
        "10 07:03",  # C 10
        "05 07:03",  # C 5
        "03 15:03",  # D 3
    ]
    open_night, backlog, night = found[0], found[1], found[3]
    # D 10-31: queued 22:04, open at NOW 08:00 → 596 min waiting, 537 min past 23:03; no county
    # reader on duty at any moment of it (the day roster starts at 08:00 = NOW).
    assert (open_night.open, open_night.late_minutes, open_night.interval) == (True, 537.0, "claimed")
    assert open_night.cause == "596 min in the queue before a reader claimed it (still open); no county reader on duty"
    # C on a backlog day: queued 14:04, claimed 15:14 (70 min), signed 15:24 = 21 min late; 李
    # and 王 both on duty (08:00–17:00) the whole wait.
    assert (backlog.open, backlog.late_minutes) == (False, 21.0)
    assert backlog.cause == "70 min in the queue before a reader claimed it; 2 county readers on duty: queue backlog"
    assert backlog.staffing is not None and backlog.staffing.kind == "backlog"
    # D closed: queued 22:04, claimed 08:15 (611 min); on duty 08:00–08:15 only (15 < 611 / 2):
    # a roster gap of 596 min. Signed 08:25, deadline 23:03 → 562 min late.
    assert night.late_minutes == 562.0
    assert night.cause == "611 min in the queue before a reader claimed it; no county reader on duty for 596 of 611 min"
    assert night.staffing is not None and night.staffing.kind == "no_reader_on_duty"
    assert night.staffing.credentialed == 2 and night.staffing.most_on_duty == 2
    causes = [b.staffing.kind for b in found if b.staffing]
    assert causes.count("backlog") == 6 and causes.count("no_reader_on_duty") == 5
    # What the API and the CSV carry beside the sentence.
    assert staffing_json(night.staffing) == {
        "kind": "no_reader_on_duty",
        "tier": "county",
        "readers_credentialed": 2,
        "most_on_duty": 2,
        "minutes_covered": 15.0,
        "minutes_waited": 611.0,
    }
    with transaction(services.sessions) as session:
        lines = breaches_csv(found, name_lookup(session)).splitlines()
    assert lines[0].endswith(",cause,staffing") and lines[1].endswith(",no_reader_on_duty")
    assert {b.site_id for b in found} == {ids.sites[("Yunxi County Medical Consortium", "Xinjie Village Clinic")]}


@on_both
def test_recompute_gives_what_the_incremental_refresh_built(
    make_services: Callable[..., Services], backend: str
) -> None:
    services = make_services(backend)
    # Two parts around a refresh: up to 18 October 08:00 in Shanghai, then the rest — Saturday
    # the 17th's night study is queued in the first part and claimed in the second.
    cut = datetime(2026, 10, 18, 0, 0, tzinfo=UTC)
    ids = _month(services, before=cut)
    with transaction(services.sessions) as session:
        first = refresh(session)
        assert first == 17 * 4 + 3 + 2  # days 1–17: A B C F daily, D on 3 10 17, E on 5 12
    with transaction(services.sessions) as session:
        write_history(session, OCTOBER, ids, since=cut)
        # Days 18–31: 14 × 4 + D (24, 31) + E (19, 26) = 60 new studies, and D 17's morning.
        assert refresh(session) == 60 + 1
        assert refresh(session) == 0
    incremental = _table(services)
    with transaction(services.sessions) as session:
        assert recompute(session) == 137
    assert _table(services) == incremental
    assert len(incremental) == 137


def _table(services: Services) -> dict[int, tuple[Any, ...]]:
    with transaction(services.sessions) as session:
        rows = session.scalars(select(QaTurnaround)).all()
        return {row.task_id: tuple(getattr(row, c.key) for c in QaTurnaround.__table__.columns) for row in rows}
