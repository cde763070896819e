"""Reading groups over HTTP with a browser's cookie and CSRF token: an admin lists his
consortium's groups, creates one of a tier with some of its readers, gives it a routing rule's
tasks (a study routed to it reaches its members' worklists only) and changes its members. Each
change is an administrative audit record; each bad input a 422 naming the catalogue's code and
the field, with nothing written; another consortium's groups stay unseen and untouched; other
roles and a request without the CSRF token are refused."""

from __future__ import annotations

from contextlib import closing

from sqlalchemy import func, select

from pacs.identity.sites import add_site
from pacs.index.db import transaction
from reading.admin import add_reader
from reading.admin_rules import add_group, member_names
from reading.models import ReadingGroup, RoutingRule
from tests.viewer.admin_calls import admin_client, assert_refused, audited, changes
from tests.viewer.conftest import Web


def _groups(web: Web) -> dict[str, tuple[str, list[str]]]:
    """Every consortium's groups as stored: name → (tier, members)."""
    with transaction(web.world.services.sessions, read_only=True) as session:
        return {g.name: (g.tier, member_names(session, g.id)) for g in session.scalars(select(ReadingGroup))}


def _worklist_of_li(web: Web) -> list[str]:
    client, _ = web.log_in("li")
    with closing(client):
        answer = client.get("/api/worklist")
        assert answer.status_code == 200, answer.text
        return [task["study_uid"] for task in answer.json()["tasks"]]


def _rugao(web: Web) -> int:
    """Another consortium with a reader and a reading group; returns the group's id."""
    with transaction(web.world.services.sessions) as session:
        add_site(session, consortium="Rugao", name="Rugao People's Hospital", tier="county")
        add_reader(session, username="rugao-dr", consortium="Rugao", tier="county", modalities=["CT"])
        return add_group(session, consortium="Rugao", name="CT组", tier="county", members=["rugao-dr"]).id


def test_an_admin_creates_a_group_gives_it_a_rules_studies_and_changes_its_members(web: Web) -> None:
    client, csrf = admin_client(web)
    with closing(client):
        assert client.get("/api/admin/groups").json() == []
        created = client.post(
            "/api/admin/groups", headers=csrf, json={"name": " CT组 ", "tier": "county", "members": ["wang", " "]}
        )
        assert created.status_code == 201, created.text
        group = created.json()
        assert group | {"id": 0} == {
            "id": 0,
            "name": "CT组",
            "tier": "county",
            "consortium": "Dongtai",
            "members": ["wang"],
            "rules": [],
        }
        rule = client.post(
            "/api/admin/rules",
            headers=csrf,
            json={"name": "CT to the CT group", "modality": "CT", "to_tier": "county", "to_group": "CT组"},
        )
        assert rule.status_code == 201, rule.text
        assert (rule.json()["to_group"], rule.json()["to_group_id"]) == ("CT组", group["id"])
        [listed] = client.get("/api/admin/groups").json()
        assert (listed["name"], listed["members"], listed["rules"]) == ("CT组", ["wang"], ["CT to the CT group"])

    # The rule gives the next CT to the group: li, a county CT reader outside it, does not see it.
    study_uid = web.world.ready_study()
    task = web.world.task_of(study_uid)
    assert task.group_id == group["id"] and "reading group" in task.route_reason
    assert study_uid not in _worklist_of_li(web)

    client, csrf = admin_client(web)
    with closing(client):
        members = f"/api/admin/groups/{group['id']}/members"
        changed = client.put(members, headers=csrf, json={"members": ["li", "wang", "li"]})
        assert changed.status_code == 200, changed.text
        assert (changed.json()["members"], changed.json()["changed"]) == (
            ["li", "wang"],
            {"added": ["li"], "removed": []},
        )
        assert study_uid in _worklist_of_li(web)  # a member now: the group's task is his to read
        again = client.put(members, headers=csrf, json={"members": ["wang", "li"]})
        assert again.status_code == 200 and again.json()["changed"] == {}  # nothing changed, nothing audited
        emptied = client.put(members, headers=csrf, json={"members": []})
        assert emptied.json()["changed"] == {"added": [], "removed": ["li", "wang"]}
        assert client.put("/api/admin/groups/999999/members", headers=csrf, json={"members": []}).status_code == 404
    assert _groups(web) == {"CT组": ("county", [])}
    records = audited(web, "reading_group.changed")
    assert [(r["username"], r["detail"]["members"]) for r in records] == [
        ("admin", ["wang"]),
        ("admin", ["li", "wang"]),
        ("admin", []),
    ]
    assert [r["detail"].get("added") for r in records] == [None, ["li"], []]


