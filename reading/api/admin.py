"""``/api/admin``: consortium administration for reading (readers, rosters) and the delivery
board. Reading groups, routing rules and the SLA table are in ``admin_rules.py``, sites and
their AEs in ``admin_sites.py``, users in ``admin_users.py``, tokens in ``admin_tokens.py``.
Admins only; a consortium's admin administers his own consortium, an installation admin every
one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs.identity.users import Principal
from pacs.index.models import Consortium, Role, Site, User
from pacs.index.types import utcnow
from reading.admin import (
    WEEKDAYS,
    WindowSpec,
    add_reader,
    parse_window,
    set_roster,
    update_reader,
)
from reading.api.deps import AdminCaller, QaCaller, refused, require_role, unit_of_work
from reading.errors import NotFound, OutOfScope, Refused
from reading.models import (
    Delivery,
    DeliveryState,
    Reader,
    ReadingTask,
    RosterWindow,
    TaskState,
)
from reading.worklist.readers import readers_serving
from reading.worklist.transitions import OPEN_STATES

router = APIRouter(prefix="/admin", tags=["administration"])


def administers(
    session: Session, who: Principal, consortium: str, *, sites: Sequence[str] = (), consortiums: Sequence[str] = ()
) -> None:
    """The caller administers ``consortium`` — and the sites and consortiums he grants."""
    require_role(who, Role.ADMIN)
    if who.consortium_id is None:
        return
    for name in [consortium, *consortiums]:
        owner = session.scalar(select(Consortium.id).where(Consortium.name == name))
        if owner != who.consortium_id:
            raise OutOfScope(f"you administer another consortium than {name!r}")
    for name in sites:
        if session.scalar(select(Site.consortium_id).where(Site.name == name)) != who.consortium_id:
            raise OutOfScope(f"site {name!r} is not in the consortium you administer")


def home_consortium(session: Session, who: Principal, name: str | None) -> str:
    """The consortium a change is for: the one named, or the admin's own when left out."""
    if name:
        return name
    if who.consortium_id is None:
        raise Refused("name the consortium", code="consortium_needed", field="consortium")
    return session.get_one(Consortium, who.consortium_id).name


def _reader_in_scope(session: Session, who: Principal, username: str) -> Reader:
    require_role(who, Role.ADMIN)
    reader = session.scalar(select(Reader).join(User, User.id == Reader.user_id).where(User.username == username))
    if reader is None or (who.consortium_id is not None and reader.consortium_id != who.consortium_id):
        raise NotFound(f"no reader {username!r} in the consortium you administer")
    return reader


def _day(window: RosterWindow) -> str:
    if window.weekday is not None:
        return WEEKDAYS[window.weekday]
    return window.on_date or "daily"


class ReaderProfile(BaseModel):
    tier: str
    modalities: list[str]
    body_parts: list[str] = Field(default_factory=list)


class ReaderChange(ReaderProfile):
    active: bool = True


class ReaderBody(ReaderProfile):
    username: str = Field(min_length=1, max_length=64)
    consortium: str | None = Field(default=None, description="The reader's home; a consortium's admin: his own")
    reads_for_sites: list[str] = Field(default_factory=list)
    reads_for_consortiums: list[str] = Field(default_factory=list)
    display_name: str | None = None
    roster: list[str] = Field(default_factory=list, description="e.g. 'mon 08:00-17:30', 'daily 20:00-08:00'")


@router.get("/readers")
def list_readers(request: Request, who: AdminCaller) -> list[dict[str, Any]]:
    with unit_of_work(request, read_only=True) as session:
        statement = select(Reader, User).join(User, User.id == Reader.user_id).order_by(Reader.id)
        if who.consortium_id is not None:
            statement = statement.where(Reader.consortium_id == who.consortium_id)
        answer = []
        for reader, user in session.execute(statement):
            windows = session.scalars(select(RosterWindow).where(RosterWindow.reader_id == reader.id)).all()
            answer.append(
                {
                    "id": reader.id,
                    "username": user.username,
                    "display_name": user.display_name,
                    "tier": reader.tier,
                    "modalities": reader.modalities,
                    "body_parts": reader.body_parts,
                    "active": reader.active and user.active,
                    "roster": [f"{_day(w)} {w.start}-{w.end}" for w in windows],
                }
            )
        return answer


@router.post("/readers", status_code=201, response_model=None)
def create_reader(request: Request, who: AdminCaller, body: ReaderBody) -> dict[str, Any] | JSONResponse:
    """Make a user a reader (creating his ``reader`` user when new), with a tier, credentials,
    the sites or consortiums he reads for (his own consortium when none) and a roster."""
    try:
        return _create_reader(request, who, body)
    except Refused as exc:
        return refused(exc)


