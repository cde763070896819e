"""``/api/admin``: consortium administration for reading (readers, rosters, reading groups,
routing rules, the SLA table) and the delivery board; sites and their AEs are in
``admin_sites.py``, users in ``admin_users.py``. Admins only; a consortium's admin
administers his own consortium, an installation admin every one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs.dicomweb.auth import Authenticated
from pacs.identity.users import Principal
from pacs.index.models import Consortium, Role, Site, User
from pacs.index.types import utcnow
from reading.admin import WEEKDAYS, WindowSpec, add_group, add_reader, add_rule, parse_window, set_roster, set_sla
from reading.api.deps import require_role, unit_of_work
from reading.errors import NotFound, OutOfScope
from reading.models import Delivery, DeliveryState, Reader, ReadingTask, RosterWindow, RoutingRule, SlaRule, TaskState
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


def _day(window: RosterWindow) -> str:
    if window.weekday is not None:
        return WEEKDAYS[window.weekday]
    return window.on_date or "daily"


class ReaderBody(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    consortium: str
    tier: str
    modalities: list[str]
    body_parts: list[str] = Field(default_factory=list)
    reads_for_sites: list[str] = Field(default_factory=list)
    reads_for_consortiums: list[str] = Field(default_factory=list)
    display_name: str | None = None
    roster: list[str] = Field(default_factory=list, description="e.g. 'mon 08:00-17:30', 'daily 20:00-08:00'")


@router.get("/readers")
def list_readers(request: Request, who: Authenticated) -> list[dict[str, Any]]:
    require_role(who, Role.ADMIN)
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


@router.post("/readers", status_code=201)
def create_reader(request: Request, who: Authenticated, body: ReaderBody) -> dict[str, Any]:
    with unit_of_work(request) as session:
        administers(session, who, body.consortium, sites=body.reads_for_sites, consortiums=body.reads_for_consortiums)
        reader = add_reader(
            session,
            username=body.username,
            consortium=body.consortium,
            tier=body.tier,
            modalities=body.modalities,
            body_parts=body.body_parts,
            reads_for_sites=body.reads_for_sites,
            reads_for_consortiums=body.reads_for_consortiums,
            display_name=body.display_name,
            actor=who.username,
        )
        if body.roster:
            set_roster(session, body.username, [parse_window(w) for w in body.roster], actor=who.username)
        return {"id": reader.id, "username": body.username, "tier": reader.tier}


class RosterBody(BaseModel):
    windows: list[str]


@router.put("/readers/{username}/roster")
def put_roster(request: Request, who: Authenticated, username: str, body: RosterBody) -> dict[str, Any]:
    require_role(who, Role.ADMIN)
    with unit_of_work(request) as session:
        reader = session.scalar(select(Reader).join(User, User.id == Reader.user_id).where(User.username == username))
        if reader is None:
            raise NotFound(f"no reader {username!r}")
        consortium = session.get_one(Consortium, reader.consortium_id)
        administers(session, who, consortium.name)
        specs: list[WindowSpec] = [parse_window(w) for w in body.windows]
        set_roster(session, username, specs, actor=who.username)
        return {"username": username, "windows": body.windows}


class GroupBody(BaseModel):
    consortium: str
    name: str = Field(min_length=1, max_length=100)
    tier: str
    members: list[str] = Field(default_factory=list)


@router.post("/groups", status_code=201)
def create_group(request: Request, who: Authenticated, body: GroupBody) -> dict[str, Any]:
    with unit_of_work(request) as session:
        administers(session, who, body.consortium)
        group = add_group(
            session,
            consortium=body.consortium,
            name=body.name,
            tier=body.tier,
            members=body.members,
            actor=who.username,
        )
        return {"id": group.id, "name": group.name, "tier": group.tier}


class RuleBody(BaseModel):
    consortium: str
    name: str = Field(min_length=1, max_length=100)
    position: int = 100
    site: str | None = None
    site_tier: str | None = None
    modality: str | None = None
    body_part: str | None = None
    to_tier: str | None = None
    to_group: str | None = None
    min_priority: str | None = None


@router.get("/rules")
def list_rules(request: Request, who: Authenticated) -> list[dict[str, Any]]:
    require_role(who, Role.ADMIN)
    with unit_of_work(request, read_only=True) as session:
        statement = select(RoutingRule).order_by(RoutingRule.consortium_id, RoutingRule.position, RoutingRule.id)
        if who.consortium_id is not None:
            statement = statement.where(RoutingRule.consortium_id == who.consortium_id)
        return [
            {
                "id": r.id,
                "name": r.name,
                "position": r.position,
                "site_id": r.site_id,
                "site_tier": r.site_tier,
                "modality": r.modality,
                "body_part": r.body_part,
                "to_tier": r.to_tier,
                "to_group_id": r.to_group_id,
                "min_priority": r.min_priority,
                "active": r.active,
            }
            for r in session.scalars(statement)
        ]


@router.post("/rules", status_code=201)
def create_rule(request: Request, who: Authenticated, body: RuleBody) -> dict[str, Any]:
    with unit_of_work(request) as session:
        administers(session, who, body.consortium)
        rule = add_rule(session, actor=who.username, **body.model_dump())
        return {"id": rule.id, "name": rule.name}


class SlaBody(BaseModel):
    consortium: str
    priority: str
    minutes: int
    modality: str | None = None


@router.get("/sla")
def list_sla(request: Request, who: Authenticated) -> list[dict[str, Any]]:
    require_role(who, Role.ADMIN)
    with unit_of_work(request, read_only=True) as session:
        statement = select(SlaRule).order_by(SlaRule.consortium_id, SlaRule.priority)
        if who.consortium_id is not None:
            statement = statement.where(SlaRule.consortium_id == who.consortium_id)
        return [
            {"consortium_id": s.consortium_id, "priority": s.priority, "modality": s.modality, "minutes": s.minutes}
            for s in session.scalars(statement)
        ]


@router.put("/sla")
def put_sla(request: Request, who: Authenticated, body: SlaBody) -> dict[str, Any]:
    with unit_of_work(request) as session:
        administers(session, who, body.consortium)
        row = set_sla(
            session,
            consortium=body.consortium,
            priority=body.priority,
            minutes=body.minutes,
            modality=body.modality,
            actor=who.username,
        )
        return {"priority": row.priority, "modality": row.modality, "minutes": row.minutes}


@router.get("/tasks")
def all_tasks(
    request: Request,
    who: Authenticated,
    state: Annotated[list[TaskState] | None, Query()] = None,
    unclaimable: Annotated[bool, Query(description="only tasks no active reader may read")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Reading tasks of the admin's consortium, most urgent first — with, for each, how many
    active readers may read it, so a task nobody can see (no credentialed reader) shows up."""
    require_role(who, Role.ADMIN, Role.QA)
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
    who: Authenticated,
    state: DeliveryState | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Deliveries with their attempts and last error: what has not reached its site, and why."""
    require_role(who, Role.ADMIN, Role.QA)
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
