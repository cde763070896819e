"""``/api/admin/groups``, ``/api/admin/rules`` and ``/api/admin/sla``: a consortium's reading
groups, its routing rules and its SLA table (with the built-in defaults it overrides). Admins
only, in the consortium they administer; each change audited in its transaction."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs.dicomweb.auth import Authenticated
from pacs.index.models import Consortium, Role, Site
from reading.admin_rules import (
    add_group,
    add_rule,
    effective_sla,
    member_names,
    rename_group,
    set_group_members,
    set_rule_active,
    set_sla,
)
from reading.api.admin import administers, home_consortium
from reading.api.deps import AdminCaller, refused, require_role, unit_of_work
from reading.errors import NotFound, Refused
from reading.models import ReadingGroup, RoutingRule

router = APIRouter(prefix="/admin", tags=["administration"])
ID = Annotated[int, Path(ge=1, le=2**31 - 1)]


class GroupBody(BaseModel):
    consortium: str | None = Field(default=None, description="A consortium's admin: his own")
    name: str
    tier: str
    members: list[str] = Field(default_factory=list, description="Usernames of the consortium's readers of the tier")


class MembersBody(BaseModel):
    members: list[str]


class GroupChangeBody(BaseModel):
    name: str = Field(description="the group's name, the same or a new one")
    members: list[str]


def _group_json(session: Session, group: ReadingGroup) -> dict[str, Any]:
    rules = session.scalars(
        select(RoutingRule.name).where(RoutingRule.to_group_id == group.id).order_by(RoutingRule.position)
    )
    return {
        "id": group.id,
        "name": group.name,
        "tier": group.tier,
        "consortium": session.get_one(Consortium, group.consortium_id).name,
        "members": member_names(session, group.id),
        "rules": list(rules),
    }


def _group_in_scope(session: Session, who: Authenticated, group_id: int) -> ReadingGroup:
    require_role(who, Role.ADMIN)
    group = session.get(ReadingGroup, group_id)
    if group is None or (who.consortium_id is not None and group.consortium_id != who.consortium_id):
        raise NotFound(f"no reading group {group_id} in the consortium you administer")
    return group


@router.get("/groups")
def list_groups(request: Request, who: AdminCaller) -> list[dict[str, Any]]:
    """The reading groups of the admin's consortium (every one for an installation admin), with
    their readers and the rules that give tasks to them."""
    with unit_of_work(request, read_only=True) as session:
        statement = select(ReadingGroup).order_by(ReadingGroup.consortium_id, ReadingGroup.name)
        if who.consortium_id is not None:
            statement = statement.where(ReadingGroup.consortium_id == who.consortium_id)
        return [_group_json(session, g) for g in session.scalars(statement)]


@router.post("/groups", status_code=201, response_model=None)
def create_group(request: Request, who: AdminCaller, body: GroupBody) -> dict[str, Any] | JSONResponse:
    """Add a reading group of one tier with some of the consortium's readers of that tier;
    audited as ``reading_group.changed``."""
    try:
        with unit_of_work(request) as session:
            consortium = home_consortium(session, who, body.consortium)
            administers(session, who, consortium)
            group = add_group(
                session,
                consortium=consortium,
                name=body.name,
                tier=body.tier,
                members=body.members,
                actor=who.username,
            )
            return _group_json(session, group)
    except Refused as exc:
        return refused(exc)


@router.put("/groups/{group_id}/members", response_model=None)
def put_group_members(
    request: Request, who: AdminCaller, group_id: ID, body: MembersBody
) -> dict[str, Any] | JSONResponse:
    """Replace a group's readers; audited as ``reading_group.changed`` with who was added and
    removed. The tasks the group holds stay its own."""
    try:
        with unit_of_work(request) as session:
            group = _group_in_scope(session, who, group_id)
            changed = set_group_members(session, group, body.members, actor=who.username)
            return _group_json(session, group) | {"changed": changed}
    except Refused as exc:
        return refused(exc)


@router.put("/groups/{group_id}", response_model=None)
def put_group(request: Request, who: AdminCaller, group_id: ID, body: GroupChangeBody) -> dict[str, Any] | JSONResponse:
    """Rename a group and replace its readers in one change (both or neither); each audited as
    ``reading_group.changed``. Its rules and the tasks it holds stay its own."""
    try:
        with unit_of_work(request) as session:
            group = _group_in_scope(session, who, group_id)
            renamed_from = rename_group(session, group, body.name, actor=who.username)
            changed = set_group_members(session, group, body.members, actor=who.username)
            return _group_json(session, group) | {"changed": changed, "renamed_from": renamed_from}
    except Refused as exc:
        return refused(exc)


class RuleBody(BaseModel):
    consortium: str | None = Field(default=None, description="A consortium's admin: his own")
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
def list_rules(request: Request, who: AdminCaller) -> list[dict[str, Any]]:
    with unit_of_work(request, read_only=True) as session:
        statement = select(RoutingRule).order_by(RoutingRule.consortium_id, RoutingRule.position, RoutingRule.id)
        if who.consortium_id is not None:
            statement = statement.where(RoutingRule.consortium_id == who.consortium_id)
        return [_rule_json(session, r) for r in session.scalars(statement)]


def _rule_json(session: Session, rule: RoutingRule) -> dict[str, Any]:
    site = session.get(Site, rule.site_id) if rule.site_id is not None else None
    group = session.get(ReadingGroup, rule.to_group_id) if rule.to_group_id is not None else None
    return {
        "id": rule.id,
        "name": rule.name,
        "position": rule.position,
        "site_id": rule.site_id,
        "site": site.name if site else None,
        "site_tier": rule.site_tier,
        "modality": rule.modality,
        "body_part": rule.body_part,
        "to_tier": rule.to_tier,
        "to_group_id": rule.to_group_id,
        "to_group": group.name if group else None,
        "min_priority": rule.min_priority,
        "active": rule.active,
    }


@router.post("/rules", status_code=201, response_model=None)
def create_rule(request: Request, who: AdminCaller, body: RuleBody) -> dict[str, Any] | JSONResponse:
    """Add a routing rule, tried in ``position`` order before the default routing."""
    try:
        with unit_of_work(request) as session:
            consortium = home_consortium(session, who, body.consortium)
            administers(session, who, consortium, sites=[body.site] if body.site else [])
            rule = add_rule(session, actor=who.username, **(body.model_dump() | {"consortium": consortium}))
            return _rule_json(session, rule)
    except Refused as exc:
        return refused(exc)


class RuleActiveBody(BaseModel):
    active: bool


@router.put("/rules/{rule_id}/active")
def put_rule_active(request: Request, who: AdminCaller, rule_id: ID, body: RuleActiveBody) -> dict[str, Any]:
    """Disable a routing rule (routing skips it from the next study on) or enable it again;
    audited as ``routing_rule.changed``. A rule is never deleted: the tasks it routed name it."""
    with unit_of_work(request) as session:
        rule = session.get(RoutingRule, rule_id)
        if rule is None or (who.consortium_id is not None and rule.consortium_id != who.consortium_id):
            raise NotFound(f"no routing rule {rule_id} in the consortium you administer")
        set_rule_active(session, rule, body.active, actor=who.username)
        return _rule_json(session, rule)


class SlaBody(BaseModel):
    consortium: str | None = Field(default=None, description="A consortium's admin: his own")
    priority: str
    minutes: int
    modality: str | None = None


@router.get("/sla")
def list_sla(request: Request, who: AdminCaller) -> list[dict[str, Any]]:
    """What applies, per consortium: each priority's minutes — the consortium's own entry
    (``source``: consortium) or the built-in default (``source``: default) — then its entries
    for one modality; ``default_minutes``: the built-in value an entry overrides."""
    with unit_of_work(request, read_only=True) as session:
        statement = select(Consortium).order_by(Consortium.name)
        if who.consortium_id is not None:
            statement = statement.where(Consortium.id == who.consortium_id)
        return [
            {
                "consortium_id": consortium.id,
                "consortium": consortium.name,
                "priority": row.priority.value,
                "modality": row.modality,
                "minutes": row.minutes,
                "default_minutes": row.default_minutes,
                "source": "consortium" if row.own else "default",
            }
            for consortium in session.scalars(statement)
            for row in effective_sla(session, consortium.id)
        ]


@router.put("/sla", response_model=None)
def put_sla(request: Request, who: AdminCaller, body: SlaBody) -> dict[str, Any] | JSONResponse:
    """Set the minutes allowed for a priority (and, optionally, one modality)."""
    try:
        with unit_of_work(request) as session:
            consortium = home_consortium(session, who, body.consortium)
            administers(session, who, consortium)
            row = set_sla(
                session,
                consortium=consortium,
                priority=body.priority,
                minutes=body.minutes,
                modality=body.modality or None,
                actor=who.username,
            )
            return {"priority": row.priority, "modality": row.modality, "minutes": row.minutes}
    except Refused as exc:
        return refused(exc)
