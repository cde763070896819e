"""Routing as pure functions: tier, group, priority, deadline and the explanation."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from reading.models import Priority, ReadingTier
from reading.worklist.roster import Window, on_duty
from reading.worklist.routing import ReaderFacts, RuleFacts, StudyFacts, main_modality, route
from reading.worklist.sla import SlaEntry, parse_priority

NOW = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)  # 02:00 in Asia/Shanghai


def study(**overrides: object) -> StudyFacts:
    values: dict[str, object] = {
        "study_uid": "1.2.3",
        "consortium_id": 1,
        "site_id": 10,
        "site_name": "Fudong",
        "site_tier": "township",
        "modality": "CT",
        "body_part": "HEAD",
        "ready_at": NOW,
    }
    values.update(overrides)
    return StudyFacts(**values)  # type: ignore[arg-type]


def reader(reader_id: int, tier: str, *, on_duty: bool = True, modalities: str = "CT", parts: str = "") -> ReaderFacts:
    return ReaderFacts(
        reader_id, tier, frozenset(modalities.split()), frozenset(parts.split()), frozenset({10}), on_duty
    )


def test_a_township_study_goes_to_the_county_with_the_default_sla() -> None:
    decided = route(study(), [reader(1, "county")], [], [], timezone="Asia/Shanghai", now=NOW)
    assert decided.tier is ReadingTier.COUNTY
    assert decided.priority is Priority.ROUTINE
    assert decided.deadline_at == NOW + timedelta(hours=24)
    assert "township site Fudong" in decided.explanation


def test_no_county_reader_on_duty_sends_it_to_the_provincial_tier_and_says_why() -> None:
    readers = [reader(1, "county", on_duty=False), reader(2, "provincial", on_duty=False)]
    decided = route(study(), readers, [], [], timezone="Asia/Shanghai", now=NOW)
    assert decided.tier is ReadingTier.PROVINCIAL
    assert "no county reader on duty for CT HEAD at 02:00" in decided.explanation


def test_a_county_reader_not_credentialed_for_the_body_part_does_not_count() -> None:
    readers = [reader(1, "county", parts="CHEST"), reader(2, "provincial")]
    assert route(study(), readers, [], [], timezone="Asia/Shanghai", now=NOW).tier is ReadingTier.PROVINCIAL
    readers = [reader(1, "county", modalities="DX"), reader(2, "provincial")]
    assert route(study(), readers, [], [], timezone="Asia/Shanghai", now=NOW).tier is ReadingTier.PROVINCIAL


def test_without_any_provincial_reader_it_stays_county_and_says_so() -> None:
    decided = route(study(), [reader(1, "county", on_duty=False)], [], [], timezone="Asia/Shanghai", now=NOW)
    assert decided.tier is ReadingTier.COUNTY
    assert "no provincial reader serves Fudong" in decided.explanation


def test_county_sites_and_second_opinions_go_to_the_provincial_tier() -> None:
    readers = [reader(1, "county"), reader(2, "provincial")]
    assert route(study(site_tier="county"), readers, [], [], timezone="UTC", now=NOW).tier is ReadingTier.PROVINCIAL
    asked = route(study(second_opinion=True), readers, [], [], timezone="UTC", now=NOW)
    assert asked.tier is ReadingTier.PROVINCIAL and "second opinion" in asked.explanation


def test_the_highest_priority_wins_and_validated_ai_critical_means_stat() -> None:
    readers = [reader(1, "county")]
    decided = route(
        study(order_priority=Priority.URGENT, ai_priority=Priority.STAT, ai_may_raise=True),
        readers,
        [],
        [],
        timezone="UTC",
        now=NOW,
    )
    assert decided.priority is Priority.STAT
    assert decided.deadline_at == NOW + timedelta(minutes=30)
    assert "the AI pre-screen" in decided.explanation


def test_an_unvalidated_model_never_reorders_the_queue() -> None:
    decided = route(
        study(ai_priority=Priority.STAT, ai_may_raise=False), [reader(1, "county")], [], [], timezone="UTC", now=NOW
    )
    assert decided.priority is Priority.ROUTINE
    assert "advisory" in decided.explanation


def test_site_request_and_rules_and_modality_sla() -> None:
    rule = RuleFacts(7, "DX urgent", modality="DX", min_priority=Priority.URGENT, to_group_id=3)
    sla = [SlaEntry(Priority.URGENT, "DX", 90), SlaEntry(Priority.URGENT, None, 45)]
    dx_reader = ReaderFacts(1, "county", frozenset({"DX"}), frozenset(), frozenset({10}), True, frozenset({3}))
    decided = route(study(modality="DX", body_part="CHEST"), [dx_reader], [rule], sla, timezone="UTC", now=NOW)
    assert (decided.priority, decided.group_id) == (Priority.URGENT, 3)
    assert decided.deadline_at == NOW + timedelta(minutes=90)
    ct = route(study(requested_priority=Priority.URGENT), [reader(1, "county")], [rule], sla, timezone="UTC", now=NOW)
    assert ct.deadline_at == NOW + timedelta(minutes=45) and ct.group_id is None


def test_rosters_in_the_consortium_time_zone_including_night_shifts() -> None:
    night = [Window(time(20), time(8))]
    day = [Window(time(8), time(17, 30), weekday=0)]
    assert on_duty(night, NOW, "Asia/Shanghai")  # 02:00 Tuesday in Shanghai
    assert not on_duty(day, NOW, "Asia/Shanghai")
    monday_morning = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 09:00 Monday in Shanghai
    assert on_duty(day, monday_morning, "Asia/Shanghai")
    assert not on_duty(day, monday_morning, "UTC")  # 01:00 in UTC


def test_priority_words_and_modality_choice() -> None:
    assert parse_priority("HIGH") is Priority.URGENT and parse_priority("stat") is Priority.STAT
    assert parse_priority("whenever") is None
    assert main_modality("CT\\SR") == "CT" and main_modality("SR") is None
