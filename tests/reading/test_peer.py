"""Peer review (RADPEER, issue E): sampling per reader, reviewer choice, blinding, scores, the
QA review queue and the discrepancy rates with Wilson intervals — against the hand-worked month
of peer_history.py, on SQLite and PostgreSQL, through the API (a real server) and the CLI."""

from __future__ import annotations

import io
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pacs.identity.users import add_user, create_token, find_user
from pacs.index.db import transaction
from pacs.index.models import Change
from pacs.service import Services
from reading import events
from reading.admin import add_reader
from reading.models import Reader, ReadingTask, Report, ReportStatus
from reading.qa.figures import breaches, turnaround
from reading.qa.models import PeerReview, QaTurnaround
from reading.qa.peer import close_case, logged_reviews, rate_groups, sample_month, score_review
from reading.qa.peer_log import scored
from reading.qa.peer_sampling import TIER_RANK, Wanted, choose_reviewer, draw, eligible, quota
from reading.qa.radpeer import ScoredReview, ScoreError, parse_score, rates, wilson_interval
from reading.qa.service import name_lookup, zone_lookup
from reading.qa.store import refresh
from reading.settings import ReadingSettings
from reading.worklist.routing import ReaderFacts
from tests.conftest import BACKENDS, receiver_env, yunying
from tests.dicomweb.conftest import served
from tests.reading import qa_history
from tests.reading.peer_history import CONSORTIUM, NOW, SCORES, PeerHistory, build_peer_history
from viewer.app import create_app

on_both = pytest.mark.parametrize("backend", BACKENDS)

# ---------------------------------------------------------------- plain functions


def test_wilson_intervals_match_published_values() -> None:
    # Newcombe (1998), Stat Med 17:857, table I, method 3 (Wilson score, no continuity correction).
    for k, n, low, high in (
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ):
        found = wilson_interval(k, n)
        assert found is not None and found == (pytest.approx(low, abs=5e-5), pytest.approx(high, abs=5e-5)), (k, n)
    # 0 of 10: the lower bound is exactly 0, the upper z²/(n + z²) = 3.8415 / 13.8415 = 0.27753.
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.27753, abs=1e-5))
    # 10 of 10 mirrors it: (1 − 0.27753, 1).
    assert wilson_interval(10, 10) == (pytest.approx(0.72247, abs=1e-5), 1.0)
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_scores_parse_and_unknown_ones_are_refused() -> None:
    assert parse_score(" 2B ").value == "2b" and parse_score("1").value == "1"
    for bad in ("4", "2", "2c", ""):
        with pytest.raises(ScoreError, match="one of 1, 2a, 2b, 3a, 3b"):
            parse_score(bad)


def test_quota_is_the_ceiling_of_the_share_as_written() -> None:
    assert quota(100, 0.03) == 3
    assert quota(10, 0.03) == 1  # 0.3 → at least one report of a reader who signed any
    assert quota(34, 0.03) == 2  # ⌈1.02⌉
    assert quota(0, 0.03) == 0
    # In binary floating point 0.07 × 100 = 7.000000000000001, whose ceiling is 8; the share
    # counts as the decimal 0.07.
    assert quota(100, 0.07) == 7
    assert quota(5, 1.0) == 5
    with pytest.raises(ValueError):
        quota(10, 0)


def test_the_draw_repeats_for_a_seed_whatever_the_order() -> None:
    ids = list(range(100, 160))
    first = draw(ids, 5, random.Random(42))
    assert draw(list(reversed(ids)), 5, random.Random(42)) == first
    assert len(set(first)) == 5 and set(first) <= set(ids)
    assert draw(ids[:3], 5, random.Random(1)) == ids[:3]  # fewer than asked: all of them
    assert draw(ids, -2, random.Random(1)) == []  # more drawn already than the quota


def _facts(reader_id: int, tier: str, modalities: str = "CT DX", sites: tuple[int, ...] = (1,)) -> ReaderFacts:
    return ReaderFacts(reader_id, tier, frozenset(modalities.split()), frozenset(), frozenset(sites), on_duty=False)


