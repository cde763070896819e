"""The administration page in a real Chromium against the real service: an admin adds and edits
a site and sees it listed, a bad AE title is refused with the message beside the field in the
user's language and nothing is stored, an AE is added and removed; a user is added with a first
password (a weak one refused), logs in, and is deactivated."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from pacs.index.db import transaction
from pacs.index.models import SiteAE, User
from tests.viewer.chromium import chromium, log_in, open_page  # noqa: F401
from tests.viewer.conftest import Web

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _aes(web: Web) -> list[tuple[str, str]]:
    with transaction(web.world.services.sessions, read_only=True) as session:
        return [(a.ae_title, a.allowed_address) for a in session.scalars(select(SiteAE).order_by(SiteAE.id))]


def test_an_admin_adds_a_site_and_its_ae_and_a_bad_title_is_refused_beside_the_field(
    chromium: Any,  # noqa: F811
    web: Web,
) -> None:
    errors: list[str] = []
    page = open_page(chromium, web, errors)
    log_in(page, "admin", lands_on="/admin")
    page.locator("#admin-sites").wait_for()

    site = page.locator("#site-form")
    site.locator("input[name=name]").fill("安丰镇卫生院")
    site.locator("select[name=tier]").select_option("township")
    site.locator("input[name=return_ae_title]").fill("ANFENG_PACS")
    site.locator("input[name=return_host]").fill("10.3.0.9")
    site.locator("input[name=return_port]").fill("104")
    site.locator("button[type=submit]").click()
    row = page.locator("#admin-sites tr", has_text="安丰镇卫生院")
    row.wait_for()
    assert "ANFENG_PACS@10.3.0.9:104" in row.inner_text() and "乡镇" in row.inner_text()
    assert "已保存机构 安丰镇卫生院" in page.inner_text("#admin-notice")

    # A port that is not one: refused beside the port, in Chinese; nothing changed.
    page.locator("#site-form select[name=site_id]").select_option(label="安丰镇卫生院")
    assert page.locator("#site-form input[name=name]").input_value() == "安丰镇卫生院"
    page.locator("#site-form input[name=return_port]").fill("99999")
    page.locator("#site-form button[type=submit]").click()
    port_error = page.locator("#site-form label[data-field=return_port] .field-error")
    port_error.wait_for()
    assert port_error.inner_text() == "99999 不是有效的 TCP 端口（1–65535）"
    # Edited: the contact and the port; the row follows.
    page.locator("#site-form input[name=return_port]").fill("11112")
    page.locator("#site-form input[name=contact]").fill("0515-8581")
    page.locator("#site-form button[type=submit]").click()
    page.locator("#admin-sites tr", has_text="ANFENG_PACS@10.3.0.9:11112").wait_for()

    ae = page.locator("#ae-form")
    assert ae.locator("select[name=site]").input_value() != ""  # a site is chosen from the start
    ae.locator("select[name=site]").select_option(label="安丰镇卫生院")
    ae.locator("input[name=ae_title]").fill("ANFENG\\CT")
    ae.locator("input[name=allowed_address]").fill("10.3.0.0/24")
    ae.locator("button[type=submit]").click()
    title_error = page.locator("#ae-form label[data-field=ae_title] .field-error")
    title_error.wait_for()
    assert title_error.inner_text() == "“ANFENG\\CT” 不是有效的 AE 名称：1–16 个可打印 ASCII 字符，不含反斜杠"
    assert page.locator("#ae-form input[name=ae_title]").get_attribute("aria-invalid") == "true"
    assert _aes(web) == []

    # The same refusal, in English once the user switches language.
    page.click("#locale-switch")
    page.locator("#ae-form").wait_for()
    page.locator("#ae-form select[name=site]").select_option(label="安丰镇卫生院")
    page.locator("#ae-form input[name=ae_title]").fill("ANFENG_CT")
    page.locator("#ae-form input[name=allowed_address]").fill("10.3.0.300")
    page.locator("#ae-form button[type=submit]").click()
    address_error = page.locator("#ae-form label[data-field=allowed_address] .field-error")
    address_error.wait_for()
    assert address_error.inner_text() == "10.3.0.300 is not an IP address or network (e.g. 10.2.0.15 or 10.2.0.0/24)"
    assert page.locator("#ae-form label[data-field=ae_title] .field-error").inner_text() == ""

    page.locator("#ae-form input[name=allowed_address]").fill("10.3.0.0/24")
    page.locator("#ae-form button[type=submit]").click()
    listed = page.locator("#admin-sites li[data-ae=ANFENG_CT]")
    listed.wait_for()
    assert "10.3.0.0/24" in listed.inner_text()
    assert _aes(web) == [("ANFENG_CT", "10.3.0.0/24")]

    page.once("dialog", lambda dialog: dialog.accept())
    listed.locator("button[data-action=remove-ae]").click()
    listed.wait_for(state="detached")
    assert _aes(web) == []
    page.context.close()
    assert not errors, f"the page threw: {errors}"


def test_an_admin_adds_a_user_who_logs_in_and_deactivates_him(chromium: Any, web: Web) -> None:  # noqa: F811
    errors: list[str] = []
    page = open_page(chromium, web, errors)
    log_in(page, "admin", lands_on="/admin")
    form = page.locator("#user-form")
    form.wait_for()
    assert form.locator("label[data-field=site_id]").is_hidden()
    form.locator("select[name=role]").select_option("site")
    form.locator("select[name=site_id]").select_option(label="Fudong")
    form.locator("input[name=username]").fill("fudong-dr")
    form.locator("input[name=display_name]").fill("张技师")
    form.locator("input[name=password]").fill("short")
    form.locator("button[type=submit]").click()
    password_error = page.locator("#user-form label[data-field=password] .field-error")
    password_error.wait_for()
    assert password_error.inner_text() == "密码至少 10 个字符"
    page.locator("#user-form input[name=password]").fill("Township-X-ray-3")
    page.locator("#user-form button[type=submit]").click()
    row = page.locator("#admin-users tr", has_text="fudong-dr")
    row.wait_for()
    assert "张技师" in row.inner_text() and "Fudong" in row.inner_text()

    newcomer = open_page(chromium, web, errors)
    newcomer.goto("/login")
    newcomer.fill("#login", "fudong-dr")
    newcomer.fill("#password", "Township-X-ray-3")
    newcomer.click("#login-submit")
    newcomer.wait_for_url("**/site")

    # The role left as it starts (reader): a user of the admin's consortium.
    page.locator("#user-form input[name=username]").fill("sun.reader")
    page.locator("#user-form input[name=password]").fill("reads-for-Dongtai-4")
    page.locator("#user-form button[type=submit]").click()
    page.locator("#admin-users tr", has_text="sun.reader").wait_for()
    assert "诊断医生" in page.locator("#admin-users tr", has_text="sun.reader").inner_text()
    assert page.locator("#admin-users button[data-user=admin]").is_disabled()  # not himself

    row.locator("button[data-action=deactivate]").click()
    page.locator("#admin-users tr", has_text="fudong-dr").locator("button[data-action=reactivate]").wait_for()
    with transaction(web.world.services.sessions, read_only=True) as session:
        assert session.scalar(select(User.active).where(User.username == "fudong-dr")) is False
    newcomer.reload()  # his session ended with the deactivation
    newcomer.wait_for_url("**/login?next=*")
    newcomer.context.close()
    page.context.close()
    assert not errors, f"the page threw: {errors}"
