"""Issue F in a real Chromium: a county reader who reads for one township opens its task and sees,
beside the study, the patient's prior from the county hospital (another Patient ID, the same ID
card) and a probable one from another township; he opens the county's prior, which the server
grants him for this task, and it shows its pixels in the 1×2 prior viewport, scrolled with the
current study. On the probable prior he says "the same person", then (as if a colleague thought
otherwise) "not the same person" with a reason: the list shows who confirmed it, then drops it.
The page's picture is docs/screenshots/reading-prior.png ($YUNYING_SCREENSHOTS)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pacs.identity.passwords import set_password
from pacs.identity.sites import add_site
from pacs.identity.users import add_user, create_token, find_user
from pacs.index.db import transaction
from pacs.index.types import utcnow
from pacs.readiness import mark_ready_for_reading
from pacs.stability import mark_stable_studies
from reading.admin import add_reader, set_roster
from reading.worklist.sweeper import route_pending
from tests.reading.priors import patient, stow, stow_body
from tests.reading.world import ALWAYS
from tests.viewer.chromium import chromium, log_in, open_page  # noqa: F401
from tests.viewer.conftest import Web

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SUN_PASSWORD = "reads-for-Fudong-3"


@pytest.fixture
def world_backend() -> str:
    return "sqlite-folder"  # the page, not the index, is under test here (both in tests/reading/test_priors.py)


def _consortium(web: Web, data: Path) -> dict[str, str]:
    world = web.world
    tokens = {}
    with transaction(world.services.sessions) as session:
        add_site(session, consortium="Dongtai", name="Anfeng", tier="township")
        add_reader(
            session, username="sun", consortium="Dongtai", tier="county", modalities=["CT"], reads_for_sites=["Fudong"]
        )
        set_roster(session, "sun", ALWAYS)
        set_password(session, find_user(session, "sun"), SUN_PASSWORD)
        for login, site in (("fd-ris", "Fudong"), ("dt-ris", "Dongtai County Hospital"), ("af-ris", "Anfeng")):
            tokens[login] = create_token(
                session, add_user(session, username=login, role="site", site=site, is_service=True)
            )[1]
    studies = {}
    for seed, (label, user, who, date, site) in enumerate(
        [
            ("current", "fd-ris", patient("FD0071"), "20261123", "Fudong"),
            ("county", "dt-ris", patient("DT-88231"), "20250610", "Dongtai County Hospital"),
            ("probable", "af-ris", patient("AF-1203", name="王 桂英", card=None), "20240301", "Anfeng"),
        ],
        start=500,
    ):
        body = stow_body(data, who, seed=seed, date=date, site=site, slices=6, size=96)
        studies[label] = stow(web.url, tokens[user], body)
    mark_stable_studies(world.services.sessions, timedelta(0))
    with transaction(world.services.sessions) as session:
        assert mark_ready_for_reading(session, studies["current"], reason="test", actor="test")
    route_pending(world.services.sessions, demo=False, now=utcnow())
    return studies


def test_a_reader_opens_a_prior_from_another_site_side_by_side_and_decides_on_a_probable_one_qa_withdraws_it(
    chromium: Any,  # noqa: F811
    start_web: Callable[..., Web],
    tmp_path: Path,
) -> None:
    web = start_web()
    studies = _consortium(web, tmp_path)
    task = web.world.task_of(studies["current"]).id
    errors: list[str] = []
    page = open_page(chromium, web, errors)
    assert page.request.post("/api/session", data={"login": "sun", "password": SUN_PASSWORD}).ok
    csrf = {"X-CSRF-Token": page.request.get("/api/session").json()["csrf_token"]}
    assert page.request.post(f"/api/tasks/{task}/claim", headers=csrf).ok
    page.goto(f"/read/{task}")
    page.wait_for_function("() => window.__yyViewer && window.__yyViewer.firstImageMs !== null", timeout=30_000)

    county = page.locator(f".prior-study[data-study='{studies['county']}']")
    county.wait_for(timeout=15_000)
    assert "Dongtai County Hospital" in county.inner_text() and "身份证号一致" in county.inner_text()
    probable = page.locator(f".prior-study[data-study='{studies['probable']}']")
    assert "Anfeng" in probable.inner_text() and "疑似同一人" in probable.inner_text()
    assert probable.get_attribute("data-basis") == "probable"

    county.click()
    shown = "window.__yyViewer.prior() && window.__yyViewer.prior().viewport.getCurrentImageId()"
    page.wait_for_function(f"() => ({shown} || '').includes('{studies['county']}')", timeout=30_000)
    page.wait_for_timeout(300)
    pixels = np.asarray(Image.open(io.BytesIO(page.locator("#prior-viewport").screenshot())).convert("L"), dtype=float)
    assert pixels.std() > 10, "the prior's viewport is blank"
    label = page.inner_text("#prior-label")
    assert "2025-06-10" in label and "Dongtai County Hospital" in label
    # Scrolled with the current study (synchronised by default).
    page.focus("#viewport")
    page.keyboard.press("End")
    page.wait_for_function("() => window.__yyViewer.prior().position === 1")
    # The server recorded the opening as a break-glass for this task; the reader's sites are unchanged.
    granted = page.request.get(f"/api/tasks/{task}/priors").json()["priors"]
    assert {p["study_uid"]: p["open"] for p in granted} == {studies["county"]: True, studies["probable"]: False}

    # The probable prior carries the two buttons; the ID-card one none.
    item = page.locator(f".prior-item[data-study='{studies['probable']}']")
    assert item.locator(".prior-same").inner_text() == "是同一人"
    assert item.locator(".prior-not-same").inner_text() == "不是同一人"
    assert item.locator(".prior-reject").is_hidden()
    assert page.locator(f".prior-item[data-study='{studies['county']}']").count() == 0
    assert page.locator(".prior-same").count() == 1 and page.locator(".prior-not-same").count() == 1
    shots = Path(os.environ.get("YUNYING_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "reading-prior.png"))

    item.locator(".prior-same").click()
    confirmed = page.locator(f".prior-study[data-study='{studies['probable']}'][data-basis='confirmed']")
    confirmed.wait_for(timeout=15_000)
    assert "已由 sun 确认为同一人" in confirmed.inner_text()
    assert item.locator(".prior-same").count() == 0  # confirmed: only "not the same person" is left
    listed = page.request.get(f"/api/tasks/{task}/priors").json()["priors"]
    assert {p["study_uid"]: (p["basis"], p["decided_by"]) for p in listed}[studies["probable"]] == ("confirmed", "sun")

    item.locator(".prior-not-same").click()
    item.locator(".prior-reason").fill("出生地不同")
    item.locator(".prior-reject-confirm").click()
    item.wait_for(state="detached", timeout=15_000)
    assert "不再列出" in page.inner_text("#reading-status")
    listed = page.request.get(f"/api/tasks/{task}/priors").json()["priors"]
    assert [p["study_uid"] for p in listed] == [studies["county"]]
    assert page.locator(".prior-study").count() == 1

    # The QA officer sees the rejection on the dashboard and withdraws it: probable again.
    qa = open_page(chromium, web, errors)
    log_in(qa, "qa-officer", lands_on="/qa")
    row = qa.locator("#qa-links tr[data-link]")
    row.wait_for(timeout=15_000)
    assert "不是同一人" in row.inner_text() and "出生地不同" in row.inner_text() and "sun" in row.inner_text()
    assert "Anfeng" in row.inner_text() and "Fudong" in row.inner_text()
    row.locator(".link-reason").fill("核实为同一人")
    row.locator(".link-withdraw").click()
    row.wait_for(state="detached", timeout=15_000)
    assert "已撤销" in qa.inner_text("#qa-links")
    listed = page.request.get(f"/api/tasks/{task}/priors").json()["priors"]
    assert {p["study_uid"]: p["basis"] for p in listed}[studies["probable"]] == "probable"
    qa.context.close()
    page.context.close()
    assert not errors, f"the page threw: {errors}"