def test_the_reviewer_is_another_eligible_reader_the_least_loaded_first() -> None:
    readers = [
        _facts(1, "county"),  # the author
        _facts(2, "county", "DX"),  # not credentialed for CT
        _facts(3, "county", sites=(2,)),  # reads for another site
        _facts(4, "county"),
        _facts(5, "provincial"),
        _facts(6, "county"),  # the signer (a co-signed report)
    ]

    def wanted(tier: str = "county", not_readers: tuple[int, ...] = (1, 6)) -> Wanted:
        return Wanted(frozenset(not_readers), tier, site_id=1, site_name="Fudong", modality="CT", body_part="HEAD")

    # 4 and 5 are eligible with no open review each: the same tier comes before a higher one.
    assert [r.reader_id for r in eligible(readers, wanted())] == [4, 5]
    assert choose_reviewer(readers, {}, wanted()).reviewer_id == 4
    assert choose_reviewer(readers, {4: 2, 5: 1}, wanted()).reviewer_id == 5  # the least loaded first
    assert choose_reviewer(readers, {4: 1, 5: 1}, wanted()).reviewer_id == 4
    # A provincial report: only a provincial reader may review it, and 5 is the only one.
    assert choose_reviewer(readers, {5: 9}, wanted("provincial")).reviewer_id == 5
    none = choose_reviewer(readers, {}, wanted("provincial", (5,)))
    assert none.reviewer_id is None
    assert none.reason == "no eligible reviewer among 5 other active reader(s): 5 below the provincial tier"
    county = choose_reviewer(readers[1:3], {}, wanted(not_readers=()))
    assert county.reason == (
        "no eligible reviewer among 2 other active reader(s): 1 not reading for Fudong, 1 not credentialed for CT HEAD"
    )
    assert choose_reviewer(readers[:1], {}, wanted()).reason == "no other active reader"


# ---------------------------------------------------------------- sampling and assignment


def _history(services: Services, **kwargs: Any) -> PeerHistory:
    with transaction(services.sessions) as session:
        return build_peer_history(session, **kwargs)


def _sample(services: Services, share: float, *, seed: int = 7, consortium_id: int | None = None) -> Any:
    with transaction(services.sessions) as session:
        return sample_month(session, month="2026-10", share=share, seed=seed, now=NOW, consortium_id=consortium_id)


def _reviews(services: Services) -> list[PeerReview]:
    with transaction(services.sessions) as session:
        rows = list(session.scalars(select(PeerReview).order_by(PeerReview.id)))
        session.expunge_all()
    return rows


def _count(session: Session, kind: str) -> int:
    return int(session.scalar(select(func.count()).select_from(Change).where(Change.kind == kind)) or 0)


@on_both
def test_sampling_takes_each_readers_share_of_the_local_month_once(
    make_services: Callable[..., Services], backend: str
) -> None:
    services = make_services(backend)
    history = _history(services)
    # October, local: 李 10 (report 1 signed 09-30 17:00 UTC counts; 21 is November, 22 only
    # preliminary, the addendum of 2 is not another report), 王 5, 陈 4, other-li 1 = 20.
    # Share 10 %: ⌈1.0⌉ = 1, ⌈0.5⌉ = 1, ⌈0.4⌉ = 1, ⌈0.1⌉ = 1 → 4 sampled.
    run = _sample(services, 0.1)
    assert (run.signed, run.sampled, run.seed) == (20, 4, 7)
    first = _reviews(services)
    assert Counter(r.reader_id for r in first) == {
        history.readers[n]: 1 for n in ("peer-li", "peer-wang", "peer-chen", "other-li")
    }
    assert {r.period for r in first} == {"2026-10"}
    # Again: each quota is met already, nothing is drawn twice.
    assert _sample(services, 0.1, seed=8).sampled == 0
    # 25 %: 李 ⌈2.5⌉ = 3 (+2), 王 ⌈1.25⌉ = 2 (+1), 陈 ⌈1.0⌉ = 1, other ⌈0.25⌉ = 1 → 3 more.
    assert _sample(services, 0.25, seed=9).sampled == 3
    assert _sample(services, 0.1, seed=10).sampled == 0  # a lower share since: nothing more, nothing undone
    reviews = _reviews(services)
    numbers = [history.number_of(r.report_id) for r in reviews]
    assert len(numbers) == len(set(numbers)) == 7
    assert set(numbers) <= set(range(1, 20)) | {30}  # never 21, 22 or the addendum
    with transaction(services.sessions) as session:
        assert _count(session, events.PEER_SAMPLED) == 7
        seeds = [c.payload["seed"] for c in session.scalars(select(Change).where(Change.kind == events.PEER_SAMPLED))]
        assert seeds == [7, 7, 7, 7, 9, 9, 9]  # each draw can be repeated from the log


@on_both
def test_the_same_seed_draws_the_same_reports(make_services: Callable[..., Services], backend: str) -> None:
    services = make_services(backend)
    _history(services)
    drawn = []
    for _ in range(2):
        session = services.sessions()
        try:
            sample_month(session, month="2026-10", share=0.3, seed=2026, now=NOW)
            drawn.append(sorted(session.scalars(select(PeerReview.report_id))))
        finally:
            session.rollback()
            session.close()
    # 李 ⌈3.0⌉ = 3, 王 ⌈1.5⌉ = 2, 陈 ⌈1.2⌉ = 2, other 1.
    assert len(drawn[0]) == 8 and drawn[0] == drawn[1]


