"""Consortium administration of routing: reading groups (a named set of one tier's readers a
rule may give tasks to), routing rules, and the SLA table with the built-in defaults it
overrides. Readers and rosters are in ``admin.py``, whose lookups and checks this module shares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pacs.index.db import append_change
from pacs.index.models import Consortium, Tier, User
from reading import events
from reading.admin import check_modality, check_priority, check_reading_tier, consortium_named, site_named
from reading.errors import NotFound, Refused
from reading.models import (
    PRIORITY_RANK,
    Priority,
    Reader,
    ReadingGroup,
    ReadingGroupMember,
    RoutingRule,
    SlaRule,
)
from reading.worklist.sla import DEFAULT_MINUTES, sla_minutes
from reading.worklist.tasks import sla_entries

MAX_SLA_MINUTES = 60 * 24 * 30


def _group_members(session: Session, owner: Consortium, tier: str, usernames: Sequence[str]) -> list[Reader]:
    """The readers named (each once, in order): readers of ``owner`` at ``tier``; ``Refused``
    on the first that is not."""
    readers = []
    for username in dict.fromkeys(u.strip() for u in usernames if u.strip()):
        reader = session.scalar(select(Reader).join(User, User.id == Reader.user_id).where(User.username == username))
        if reader is None or reader.consortium_id != owner.id:
            raise Refused(
                f"{username!r} is not a reader of {owner.name!r}",
                code="group_member_unknown",
                field="members",
                username=username,
            )
        if reader.tier != tier:
            raise Refused(
                f"{username!r} reads at the {reader.tier} tier, not {tier}: a group's readers share its tier",
                code="group_member_tier",
                field="members",
                username=username,
                tier=tier,
            )
        readers.append(reader)
    return readers


def member_names(session: Session, group_id: int) -> list[str]:
    """The usernames of a group's readers, sorted."""
    return sorted(
        session.scalars(
            select(User.username)
            .join(Reader, Reader.user_id == User.id)
            .join(ReadingGroupMember, ReadingGroupMember.reader_id == Reader.id)
            .where(ReadingGroupMember.group_id == group_id)
        )
    )


def _free_group_name(session: Session, owner: Consortium, name: str, *, other_than: int | None = None) -> str:
    """``name`` stripped, if it is a valid name no other group of ``owner`` has; else ``Refused``."""
    name = name.strip()
    if not name or len(name) > 100:
        raise Refused("a reading group's name is 1-100 characters", code="group_name_invalid", field="name")
    taken = select(ReadingGroup.id).where(ReadingGroup.consortium_id == owner.id, ReadingGroup.name == name)
    if other_than is not None:
        taken = taken.where(ReadingGroup.id != other_than)
    if session.scalar(taken):
        raise Refused(
            f"reading group {name!r} exists already in {owner.name!r}", code="group_exists", field="name", name=name
        )
    return name


def add_group(
    session: Session, *, consortium: str, name: str, tier: str, members: Sequence[str], actor: str = "cli"
) -> ReadingGroup:
    """A reading group of one tier, with the consortium's readers of that tier as members.
    Raises ``Refused`` on a bad or taken name, a bad tier or a member who cannot be one."""
    owner = consortium_named(session, consortium)
    name = _free_group_name(session, owner, name)
    check_reading_tier(tier, "tier")
    readers = _group_members(session, owner, tier, members)
    group = ReadingGroup(consortium_id=owner.id, name=name, tier=tier)
    session.add(group)
    session.flush()
    session.add_all(ReadingGroupMember(group_id=group.id, reader_id=r.id) for r in readers)
    names = member_names(session, group.id)
    append_change(session, events.READING_GROUP_CHANGED, actor=actor, group_id=group.id, name=name, members=names)
    return group


def _group_of(session: Session, owner: Consortium, name: str) -> ReadingGroup | None:
    """``owner``'s reading group called ``name``, if it has one."""
    return session.scalar(select(ReadingGroup).where(ReadingGroup.consortium_id == owner.id, ReadingGroup.name == name))


