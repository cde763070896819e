"""``yunying edge`` and the centre's ``yunying site … --edge`` as a user types them."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.conftest import receiver_env, yunying


def edge_env(home: Path, **settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("YUNYING_")}
    env.update({"YUNYING_EDGE_HOME": str(home), **{f"YUNYING_EDGE_{k.upper()}": v for k, v in settings.items()}})
    return env


def test_every_edge_command_has_help(tmp_path: Path) -> None:
    env = edge_env(tmp_path / "edge")
    for command in (
        ["edge", "--help"],
        *(["edge", name, "--help"] for name in ("serve", "status", "reports", "retry", "prune")),
    ):
        assert "Usage" in yunying(*command, env=env).stdout


def test_a_bad_modality_entry_stops_the_edge_naming_the_fix(tmp_path: Path) -> None:
    env = edge_env(tmp_path / "edge", modalities='["CT1"]')
    done = yunying("edge", "status", env=env, check=False)
    assert done.returncode == 2 and "AE_TITLE@address" in done.stderr, done.stderr
    done = yunying("edge", "status", env=edge_env(tmp_path / "edge", transport="stow"), check=False)
    assert done.returncode == 2 and "YUNYING_EDGE_SITE_TOKEN" in done.stderr, done.stderr


def test_status_before_the_first_start_says_what_to_do(tmp_path: Path) -> None:
    done = yunying("edge", "status", env=edge_env(tmp_path / "edge"), check=False)
    assert done.returncode == 1 and "yunying edge serve" in done.stderr.replace("\n", " "), done.stderr


def test_a_site_is_marked_as_sending_through_an_edge_and_back(tmp_path: Path) -> None:
    env = receiver_env(tmp_path / "var")
    yunying("db", "upgrade", env=env)
    yunying("site", "add", "Fudong", "--tier", "township", "--consortium", "Dongtai", "--edge", env=env)
    yunying("site", "add", "Tianshan", "--tier", "village", "--consortium", "Dongtai", env=env)

    def held() -> dict[str, bool]:
        engine = create_engine(f"sqlite:///{tmp_path / 'var' / 'yunying.db'}")
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT name, held_for_manifest FROM site")).all()
        engine.dispose()
        return {name: bool(flag) for name, flag in rows}

    assert held() == {"Fudong": True, "Tianshan": False}
    yunying("site", "edge", "Tianshan", env=env)
    yunying("site", "edge", "Fudong", "--off", env=env)
    assert held() == {"Fudong": False, "Tianshan": True}
    done = yunying("site", "edge", "Nowhere", env=env, check=False)
    assert done.returncode == 1 and "yunying site list" in done.stderr