@on_both
def test_reviewers_are_other_eligible_readers_of_the_same_or_a_higher_tier(
    make_services: Callable[..., Services], backend: str
) -> None:
    services = make_services(backend)
    history = _history(services)
    run = _sample(services, 1.0, consortium_id=history.consortium_id)
    assert (run.signed, run.sampled, run.assigned) == (19, 19, 19)  # Peer Consortium only
    by_id = {v: k for k, v in history.readers.items()}
    with transaction(services.sessions) as session:
        readers = {r.id: r for r in session.scalars(select(Reader))}
    for review in _reviews(services):
        assert review.state == "assigned" and review.reviewer_id is not None
        reviewer, reader = readers[review.reviewer_id], readers[review.reader_id]
        assert reviewer.id != reader.id
        assert TIER_RANK[reviewer.tier] >= TIER_RANK[reader.tier]
        assert review.modality in reviewer.modalities
        assert by_id[reviewer.id].startswith("peer-")  # a reader of the study's sites
        if by_id[reader.id] == "peer-chen":
            assert by_id[reviewer.id] == "peer-zhang"  # the only other provincial reader
    loads = Counter(by_id[r.reviewer_id] for r in _reviews(services) if r.reviewer_id)
    # 陈's four (one eligible reviewer: 张) are assigned first, then report by report to the
    # least loaded, the same tier first: 李's CT 1–6 alternate 王 and 陈 (3 each), his films
    # 7–10 go to 赵 (4: 赵 at 3 still beats 陈 at 3 on tier), 王's CT 11–15 to 李 ×4 and then
    # 陈 (at 3, below 李's 4).
    assert loads == {"peer-zhang": 4, "peer-wang": 3, "peer-chen": 4, "peer-zhao": 4, "peer-li": 4}


@on_both
def test_without_an_eligible_reviewer_the_sample_waits_with_the_reason(
    make_services: Callable[..., Services], backend: str
) -> None:
    services = make_services(backend)
    history = _history(services, with_zhang=False)
    run = _sample(services, 1.0)
    assert (run.sampled, run.assigned) == (20, 16)  # 陈's four have no other provincial reader
    waiting = [r for r in _reviews(services) if r.state == "unassigned"]
    assert {history.number_of(r.report_id) for r in waiting} == {16, 17, 18, 19}
    assert {r.unassigned_reason for r in waiting} == {
        "no eligible reviewer among 5 other active reader(s): 5 below the provincial tier"
    }
    assert _sample(services, 1.0).retried == 0
    with transaction(services.sessions) as session:
        assert _count(session, events.PEER_UNASSIGNED) == 4  # a retry with the same reason adds none
        add_reader(
            session,
            username="peer-zhang",
            consortium=CONSORTIUM,
            tier="provincial",
            modalities=["CT"],
            display_name="张",
        )
    run = _sample(services, 1.0)
    assert (run.sampled, run.retried) == (0, 4)
    zhang = [r for r in _reviews(services) if history.number_of(r.report_id) in {16, 17, 18, 19}]
    assert {(r.state, r.unassigned_reason) for r in zhang} == {("assigned", None)}


# ---------------------------------------------------------------- scores and rates


def _score_all(services: Services, history: PeerHistory) -> None:
    with transaction(services.sessions) as session:
        for review in session.scalars(select(PeerReview).order_by(PeerReview.id)):
            number = history.number_of(review.report_id)
            reviewer = session.get_one(Reader, review.reviewer_id)
            comment = None if SCORES[number] == "1" else f"discrepancy in report {number}"
            score_review(session, reviewer, review.id, score=SCORES[number], comment=comment, now=NOW)


def _json(groups: list[Any]) -> dict[tuple[str, ...], dict[str, Any]]:
    return {tuple(g.key.values()): g.as_json() for g in groups}


