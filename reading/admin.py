"""Consortium administration for reading: readers (tier, credentials, the sites they read for),
on-duty rosters, and sites' reading requests; with the lookups and checks ``admin_rules.py``
(reading groups, routing rules, the SLA table) shares. Users, consortiums and sites themselves
are ``pacs`` identity; this module calls its functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pacs.identity.sites import IdentityError, find_site
from pacs.identity.users import add_user, find_user, grant_scope
from pacs.index.db import append_change
from pacs.index.models import Consortium, Role, Site
from pacs.index.types import utcnow
from reading import events
from reading.errors import Conflict, Invalid, NotFound, Refused
from reading.models import (
    Priority,
    Reader,
    ReadingRequest,
    ReadingTask,
    ReadingTier,
    RosterWindow,
    TaskState,
)
from reading.worklist.roster import parse_hhmm
from reading.worklist.tasks import update_route

MODALITIES = frozenset({"CT", "DX", "CR", "MR", "MG", "US", "XA", "RF", "NM", "PT"})
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def consortium_named(session: Session, name: str) -> Consortium:
    found = session.scalar(select(Consortium).where(Consortium.name == name))
    if found is None:
        raise NotFound(f"no consortium named {name!r} (see `yunying site list`)")
    return found


def site_named(session: Session, name: str) -> Site:
    try:
        return find_site(session, name)
    except IdentityError as exc:
        raise NotFound(str(exc)) from None


def find_reader(session: Session, username: str) -> Reader:
    try:
        user = find_user(session, username)
    except IdentityError as exc:
        raise NotFound(str(exc)) from None
    reader = session.scalar(select(Reader).where(Reader.user_id == user.id))
    if reader is None:
        raise NotFound(f"{username!r} is not a reader (add one with `yunying reader add`)")
    return reader


def check_reading_tier(tier: str, field: str) -> None:
    if tier not in {t.value for t in ReadingTier}:
        raise Refused(f"a reading tier is county or provincial, not {tier!r}", code="reading_tier_invalid", field=field)


def check_modalities(modalities: Sequence[str]) -> list[str]:
    """The credentialed modalities, upper-cased; ``Refused`` when none or one is unknown."""
    wanted = [m.strip().upper() for m in modalities if m.strip()]
    unknown = [m for m in wanted if m not in MODALITIES]
    if not wanted or unknown:
        raise Refused(
            f"credentialed modalities must be some of {', '.join(sorted(MODALITIES))} (got {unknown or 'none'})",
            code="modalities_invalid",
            field="modalities",
            known=" ".join(sorted(MODALITIES)),
        )
    return wanted


def check_modality(modality: str | None) -> str | None:
    if not modality:
        return None
    if modality.strip().upper() not in MODALITIES:
        raise Refused(
            f"a modality is one of {', '.join(sorted(MODALITIES))}, not {modality!r}",
            code="modality_invalid",
            field="modality",
            modality=modality,
        )
    return modality.strip().upper()


def check_priority(priority: str | None, field: str) -> None:
    if priority is not None and priority not in {p.value for p in Priority}:
        raise Refused(
            f"priority must be one of {', '.join(p.value for p in Priority)}", code="priority_invalid", field=field
        )


def add_reader(
    session: Session,
    *,
    username: str,
    consortium: str,
    tier: str,
    modalities: Sequence[str],
    body_parts: Sequence[str] = (),
    reads_for_sites: Sequence[str] = (),
    reads_for_consortiums: Sequence[str] = (),
    display_name: str | None = None,
    actor: str = "cli",
) -> Reader:
    """Create a reader (and his ``reader`` user when new). He reads for the given sites and
    consortiums; with neither, for his own consortium. Raises ``Invalid`` on a bad tier or
    modality, ``NotFound`` on an unknown consortium or site."""
    check_reading_tier(tier, "tier")
    wanted = check_modalities(modalities)
    home = consortium_named(session, consortium)
    try:
        user = find_user(session, username)
    except IdentityError:
        try:
            user = add_user(
                session,
                username=username,
                role=Role.READER,
                consortium=consortium,
                display_name=display_name,
                actor=actor,
            )
        except IdentityError as exc:
            raise Refused(str(exc), code=exc.code, field=exc.field, **exc.params) from None
    if user.role != Role.READER:
        raise Refused(
            f"user {username!r} has role {user.role}; a reader needs role reader",
            code="user_not_reader",
            field="username",
            username=username,
        )
    if session.scalar(select(Reader.id).where(Reader.user_id == user.id)) is not None:
        raise Refused(f"{username!r} is a reader already", code="reader_exists", field="username", username=username)
    reader = Reader(
        user_id=user.id,
        consortium_id=home.id,
        tier=tier,
        modalities=wanted,
        body_parts=[b.strip().upper() for b in body_parts if b.strip()],
    )
    session.add(reader)
    session.flush()
    sites = [site_named(session, name) for name in reads_for_sites]
    consortiums = [consortium_named(session, name) for name in reads_for_consortiums]
    if not sites and not consortiums:
        consortiums = [home]
    for site in sites:
        grant_scope(session, user, site=site, actor=actor)
    for owner in consortiums:
        grant_scope(session, user, consortium=owner, actor=actor)
    append_change(
        session,
        events.READER_ADDED,
        actor=actor,
        reader_id=reader.id,
        user=username,
        tier=tier,
        modalities=wanted,
        sites=[s.name for s in sites],
        consortiums=[c.name for c in consortiums],
    )
    return reader


def update_reader(
    session: Session,
    reader: Reader,
    *,
    tier: str,
    modalities: Sequence[str],
    body_parts: Sequence[str] = (),
    active: bool = True,
    actor: str = "cli",
) -> dict[str, list[object]]:
    """Change a reader's tier, credentials or whether he reads at all (his login stays as it is);
    returns what changed, as ``{field: [before, after]}``, audited as ``reader.changed``. The
    tasks he has claimed stay his; new ones follow the new profile. Raises ``Refused`` on a bad
    tier or modality."""
    check_reading_tier(tier, "tier")
    after: dict[str, object] = {
        "tier": tier,
        "modalities": check_modalities(modalities),
        "body_parts": [b.strip().upper() for b in body_parts if b.strip()],
        "active": active,
    }
    changed = {name: [getattr(reader, name), value] for name, value in after.items() if getattr(reader, name) != value}
    if changed:
        for name, value in after.items():
            setattr(reader, name, value)
        session.flush()
        append_change(session, events.READER_CHANGED, actor=actor, reader_id=reader.id, changed=changed)
    return changed


@dataclass(frozen=True)
class WindowSpec:
    start: str  # HH:MM
    end: str
    weekday: str | None = None  # mon … sun, or None for every day
    on_date: str | None = None  # YYYY-MM-DD


def _bad_window(text: str, message: str) -> Refused:
    return Refused(message, code="roster_window_invalid", field="windows", window=text)


def parse_window(text: str) -> WindowSpec:
    """``mon 08:00-17:30``, ``daily 20:00-08:00`` or ``2026-12-01 08:00-20:00``."""
    try:
        when, span = text.split()
        start, end = span.split("-")
    except ValueError:
        raise _bad_window(
            text,
            f"a roster window is like 'mon 08:00-17:30', 'daily 20:00-08:00' or '2026-12-01 08:00-20:00', not {text!r}",
        ) from None
    when = when.lower()
    if when == "daily":
        return WindowSpec(start, end)
    if when in WEEKDAYS:
        return WindowSpec(start, end, weekday=when)
    return WindowSpec(start, end, on_date=when)


def _window_text(spec: WindowSpec) -> str:
    return f"{spec.weekday or spec.on_date or 'daily'} {spec.start}-{spec.end}"


def set_roster(
    session: Session, username: str, windows: Sequence[WindowSpec], *, actor: str = "cli"
) -> list[RosterWindow]:
    """Replace a reader's on-duty windows. Raises ``Invalid`` on a bad time, day or date."""
    reader = find_reader(session, username)
    rows = []
    for spec in windows:
        try:
            parse_hhmm(spec.start), parse_hhmm(spec.end)
            if spec.on_date is not None:
                date.fromisoformat(spec.on_date)
        except ValueError as exc:
            raise _bad_window(_window_text(spec), str(exc)) from None
        if spec.weekday is not None and spec.weekday not in WEEKDAYS:
            raise _bad_window(_window_text(spec), f"a weekday is one of {', '.join(WEEKDAYS)}, not {spec.weekday!r}")
        if spec.start == spec.end:
            raise _bad_window(_window_text(spec), f"window {spec.start}-{spec.end} is empty")
        rows.append(
            RosterWindow(
                reader_id=reader.id,
                weekday=WEEKDAYS.index(spec.weekday) if spec.weekday else None,
                on_date=spec.on_date,
                start=spec.start,
                end=spec.end,
            )
        )
    session.execute(delete(RosterWindow).where(RosterWindow.reader_id == reader.id))
    session.add_all(rows)
    append_change(
        session,
        events.ROSTER_CHANGED,
        actor=actor,
        reader_id=reader.id,
        user=username,
        windows=[f"{w.weekday or w.on_date or 'daily'} {w.start}-{w.end}" for w in windows],
    )
    return rows