def test_an_admin_renames_a_group_and_changes_its_members_in_one_change_its_rule_following(web: Web) -> None:
    with transaction(web.world.services.sessions) as session:
        group_id = add_group(session, consortium="Dongtai", name="CT组", tier="county", members=["wang"]).id
        add_group(session, consortium="Dongtai", name="MR组", tier="county", members=[])
    client, csrf = admin_client(web)
    with closing(client):
        rule = {"name": "CT to the group", "modality": "CT", "to_tier": "county", "to_group": "CT组"}
        assert client.post("/api/admin/rules", headers=csrf, json=rule).status_code == 201
        path = f"/api/admin/groups/{group_id}"
        renamed = client.put(path, headers=csrf, json={"name": " 县级CT组 ", "members": ["wang", "li"]})
        assert renamed.status_code == 200, renamed.text
        body = renamed.json()
        assert (body["name"], body["members"], body["rules"]) == ("县级CT组", ["li", "wang"], ["CT to the group"])
        assert (body["renamed_from"], body["changed"]) == ("CT组", {"added": ["li"], "removed": []})
        [listed] = [r for r in client.get("/api/admin/rules").json() if r["name"] == "CT to the group"]
        assert (listed["to_group"], listed["to_group_id"]) == ("县级CT组", group_id)  # the rule follows the group
        same = client.put(path, headers=csrf, json={"name": "县级CT组", "members": ["li", "wang"]})
        assert same.json()["renamed_from"] is None and same.json()["changed"] == {}
        # Both or neither: a taken name leaves the members as they were, and a bad member the name.
        assert_refused(web, client, csrf, [
            ("PUT", path, {"name": "MR组", "members": ["wang"]}, "group_exists", "name"),
            ("PUT", path, {"name": " ", "members": ["wang"]}, "group_name_invalid", "name"),
            ("PUT", path, {"name": "改名", "members": ["chen"]}, "group_member_tier", "members"),
        ])  # fmt: skip
        nowhere = client.put("/api/admin/groups/999999", headers=csrf, json={"name": "x", "members": []})
        assert nowhere.status_code == 404
    assert _groups(web) == {"县级CT组": ("county", ["li", "wang"]), "MR组": ("county", [])}
    records = audited(web, "reading_group.changed")
    renames = [r["detail"] for r in records if r["detail"].get("renamed_from")]
    assert [(d["renamed_from"], d["name"]) for d in renames] == [("CT组", "县级CT组")]