@on_both
def test_rates_per_reader_and_site_match_the_hand_computed_intervals(
    make_services: Callable[..., Services], backend: str
) -> None:
    services = make_services(backend)
    history = _history(services)
    _sample(services, 1.0)
    _score_all(services, history)
    # Wilson 95 %, z = 1.959964, z² = 3.841459:
    #   centre = (p + z²/2n) / (1 + z²/n),  half = z/(1 + z²/n) · √(p(1−p)/n + z²/4n²)
    with transaction(services.sessions) as session:
        by_reader = _json(rate_groups(session, history.consortium_id, group_by=["reader"]))
        by_site = _json(rate_groups(session, history.consortium_id, group_by=["site"]))
    li, wang, chen = by_reader[("李",)], by_reader[("王",)], by_reader[("陈",)]
    assert set(by_reader) == {("李",), ("王",), ("陈",)}  # the other consortium's reader is not here
    # 李: 10 reviews, 1 ×7, 2a, 2b, 3b.
    assert li["reviews"] == 10 and li["scores"] == {"1": 7, "2a": 1, "2b": 1, "3a": 0, "3b": 1}
    # Discrepancy 3/10: centre = (0.3 + 0.192073)/1.384146 = 0.355504; half = 1.959964 ×
    # √(0.021 + 0.009604)/1.384146 = 0.247716 → 0.1078 – 0.6032.
    assert li["discrepancy"] == {"k": 3, "n": 10, "rate": 0.3, "ci95_low": 0.1078, "ci95_high": 0.6032}
    # Significant (2b, 3b) 2/10: centre = 0.392073/1.384146 = 0.283262; half = 1.959964 ×
    # √(0.016 + 0.009604)/1.384146 = 0.226578 → 0.0567 – 0.5098.
    assert li["significant"] == {"k": 2, "n": 10, "rate": 0.2, "ci95_low": 0.0567, "ci95_high": 0.5098}
    # 王: 0/5 — lower bound 0, upper z²/(n + z²) = 3.841459/8.841459 = 0.4345.
    assert wang["discrepancy"] == {"k": 0, "n": 5, "rate": 0.0, "ci95_low": 0.0, "ci95_high": 0.4345}
    assert wang["significant"] == wang["discrepancy"]
    # 陈: 1 ×3, 3a. Discrepancy 1/4: z²/n = 0.960365, centre = (0.25 + 0.480182)/1.960365 =
    # 0.372468; half = 1.959964 × √(0.046875 + 0.060023)/1.960365 = 0.326886 → 0.0456 – 0.6994.
    assert chen["discrepancy"] == {"k": 1, "n": 4, "rate": 0.25, "ci95_low": 0.0456, "ci95_high": 0.6994}
    # Significant 0/4: upper 3.841459/7.841459 = 0.4899.
    assert chen["significant"] == {"k": 0, "n": 4, "rate": 0.0, "ci95_low": 0.0, "ci95_high": 0.4899}
    fudong, xinjie = by_site[("Peer Fudong",)], by_site[("Peer Xinjie",)]
    # Peer Fudong: 李 1–6 and 王 11–15 = 11 reviews; 2a and 3b discrepant, 3b significant.
    # 2/11: z²/n = 0.349224, centre = (0.181818 + 0.174612)/1.349224 = 0.264174; half =
    # 1.959964 × √(0.013524 + 0.007937)/1.349224 = 0.212806 → 0.0514 – 0.4770.
    assert fudong["discrepancy"] == {"k": 2, "n": 11, "rate": 0.1818, "ci95_low": 0.0514, "ci95_high": 0.477}
    # 1/11: centre = (0.090909 + 0.174612)/1.349224 = 0.196793; half = 1.959964 ×
    # √(0.007513 + 0.007937)/1.349224 = 0.180563 → 0.0162 – 0.3774.
    assert fudong["significant"] == {"k": 1, "n": 11, "rate": 0.0909, "ci95_low": 0.0162, "ci95_high": 0.3774}
    # Peer Xinjie: 李 7–10 and 陈 16–19 = 8 reviews; 2b and 3a discrepant, 2b significant.
    # 2/8: z²/n = 0.480182, centre = (0.25 + 0.240091)/1.480182 = 0.331104; half = 1.959964 ×
    # √(0.023438 + 0.015006)/1.480182 = 0.259624 → 0.0715 – 0.5907.
    assert xinjie["discrepancy"] == {"k": 2, "n": 8, "rate": 0.25, "ci95_low": 0.0715, "ci95_high": 0.5907}
    # 1/8: centre = (0.125 + 0.240091)/1.480182 = 0.246653; half = 1.959964 ×
    # √(0.013672 + 0.015006)/1.480182 = 0.224236 → 0.0224 – 0.4709.
    assert xinjie["significant"] == {"k": 1, "n": 8, "rate": 0.125, "ci95_low": 0.0224, "ci95_high": 0.4709}


@on_both
def test_the_change_log_alone_gives_the_table_and_the_rates(
    make_services: Callable[..., Services], backend: str
) -> None:
    services = make_services(backend)
    history = _history(services, with_zhang=False)
    _sample(services, 1.0)
    with transaction(services.sessions) as session:
        add_reader(
            session,
            username="peer-zhang",
            consortium=CONSORTIUM,
            tier="provincial",
            modalities=["CT"],
            display_name="张",
        )
    _sample(services, 1.0)  # the four that waited are assigned now
    _score_all(services, history)
    with transaction(services.sessions) as session:
        case = session.scalars(select(PeerReview).where(PeerReview.qa_state == "open")).first()
        assert case is not None
        close_case(session, None, case.id, outcome="confirmed", comment="feedback given", by="qa", now=NOW)
    table = _reviews(services)
    with transaction(services.sessions) as session:
        logged = logged_reviews(session)
        names = name_lookup(session)
        from_log = _json(rates(scored(logged.values()), group_by=["reader", "site"], names=names))
    for row in table:
        facts = logged[row.id]
        assert (facts.state, facts.reviewer_id, facts.score, facts.comment, facts.qa_state, facts.qa_outcome) == (
            row.state,
            row.reviewer_id,
            row.score,
            row.comment,
            row.qa_state,
            row.qa_outcome,
        )
        assert (facts.report_id, facts.site_id, facts.reader_id, facts.period) == (
            row.report_id,
            row.site_id,
            row.reader_id,
            row.period,
        )
    from_table = [
        ScoredReview(
            r.id,
            r.consortium_id,
            r.site_id,
            r.reader_id,
            r.reviewer_id or 0,
            r.modality,
            r.period,
            r.report_signed_at,
            parse_score(r.score or ""),
        )
        for r in table
        if r.state == "scored"
    ]
    assert from_log == _json(rates(from_table, group_by=["reader", "site"], names=names))
    assert sum(g["reviews"] for g in from_log.values()) == 20