def group_named(session: Session, consortium: str, name: str) -> ReadingGroup:
    """The reading group ``name`` of ``consortium``; ``NotFound`` that says where to look."""
    group = _group_of(session, consortium_named(session, consortium), name)
    if group is None:
        raise NotFound(f"no reading group {name!r} in {consortium!r} (see `yunying group list`)")
    return group


def rename_group(session: Session, group: ReadingGroup, name: str, *, actor: str = "cli") -> str | None:
    """Give a group another name, audited as ``reading_group.changed`` with the name it had.
    Its rules and tasks hold its id and stay its own. Returns the old name; None when the name
    stays. Raises ``Refused`` on a bad name or one another group of the consortium has."""
    owner = session.get_one(Consortium, group.consortium_id)
    name = _free_group_name(session, owner, name, other_than=group.id)
    if name == group.name:
        return None
    before, group.name = group.name, name
    session.flush()
    append_change(
        session,
        events.READING_GROUP_CHANGED,
        actor=actor,
        group_id=group.id,
        name=name,
        renamed_from=before,
        members=member_names(session, group.id),
    )
    return before


def set_group_members(
    session: Session, group: ReadingGroup, members: Sequence[str], *, actor: str = "cli"
) -> dict[str, list[str]]:
    """Replace a group's readers (none: an empty group, whose tasks nobody may read until it has
    some). Returns who was ``added`` and ``removed``, audited as ``reading_group.changed``;
    nothing when the members stay. Tasks the group holds stay its tasks."""
    owner = session.get_one(Consortium, group.consortium_id)
    wanted = {r.id for r in _group_members(session, owner, group.tier, members)}
    before = member_names(session, group.id)
    held = set(session.scalars(select(ReadingGroupMember.reader_id).where(ReadingGroupMember.group_id == group.id)))
    if wanted == held:
        return {}
    session.execute(
        delete(ReadingGroupMember).where(
            ReadingGroupMember.group_id == group.id, ReadingGroupMember.reader_id.in_(sorted(held - wanted))
        )
    )
    session.add_all(ReadingGroupMember(group_id=group.id, reader_id=r) for r in sorted(wanted - held))
    session.flush()
    after = member_names(session, group.id)
    added, removed = sorted(set(after) - set(before)), sorted(set(before) - set(after))
    append_change(
        session,
        events.READING_GROUP_CHANGED,
        actor=actor,
        group_id=group.id,
        name=group.name,
        members=after,
        added=added,
        removed=removed,
    )
    return {"added": added, "removed": removed}


def add_rule(
    session: Session,
    *,
    consortium: str,
    name: str,
    position: int = 100,
    site: str | None = None,
    site_tier: str | None = None,
    modality: str | None = None,
    body_part: str | None = None,
    to_tier: str | None = None,
    to_group: str | None = None,
    min_priority: str | None = None,
    actor: str = "cli",
) -> RoutingRule:
    """A routing rule; it must match on something and do something."""
    owner = consortium_named(session, consortium)
    if not name.strip() or len(name) > 100:
        raise Refused("a rule's name is 1-100 characters", code="rule_name_invalid", field="name")
    if site_tier is not None and site_tier not in {t.value for t in Tier}:
        raise Refused(
            f"site tier must be one of {', '.join(t.value for t in Tier)}", code="tier_invalid", field="site_tier"
        )
    if to_tier is not None:
        check_reading_tier(to_tier, "to_tier")
    check_priority(min_priority, "min_priority")
    modality = check_modality(modality)
    if not any((site, site_tier, modality, body_part)):
        raise Refused("a rule must match on a site, a site tier, a modality or a body part", code="rule_match_needed")
    if not any((to_tier, to_group, min_priority)):
        raise Refused("a rule must set a tier, a group or a minimum priority", code="rule_action_needed")
    group = None
    if to_group is not None:
        group = _group_of(session, owner, to_group)
        if group is None:
            raise Refused(
                f"no reading group {to_group!r} in {consortium!r}",
                code="group_unknown",
                field="to_group",
                name=to_group,
            )
        if to_tier is not None and to_tier != group.tier:
            raise Refused(
                f"reading group {to_group!r} reads at the {group.tier} tier, not {to_tier}",
                code="rule_group_tier",
                field="to_group",
                name=to_group,
                tier=group.tier,
            )
    rule = RoutingRule(
        consortium_id=owner.id,
        position=position,
        name=name,
        site_id=site_named(session, site).id if site else None,
        site_tier=site_tier,
        modality=modality,
        body_part=body_part.upper() if body_part else None,
        to_tier=to_tier,
        to_group_id=group.id if group else None,
        min_priority=min_priority,
    )
    session.add(rule)
    session.flush()
    append_change(session, events.ROUTING_RULE_ADDED, actor=actor, rule_id=rule.id, name=name)
    return rule


