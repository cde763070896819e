"""Named worklist views in a real Chromium: a reader saves his filters under a name, reloads,
picks the view and the worklist is filtered again; on another workstation (a fresh browser, no
local storage) the view is there too, and he deletes it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from pacs.index.db import transaction
from reading.models import SavedView
from tests.viewer.chromium import chromium, log_in, open_page  # noqa: F401
from tests.viewer.conftest import Web

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_reader_saves_a_view_reloads_picks_it_and_the_filters_apply(chromium: Any, web: Web) -> None:  # noqa: F811
    uid = web.world.ready_study()
    other = "stat" if web.world.task_of(uid).priority != "stat" else "routine"
    errors: list[str] = []
    page = open_page(chromium, web, errors)
    log_in(page, "li", lands_on="/worklist")
    row = page.locator(f"tr[data-study='{uid}']")
    row.wait_for()

    page.select_option("#filter-priority", other)
    page.select_option("#filter-modality", "CT")
    row.wait_for(state="detached")
    page.fill("#view-name", "急诊 CT")
    page.click("#view-save")
    page.wait_for_function("() => document.querySelector('#saved-views').selectedOptions[0].text === '急诊 CT'")

    # Back to every priority, then reload: the page starts unfiltered and the view is listed.
    page.select_option("#filter-priority", "")
    page.select_option("#filter-modality", "")
    row.wait_for()
    page.reload()
    row.wait_for()
    page.select_option("#saved-views", label="急诊 CT")
    row.wait_for(state="detached")
    page.locator("#worklist-rows td.empty").wait_for()
    assert page.input_value("#filter-priority") == other and page.input_value("#filter-modality") == "CT"

    # Another workstation: nothing in its local storage, the view comes from the server.
    ward = open_page(chromium, web, errors)
    log_in(ward, "li", lands_on="/worklist")
    ward.locator(f"tr[data-study='{uid}']").wait_for()
    ward.select_option("#saved-views", label="急诊 CT")
    ward.locator("#worklist-rows td.empty").wait_for()
    assert ward.input_value("#filter-priority") == other
    ward.once("dialog", lambda dialog: dialog.accept())
    ward.click("#view-delete")
    ward.wait_for_function("() => document.querySelector('#saved-views').options.length === 1")
    with transaction(web.world.services.sessions, read_only=True) as session:
        assert session.scalar(select(func.count()).select_from(SavedView)) == 0
    ward.context.close()
    page.context.close()
    assert not errors, f"the page threw: {errors}"