def _create_reader(request: Request, who: Principal, body: ReaderBody) -> dict[str, Any]:
    with unit_of_work(request) as session:
        consortium = home_consortium(session, who, body.consortium)
        administers(session, who, consortium, sites=body.reads_for_sites, consortiums=body.reads_for_consortiums)
        reader = add_reader(
            session,
            username=body.username.strip(),
            consortium=consortium,
            tier=body.tier,
            modalities=body.modalities,
            body_parts=body.body_parts,
            reads_for_sites=body.reads_for_sites,
            reads_for_consortiums=body.reads_for_consortiums,
            display_name=body.display_name,
            actor=who.username,
        )
        if body.roster:
            set_roster(session, body.username.strip(), [parse_window(w) for w in body.roster], actor=who.username)
        return {"id": reader.id, "username": body.username.strip(), "tier": reader.tier}


@router.put("/readers/{username}", response_model=None)
def edit_reader(request: Request, who: AdminCaller, username: str, body: ReaderChange) -> dict[str, Any] | JSONResponse:
    """Change a reader's tier, credentialed modalities and body parts, or take him off reading
    (``active``: false; his login stays). Audited as ``reader.changed`` with before and after."""
    try:
        with unit_of_work(request) as session:
            reader = _reader_in_scope(session, who, username)
            changed = update_reader(
                session,
                reader,
                tier=body.tier,
                modalities=body.modalities,
                body_parts=body.body_parts,
                active=body.active,
                actor=who.username,
            )
            return {"username": username, "tier": reader.tier, "modalities": reader.modalities, "changed": changed}
    except Refused as exc:
        return refused(exc)


class RosterBody(BaseModel):
    windows: list[str]


@router.put("/readers/{username}/roster", response_model=None)
def put_roster(request: Request, who: AdminCaller, username: str, body: RosterBody) -> dict[str, Any] | JSONResponse:
    """Replace a reader's on-duty windows (``mon 08:00-17:30``, ``daily 20:00-08:00``,
    ``2026-12-01 08:00-20:00``; none: never on duty)."""
    try:
        with unit_of_work(request) as session:
            _reader_in_scope(session, who, username)
            specs: list[WindowSpec] = [parse_window(w) for w in body.windows if w.strip()]
            set_roster(session, username, specs, actor=who.username)
            return {"username": username, "windows": [w for w in body.windows if w.strip()]}
    except Refused as exc:
        return refused(exc)


@router.get("/tasks")
def all_tasks(
    request: Request,
    who: QaCaller,
    state: Annotated[list[TaskState] | None, Query()] = None,
    unclaimable: Annotated[bool, Query(description="only tasks no active reader may read")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Reading tasks of the admin's consortium, most urgent first — with, for each, how many
    active readers may read it, so a task nobody can see (no credentialed reader) shows up."""
    now = utcnow()
    with unit_of_work(request, read_only=True) as session:
        statement = (
            select(ReadingTask)
            .where(ReadingTask.state.in_([s.value for s in (state or list(OPEN_STATES))]))
            .order_by(ReadingTask.priority_rank, ReadingTask.deadline_at, ReadingTask.id)
            .limit(limit)
        )
        if who.scope.site_ids is not None:
            statement = statement.where(ReadingTask.site_id.in_(sorted(who.scope.site_ids)))
        answer = []
        readers_by_site: dict[int, list[Any]] = {}
        for task in session.scalars(statement):
            if task.site_id not in readers_by_site:
                readers_by_site[task.site_id] = readers_serving(session, task.site_id, now=now)
            able = sum(
                1
                for r in readers_by_site[task.site_id]
                if r.tier == task.tier
                and r.credentialed(task.modality, task.body_part)
                and (task.group_id is None or task.group_id in r.group_ids)
            )
            if unclaimable and able:
                continue
            answer.append(
                {
                    "id": task.id,
                    "study_uid": task.study_uid,
                    "site_id": task.site_id,
                    "tier": task.tier,
                    "state": task.state,
                    "priority": task.priority,
                    "deadline_at": task.deadline_at.isoformat(),
                    "modality": task.modality,
                    "body_part": task.body_part,
                    "route_reason": task.route_reason,
                    "claimed_by": task.claimed_by,
                    "readers_able": able,
                }
            )
        return answer


@router.get("/deliveries")
def delivery_board(
    request: Request,
    who: QaCaller,
    state: DeliveryState | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Deliveries with their attempts and last error: what has not reached its site, and why."""
    with unit_of_work(request, read_only=True) as session:
        statement = select(Delivery).order_by(Delivery.id.desc()).limit(limit)
        if who.scope.site_ids is not None:
            statement = statement.where(Delivery.site_id.in_(sorted(who.scope.site_ids)))
        if state is not None:
            statement = statement.where(Delivery.state == state)
        return [
            {
                "id": d.id,
                "report_id": d.report_id,
                "site_id": d.site_id,
                "study_uid": d.study_uid,
                "state": d.state,
                "destination": f"{d.ae_title}@{d.host}:{d.port}" if d.ae_title else None,
                "attempts": d.attempts,
                "last_error": d.last_error,
                "next_attempt_at": d.next_attempt_at.isoformat(),
                "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
            }
            for d in session.scalars(statement)
        ]