def set_rule_active(session: Session, rule: RoutingRule, active: bool, *, actor: str = "cli") -> bool:
    """Disable a routing rule (routing skips it from the next study on; tasks it routed stay
    where they are) or enable it again. Returns whether anything changed."""
    if rule.active == active:
        return False
    rule.active = active
    append_change(session, events.ROUTING_RULE_CHANGED, actor=actor, rule_id=rule.id, name=rule.name, active=active)
    return True


def set_sla(
    session: Session, *, consortium: str, priority: str, minutes: int, modality: str | None = None, actor: str = "cli"
) -> SlaRule:
    owner = consortium_named(session, consortium)
    check_priority(priority, "priority")
    if not 0 < minutes <= MAX_SLA_MINUTES:
        raise Refused(
            f"an SLA is between 1 minute and 30 days ({MAX_SLA_MINUTES} minutes), not {minutes}",
            code="sla_minutes_invalid",
            field="minutes",
            max=MAX_SLA_MINUTES,
        )
    modality = check_modality(modality)
    row = session.scalar(
        select(SlaRule).where(
            SlaRule.consortium_id == owner.id,
            SlaRule.priority == priority,
            SlaRule.modality.is_(None) if modality is None else SlaRule.modality == modality,
        )
    )
    if row is None:
        row = SlaRule(consortium_id=owner.id, priority=priority, modality=modality, minutes=minutes)
        session.add(row)
    row.minutes = minutes
    session.flush()
    append_change(
        session,
        events.SLA_CHANGED,
        actor=actor,
        consortium=consortium,
        priority=priority,
        modality=modality,
        minutes=minutes,
    )
    return row


@dataclass(frozen=True)
class EffectiveSla:
    """What applies to a priority (``modality`` None: every modality without its own entry), and
    whether it is the consortium's own entry or the built-in default."""

    priority: Priority
    modality: str | None
    minutes: int
    default_minutes: int  # the built-in value for the priority (reading/worklist/sla.py)
    own: bool


def effective_sla(session: Session, consortium_id: int) -> list[EffectiveSla]:
    """The SLA table as routing applies it: each priority's minutes (the consortium's entry, else
    the built-in default), then the consortium's entries for one modality; most urgent first."""
    entries = sla_entries(session, consortium_id)
    table = []
    for priority in sorted(Priority, key=PRIORITY_RANK.__getitem__):
        own = any(e.priority == priority and e.modality is None for e in entries)
        minutes = sla_minutes(entries, priority, None)
        table.append(EffectiveSla(priority, None, minutes, DEFAULT_MINUTES[priority], own))
        for entry in sorted(
            (e for e in entries if e.priority == priority and e.modality), key=lambda e: e.modality or ""
        ):
            minutes = sla_minutes(entries, priority, entry.modality)
            table.append(EffectiveSla(priority, entry.modality, minutes, DEFAULT_MINUTES[priority], True))
    return table
