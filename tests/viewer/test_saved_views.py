"""A reader's named worklist views over HTTP: saved in the index under his user (so another
workstation's session sees them), replaced by name, deleted; another reader never sees or
deletes them; bad filters and names are refused with a code the page translates."""

from __future__ import annotations

from contextlib import closing

import httpx
from sqlalchemy import func, select

from pacs.identity.passwords import set_password
from pacs.identity.users import find_user
from pacs.index.db import transaction
from reading.models import SavedView
from reading.worklist.saved_views import MAX_VIEWS
from tests.viewer.conftest import Web

STAT_CT = {"state": "", "priority": "stat", "modality": "CT", "site": "", "mine": False}
MINE = {"state": "claimed", "priority": "", "modality": "", "site": "1", "mine": True}


def _reader(web: Web, login: str) -> tuple[httpx.Client, dict[str, str]]:
    client, csrf = web.log_in(login)
    return client, {"X-CSRF-Token": csrf}


def _count(web: Web) -> int:
    with transaction(web.world.services.sessions, read_only=True) as session:
        return int(session.scalar(select(func.count()).select_from(SavedView)) or 0)


def test_a_reader_saves_picks_replaces_and_deletes_his_views_on_any_workstation(web: Web) -> None:
    office, csrf = _reader(web, "li")
    with closing(office):
        first = office.post("/api/worklist/views", headers=csrf, json={"name": "急诊 CT", "filters": STAT_CT})
        assert first.status_code == 201, first.text
        assert (first.json()["name"], first.json()["filters"]) == ("急诊 CT", STAT_CT)
        second = office.post("/api/worklist/views", headers=csrf, json={"name": "  Mine  ", "filters": MINE})
        assert second.status_code == 201 and second.json()["name"] == "Mine"

        # Another workstation: a new session of the same reader sees the same views.
        ward, _ = _reader(web, "li")
        with closing(ward):
            listed = ward.get("/api/worklist/views").json()
        assert [(v["name"], v["filters"]) for v in listed] == [("Mine", MINE), ("急诊 CT", STAT_CT)]

        replaced = office.post(
            "/api/worklist/views", headers=csrf, json={"name": "急诊 CT", "filters": {**STAT_CT, "modality": "DX"}}
        )
        assert replaced.status_code == 200 and replaced.json()["id"] == first.json()["id"]
        assert replaced.json()["filters"]["modality"] == "DX"

        assert office.delete(f"/api/worklist/views/{second.json()['id']}", headers=csrf).status_code == 204
        assert [v["name"] for v in office.get("/api/worklist/views").json()] == ["急诊 CT"]
        assert office.delete(f"/api/worklist/views/{second.json()['id']}", headers=csrf).status_code == 404


def test_one_reader_never_sees_or_deletes_anothers_views(web: Web) -> None:
    with transaction(web.world.services.sessions) as session:
        set_password(session, find_user(session, "wang"), "reads-chest-CT-27")
    li, li_csrf = _reader(web, "li")
    with closing(li), web.browser() as wang:
        mine = li.post("/api/worklist/views", headers=li_csrf, json={"name": "急诊 CT", "filters": STAT_CT}).json()
        logged = wang.post("/api/session", json={"login": "wang", "password": "reads-chest-CT-27"})
        wang_csrf = {"X-CSRF-Token": logged.json()["csrf_token"]}
        assert wang.get("/api/worklist/views").json() == []
        assert wang.delete(f"/api/worklist/views/{mine['id']}", headers=wang_csrf).status_code == 404
        # The same name is his own view, not li's replaced.
        own = wang.post("/api/worklist/views", headers=wang_csrf, json={"name": "急诊 CT", "filters": MINE})
        assert own.status_code == 201 and own.json()["id"] != mine["id"]
        assert [v["filters"] for v in li.get("/api/worklist/views").json()] == [STAT_CT]
        assert [v["filters"] for v in wang.get("/api/worklist/views").json()] == [MINE]


def test_bad_filters_and_names_are_refused_and_nothing_is_saved(web: Web) -> None:
    client, csrf = _reader(web, "li")
    with closing(client):
        for body, field in [
            ({"name": "x", "filters": {**STAT_CT, "state": "deleted"}}, "state"),
            ({"name": "x", "filters": {**STAT_CT, "priority": "whenever"}}, "priority"),
            ({"name": "x", "filters": {**STAT_CT, "site": "1 OR 1=1"}}, "site"),
            ({"name": "x", "filters": {**STAT_CT, "patient": "王*"}}, "patient"),
            ({"name": "", "filters": STAT_CT}, "name"),
            ({"name": "x" * 61, "filters": STAT_CT}, "name"),
        ]:
            answer = client.post("/api/worklist/views", headers=csrf, json=body)
            assert answer.status_code == 422, (body, answer.text)
            assert field in answer.json()["detail"][0]["loc"], (body, answer.json())
        blank = client.post("/api/worklist/views", headers=csrf, json={"name": "   ", "filters": STAT_CT})
        assert blank.status_code == 422
        assert (blank.json()["code"], blank.json()["field"], blank.json()["params"]) == (
            "view_name_invalid",
            "name",
            {"n": 60},
        )
        assert _count(web) == 0
        for n in range(MAX_VIEWS):
            assert client.post(
                "/api/worklist/views", headers=csrf, json={"name": f"v{n}", "filters": STAT_CT}
            ).is_success
        one_more = client.post("/api/worklist/views", headers=csrf, json={"name": "one more", "filters": STAT_CT})
        assert one_more.status_code == 422 and one_more.json()["code"] == "views_too_many"
        assert client.post("/api/worklist/views", headers=csrf, json={"name": "v0", "filters": MINE}).status_code == 200
        assert client.post("/api/worklist/views", json={"name": "no csrf", "filters": STAT_CT}).status_code == 403
    assert _count(web) == MAX_VIEWS


def test_views_are_a_readers_only(web: Web) -> None:
    for login in ("fudong-tech", "qa-officer", "admin"):
        client, csrf = _reader(web, login)
        with closing(client):
            assert client.get("/api/worklist/views").status_code == 403
            posted = client.post("/api/worklist/views", headers=csrf, json={"name": "x", "filters": STAT_CT})
            assert posted.status_code == 403
    with web.browser() as anonymous:
        assert anonymous.get("/api/worklist/views").status_code == 401
    assert _count(web) == 0
