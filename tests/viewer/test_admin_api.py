"""The administration routes the admin page calls, over HTTP with a browser's cookie and CSRF
token: sites (add, edit), their AEs (add, remove), users (add with a first password, reset a
password, deactivate). Each change is an administrative audit record; each bad input is a 422
naming the catalogue's code and the field, and leaves nothing written."""

from __future__ import annotations

import json
import re
from contextlib import closing
from pathlib import Path
from typing import Any

from sqlalchemy import select

from pacs.identity.sites import add_site
from pacs.identity.users import add_user
from pacs.index.db import transaction
from pacs.index.models import Site, SiteAE, User
from tests.viewer.admin_calls import admin_client, assert_refused, audited
from tests.viewer.conftest import PEOPLE, Web

ROOT = Path(__file__).resolve().parents[2]


def _try_login(web: Web, login: str, password: str) -> int:
    with web.browser() as stranger:
        return stranger.post("/api/session", json={"login": login, "password": password}).status_code


def test_an_admin_adds_and_edits_a_site_and_its_aes(web: Web) -> None:
    client, csrf = admin_client(web)
    with closing(client):
        added = client.post(
            "/api/admin/sites",
            headers=csrf,
            json={"consortium": "Dongtai", "name": "Anfeng", "tier": "township", "contact": "0515-1"},
        )
        assert added.status_code == 201, added.text
        site = added.json()
        assert (site["name"], site["consortium"], site["aes"]) == ("Anfeng", "Dongtai", [])

        edited = client.put(
            f"/api/admin/sites/{site['id']}",
            headers=csrf,
            json={
                "name": "Anfeng Health Centre",
                "tier": "township",
                "contact": "0515-2",
                "return_ae_title": "ANFENG_PACS",
                "return_host": "10.3.0.9",
                "return_port": 104,
            },
        )
        assert edited.status_code == 200, edited.text
        assert edited.json()["return_ae_title"] == "ANFENG_PACS" and edited.json()["name"] == "Anfeng Health Centre"

        with_ae = client.post(
            f"/api/admin/sites/{site['id']}/aes",
            headers=csrf,
            json={"ae_title": "ANFENG_CT", "allowed_address": "10.3.0.0/24", "assumed_charset": "GB18030"},
        )
        assert with_ae.status_code == 201, with_ae.text
        [ae] = with_ae.json()["aes"]
        assert (ae["ae_title"], ae["allowed_address"], ae["assumed_charset"]) == ("ANFENG_CT", "10.3.0.0/24", "GB18030")
        listed = {s["name"]: s for s in client.get("/api/admin/sites").json()}
        assert listed["Anfeng Health Centre"]["aes"][0]["id"] == ae["id"]

        removed = client.delete(f"/api/admin/sites/{site['id']}/aes/{ae['id']}", headers=csrf)
        assert removed.status_code == 200 and removed.json()["aes"] == []
        assert client.delete(f"/api/admin/sites/{site['id']}/aes/{ae['id']}", headers=csrf).status_code == 404

    # Each change is an administrative audit record naming the admin, written with the change.
    updated = audited(web, "site.updated")
    assert [(r["username"], r["role"], r["site_id"]) for r in updated] == [("admin", "admin", site["id"])]
    assert updated[0]["detail"]["changed"]["return_ae_title"] == [None, "ANFENG_PACS"]
    assert [r["username"] for r in audited(web, "site.created") if r["site_id"] == site["id"]] == ["admin"]
    assert [r["detail"]["ae_title"] for r in audited(web, "site.ae_removed")] == ["ANFENG_CT"]


def _method(path: str) -> str:
    return "PUT" if path.startswith("/api/admin/users/") else "POST"