# ---------------------------------------------------------------- not a reading task


@on_both
def test_peer_review_leaves_the_turnaround_and_sla_figures_unchanged(
    make_services: Callable[..., Services], backend: str
) -> None:
    services = make_services(backend)
    with transaction(services.sessions) as session:
        history = qa_history.build_history(session)
        add_reader(session, username="qa-wu", consortium=qa_history.CONSORTIUM, tier="county", modalities=["CT", "DX"])
        # The reports the history's report.signed events name (101, 102, 103, 105).
        for number, report_id, reader in ((1, 101, "li"), (2, 102, "li"), (3, 103, "li"), (5, 105, "chen")):
            task = session.get_one(ReadingTask, history.tasks[number])
            session.add(
                Report(
                    id=report_id,
                    task_id=task.id,
                    study_uid=task.study_uid,
                    status=ReportStatus.FINAL,
                    template_id="ct_head",
                    impression="未见异常",
                    author_id=history.readers[reader],
                    signer_id=history.readers[reader],
                    signed_at=datetime(2026, 10, 7, 15, 0, tzinfo=UTC),
                )
            )

    def figures() -> tuple[Any, ...]:
        with transaction(services.sessions) as session:
            refresh(session)
            rows = list(session.scalars(select(QaTurnaround).order_by(QaTurnaround.task_id)))
            groups = turnaround(
                rows, group_by=["reader"], now=qa_history.NOW, zones=zone_lookup(session), names=name_lookup(session)
            )
            tasks = session.scalar(select(func.count()).select_from(ReadingTask))
            return _json(groups), breaches(rows, qa_history.NOW), len(rows), tasks

    before = figures()
    run = _sample(services, 1.0)
    assert (run.sampled, run.assigned) == (4, 3)  # 陈's report has no other provincial reader
    with transaction(services.sessions) as session:
        for review in session.scalars(select(PeerReview).where(PeerReview.state == "assigned")):
            reviewer = session.get_one(Reader, review.reviewer_id)
            score_review(session, reviewer, review.id, score="3b", comment="missed", now=qa_history.NOW)
    # The reviewers (陈, qa-wu) hold reviews: no new task, row, interval, SLA judgement or breach.
    assert figures() == before


# ---------------------------------------------------------------- over HTTP


@dataclass
class PeerApi:
    services: Services
    history: PeerHistory
    url: str
    tokens: dict[str, str]

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return httpx.request(method, f"{self.url}/api{path}", headers=headers, timeout=30, **kwargs)

    def changes(self) -> int:
        with transaction(self.services.sessions) as session:
            return int(session.scalar(select(func.count()).select_from(Change)) or 0)

    def username_of(self, reader_id: int) -> str:
        return {v: k for k, v in self.history.readers.items()}[reader_id]


@pytest.fixture(params=BACKENDS)
def peer_api(make_services: Callable[..., Services], request: pytest.FixtureRequest) -> Iterator[PeerApi]:
    services = make_services(request.param)
    history = _history(services)
    with transaction(services.sessions) as session:
        add_user(session, username="qa-peer", role="qa", consortium=CONSORTIUM)
        add_user(session, username="qa-other", role="qa", consortium="Other Consortium")
        names = [*history.readers, "qa-peer", "qa-other"]
        tokens = {n: create_token(session, find_user(session, n))[1] for n in names}
    with served(create_app(services, ReadingSettings(peer_review_share=1.0))) as url:
        yield PeerApi(services, history, url, tokens)