def test_bad_group_inputs_are_refused_with_their_code_and_field_and_nothing_is_written(web: Web) -> None:
    with transaction(web.world.services.sessions) as session:
        group_id = add_group(session, consortium="Dongtai", name="CT组", tier="county", members=["wang"]).id
    _rugao(web)
    client, csrf = admin_client(web)
    members = f"/api/admin/groups/{group_id}/members"
    county = {"tier": "county"}
    with closing(client):
        assert_refused(web, client, csrf, [
            ("POST", "/api/admin/groups", county | {"name": " "}, "group_name_invalid", "name"),
            ("POST", "/api/admin/groups", county | {"name": "长" * 101}, "group_name_invalid", "name"),
            ("POST", "/api/admin/groups", {"name": "乡镇组", "tier": "township"}, "reading_tier_invalid", "tier"),
            ("POST", "/api/admin/groups", county | {"name": "CT组"}, "group_exists", "name"),
            ("POST", "/api/admin/groups", county | {"name": "新组", "members": ["nobody"]}, "group_member_unknown",
             "members"),
            ("POST", "/api/admin/groups", county | {"name": "新组", "members": ["admin"]}, "group_member_unknown",
             "members"),  # not a reader
            ("POST", "/api/admin/groups", county | {"name": "新组", "members": ["rugao-dr"]},
             "group_member_unknown", "members"),  # another consortium's reader
            ("POST", "/api/admin/groups", county | {"name": "新组", "members": ["li", "chen"]}, "group_member_tier",
             "members"),  # chen reads at the provincial tier
            ("POST", "/api/admin/groups", county | {"name": "新组", "consortium": "Rugao"}, None, None),
            ("PUT", members, {"members": ["li", "chen"]}, "group_member_tier", "members"),
            ("PUT", members, {"members": ["rugao-dr"]}, "group_member_unknown", "members"),
            ("POST", "/api/admin/rules", {"name": "x", "modality": "CT", "to_group": "无此组"}, "group_unknown",
             "to_group"),
            ("POST", "/api/admin/rules", {"name": "x", "modality": "CT", "to_tier": "provincial", "to_group": "CT组"},
             "rule_group_tier", "to_group"),
        ])  # fmt: skip
        typed = client.put(members, headers=csrf, json={"members": "li"})
        assert typed.status_code == 422 and typed.json()["detail"][0]["loc"][-1] == "members"
    with transaction(web.world.services.sessions, read_only=True) as session:
        assert sorted(session.scalars(select(ReadingGroup.name))) == ["CT组", "CT组"]  # Dongtai's and Rugao's
        assert member_names(session, group_id) == ["wang"]
        assert session.scalar(select(func.count()).select_from(RoutingRule)) == 0


def test_an_admin_neither_sees_nor_touches_another_consortiums_groups(web: Web) -> None:
    rugao_group = _rugao(web)
    client, csrf = admin_client(web)
    with closing(client):
        assert client.get("/api/admin/groups").json() == []
        members = f"/api/admin/groups/{rugao_group}/members"
        assert client.put(members, headers=csrf, json={"members": []}).status_code == 404
        renamed = client.put(f"/api/admin/groups/{rugao_group}", headers=csrf, json={"name": "Mine", "members": []})
        assert renamed.status_code == 404
        other = {"consortium": "Rugao", "name": "Mine", "tier": "county"}
        assert client.post("/api/admin/groups", headers=csrf, json=other).status_code == 403
        # Its name is free in his own consortium: a rule of his names his group, never Rugao's.
        rule = {"name": "x", "modality": "CT", "to_group": "CT组"}
        assert client.post("/api/admin/rules", headers=csrf, json=rule).json()["code"] == "group_unknown"
        mine = client.post("/api/admin/groups", headers=csrf, json={"name": "CT组", "tier": "county"})
        assert mine.status_code == 201 and mine.json()["id"] != rugao_group
        assert [g["consortium"] for g in client.get("/api/admin/groups").json()] == ["Dongtai"]
    with transaction(web.world.services.sessions, read_only=True) as session:
        assert member_names(session, rugao_group) == ["rugao-dr"]
        assert session.get_one(ReadingGroup, rugao_group).name == "CT组"


def test_other_roles_and_a_missing_csrf_token_are_refused(web: Web) -> None:
    with transaction(web.world.services.sessions) as session:
        group_id = add_group(session, consortium="Dongtai", name="CT组", tier="county", members=["wang"]).id
    members = f"/api/admin/groups/{group_id}/members"
    body = {"name": "spies", "tier": "county", "members": ["li"]}
    before = changes(web)
    for login in ("li", "fudong-tech", "qa-officer"):
        client, csrf = web.log_in(login)
        with closing(client):
            headers = {"X-CSRF-Token": csrf}
            assert client.get("/api/admin/groups").status_code == 403
            assert client.post("/api/admin/groups", headers=headers, json=body).status_code == 403
            assert client.put(members, headers=headers, json={"members": ["li"]}).status_code == 403
    client, _ = web.log_in("admin")
    with closing(client):
        for answer in (
            client.post("/api/admin/groups", json=body),
            client.put(members, json={"members": ["li"]}),
        ):
            assert answer.status_code == 403 and "X-CSRF-Token" in answer.json()["detail"]
    assert _groups(web) == {"CT组": ("county", ["wang"])}
    assert changes(web) == before
