"""Debian's Chromium driven by Python playwright, for the browser tests that need only the web
application (``Web`` of conftest.py) rather than the whole centre of test_pages.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright import sync_api as playwright_api  # dev dependency: missing is a failure, not a skip

from tests.viewer.conftest import PEOPLE, Web
from viewer.frontend import DIST

CHROMIUM = Path("/usr/bin/chromium")
# What a browser must not do on a test machine: no GPU, no sandbox (root), no calls home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is needed: apt-get install chromium (see .ci/run)")
    if not (DIST / "index.html").exists():
        pytest.fail("the front end is not built: make web (npm ci && npm run build in viewer/web)")
    with playwright_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def open_page(chromium: Any, web: Web, errors: list[str], *, locale: str = "zh-CN") -> Any:
    """A new page in a fresh context (its own cookies and local storage) on ``web``; what the
    page throws is appended to ``errors``."""
    context = chromium.new_context(base_url=web.url, viewport={"width": 1400, "height": 900}, locale=locale)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page


def log_in(page: Any, login: str, *, lands_on: str) -> None:
    """Through the login form, as a person does; waits for the role's start page."""
    page.goto("/login")
    page.fill("#login", login)
    page.fill("#password", PEOPLE[login][0])
    page.click("#login-submit")
    page.wait_for_url(re.compile(f".*{re.escape(lands_on)}$"), timeout=15_000)