def test_a_reviewer_sees_his_assignments_blinded_and_scores_them(peer_api: PeerApi) -> None:
    api = peer_api
    worklists = {n: api.call(n, "GET", "/worklist").json() for n in ("peer-li", "peer-wang", "peer-zhang")}
    # Report 22's task (preliminary) and task 40 (queued) are open at the county tier.
    assert len(worklists["peer-li"]["tasks"]) == 2 and worklists["peer-zhang"]["tasks"] == []
    sampled = api.call("qa-peer", "POST", "/qa/peer/sample", json={"month": "2026-10"})
    assert sampled.status_code == 200, sampled.text
    assert (sampled.json()["signed"], sampled.json()["sampled"]) == (19, 19)  # the QA's consortium only
    # Peer reviews are no reading tasks: every worklist and its counts are as they were.
    assert {n: api.call(n, "GET", "/worklist").json() for n in worklists} == worklists

    mine = api.call("peer-zhang", "GET", "/peer-reviews")
    assert mine.status_code == 200
    reviews = mine.json()["reviews"]
    chens = [r for r in reviews if r["study_uid"].rsplit(".", 1)[1] in {"16", "17", "18", "19"}]
    assert len(chens) == 4  # 陈's reports go to the other provincial reader
    # Blinded: nothing names or identifies the reader reviewed — no id, name, signer or time.
    for review in reviews:
        assert set(review) == {
            "id", "state", "assigned_at", "study_uid", "site", "modality", "body_part", "study", "report", "score",
            "comment", "scored_at",
        }  # fmt: skip
        assert set(review["report"]) == {"template_id", "fields", "findings", "impression", "critical"}
    assert "陈" not in mine.text and "peer-chen" not in mine.text
    wangs = api.call("peer-wang", "GET", "/peer-reviews")  # 王 reviews three of 李's CTs
    assert len(wangs.json()["reviews"]) == 3 and "李" not in wangs.text and "peer-li" not in wangs.text
    one = api.call("peer-zhang", "GET", f"/peer-reviews/{chens[0]['id']}")
    assert one.status_code == 200 and one.json() == chens[0] and "陈" not in one.text
    # QA sees both readers.
    listed = {r["id"]: r for r in api.call("qa-peer", "GET", "/qa/peer/reviews").json()["reviews"]}
    assert listed[chens[0]["id"]]["reader"] == "陈" and listed[chens[0]["id"]]["reviewer"] == "张"

    review_id = chens[0]["id"]
    before = api.changes()
    refusals = [
        (api.call("peer-zhang", "POST", f"/peer-reviews/{review_id}/score", json={"score": "4"}), 422, "one of 1, 2a"),
        (
            api.call("peer-zhang", "POST", f"/peer-reviews/{review_id}/score", json={"score": "2b"}),
            422,
            "needs a comment",
        ),
        (api.call("peer-li", "POST", f"/peer-reviews/{review_id}/score", json={"score": "1"}), 403, "another reader"),
        (api.call("peer-li", "GET", f"/peer-reviews/{review_id}"), 403, "another reader"),
        (api.call("peer-zhang", "POST", "/peer-reviews/999999/score", json={"score": "1"}), 404, "no peer review"),
        (api.call("qa-peer", "GET", "/peer-reviews"), 403, "role reader"),
        (api.call("peer-zhang", "GET", "/peer-reviews", params={"state": "done"}), 422, "assigned or scored"),
    ]
    for answer, status, text in refusals:
        assert answer.status_code == status and text in answer.text, (answer.status_code, answer.text)
    assert api.changes() == before  # nothing was written
    scored_one = api.call(
        "peer-zhang",
        "POST",
        f"/peer-reviews/{review_id}/score",
        json={"score": "3B", "comment": "漏诊：右侧硬膜下血肿"},
    )
    assert scored_one.status_code == 200, scored_one.text
    assert (scored_one.json()["state"], scored_one.json()["score"]) == ("scored", "3b")
    again = api.call("peer-zhang", "POST", f"/peer-reviews/{review_id}/score", json={"score": "1"})
    assert again.status_code == 409 and "scored 3b already" in again.text
    assert [
        r["id"] for r in api.call("peer-zhang", "GET", "/peer-reviews", params={"state": "scored"}).json()["reviews"]
    ] == [review_id]
    assert review_id not in [r["id"] for r in api.call("peer-zhang", "GET", "/peer-reviews").json()["reviews"]]
    # The 3b is in the QA review queue.
    queue = api.call("qa-peer", "GET", "/qa/peer/queue").json()["cases"]
    assert [(c["id"], c["reader"], c["score"], c["qa_state"]) for c in queue] == [(review_id, "陈", "3b", "open")]


def _score_everything(api: PeerApi) -> None:
    reviews = [r for qa in ("qa-peer", "qa-other") for r in api.call(qa, "GET", "/qa/peer/reviews").json()["reviews"]]
    for review in reviews:
        number = api.history.number_of(review["report_id"])
        reviewer = api.username_of(_reviewer_id(api, review["id"]))
        body = {"score": SCORES[number], "comment": None if SCORES[number] == "1" else "discrepancy"}
        answer = api.call(reviewer, "POST", f"/peer-reviews/{review['id']}/score", json=body)
        assert answer.status_code == 200, answer.text


