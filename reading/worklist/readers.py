"""Readers as routing and the worklist see them: credentials, the sites they read for (their
``pacs`` grants), reading groups and who is on duty now."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs.identity.users import granted_site_ids
from pacs.index.models import Consortium, User
from reading.errors import OutOfScope
from reading.models import Reader, ReadingGroupMember, RosterWindow
from reading.worklist.roster import Window, on_duty, parse_hhmm
from reading.worklist.routing import ReaderFacts


def window_of(row: RosterWindow) -> Window:
    return Window(
        start=parse_hhmm(row.start),
        end=parse_hhmm(row.end),
        weekday=row.weekday,
        on_date=date.fromisoformat(row.on_date) if row.on_date else None,
    )


def reader_of_user(session: Session, user_id: int | None) -> Reader:
    """The reader profile of a user; raises ``OutOfScope`` for a user who is not a reader."""
    reader = session.scalar(select(Reader).where(Reader.user_id == user_id, Reader.active.is_(True)))
    if reader is None:
        raise OutOfScope("only a reader may do this (see `yunying reader add`)")
    return reader


def facts_of(
    session: Session,
    reader: Reader,
    *,
    now: datetime,
    site_ids: frozenset[int] | None = None,
    with_duty: bool = True,
) -> ReaderFacts:
    """The reader as routing sees him. ``site_ids``: his grants when the caller has them already
    (the token check computed them); ``with_duty=False`` skips the roster (``on_duty`` is then
    False) for callers that only need his scope, like the worklist."""
    duty = False
    if with_duty:
        windows = session.scalars(select(RosterWindow).where(RosterWindow.reader_id == reader.id)).all()
        timezone = session.scalar(select(Consortium.timezone).where(Consortium.id == reader.consortium_id))
        duty = on_duty([window_of(w) for w in windows], now, timezone or "Asia/Shanghai")
    groups = session.scalars(select(ReadingGroupMember.group_id).where(ReadingGroupMember.reader_id == reader.id))
    return ReaderFacts(
        reader_id=reader.id,
        tier=reader.tier,
        modalities=frozenset(reader.modalities),
        body_parts=frozenset(reader.body_parts),
        site_ids=site_ids if site_ids is not None else granted_site_ids(session, reader.user_id),
        on_duty=duty,
        group_ids=frozenset(groups),
    )


def readers_serving(session: Session, site_id: int, *, now: datetime) -> list[ReaderFacts]:
    """Every active reader who reads for ``site_id``, with his on-duty state at ``now``."""
    readers = session.scalars(select(Reader).where(Reader.active.is_(True))).all()
    if not readers:
        return []
    windows: dict[int, list[Window]] = defaultdict(list)
    for row in session.scalars(select(RosterWindow).where(RosterWindow.reader_id.in_([r.id for r in readers]))):
        windows[row.reader_id].append(window_of(row))
    groups: dict[int, set[int]] = defaultdict(set)
    for member in session.scalars(select(ReadingGroupMember)):
        groups[member.reader_id].add(member.group_id)
    zones = {row[0]: row[1] for row in session.execute(select(Consortium.id, Consortium.timezone))}
    active_users = set(session.scalars(select(User.id).where(User.active.is_(True))))
    found = []
    for reader in readers:
        if reader.user_id not in active_users:
            continue
        sites = granted_site_ids(session, reader.user_id)
        if site_id not in sites:
            continue
        found.append(
            ReaderFacts(
                reader_id=reader.id,
                tier=reader.tier,
                modalities=frozenset(reader.modalities),
                body_parts=frozenset(reader.body_parts),
                site_ids=sites,
                on_duty=on_duty(windows[reader.id], now, zones.get(reader.consortium_id, "Asia/Shanghai")),
                group_ids=frozenset(groups[reader.id]),
            )
        )
    return found