def test_a_bad_input_is_refused_with_its_code_and_field_and_nothing_is_written(web: Web) -> None:
    client, csrf = admin_client(web)
    township = web.world.township_id
    cases: list[tuple[str, dict[str, Any], str | None, str | None]] = [
        (
            f"/api/admin/sites/{township}/aes",
            {"ae_title": "FUDONG\\CT", "allowed_address": "10.2.0.1"},
            "ae_title_invalid",
            "ae_title",
        ),
        (
            f"/api/admin/sites/{township}/aes",
            {"ae_title": "THIS_TITLE_IS_TOO_LONG", "allowed_address": "10.2.0.1"},
            "ae_title_invalid",
            "ae_title",
        ),
        (
            f"/api/admin/sites/{township}/aes",
            {"ae_title": "FUDONG_DR", "allowed_address": "10.2.0.300"},
            "address_invalid",
            "allowed_address",
        ),
        (
            f"/api/admin/sites/{township}/aes",
            {"ae_title": "FUDONG_DR", "allowed_address": "10.2.0.3", "assumed_charset": "Big5"},
            "charset_invalid",
            "assumed_charset",
        ),
        (
            "/api/admin/sites",
            {"consortium": "Dongtai", "name": "Fudong", "tier": "township"},
            "site_exists",
            "name",
        ),
        ("/api/admin/sites", {"consortium": "Dongtai", "name": "Xinjie", "tier": "hamlet"}, "tier_invalid", "tier"),
        (
            "/api/admin/sites",
            {"consortium": "Dongtai", "name": "Xinjie", "tier": "village", "return_port": 70000},
            "port_invalid",
            "return_port",
        ),
        ("/api/admin/sites", {"consortium": "Rugao", "name": "Xinjie", "tier": "village"}, None, None),
        ("/api/admin/users", {"username": "zhou", "role": "qa", "password": "short"}, "password_short", "password"),
        (
            "/api/admin/users",
            {"username": "li", "role": "reader", "password": "long-enough-pass"},
            "user_exists",
            "username",
        ),
        (
            "/api/admin/users",
            {"username": "zhou", "role": "site", "password": "long-enough-pass"},
            "site_needed",
            "site_id",
        ),
        (
            "/api/admin/users",
            {"username": "zhou", "role": "wizard", "password": "long-enough-pass"},
            "role_invalid",
            "role",
        ),
        (
            "/api/admin/users",
            {"username": "zhou", "role": "qa", "consortium": "Rugao", "password": "long-enough-pass"},
            "consortium_not_yours",
            "consortium",
        ),
        (
            "/api/admin/users/fudong-tech/password",
            {"password": "my-fudong-tech-2026"},
            "password_has_login",
            "password",
        ),
        ("/api/admin/users/admin/active", {"active": False}, "deactivate_self", None),
    ]
    with closing(client):
        # Another consortium than the admin's (code None): refused by scope.
        assert_refused(
            web, client, csrf, [(_method(path), path, body, code, field) for path, body, code, field in cases]
        )
        # A request the schema refuses (no name) names its field too, in FastAPI's shape.
        missing = client.post("/api/admin/sites", headers=csrf, json={"consortium": "Dongtai", "tier": "village"})
        assert missing.status_code == 422 and missing.json()["detail"][0]["loc"][-1] == "name"
    with transaction(web.world.services.sessions, read_only=True) as session:
        assert session.scalar(select(User).where(User.username == "zhou")) is None  # weak password: no user
        assert session.scalars(select(SiteAE.ae_title)).all() == []
        assert session.scalar(select(Site).where(Site.name == "Xinjie")) is None


def test_an_admin_adds_a_user_who_logs_in_then_resets_and_deactivates_him(web: Web) -> None:
    client, csrf = admin_client(web)
    with closing(client):
        added = client.post(
            "/api/admin/users",
            headers=csrf,
            json={
                "username": "fudong-dr",
                "role": "site",
                "display_name": "放射科 张",
                "site_id": web.world.township_id,
                "password": "first-Pass-2026",
            },
        )
        assert added.status_code == 201, added.text
        assert added.json() | {"id": 0} == {
            "id": 0,
            "username": "fudong-dr",
            "display_name": "放射科 张",
            "role": "site",
            "site": "Fudong",
            "consortium": "Dongtai",
            "service": False,
            "has_password": True,
            "active": True,
        }
        assert "fudong-dr" in [u["username"] for u in client.get("/api/admin/users").json()]

        newcomer = web.browser()
        logged = newcomer.post("/api/session", json={"login": "fudong-dr", "password": "first-Pass-2026"})
        assert logged.status_code == 200 and logged.json()["user"]["site"] == "Fudong"
        assert newcomer.get("/api/site/studies").status_code == 200

        reset = client.put("/api/admin/users/fudong-dr/password", headers=csrf, json={"password": "second-Pass-2026"})
        assert reset.status_code == 200 and reset.json()["sessions_ended"] == 1
        assert newcomer.get("/api/site/studies").status_code == 401  # his session ended with the reset
        assert _try_login(web, "fudong-dr", "first-Pass-2026") == 401
        again = newcomer.post("/api/session", json={"login": "fudong-dr", "password": "second-Pass-2026"})
        assert again.status_code == 200

        off = client.put("/api/admin/users/fudong-dr/active", headers=csrf, json={"active": False})
        assert off.status_code == 200 and off.json()["active"] is False
        assert newcomer.get("/api/site/studies").status_code == 401
        assert _try_login(web, "fudong-dr", "second-Pass-2026") == 401
        on = client.put("/api/admin/users/fudong-dr/active", headers=csrf, json={"active": True})
        assert on.status_code == 200 and on.json()["active"] is True
        newcomer.close()
    actions = [r["detail"].get("user") for r in audited(web, "user.deactivated")]
    assert actions == ["fudong-dr"]
    assert {r["username"] for r in audited(web, "user.password_set") if r["detail"]["user"] == "fudong-dr"} == {"admin"}