def _reviewer_id(api: PeerApi, review_id: int) -> int:
    with transaction(api.services.sessions) as session:
        reviewer = session.scalar(select(PeerReview.reviewer_id).where(PeerReview.id == review_id))
        assert reviewer is not None
        return reviewer


def test_qa_staff_get_rates_exports_and_the_queue_of_their_consortium(peer_api: PeerApi) -> None:
    api = peer_api
    assert api.call("qa-peer", "POST", "/qa/peer/sample", json={"month": "2026-10"}).json()["sampled"] == 19
    assert api.call("qa-other", "POST", "/qa/peer/sample", json={"month": "2026-10"}).json()["sampled"] == 1
    _score_everything(api)
    with transaction(api.services.sessions) as session:
        other = session.scalar(select(PeerReview).where(PeerReview.consortium_id == api.history.other_consortium_id))
        assert other is not None and other.score == "3b"
        other_case = other.id

    rates_json = api.call("qa-peer", "GET", "/qa/peer/rates", params={"group_by": "reader"}).json()
    groups = {g["reader"]: g for g in rates_json["groups"]}
    assert set(groups) == {"李", "王", "陈"}  # not the other consortium's reader
    # As in test_rates_per_reader_and_site_match_the_hand_computed_intervals: 3/10 → 0.1078–0.6032.
    assert groups["李"]["discrepancy"] == {"k": 3, "n": 10, "rate": 0.3, "ci95_low": 0.1078, "ci95_high": 0.6032}
    by_site = api.call("qa-peer", "GET", "/qa/peer/rates", params={"group_by": "site", "format": "csv"})
    header, *lines = by_site.text.strip().splitlines()
    assert header.startswith("site,reviews,score_1,score_2a,score_2b,score_3a,score_3b,discrepancy_k,discrepancy_rate")
    assert "Peer Fudong,11,9,1,0,0,1,2,0.1818,0.0514,0.477,1,0.0909,0.0162,0.3774" in lines, lines
    # October local only; 10-01 (local) counts, so all 19 are in; from 10-02 report 1 drops out.
    later = api.call("qa-peer", "GET", "/qa/peer/rates", params={"group_by": "reader", "from": "2026-10-02"}).json()
    assert {g["reader"]: g["reviews"] for g in later["groups"]} == {"李": 9, "王": 5, "陈": 4}
    workbook = api.call("qa-peer", "GET", "/qa/peer/reviews", params={"format": "xlsx"})
    assert workbook.status_code == 200 and workbook.headers["content-type"].startswith("application/vnd.openxml")
    sheet = load_workbook(io.BytesIO(workbook.content))["peer-reviews"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:6] == ("id", "period", "state", "site", "reader", "reviewer") and len(rows) == 20

    # Out of scope: another consortium's figures (403), its case (404); readers may not ask.
    other_id = api.history.other_consortium_id
    assert api.call("qa-peer", "GET", "/qa/peer/rates", params={"consortium": other_id}).status_code == 403
    assert api.call("qa-peer", "GET", "/qa/peer/reviews", params={"consortium": other_id}).status_code == 403
    assert api.call("peer-li", "GET", "/qa/peer/rates").status_code == 403
    bad = api.call("qa-peer", "GET", "/qa/peer/rates", params={"group_by": "colour"})
    assert bad.status_code == 422 and "cannot group peer reviews by colour" in bad.text
    assert api.call("qa-peer", "POST", "/qa/peer/sample", json={"month": "2026-13"}).status_code == 422

    queue = api.call("qa-peer", "GET", "/qa/peer/queue").json()["cases"]
    assert [api.history.number_of(c["report_id"]) for c in queue] == [6]  # the one 3b of Peer Consortium
    case = queue[0]["id"]
    minor = next(
        r["id"] for r in api.call("qa-peer", "GET", "/qa/peer/reviews").json()["reviews"] if r["score"] == "2a"
    )
    before = api.changes()
    close = {"outcome": "confirmed", "comment": "反馈给报告医师，已发补充报告"}
    refusals = [
        (api.call("qa-other", "POST", f"/qa/peer/queue/{case}/close", json=close), 404),
        (api.call("qa-peer", "POST", f"/qa/peer/queue/{other_case}/close", json=close), 404),
        (api.call("qa-peer", "POST", f"/qa/peer/queue/{case}/close", json={**close, "outcome": "maybe"}), 422),
        (api.call("qa-peer", "POST", f"/qa/peer/queue/{case}/close", json={**close, "comment": " "}), 422),
        (api.call("qa-peer", "POST", f"/qa/peer/queue/{minor}/close", json=close), 409),
        (api.call("peer-li", "POST", f"/qa/peer/queue/{case}/close", json=close), 403),
    ]
    assert [a.status_code for a, _ in refusals] == [s for _, s in refusals], [a.text for a, _ in refusals]
    assert api.changes() == before
    closed = api.call("qa-peer", "POST", f"/qa/peer/queue/{case}/close", json=close)
    assert closed.status_code == 200 and closed.json()["qa_outcome"] == "confirmed"
    assert closed.json()["qa_closed_by"] == "qa-peer"
    assert api.call("qa-peer", "POST", f"/qa/peer/queue/{case}/close", json=close).status_code == 409
    assert api.call("qa-peer", "GET", "/qa/peer/queue").json()["cases"] == []
    assert [
        c["id"] for c in api.call("qa-peer", "GET", "/qa/peer/queue", params={"state": "closed"}).json()["cases"]
    ] == [case]
    # The other consortium's QA sees its own case only.
    assert [c["id"] for c in api.call("qa-other", "GET", "/qa/peer/queue").json()["cases"]] == [other_case]