def request_reading(
    session: Session,
    *,
    site_id: int,
    study_uid: str,
    priority: str | None,
    second_opinion: bool,
    clinical_info: str | None,
    by: str,
) -> ReadingRequest:
    """A site's request for one of its studies (before or after it arrives): a priority, a
    second opinion from the provincial tier, clinical information for the reader."""
    if priority is not None and priority not in {p.value for p in Priority}:
        raise Invalid(f"priority must be one of {', '.join(p.value for p in Priority)}")
    if not study_uid or len(study_uid) > 64:
        raise Invalid("study_uid is a DICOM UID of at most 64 characters")
    task = session.scalar(
        select(ReadingTask)
        .where(ReadingTask.study_uid == study_uid, ReadingTask.state != TaskState.ESCALATED)
        .order_by(ReadingTask.id.desc())
        .limit(1)
    )
    if task is not None:
        # Routed already: a higher priority still applies; a second opinion or a changed tier is
        # the reader's call (he escalates) — said plainly rather than filed and ignored.
        if task.state not in {TaskState.QUEUED, TaskState.CLAIMED, TaskState.PRELIMINARY}:
            raise Conflict(f"study {study_uid} is reported already ({task.state}): call the reading centre")
        if second_opinion and task.tier != ReadingTier.PROVINCIAL:
            raise Conflict(
                f"study {study_uid} is with the {task.tier} tier already: its reader can escalate it; "
                "call the reading centre"
            )
        if priority is not None:
            update_route(session, task, [], Priority(priority), now=utcnow(), actor=by)
    request = ReadingRequest(
        study_uid=study_uid,
        site_id=site_id,
        priority=priority,
        second_opinion=second_opinion,
        clinical_info=clinical_info,
        requested_by=by,
    )
    session.add(request)
    session.flush()
    append_change(
        session,
        events.READING_REQUESTED,
        study_uid=study_uid,
        site_id=site_id,
        actor=by,
        priority=priority,
        second_opinion=second_opinion,
    )
    return request
