"""The administration page in a real Chromium against the real service: an admin adds and edits
a site and sees it listed, a bad AE title is refused with the message beside the field in the
user's language and nothing is stored, an AE is added and removed; a user is added with a first
password (a weak one refused), logs in, and is deactivated; a reader profile and roster, a
routing rule, a reading group (a rule gives it its studies), the SLA table with its built-in
defaults, an SLA minute value and a service account's API token (shown once, working as a
bearer until revoked) are set up, each wrong input refused beside its field."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from pacs.identity.users import add_user
from pacs.index.db import transaction
from pacs.index.models import SiteAE, User
from reading.models import Reader, ReadingGroup, RoutingRule, SlaRule
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


def test_an_admin_sets_up_a_reader_a_group_a_rule_an_sla_and_a_service_token(
    chromium: Any,  # noqa: F811
    web: Web,
    tmp_path: Path,
) -> None:
    study_uid = web.world.ready_study()
    with transaction(web.world.services.sessions) as session:
        add_user(session, username="sun", role="reader", consortium="Dongtai", display_name="孙医生")
    errors: list[str] = []
    page = open_page(chromium, web, errors)
    log_in(page, "admin", lands_on="/admin")

    # A reader profile: the user 'sun' exists, without one (so without a worklist).
    reader = page.locator("#reader-form")
    reader.locator("select[name=username]").select_option("sun")
    assert reader.locator("label.inline").is_hidden()  # 'reads' is for a profile that exists
    reader.locator("select[name=tier]").select_option("county")
    reader.locator("input[name=modalities]").fill("CT XR")
    reader.locator("button[type=submit]").click()
    modalities_error = page.locator("#reader-form label[data-field=modalities] .field-error")
    modalities_error.wait_for()
    assert modalities_error.inner_text() == "请填写一个或多个设备类型：CR CT DX MG MR NM PT RF US XA"
    page.locator("#reader-form input[name=modalities]").fill("CT DX")
    page.locator("#reader-form button[type=submit]").click()
    row = page.locator("#admin-readers tr", has_text="(sun)")
    row.wait_for()
    assert "CT DX" in row.inner_text() and "县级" in row.inner_text()

    roster = page.locator("#roster-form")
    roster.locator("select[name=username]").select_option("sun")
    roster.locator("input[name=windows]").fill("mon 08:00-17:30; someday 08:00-12:00")
    roster.locator("button[type=submit]").click()
    window_error = page.locator("#roster-form label[data-field=windows] .field-error")
    window_error.wait_for()
    assert window_error.inner_text().startswith("“someday 08:00-12:00” 不是有效的值班时段")
    page.locator("#roster-form input[name=windows]").fill("daily 00:00-23:59")
    page.locator("#roster-form button[type=submit]").click()
    page.locator("#admin-readers tr", has_text="daily 00:00-23:59").wait_for()
    assert "已保存 sun 的值班表" in page.inner_text("#admin-notice")
    with transaction(web.world.services.sessions, read_only=True) as session:
        profile = session.scalar(select(Reader).join(User, User.id == Reader.user_id).where(User.username == "sun"))
        assert profile is not None and profile.modalities == ["CT", "DX"]

    # A reading group: a provincial reader in a county group is refused beside the members.
    group = page.locator("#group-form")
    group.locator("input[name=name]").fill("县级CT组")
    group.locator("select[name=tier]").select_option("county")
    group.locator("select[name=members]").select_option(["wang", "chen"])
    group.locator("button[type=submit]").click()
    members_error = page.locator("#group-form label[data-field=members] .field-error")
    members_error.wait_for()
    assert members_error.inner_text() == "chen 的阅片级别与小组不同：小组成员须同一级别"
    page.locator("#group-form select[name=members]").select_option(["wang"])
    page.locator("#group-form button[type=submit]").click()
    group_row = page.locator("#admin-groups tr", has_text="县级CT组")
    group_row.wait_for()
    assert "县级" in group_row.inner_text() and "wang" in group_row.inner_text()
    # Renamed by mistake and back, its members changed: li joins.
    assert page.locator("#members-form input[name=name]").input_value() == "县级CT组"
    page.locator("#members-form input[name=name]").fill("县CT组")
    page.locator("#members-form button[type=submit]").click()
    page.locator("#admin-groups tr", has_text="县CT组").wait_for()
    page.locator("#members-form input[name=name]").fill("县级CT组")
    page.locator("#members-form select[name=members]").select_option(["wang", "li"])
    page.locator("#members-form button[type=submit]").click()
    page.locator("#admin-groups tr", has_text="li wang").wait_for()
    assert "县级CT组" in page.locator("#admin-groups tr", has_text="li wang").inner_text()
    assert "已保存阅片小组 县级CT组" in page.inner_text("#admin-notice")

    # A routing rule, refused first for want of anything to match; then disabled.
    rule = page.locator("#rule-form")
    rule.locator("input[name=name]").fill("乡镇头颅CT送省级")
    rule.locator("select[name=to_tier]").select_option("provincial")
    rule.locator("button[type=submit]").click()
    rule_error = page.locator("#rule-form .form-error")
    rule_error.wait_for()
    assert rule_error.inner_text() == "规则至少要匹配机构、机构级别、设备类型或部位之一"
    page.locator("#rule-form select[name=site_tier]").select_option("township")
    page.locator("#rule-form input[name=modality]").fill("CT")
    page.locator("#rule-form input[name=body_part]").fill("HEAD")
    page.locator("#rule-form button[type=submit]").click()
    rule_row = page.locator("#admin-rules tr", has_text="乡镇头颅CT送省级")
    rule_row.wait_for()
    assert "→ 省级" in rule_row.inner_text() and "CT" in rule_row.inner_text()
    rule_row.locator("button[data-action=disable-rule]").click()
    page.locator("#admin-rules tr", has_text="乡镇头颅CT送省级").locator("button[data-action=enable-rule]").wait_for()
    with transaction(web.world.services.sessions, read_only=True) as session:
        assert session.scalar(select(RoutingRule.active).where(RoutingRule.name == "乡镇头颅CT送省级")) is False

    # A rule that gives DX studies to the group, chosen from the list of groups.
    page.locator("#rule-form input[name=name]").fill("DX交县级CT组")
    page.locator("#rule-form input[name=modality]").fill("DX")
    page.locator("#rule-form select[name=to_group]").select_option("县级CT组")
    page.locator("#rule-form button[type=submit]").click()
    group_rule = page.locator("#admin-rules tr", has_text="DX交县级CT组")
    group_rule.wait_for()
    assert "→ 县级CT组" in group_rule.inner_text()
    assert "DX交县级CT组" in page.locator("#admin-groups tr", has_text="县级CT组").inner_text()
    with transaction(web.world.services.sessions, read_only=True) as session:
        target = session.scalar(select(RoutingRule.to_group_id).where(RoutingRule.name == "DX交县级CT组"))
        assert target == session.scalar(select(ReadingGroup.id).where(ReadingGroup.name == "县级CT组"))

    # The SLA table shows what applies: the built-in defaults, none set by the consortium yet.
    defaults = [row.inner_text().split("\t") for row in page.locator("#admin-sla tbody tr").all()]
    assert [(r[0], r[2], r[3]) for r in defaults] == [
        ("危急", "30", "系统默认"),
        ("加急", "60", "系统默认"),
        ("常规", "1440", "系统默认"),
    ]
    # An SLA minute value: zero is refused beside the minutes; 45 is listed.
    sla = page.locator("#sla-form")
    sla.locator("select[name=priority]").select_option("urgent")
    sla.locator("input[name=minutes]").fill("0")
    sla.locator("button[type=submit]").click()
    minutes_error = page.locator("#sla-form label[data-field=minutes] .field-error")
    minutes_error.wait_for()
    assert minutes_error.inner_text() == "时限为 1 到 43200 分钟（30 天）"
    page.locator("#sla-form input[name=minutes]").fill("45")
    page.locator("#sla-form button[type=submit]").click()
    page.locator("#admin-sla tr", has_text="45").wait_for()
    assert "加急" in page.locator("#admin-sla tr", has_text="45").inner_text()
    assert "本医共体设定（默认 60）" in page.locator("#admin-sla tr", has_text="45").inner_text()
    assert page.locator("#admin-sla [data-source=default]").count() == 2  # stat and routine: still the defaults
    with transaction(web.world.services.sessions, read_only=True) as session:
        assert session.scalar(select(SlaRule.minutes).where(SlaRule.priority == "urgent")) == 45

    # A token for a new service account: a person is refused, then the RIS gets one, shown once.
    token_form = page.locator("#token-form")
    token_form.locator("input[name=account]").fill("li")
    token_form.locator("button[type=submit]").click()
    account_error = page.locator("#token-form label[data-field=account] .field-error")
    account_error.wait_for()
    assert account_error.inner_text() == "li 是个人用户，用密码登录；令牌只发给服务账号"
    page.locator("#token-form input[name=account]").fill("fudong-ris")
    page.locator("#token-form select[name=site_id]").select_option(label="Fudong")
    page.locator("#token-form input[name=name]").fill("富东 RIS")
    page.locator("#token-form button[type=submit]").click()
    secret = page.locator("#token-secret")
    secret.wait_for()
    token = secret.inner_text()
    assert token.startswith("yy_") and len(token) > 40
    assert "只显示这一次" in page.inner_text("#token-once")
    token_row = page.locator("#admin-tokens tr", has_text="fudong-ris")
    assert token[:10] in token_row.inner_text() and token not in page.inner_text("#admin-tokens")
    bearer = {"Authorization": f"Bearer {token}"}
    studies = httpx.get(f"{web.url}/dicomweb/studies", headers=bearer)
    assert studies.status_code == 200 and study_uid in studies.text
    shots = Path(os.environ.get("YUNYING_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)

    # Once: a reload shows the list, never the token.
    page.reload()
    page.locator("#admin-tokens").wait_for()
    assert page.locator("#token-secret").count() == 0 and token not in page.content()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#admin-tokens tr", has_text="fudong-ris").locator("button[data-action=revoke]").click()
    page.locator("#admin-tokens tr", has_text="已吊销").wait_for()
    assert httpx.get(f"{web.url}/dicomweb/studies", headers=bearer).status_code == 401
    # A wrong value beside its field, for the picture of the page.
    page.locator("#sla-form input[name=minutes]").fill("50000")
    page.locator("#sla-form button[type=submit]").click()
    page.locator("#sla-form label[data-field=minutes] .field-error").wait_for()
    page.evaluate("window.scrollTo(0, 0)")  # the grids' sticky headers stay at their tables' tops
    page.screenshot(path=str(shots / "admin-reading.png"), full_page=True)
    page.context.close()
    assert not errors, f"the page threw: {errors}"