# ---------------------------------------------------------------- the command line


def test_the_cli_samples_scores_rates_and_exports(make_services: Callable[..., Services], tmp_path: Path) -> None:
    services = make_services("sqlite-folder")
    history = _history(services)
    env = receiver_env(tmp_path / "var")
    helped = yunying("qa", "peer", "--help", env=env).stdout
    assert all(word in helped for word in ("sample", "list", "score", "rates", "queue", "close", "export"))
    out = yunying("qa", "peer", "sample", "--month", "2026-10", "--share", "1", "--seed", "5", env=env).stdout
    assert "20 signed report(s), 20 sampled" in " ".join(out.split())
    listed = yunying("qa", "peer", "list", "--csv", env=env).stdout.strip().splitlines()
    assert listed[0].startswith("id,period,state,site,reader,reviewer") and len(listed) == 21
    with transaction(services.sessions) as session:
        review = session.scalars(select(PeerReview).where(PeerReview.report_id == history.reports[6])).one()
        reviewer = {v: k for k, v in history.readers.items()}[review.reviewer_id or 0]
    bad = yunying("qa", "peer", "score", str(review.id), "--reviewer", reviewer, "--score", "5", env=env, check=False)
    assert bad.returncode == 1 and "one of 1, 2a, 2b, 3a, 3b" in bad.stdout + bad.stderr
    done = yunying(
        "qa", "peer", "score", str(review.id), "--reviewer", reviewer, "--score", "3b", "--comment", "missed", env=env
    )
    assert "in the QA review queue" in done.stdout
    rates_csv = yunying("qa", "peer", "rates", "--group-by", "reader", "--csv", env=env).stdout
    assert "李,1,0,0,0,0,1,1,1.0,0.2065,1.0," in rates_csv  # 1/1: Wilson 1/(1 + z²) = 0.2065 – 1
    table = " ".join(yunying("qa", "peer", "rates", "--month", "2026-10", env=env).stdout.split())
    assert "李" in table and "1 scored review(s) in 1 group(s)" in table  # a table wraps its cells
    assert "20 peer review(s)" in " ".join(yunying("qa", "peer", "list", env=env).stdout.split())
    assert str(review.id) in yunying("qa", "peer", "queue", env=env).stdout
    closed = yunying(
        "qa", "peer", "close", str(review.id), "--outcome", "confirmed", "--comment", "addendum", "--by", "qa", env=env
    )
    assert "closed: confirmed" in closed.stdout
    target = tmp_path / "peer.xlsx"
    yunying("qa", "peer", "export", str(target), "--month", "2026-10", env=env)
    book = load_workbook(target)
    assert book.sheetnames == ["reviews", "rates by reader", "rates by site"]
    assert next(book["rates by site"].iter_rows(min_row=2, values_only=True))[:2] == ("Peer Fudong", 1)


def test_the_monthly_report_prints_the_peer_review_rates(
    make_services: Callable[..., Services], tmp_path: Path
) -> None:
    import subprocess

    from reading.qa.monthly import month_scope
    from reading.qa.report import build_report_pdf, prepare_report

    services = make_services()
    history = _history(services)
    _sample(services, 1.0)
    _score_all(services, history)
    with transaction(services.sessions) as session:
        report = prepare_report(session, month_scope(session, None, "Peer Consortium", "2026-10", NOW))
    pdf = tmp_path / "october.pdf"
    pdf.write_bytes(build_report_pdf(report))
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    section = " ".join(text[text.index("Peer review (RADPEER)") :].split())
    # 李 3/10 (10.8 %–60.3 %), 王 0/5 (0 %–43.4 %): the figures of the rate test, as percentages.
    assert "19 of 19 sampled report(s) of the month scored" in section
    assert "30.0% (10.8%–60.3%)" in section and "王 5 5 0 0 0 0 0.0% (0.0%–43.4%)" in section
    # Peer Fudong 2/11 discrepant, 1/11 significant; one 3b (report 6) open in the QA queue.
    assert "18.2% (5.1%–47.7%) 9.1% (1.6%–37.7%)" in section
    assert "1 3b case(s) open in the QA review queue" in section