def test_an_admin_touches_nothing_of_another_consortium(web: Web) -> None:
    with transaction(web.world.services.sessions) as session:
        rugao = add_site(session, consortium="Rugao", name="Rugao People's Hospital", tier="county")
        add_user(session, username="rugao-tech", role="site", site="Rugao People's Hospital")
        rugao_id = rugao.id
    client, csrf = admin_client(web)
    with closing(client):
        assert "Rugao People's Hospital" not in [s["name"] for s in client.get("/api/admin/sites").json()]
        assert "rugao-tech" not in [u["username"] for u in client.get("/api/admin/users").json()]
        body = {"name": "Mine now", "tier": "county"}
        assert client.put(f"/api/admin/sites/{rugao_id}", headers=csrf, json=body).status_code == 404
        ae = {"ae_title": "RUGAO_CT", "allowed_address": "10.9.0.1"}
        assert client.post(f"/api/admin/sites/{rugao_id}/aes", headers=csrf, json=ae).status_code == 404
        assert client.put("/api/admin/users/rugao-tech/active", headers=csrf, json={"active": False}).status_code == 404
        password = {"password": "taken-over-2026"}
        assert client.put("/api/admin/users/rugao-tech/password", headers=csrf, json=password).status_code == 404
        site_user = {"username": "spy", "role": "site", "site_id": rugao_id, "password": "long-enough-pass"}
        refused = client.post("/api/admin/users", headers=csrf, json=site_user)
        assert refused.status_code == 422 and refused.json()["code"] == "site_needed"
    with transaction(web.world.services.sessions, read_only=True) as session:
        assert session.get_one(Site, rugao_id).name == "Rugao People's Hospital"
        assert session.scalar(select(User.active).where(User.username == "rugao-tech")) is True


def test_a_change_without_the_csrf_token_is_refused(web: Web) -> None:
    client, _ = admin_client(web)
    with closing(client):
        answer = client.put("/api/admin/users/li/active", json={"active": False})
    assert answer.status_code == 403 and "X-CSRF-Token" in answer.json()["detail"]
    with transaction(web.world.services.sessions, read_only=True) as session:
        assert session.scalar(select(User.active).where(User.username == "li")) is True
    assert _try_login(web, "li", PEOPLE["li"][0]) == 200


def test_every_refusal_code_the_server_sends_is_in_both_catalogues() -> None:
    catalogues = ROOT / "viewer" / "web" / "src" / "i18n"
    zh = json.loads((catalogues / "zh-CN.json").read_text(encoding="utf-8"))
    en = json.loads((catalogues / "en.json").read_text(encoding="utf-8"))
    codes = {"invalid", "field_invalid"}  # IdentityError's default; api.ts's for a schema refusal
    for folder in ("pacs", "reading"):
        for source in (ROOT / folder).rglob("*.py"):
            codes |= set(re.findall(r"\bcode=\"([a-z_]+)\"", source.read_text(encoding="utf-8")))
    assert len(codes) > 20, "no code=… found: the pattern is out of date"
    assert sorted(f"error.{c}" for c in codes if f"error.{c}" not in zh or f"error.{c}" not in en) == []
