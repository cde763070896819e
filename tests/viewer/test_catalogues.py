"""The front end's message catalogues: every key in both languages, and every key the code names
exists (a missing one would show its raw key on screen)."""

from __future__ import annotations

import json
import re
from pathlib import Path

WEB = Path(__file__).resolve().parents[2] / "viewer" / "web"
CATALOGUES = WEB / "src" / "i18n"


def load(name: str) -> dict[str, str]:
    catalogue: dict[str, str] = json.loads((CATALOGUES / name).read_text(encoding="utf-8"))
    return catalogue


def test_the_chinese_and_english_catalogues_have_the_same_keys() -> None:
    zh, en = load("zh-CN.json"), load("en.json")
    assert sorted(zh) == sorted(en)
    assert all(value.strip() for value in [*zh.values(), *en.values()])


def test_the_placeholders_agree_between_the_languages() -> None:
    zh, en = load("zh-CN.json"), load("en.json")
    for key in zh:
        assert set(re.findall(r"\{(\w+)\}", zh[key])) == set(re.findall(r"\{(\w+)\}", en[key])), key


def test_every_literal_key_the_code_names_is_in_the_catalogues() -> None:
    zh = load("zh-CN.json")
    named: set[str] = set()
    for source in (WEB / "src").rglob("*.ts"):
        named |= set(re.findall(r"\bt\(\s*'([a-z_.A-Z0-9-]+)'", source.read_text(encoding="utf-8")))
    assert named, "no t('…') calls found: the pattern is out of date"
    assert sorted(named - set(zh)) == []
