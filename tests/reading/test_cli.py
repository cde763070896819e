"""``yunying group`` as a consortium administrator uses it without the web admin: list, rename,
set the readers; refusals say what to fix and change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import receiver_env, yunying


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = receiver_env(tmp_path / "var")
    yunying("db", "upgrade", env=env)
    yunying("site", "add", "Dongtai People's Hospital", "--tier", "county", "--consortium", "Dongtai", env=env)
    for username, tier in (("li.ming", "county"), ("wang.fang", "county"), ("zhao.lei", "provincial")):
        yunying("reader", "add", username, "--consortium", "Dongtai", "--tier", tier, "--modality", "CT", env=env)
    yunying("group", "add", "county CT", "--consortium", "Dongtai", "--tier", "county", "--member", "li.ming", env=env)
    return env


def groups(env: dict[str, str]) -> list[dict[str, object]]:
    done = yunying("group", "list", "--json", env=env)
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def group_changes(env: dict[str, str]) -> list[dict[str, object]]:
    done = yunying("changes", "--kind", "reading_group.changed", env=env)
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def refused(env: dict[str, str], *args: str) -> str:
    done = yunying(*args, env=env, check=False)
    assert done.returncode != 0, done.stdout
    return " ".join((done.stdout + done.stderr).replace("│", " ").split())  # as one line, unwrapped


def test_list_rename_and_set_readers(env: dict[str, str]) -> None:
    assert groups(env) == [
        {"id": 1, "name": "county CT", "consortium": "Dongtai", "tier": "county", "members": ["li.ming"]}
    ]
    assert "county CT" in yunying("group", "list", env=env).stdout

    done = yunying("group", "rename", "county CT", "county CT, days", "--consortium", "Dongtai", env=env)
    assert "renamed from 'county CT' to 'county CT, days'" in done.stdout
    assert groups(env)[0]["name"] == "county CT, days"
    same = yunying("group", "rename", "county CT, days", "county CT, days", "--consortium", "Dongtai", env=env)
    assert "nothing changed" in same.stdout

    done = yunying(
        "group", "members", "county CT, days", "--consortium", "Dongtai", "--member", "li.ming", "--member",
        "wang.fang", env=env,
    )  # fmt: skip
    assert "added wang.fang" in done.stdout
    assert groups(env)[0]["members"] == ["li.ming", "wang.fang"]
    done = yunying("group", "members", "county CT, days", "--consortium", "Dongtai", "--none", env=env)
    assert "removed li.ming, wang.fang" in done.stdout
    assert groups(env)[0]["members"] == []

    changes = group_changes(env)
    assert [c.get("renamed_from") for c in changes] == [None, "county CT", None, None]
    assert changes[-1]["removed"] == ["li.ming", "wang.fang"]


def test_refusals_name_the_fix_and_change_nothing(env: dict[str, str]) -> None:
    yunying("group", "add", "night", "--consortium", "Dongtai", "--tier", "county", env=env)
    before = (groups(env), group_changes(env))

    assert "exists already" in refused(env, "group", "rename", "county CT", "night", "--consortium", "Dongtai")
    assert "no reading group 'day' in 'Dongtai' (see `yunying group list`)" in refused(
        env, "group", "rename", "day", "days", "--consortium", "Dongtai"
    )
    assert "no consortium named 'Nowhere'" in refused(env, "group", "rename", "night", "n", "--consortium", "Nowhere")
    assert "1-100 characters" in refused(env, "group", "rename", "night", " ", "--consortium", "Dongtai")
    assert "reads at the provincial tier, not county" in refused(
        env, "group", "members", "night", "--consortium", "Dongtai", "--member", "zhao.lei"
    )
    assert "'nobody' is not a reader of 'Dongtai'" in refused(
        env, "group", "members", "night", "--consortium", "Dongtai", "--member", "nobody"
    )
    assert "--member" in refused(env, "group", "members", "night", "--consortium", "Dongtai")
    assert "--member" in refused(
        env, "group", "members", "night", "--consortium", "Dongtai", "--none", "--member", "li.ming"
    )
    assert (groups(env), group_changes(env)) == before
