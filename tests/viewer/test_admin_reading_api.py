"""The administration routes of reading and of API tokens, over HTTP with a browser's cookie and
CSRF token: reader profiles (add, change), rosters, routing rules (add, disable), the SLA table,
and service accounts' tokens (create — shown once —, list without the token, revoke). Each change
is an administrative audit record naming the admin; each bad input a 422 naming the catalogue's
code and the field, with nothing written; other roles are refused."""

from __future__ import annotations

from contextlib import closing

import httpx
from sqlalchemy import func, select

from pacs.identity.sites import add_site
from pacs.identity.users import add_user, create_token
from pacs.index.db import transaction
from pacs.index.models import ApiToken, User
from reading.models import Reader, RoutingRule, SlaRule
from tests.viewer.admin_calls import admin_client, assert_refused, audited
from tests.viewer.conftest import Web


def test_an_admin_makes_a_user_a_reader_sets_his_roster_and_changes_his_profile(web: Web) -> None:
    client, csrf = admin_client(web)
    with closing(client):
        person = {"username": "sun", "role": "reader", "password": "reads-for-Dongtai-4"}
        assert client.post("/api/admin/users", headers=csrf, json=person).status_code == 201
        added = client.post(
            "/api/admin/readers", headers=csrf, json={"username": "sun", "tier": "county", "modalities": ["ct", "DX"]}
        )
        assert added.status_code == 201, added.text
        roster = client.put("/api/admin/readers/sun/roster", headers=csrf, json={"windows": ["daily 00:00-23:59", " "]})
        assert roster.status_code == 200 and roster.json()["windows"] == ["daily 00:00-23:59"]
        [sun] = [r for r in client.get("/api/admin/readers").json() if r["username"] == "sun"]
        assert (sun["tier"], sun["modalities"], sun["roster"], sun["active"]) == (
            "county",
            ["CT", "DX"],
            ["daily 00:00-23:59"],
            True,
        )

        # He reads now: his worklist answers (the profile is what it needs).
        with web.browser() as sun_browser:
            logged = sun_browser.post("/api/session", json={"login": "sun", "password": "reads-for-Dongtai-4"})
            assert logged.status_code == 200
            assert sun_browser.get("/api/worklist").status_code == 200

        changed = client.put(
            "/api/admin/readers/sun",
            headers=csrf,
            json={"tier": "provincial", "modalities": ["CT"], "body_parts": ["head"], "active": True},
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["changed"] == {
            "tier": ["county", "provincial"],
            "modalities": [["CT", "DX"], ["CT"]],
            "body_parts": [[], ["HEAD"]],
        }
        off = client.put(
            "/api/admin/readers/sun", headers=csrf, json={"tier": "provincial", "modalities": ["CT"], "active": False}
        )
        assert off.json()["changed"] == {"body_parts": [["HEAD"], []], "active": [True, False]}
    with transaction(web.world.services.sessions, read_only=True) as session:
        row = session.scalar(select(Reader).join(User, User.id == Reader.user_id).where(User.username == "sun"))
        assert row is not None and (row.tier, row.modalities, row.active) == ("provincial", ["CT"], False)
    assert [r["username"] for r in audited(web, "reader.added") if r["detail"].get("user") == "sun"] == ["admin"]
    assert [r["detail"]["windows"] for r in audited(web, "roster.changed") if r["username"] == "admin"] == [
        ["daily 00:00-23:59"]
    ]
    changes = [r["detail"]["changed"] for r in audited(web, "reader.changed")]
    assert [set(c) for c in changes] == [{"tier", "modalities", "body_parts"}, {"body_parts", "active"}]


def test_an_admin_adds_a_routing_rule_disables_it_and_sets_an_sla(web: Web) -> None:
    client, csrf = admin_client(web)
    with closing(client):
        added = client.post(
            "/api/admin/rules",
            headers=csrf,
            json={"name": "Township CT heads to the province", "site_tier": "township", "body_part": "head",
                  "modality": "ct", "to_tier": "provincial", "position": 10},
        )  # fmt: skip
        assert added.status_code == 201, added.text
        rule = added.json()
        assert (rule["modality"], rule["body_part"], rule["to_tier"], rule["active"]) == (
            "CT",
            "HEAD",
            "provincial",
            True,
        )
        assert [r["name"] for r in client.get("/api/admin/rules").json()] == ["Township CT heads to the province"]
        off = client.put(f"/api/admin/rules/{rule['id']}/active", headers=csrf, json={"active": False})
        assert off.status_code == 200 and off.json()["active"] is False
        assert client.put("/api/admin/rules/999999/active", headers=csrf, json={"active": False}).status_code == 404

        sla = client.put("/api/admin/sla", headers=csrf, json={"priority": "urgent", "minutes": 45})
        assert sla.status_code == 200 and sla.json() == {"priority": "urgent", "modality": None, "minutes": 45}
        xray = client.put("/api/admin/sla", headers=csrf, json={"priority": "routine", "modality": "dx", "minutes": 90})
        assert xray.json() == {"priority": "routine", "modality": "DX", "minutes": 90}
        # What applies: the built-in defaults where the consortium set nothing, its own entries else.
        listed = [
            (s["priority"], s["modality"], s["minutes"], s["source"], s["default_minutes"], s["consortium"])
            for s in client.get("/api/admin/sla").json()
        ]
        assert listed == [
            ("stat", None, 30, "default", 30, "Dongtai"),
            ("urgent", None, 45, "consortium", 60, "Dongtai"),
            ("routine", None, 1440, "default", 1440, "Dongtai"),
            ("routine", "DX", 90, "consortium", 1440, "Dongtai"),
        ]
    with transaction(web.world.services.sessions, read_only=True) as session:
        assert session.scalar(select(RoutingRule.active)) is False
    assert [r["detail"]["active"] for r in audited(web, "routing_rule.changed")] == [False]
    assert [r["username"] for r in audited(web, "routing_rule.added")] == ["admin"]
    assert [r["detail"]["minutes"] for r in audited(web, "sla.changed")] == [45, 90]


def test_an_admin_creates_a_service_token_that_works_until_he_revokes_it(web: Web) -> None:
    study_uid = web.world.ready_study()
    client, csrf = admin_client(web)
    with closing(client):
        created = client.post(
            "/api/admin/tokens",
            headers=csrf,
            json={"account": "fudong-ris", "site_id": web.world.township_id, "name": "RIS at Fudong", "days": 30},
        )
        assert created.status_code == 201, created.text
        answer = created.json()
        token = answer["token"]
        assert token.startswith("yy_") and answer["prefix"] == token[:10] and answer["state"] == "active"
        listed = client.get("/api/admin/tokens").json()
        assert [(k["account"], k["name"], k["state"]) for k in listed] == [("fudong-ris", "RIS at Fudong", "active")]
        assert all("token" not in k and token not in str(k) for k in listed)  # listed: never the token

        bearer = {"Authorization": f"Bearer {token}"}
        studies = httpx.get(f"{web.url}/dicomweb/studies", headers=bearer)
        assert studies.status_code == 200, studies.text
        assert study_uid in studies.text  # the service account sees its site's studies

        # A second token for the same (now existing) account, then the first is revoked.
        again = client.post("/api/admin/tokens", headers=csrf, json={"account": "fudong-ris"})
        assert again.status_code == 201 and again.json()["token"] != token
        revoked = client.delete(f"/api/admin/tokens/{answer['id']}", headers=csrf)
        assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
        assert httpx.get(f"{web.url}/dicomweb/studies", headers=bearer).status_code == 401
        second = {"Authorization": f"Bearer {again.json()['token']}"}
        assert httpx.get(f"{web.url}/dicomweb/studies", headers=second).status_code == 200
        assert client.delete(f"/api/admin/tokens/{answer['id']}", headers=csrf).status_code == 200  # harmless
        assert client.delete("/api/admin/tokens/999999", headers=csrf).status_code == 404
    with transaction(web.world.services.sessions, read_only=True) as session:
        account = session.scalar(select(User).where(User.username == "fudong-ris"))
        assert account is not None and account.is_service and account.site_id == web.world.township_id
        assert account.password_hash is None
    assert [r["username"] for r in audited(web, "token.created")] == ["admin", "admin"]
    assert [r["detail"]["token_id"] for r in audited(web, "token.revoked")] == [answer["id"]]
    assert all(token not in str(r["detail"]) for r in audited(web, "token.created"))


def test_bad_inputs_are_refused_with_their_code_and_field_and_nothing_is_written(web: Web) -> None:
    with transaction(web.world.services.sessions) as session:
        add_user(session, username="sun", role="reader", consortium="Dongtai")
        add_user(session, username="pacs-gw", role="site", site="Fudong", is_service=True)
    client, csrf = admin_client(web)
    township = web.world.township_id
    with closing(client):
        assert_refused(web, client, csrf, [
            ("POST", "/api/admin/readers", {"username": "sun", "tier": "township", "modalities": ["CT"]},
             "reading_tier_invalid", "tier"),
            ("POST", "/api/admin/readers", {"username": "sun", "tier": "county", "modalities": ["CT", "XR"]},
             "modalities_invalid", "modalities"),
            ("POST", "/api/admin/readers", {"username": "sun", "tier": "county", "modalities": []},
             "modalities_invalid", "modalities"),
            ("POST", "/api/admin/readers", {"username": "li", "tier": "county", "modalities": ["CT"]},
             "reader_exists", "username"),
            ("POST", "/api/admin/readers", {"username": "fudong-tech", "tier": "county", "modalities": ["CT"]},
             "user_not_reader", "username"),
            ("POST", "/api/admin/readers", {"username": "sun", "tier": "county", "modalities": ["CT"],
                                            "roster": ["mon 8-17"]}, "roster_window_invalid", "windows"),
            ("PUT", "/api/admin/readers/li", {"tier": "county", "modalities": ["PET"]}, "modalities_invalid",
             "modalities"),
            ("PUT", "/api/admin/readers/li/roster", {"windows": ["someday 08:00-17:00"]}, "roster_window_invalid",
             "windows"),
            ("PUT", "/api/admin/readers/li/roster", {"windows": ["mon 08:00-25:00"]}, "roster_window_invalid",
             "windows"),
            ("PUT", "/api/admin/readers/li/roster", {"windows": ["mon 08:00-08:00"]}, "roster_window_invalid",
             "windows"),
            ("POST", "/api/admin/rules", {"name": "nothing", "to_tier": "provincial"}, "rule_match_needed", None),
            ("POST", "/api/admin/rules", {"name": "idle", "modality": "CT"}, "rule_action_needed", None),
            ("POST", "/api/admin/rules", {"name": "x", "modality": "CAT", "to_tier": "county"}, "modality_invalid",
             "modality"),
            ("POST", "/api/admin/rules", {"name": "x", "site_tier": "city", "to_tier": "county"}, "tier_invalid",
             "site_tier"),
            ("POST", "/api/admin/rules", {"name": "x", "modality": "CT", "to_tier": "national"},
             "reading_tier_invalid", "to_tier"),
            ("POST", "/api/admin/rules", {"name": "x", "modality": "CT", "min_priority": "asap"},
             "priority_invalid", "min_priority"),
            ("POST", "/api/admin/rules", {"name": " ", "modality": "CT", "to_tier": "county"}, "rule_name_invalid",
             "name"),
            ("PUT", "/api/admin/sla", {"priority": "stat", "minutes": 0}, "sla_minutes_invalid", "minutes"),
            ("PUT", "/api/admin/sla", {"priority": "stat", "minutes": 50_000}, "sla_minutes_invalid", "minutes"),
            ("PUT", "/api/admin/sla", {"priority": "soon", "minutes": 30}, "priority_invalid", "priority"),
            ("PUT", "/api/admin/sla", {"priority": "stat", "modality": "XR", "minutes": 30}, "modality_invalid",
             "modality"),
            ("POST", "/api/admin/tokens", {"account": "new-ris"}, "service_site_needed", "site_id"),
            ("POST", "/api/admin/tokens", {"account": "li"}, "token_for_person", "account"),
            ("POST", "/api/admin/tokens", {"account": "pacs-gw", "days": 0}, "token_days_invalid", "days"),
            ("POST", "/api/admin/tokens", {"account": "pacs-gw", "days": 99_999}, "token_days_invalid", "days"),
            ("POST", "/api/admin/tokens", {"account": "new ris", "site_id": township}, "username_invalid", "account"),
        ])  # fmt: skip
        # The schema's refusals name their field in FastAPI's shape.
        typed = client.put("/api/admin/sla", headers=csrf, json={"priority": "stat", "minutes": "soon"})
        assert typed.status_code == 422 and typed.json()["detail"][0]["loc"][-1] == "minutes"
    with transaction(web.world.services.sessions, read_only=True) as session:
        assert session.scalar(select(func.count()).select_from(RoutingRule)) == 0
        assert session.scalar(select(func.count()).select_from(SlaRule)) == 0
        assert session.scalar(select(func.count()).select_from(ApiToken)) == 0
        assert session.scalar(select(User).where(User.username == "new-ris")) is None
        sun = session.scalar(select(User.id).where(User.username == "sun"))
        assert session.scalar(select(Reader).where(Reader.user_id == sun)) is None


def test_an_admin_touches_no_reader_rule_or_token_of_another_consortium(web: Web) -> None:
    with transaction(web.world.services.sessions) as session:
        add_site(session, consortium="Rugao", name="Rugao People's Hospital", tier="county")
        gateway = add_user(session, username="rugao-gw", role="site", site="Rugao People's Hospital", is_service=True)
        row, _ = create_token(session, gateway, name="Rugao gateway")
        rugao_token = row.id
        rule = RoutingRule(consortium_id=gateway.consortium_id, name="Rugao CT", modality="CT", to_tier="county")
        session.add_all([rule, SlaRule(consortium_id=gateway.consortium_id, priority="stat", minutes=10)])
        session.flush()
        rugao_rule = rule.id
    from reading.admin import add_reader

    with transaction(web.world.services.sessions) as session:
        add_reader(session, username="rugao-dr", consortium="Rugao", tier="county", modalities=["CT"])
    client, csrf = admin_client(web)
    with closing(client):
        assert "rugao-dr" not in [r["username"] for r in client.get("/api/admin/readers").json()]
        assert client.get("/api/admin/tokens").json() == []
        assert "Rugao CT" not in [r["name"] for r in client.get("/api/admin/rules").json()]
        profile = {"tier": "provincial", "modalities": ["CT"]}
        assert client.put("/api/admin/readers/rugao-dr", headers=csrf, json=profile).status_code == 404
        roster = {"windows": ["daily 08:00-17:00"]}
        assert client.put("/api/admin/readers/rugao-dr/roster", headers=csrf, json=roster).status_code == 404
        assert (
            client.put(f"/api/admin/rules/{rugao_rule}/active", headers=csrf, json={"active": False}).status_code == 404
        )
        assert client.delete(f"/api/admin/tokens/{rugao_token}", headers=csrf).status_code == 404
        taken = client.post("/api/admin/tokens", headers=csrf, json={"account": "rugao-gw"})
        assert taken.status_code == 422 and (taken.json()["code"], taken.json()["field"]) == ("user_exists", "account")
        other = {"consortium": "Rugao", "priority": "stat", "minutes": 1}
        assert client.put("/api/admin/sla", headers=csrf, json=other).status_code == 403
        sla = client.get("/api/admin/sla").json()  # his own table: Rugao's 10-minute stat is not his
        assert {s["consortium"] for s in sla} == {"Dongtai"} and (sla[0]["minutes"], sla[0]["source"]) == (
            30,
            "default",
        )
    with transaction(web.world.services.sessions, read_only=True) as session:
        assert session.get_one(ApiToken, rugao_token).revoked_at is None
        assert session.get_one(RoutingRule, rugao_rule).active is True
        assert session.scalars(select(SlaRule.minutes)).all() == [10]


def test_other_roles_and_a_missing_csrf_token_are_refused(web: Web) -> None:
    for login in ("li", "fudong-tech", "qa-officer"):
        client, csrf = web.log_in(login)
        with closing(client):
            headers = {"X-CSRF-Token": csrf}
            assert client.get("/api/admin/tokens").status_code == 403
            assert client.get("/api/admin/rules").status_code == 403
            body = {"account": "spy", "site_id": web.world.township_id}
            assert client.post("/api/admin/tokens", headers=headers, json=body).status_code == 403
            profile = {"tier": "provincial", "modalities": ["CT"]}
            assert client.put("/api/admin/readers/li", headers=headers, json=profile).status_code == 403
            assert (
                client.put("/api/admin/sla", headers=headers, json={"priority": "stat", "minutes": 1}).status_code
                == 403
            )
    client, _ = web.log_in("admin")
    with closing(client):
        body = {"account": "fudong-ris", "site_id": web.world.township_id}
        answer = client.post("/api/admin/tokens", json=body)
        assert answer.status_code == 403 and "X-CSRF-Token" in answer.json()["detail"]
    with transaction(web.world.services.sessions, read_only=True) as session:
        assert session.scalar(select(func.count()).select_from(ApiToken)) == 0
